"""How vip behaves at a terminal and away from one (issue 16, habits of a good command line): lists
through the pager on a terminal (real processes under a pseudo-terminal), never cut or wrapped into
a file, `vip rules show > x.toml` a rules file."""

import os
import pty
import subprocess
import sys

import pytest

VIP = [sys.executable, "-c", "from vipcli.cli import main; main()"]


def test_rules_show_into_a_file_is_a_rules_file_that_validates(vip, member, isolated):
    member()
    shown = vip("rules", "show", json_output=False)
    assert shown.code == 0 and shown.stdout.startswith("# vipcli rule profile")
    (isolated / "x.toml").write_text(shown.stdout, encoding="utf-8")
    assert vip("rules", "validate", str(isolated / "x.toml"))["valid"] is True


def test_a_list_into_a_file_keeps_every_cell_whole(vip, member, isolated):
    long_name = "欧阳" + "娜" * 38  # 40 characters, 80 columns
    member(name=long_name, address="广东省深圳市南山区" * 8)
    for args in (("cards",), ("show", "13800138000"), ("search", "欧阳")):
        out = vip(*args, json_output=False).stdout
        assert all("…" not in line for line in out.splitlines()), args
    assert long_name[:1] + "*" in vip("cards", json_output=False).stdout  # (masked, whole)
    assert "广东省深圳市南山区" * 8 in vip("show", "13800138000", json_output=False).stdout


def _at_a_terminal(args, env, isolated):
    """Run vip with stdin, stdout and stderr on a pseudo-terminal; what it printed there."""
    main, side = pty.openpty()
    proc = subprocess.Popen(VIP + list(args), stdin=side, stdout=side, stderr=side, env=env, cwd=isolated,
                            close_fds=True)
    os.close(side)
    seen = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the other side closed: the process is done
            break
        if not chunk:
            break
        seen += chunk
    proc.wait(timeout=60)
    os.close(main)
    return proc.returncode, seen.decode("utf-8", "replace")


@pytest.mark.slow
def test_a_list_at_a_terminal_goes_through_the_pager_unless_told_not_to(vip, member, isolated):
    member()
    paged = isolated / "paged.txt"
    env = {**os.environ, "PAGER": f"cat > {paged}", "TERM": "xterm", "COLUMNS": "100", "LINES": "30"}
    code, screen = _at_a_terminal(["cards"], env, isolated)
    assert code == 0 and "VIP卡跟踪表" in paged.read_text(encoding="utf-8") and "VIP卡跟踪表" not in screen
    paged.unlink()
    code, screen = _at_a_terminal(["--no-pager", "cards"], env, isolated)
    assert code == 0 and "VIP卡跟踪表" in screen and not paged.exists()
    code, screen = _at_a_terminal(["cards"], {**env, "PAGER": "cat"}, isolated)
    assert code == 0 and "VIP卡跟踪表" in screen and not paged.exists()
    # a till's command is never paged
    code, screen = _at_a_terminal(["purchase", "--phone", "13800138000", "--amount", "10"], env, isolated)
    assert code == 0 and "Receipt" in screen and not paged.exists()


def test_shell_completion_completes_commands_subcommands_and_options(isolated):
    """`vip --install-completion` / `--show-completion` are typer's; the completion they install asks
    vip itself, which answers from the commands it has."""
    def complete(words: str, index: int) -> list[str]:
        env = {**os.environ, "_VIP_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(index)}
        return subprocess.run(VIP, env=env, capture_output=True, text=True, check=True).stdout.split()

    assert complete("vip pur", 1) == ["purchase"]
    assert complete("vip tier ", 2) == ["show", "review", "set"]
    assert complete("vip purchase --am", 2) == ["--amount"]
    shown = subprocess.run(VIP + ["--show-completion", "bash"], capture_output=True, text=True, cwd=isolated)
    assert shown.returncode == 0 and "_VIP_COMPLETE=complete_bash" in shown.stdout


def test_a_progress_bar_only_where_a_person_watches(monkeypatch):
    """A bar on a terminal; nothing under --json, cron or a pipe."""
    from types import SimpleNamespace

    from vipcli.cli.progress import progress_bar

    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    with progress_bar(SimpleNamespace(json=False), "export") as advance:
        assert advance is None
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    with progress_bar(SimpleNamespace(json=True), "export") as advance:
        assert advance is None
    with progress_bar(SimpleNamespace(json=False), "export", 3, "rows") as advance:
        advance(2)
        advance.reset()
        advance(3)
