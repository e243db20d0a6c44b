import json

import pytest
from typer.testing import CliRunner

from vipcli.cli import app


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Every test gets its own database, key file and home; never the user's real ones."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    monkeypatch.setenv("VIPCLI_DB", str(tmp_path / "vip.db"))
    monkeypatch.setenv("VIPCLI_KEY_FILE", str(tmp_path / "vip.key"))
    monkeypatch.setenv("VIPCLI_OPERATOR", "tester")
    monkeypatch.setenv("VIPCLI_NOW", "2026-06-15T12:00:00")
    monkeypatch.delenv("VIPCLI_DEBUG", raising=False)
    monkeypatch.setenv("VIPCLI_LANG", "en")  # the messages the tests read; tests of Chinese ask for it
    monkeypatch.delenv("LANGUAGE", raising=False)  # (set by vipcli.i18n.use: restored after each test)
    from vipcli import db

    db.connect(tmp_path / "vip.db", create=True).close()  # as `vip init` leaves it, before any rules
    return tmp_path


@pytest.fixture(autouse=True)
def invariants_hold(request, isolated):
    """After every test, every vipcli database the test left in its folder passes the checks of
    `vip check` (lots and balances, purchases, tiers, card numbers): a test that writes the ledger ends with
    the invariants whole. A test that damages a database on purpose says so with
    @pytest.mark.damaged."""
    yield
    if request.node.get_closest_marker("damaged") is not None:
        return
    import sqlite3

    from vipcli import checks, db, rulebook
    from vipcli.errors import VipError

    for path in sorted(isolated.glob("*.db")):
        try:
            conn = db.connect_raw(path)
        except VipError:
            continue
        try:
            if not rulebook.has_rules(conn):
                continue
            rules = rulebook.current_rules(conn)
            # (ID numbers are left out: whether their key is at hand is the test's set-up, not an invariant)
            problems = {check.__name__: found for check in (checks.lots, checks.purchases, checks.tiers,
                                                            checks.card_numbers) if (found := check(conn, rules))}
        except (sqlite3.DatabaseError, VipError):
            continue  # not a (current) vipcli database: a backup of another schema, a damaged file
        finally:
            conn.close()
        assert not problems, f"{path.name}: {problems}"


class Result:
    def __init__(self, raw):
        self.raw = raw
        self.code = raw.exit_code
        self.stdout = raw.stdout
        self.stderr = raw.stderr
        # (under --json a command's object is on stdout, an error's on stderr)
        text = raw.stdout if raw.stdout.strip() or raw.exit_code == 0 else raw.stderr
        try:
            self.data = json.loads(text) if text.strip() else None
        except json.JSONDecodeError:
            self.data = None

    def __getitem__(self, key):
        return self.data[key]

    def __repr__(self):
        return f"<exit {self.code} stdout={self.stdout!r} stderr={self.stderr!r}>"


@pytest.fixture
def vip(monkeypatch):
    """Run the real Typer app with --json: vip("purchase", "--phone", P, "--amount", "100", now=...)."""
    runner = CliRunner()

    def run(*args, now=None, json_output=True):
        if now is not None:
            monkeypatch.setenv("VIPCLI_NOW", now)
        argv = (["--json"] if json_output else []) + [str(a) for a in args]
        return Result(runner.invoke(app, argv, catch_exceptions=False))

    return run


@pytest.fixture
def member(vip, monkeypatch):
    """A registered member with a card (granted), returning its card number."""

    def make(phone="13800138000", birthday="1990-06-15", now="2026-01-10T10:00:00", **extra):
        args = ["enroll", "--phone", phone, "--name", "王芳", "--gender", "F", "--birthday", birthday,
                "--grant", "test member"]
        for key, value in extra.items():
            args += [f"--{key.replace('_', '-')}", value]
        result = vip(*args, now=now)
        assert result.code == 0, result
        monkeypatch.setenv("VIPCLI_NOW", "2026-06-15T12:00:00")
        return result["card_no"]

    return make
