from vipcli.cli import main

main()
