"""Importers and exporters (CSV, XLSX, JSON). openpyxl is imported only inside the functions that use it."""

# Set by the CLI as each command starts: a function giving the files (path -> what it is) no output of
# the command may be. `files` asks for them only when an output is written (not on a till's path).
protected_paths = None
