import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import open_db

P = "13800138000"
EXAMPLE_RULES = Path(__file__).resolve().parents[2] / "examples" / "rules" / "store.toml"


def test_usage_errors_are_one_line_exit_2(vip):
    for args in (["purchase", "--phone", P], ["bogus"], ["purchase", "--phone", P, "--amount", "1", "--nope"]):
        r = vip(*args, json_output=False)
        assert r.code == 2
        assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("error: ")
        assert "Traceback" not in r.stderr


def test_json_error_object(vip):
    r = vip("purchase", "--phone", P, "--amount", "abc")
    assert r.code == 2
    assert r.data == {"error": {"code": "bad_amount", "message": r.data["error"]["message"]}}
    assert "amount" in r.data["error"]["message"]


def test_help_and_bare_group(vip):
    assert vip("--help", json_output=False).code == 0
    r = vip("tier", json_output=False)
    assert r.code == 0 and "review" in r.stdout


@pytest.mark.sqlite_only
def test_database_created_private_with_wal(vip, isolated):
    db = isolated / "vip.db"
    db.unlink()
    assert vip("init").code == 0
    assert oct(db.stat().st_mode & 0o777) == "0o600"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] >= 1
        assert conn.execute("PRAGMA page_size").fetchone()[0] == 16384


@pytest.mark.sqlite_only
@pytest.mark.parametrize("args", [["info"], ["export", "members", "--format", "csv", "--out", "m.csv"],
                                  ["purchase", "--phone", P, "--amount", "10"], ["check"], ["rules", "load", str(EXAMPLE_RULES)],
                                  ["backup", "b.db"]])
def test_only_init_creates_a_database(vip, isolated, monkeypatch, args):
    """A cron job with a typo in its path fails (exit 4), and creates neither the file nor its folder;
    `vip init` afterwards still works."""
    monkeypatch.chdir(isolated)
    missing = isolated / "typo" / "vip.db"
    monkeypatch.setenv("VIPCLI_DB", str(missing))
    r = vip(*args)
    assert r.code == 4 and r.data["error"] == {"code": "no_database",
                                                "message": f"no vipcli database at {missing} (run vip init)"}
    assert not missing.parent.exists() and not (isolated / "m.csv").exists()
    assert vip("init", "--region", "020").code == 0 and missing.exists()


@pytest.mark.sqlite_only
def test_an_existing_database_keeps_its_page_size(vip, isolated, monkeypatch):
    """16 KB pages are for new files; a file made elsewhere with 4 KB pages is migrated as it is."""
    db = isolated / "old.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA page_size = 4096")
        conn.execute("CREATE TABLE kept (x)")
    monkeypatch.setenv("VIPCLI_DB", str(db))
    assert vip("info").code == 0
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA page_size").fetchone()[0] == 4096
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_init_twice_refused_and_info(vip, isolated):
    first = vip("init", "--region", "020")
    assert first["schema_version"] >= 1 and first["rules_version"] == 1 and first["db"] == os.environ["VIPCLI_DB"]
    assert vip("init").code == 1
    info = vip("info")
    assert info["rules_version"] == 1 and info["profile"] == "store"
    assert vip("enroll", "--phone", P, "--grant", "x")["card_no"].startswith("020")
    assert vip("init", "--region", "20").code == 2


def test_newer_schema_refused(vip, isolated, engine):
    vip("init")
    with open_db() as conn:
        if engine == "sqlite":
            conn.execute("PRAGMA user_version = 99")
        else:  # (PostgreSQL's version is the migrations table's last row)
            conn.execute("INSERT INTO migrations VALUES (99, 'from a newer vipcli', '2030-01-01T00:00:00')")
    r = vip("info")
    assert r.code == 4 and "newer" in r["error"]["message"]


@pytest.mark.sqlite_only
def test_corrupt_file_exit_4(vip, isolated):
    (isolated / "vip.db").write_bytes(b"this is not a database at all" * 200)
    r = vip("info")
    assert r.code == 4 and "Traceback" not in r.stderr


def test_locked_past_timeout_is_exit_4_plain_message(vip, isolated, monkeypatch):
    vip("enroll", "--phone", P, "--grant", "x")
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from vipcli import db
        conn = db.connect({os.environ["VIPCLI_DB"]!r})
        with db.transaction(conn):  # (BEGIN IMMEDIATE, or PostgreSQL's writers' lock)
            print("held", flush=True)
            time.sleep(5)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        monkeypatch.setenv("VIPCLI_BUSY_TIMEOUT", "0.3")
        r = vip("purchase", "--phone", P, "--amount", "100")
        assert r.code == 4 and r["error"]["code"] == "busy"
        assert "database is locked" not in r.stdout + r.stderr
    finally:
        holder.kill()
        holder.wait()
    with open_db() as conn:
        assert conn.execute("SELECT COUNT(*) FROM purchases").fetchone()[0] == 0


def test_rules_commands(vip, tmp_path):
    from vipcli.rulefile import default_text
    assert vip("rules", "show")["profile"] == "store"
    good = tmp_path / "good.toml"
    good.write_text(default_text(), encoding="utf-8")
    assert vip("rules", "validate", str(good))["valid"] is True
    bad = tmp_path / "bad.toml"
    bad.write_text(default_text().replace("window_days = 30", "window_days = 30\nextra = 1"), encoding="utf-8")
    r = vip("rules", "validate", str(bad))
    assert r.code == 2 and "registration.extra" in r["error"]["message"]
    assert vip("rules", "load", str(bad)).code == 2
    assert vip("rules", "load", str(tmp_path / "missing.toml")).code == 2
    assert vip("rules", "show")["rules_version"] == 1
    assert vip("rules", "load", str(good))["rules_version"] == 2


def test_ledger_is_append_only(vip, member, isolated):
    card = member()
    vip("purchase", card, "--amount", "100")
    with open_db() as conn:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE ledger SET delta = 1000")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("DELETE FROM ledger")


def test_console_script_runs_in_a_fresh_process(isolated):
    env = {**os.environ, "VIPCLI_DB": str(isolated / "p.db")}
    subprocess.run([sys.executable, "-m", "vipcli", "init"], check=True, capture_output=True, env=env)
    out = subprocess.run([sys.executable, "-m", "vipcli", "--json", "purchase", "--phone", P, "--amount", "1000"],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0 and '"card_issued": true' in out.stdout


@pytest.mark.sqlite_only
def test_an_empty_file_is_not_silently_made_a_database(vip, isolated, monkeypatch):
    empty = isolated / "empty.db"
    empty.write_bytes(b"")
    monkeypatch.setenv("VIPCLI_DB", str(empty))
    r = vip("info")
    assert r.code == 4 and r.data["error"]["code"] == "no_database" and empty.stat().st_size == 0
    assert vip("init").code == 0 and vip("info").code == 0


@pytest.mark.sqlite_only
def test_a_full_disk_is_said_plainly_and_nothing_is_half_written(vip, member, isolated, monkeypatch):
    """SQLITE_FULL was hidden behind "cannot rollback - no transaction is active"."""
    from vipcli import db
    card = member()
    connect = db.connect

    def small(path, create=False):
        conn = connect(path, create)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")  # no room for one more page
        return conn

    monkeypatch.setattr(db, "connect", small)
    for i in range(3000):  # until a purchase needs a page the database may not have
        r = vip("purchase", card, "--amount", "10", "--receipt", f"F{i}")
        if r.code != 0:
            break
    assert r.code == 4 and r.data["error"]["code"] == "disk_full" and "disk is full" in r.data["error"]["message"]
    monkeypatch.setattr(db, "connect", connect)
    assert vip("purchase", card, "--amount", "10", "--receipt", f"F{i}").data["duplicate"] is False  # not half there
    assert vip("check")["ok"] is True


@pytest.mark.sqlite_only
def test_a_database_in_a_folder_that_cant_be_written_still_reads(vip, member, isolated, monkeypatch):
    """On a read-only file system even `vip info`, `show` and `export` failed. (Tests run as root,
    for whom permissions don't bite: the folder is made unwritable by os.access's answer.)"""
    import os as os_mod
    card = member()
    vip("purchase", card, "--amount", "100")
    db_folder = str(isolated)
    real_access = os_mod.access
    monkeypatch.setattr(os_mod, "access", lambda p, mode, *a, **k: False if str(p) == db_folder and
                        mode == os_mod.W_OK else real_access(p, mode, *a, **k))
    assert vip("info").code == 0
    assert vip("show", card)["points_balance"] == 88
    out = isolated.parent / f"{isolated.name}-export.csv"
    assert vip("export", "purchases", "--out", str(out)).code == 0 and out.exists()
    r = vip("purchase", card, "--amount", "10")
    assert r.code == 4 and r.data["error"]["code"] == "read_only" and "only reading commands" in r.data["error"]["message"]


def test_version_and_short_help(vip):
    """Issue 16.8: `vip --version` (the package's), `-h` beside `--help`, on every command."""
    import tomllib
    from pathlib import Path

    r = vip("--version", json_output=False)
    declared = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text(encoding="utf-8"))
    assert r.code == 0 and r.stdout.strip() == f"vip {declared['project']['version']}"
    assert vip("-h", json_output=False).stdout.startswith("Usage: vip")
    assert vip("purchase", "-h", json_output=False).stdout.startswith("Usage: vip purchase")


def test_a_json_error_is_written_once_on_stderr(vip):
    """Issue 16.12 and SPEC §1: under --json the error is one JSON line on stderr; stdout stays empty."""
    r = vip("show", "1")
    assert r.code == 2 and r.stdout == "" and json.loads(r.stderr)["error"]["code"] == "bad_card"


def test_global_options_after_the_command(vip, member, isolated, engine):
    """Issue 16.10: --json, --db and --operator are taken after the command name too; a command's own
    option of that name keeps it (vip audit --operator filters)."""
    card = member()
    if engine == "sqlite":  # (on a file the operator named is a user; on PostgreSQL the login is)
        assert vip("user", "add", "小王", "--role", "clerk").code == 0
    r = vip("purchase", card, "--amount", "10", "--json", "--operator", "小王", json_output=False)
    assert r.code == 0 and r["paid"] == "8.80"
    other = isolated / "other.db"
    assert vip("init", "--db", str(other)).code == 0 and other.exists()
    odd = vip("purchase", card, "--amount", "10", "--receipt", "--operator", "--json", json_output=False)
    assert odd.code == 0 and odd["receipt"] == "--operator"  # (an option's value is the command's, whatever it says)
    who = "小王" if engine == "sqlite" else "tester"  # (on PostgreSQL the operator is the login, whatever is said)
    assert vip("audit", "--operator", who)["entries"][0]["operator"] == who
    assert vip("audit", "--operator", "nobody")["entries"] == []
    assert vip("show", card, "--db=" + str(other)).code == 1  # (no such card in the other database)
