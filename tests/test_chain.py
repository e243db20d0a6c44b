"""A chain on one database: tills of many stores at once, who is recorded, what no login may change."""

import json
import os
import sqlite3

import pytest
from test_concurrency import run_workers
from conftest import as_login, open_db

pytestmark = pytest.mark.slow


def test_eight_tills_of_one_region_issue_distinct_consecutive_card_numbers(vip, isolated):
    """Eight terminals enrol and grant a card at the same moment, on either engine: every number of the
    region drawn once, none skipped, each card's check digit right (vip check)."""
    assert vip("init", "--region", "020").code == 0
    jobs = [(["enroll", "--phone", f"1390000{n:04d}", "--grant", "opening day", "--store", f"S{n % 4}"], 1)
            for n in range(8)]
    results = run_workers(jobs, os.environ.copy())
    assert all(r["code"] == 0 for r in results), results
    numbers = sorted(json.loads(r["out"])["card_no"] for r in results)
    assert [n[:3] for n in numbers] == ["020"] * 8
    assert [int(n[3:8]) for n in numbers] == list(range(1, 9))
    assert vip("check", "--all")["ok"] is True


@pytest.mark.postgresql_only
def test_the_operator_is_the_database_login_not_a_name_anyone_can_set(vip, member, monkeypatch):
    card = member()
    assert vip("user", "add", "till_sz01", "--role", "clerk", "--store", "SZ01").code == 0  # (made if missing)
    owner = os.environ["VIPCLI_DB"]
    monkeypatch.setenv("VIPCLI_DB", as_login(owner, "till_sz01"))
    monkeypatch.setenv("VIPCLI_OPERATOR", "the-manager")
    assert vip("--operator", "someone-else", "purchase", card, "--amount", "100").code == 0
    assert vip("whoami")["name"] == "till_sz01"
    monkeypatch.setenv("VIPCLI_DB", owner)
    entries = vip("audit", "--command", "purchase")["entries"]
    assert [e["operator"] for e in entries] == ["till_sz01"]


@pytest.mark.postgresql_only
def test_no_login_can_change_or_delete_the_ledger_or_the_audit_and_a_clerk_cannot_read_it(vip, member):
    card = member()
    vip("purchase", card, "--amount", "1000")
    assert vip("user", "add", "till_sz02", "--role", "clerk").code == 0
    till_url = as_login(os.environ["VIPCLI_DB"], "till_sz02")
    with open_db(till_url) as till:  # a clerk's login, through plain SQL (as psql would)
        for statement in ("SELECT * FROM audit", "UPDATE audit SET operator = 'nobody'", "DELETE FROM audit",
                          "UPDATE ledger SET delta = delta + 1", "DELETE FROM ledger", "TRUNCATE ledger",
                          "INSERT INTO users VALUES ('till_sz02b', 'hq', NULL, 'x', 'x')",
                          "UPDATE users SET role = 'hq'"):
            with pytest.raises(sqlite3.Error, match="not allowed|permission denied"):
                till.execute(statement)
        till.execute("UPDATE customers SET store = 'SZ02'")  # (what the commands do, it may)
    with open_db() as owner:  # the owner too: the triggers refuse
        for statement in ("UPDATE audit SET operator = 'nobody'", "DELETE FROM ledger", "TRUNCATE audit"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                owner.execute(statement)
    assert vip("check")["ok"] is True


# --- a till set up once: config.toml ---------------------------------------------------------------

def _config(isolated, text: str):
    folder = isolated / "home" / ".config" / "vipcli"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.toml").write_text(text, encoding="utf-8")


@pytest.mark.sqlite_only
def test_config_toml_then_environment_then_flags_and_config_show_says_which(vip, member, isolated, monkeypatch):
    """The file names the database and the store; a variable overrides the file; a flag overrides both."""
    db = os.environ["VIPCLI_DB"]
    monkeypatch.delenv("VIPCLI_DB")
    _config(isolated, f'db = "{db}"\nstore = "SZ01"\nlang = "en"\n')
    card = member()
    sale = vip("purchase", card, "--amount", "10")
    assert sale.code == 0 and sale["receipt"] == "R20260615-SZ01-000001"  # the till's store, from the file
    shown = vip("config", "show")["settings"]
    assert (shown["db"]["value"], shown["db"]["source"]) == (db, "config")
    assert (shown["store"]["value"], shown["store"]["source"]) == ("SZ01", "config")
    monkeypatch.setenv("VIPCLI_STORE", "SZ02")
    assert vip("purchase", card, "--amount", "10")["receipt"] == "R20260615-SZ02-000001"
    assert vip("config", "show")["settings"]["store"]["source"] == "environment"
    assert vip("purchase", card, "--amount", "10", "--store", "SZ03")["receipt"] == "R20260615-SZ03-000001"
    assert vip("purchase", card, "--amount", "10", "--store", "SZ03")["receipt"] == "R20260615-SZ03-000002"
    flagged = vip("--db", str(isolated / "other.db"), "config", "show")["settings"]["db"]
    assert (flagged["source"], flagged["from"]) == ("flag", "--db")
    assert "SZ01" not in os.environ.get("VIPCLI_STORE", "")  # (the file's values leave with the command)


@pytest.mark.parametrize("text,message", [
    ('db = "postgresql://till:secret@hq/vip"\n', "password"),
    ('colour = "red"\n', "unknown setting 'colour'"),
    ('store = \n', "not valid TOML"),
    ("store = true\n", "must be a text"),
])
@pytest.mark.sqlite_only
def test_a_wrong_config_toml_is_one_line_exit_2(vip, isolated, text, message):
    _config(isolated, text)
    r = vip("info")
    assert r.code == 2 and message in r["error"]["message"] and "config.toml" in r["error"]["message"]


@pytest.mark.sqlite_only
def test_a_password_on_the_command_line_is_refused(vip):
    r = vip("--db", "postgresql://till:secret@localhost/vip", "info")
    assert r.code == 2 and r["error"]["code"] == "password_in_url" and "secret" not in r.stderr


# --- vip db copy ------------------------------------------------------------------------------------

@pytest.mark.postgresql_only
def test_a_stores_file_copied_into_an_empty_chain_database_is_whole_and_checked(vip, member, isolated, monkeypatch):
    chain = os.environ["VIPCLI_DB"]  # (empty: migrated, no rules yet)
    monkeypatch.setenv("VIPCLI_DB", str(isolated / "store.db"))
    assert vip("init").code == 0
    card = member(id_number="11010519491231002X")
    vip("purchase", card, "--amount", "1000", "--receipt", "A1")
    vip("redeem", card, "--points", "80")
    vip("refund", "A1", "--amount", "100")
    before = vip("points", card)
    audits = vip("audit")["count"]
    copied = vip("db", "copy", "--to", chain)
    assert copied.code == 0 and copied["check_ok"] is True and copied["rows"] > 0, copied
    monkeypatch.setenv("VIPCLI_DB", chain)
    assert vip("points", card)["points_balance"] == before["points_balance"]
    assert vip("show", card, "--unmask")["id_number"] == "11010519491231002X"  # (the same key file)
    assert vip("audit")["count"] == audits + 3  # every entry, its first user, the copy's, and the unmask just now
    assert [e["operator"] for e in vip("audit", "--command", "db copy")["entries"]] == ["tester"]  # (the login)
    assert [(u["name"], u["role"]) for u in vip("user", "list")["users"]] == [("tester", "hq")]  # (the copier)
    assert vip("purchase", card, "--amount", "10").code == 0  # new ids go on after the copied ones
    assert vip("enroll", "--phone", "13900139000", "--grant", "x").code == 0
    assert vip("check", "--all")["ok"] is True
    monkeypatch.setenv("VIPCLI_DB", str(isolated / "store.db"))
    again = vip("db", "copy", "--to", chain)
    assert again.code == 1 and again["error"]["code"] == "target_not_empty"
    assert vip("db", "copy", "--to", str(isolated / "x.db")).code == 2


@pytest.mark.postgresql_only
def test_a_copied_file_keeps_its_waiting_applications(vip, isolated, monkeypatch):
    chain = os.environ["VIPCLI_DB"]
    monkeypatch.setenv("VIPCLI_DB", str(isolated / "store.db"))
    assert vip("init", "--profile", "fashion").code == 0
    application = vip("purchase", "--phone", "13800138000", "--amount", "700", "--store", "GZ01")["application"]
    assert vip("db", "copy", "--to", chain).code == 0
    monkeypatch.setenv("VIPCLI_DB", chain)
    assert [a["id"] for a in vip("applications", "--status", "pending")["applications"]] == [application]
    vip("update", "13800138000", "--name", "王芳", "--gender", "F", "--birthday", "1990-06-15")
    assert vip("approve", application)["card_no"] == "02000001"  # (GZ01's region, 020)
    assert vip("apply", "13900139000").code == 1  # (no such customer: ids go on after the copied ones)
    assert vip("check", "--all")["ok"] is True


def test_each_command_closes_its_connection(vip, member):
    """A script running many commands through the app (as the tests do) held one connection per command
    until the server refused more."""
    import gc

    member()
    gc.disable()  # (what is closed is closed by the command, not by the collector)
    try:
        for _ in range(30):
            assert vip("points", "13800138000").code == 0
        if os.environ["VIPCLI_DB"].startswith("postgresql:"):
            with open_db() as conn:
                sessions = conn.execute("SELECT COUNT(*) FROM pg_stat_activity "
                                        "WHERE datname = current_database()").fetchone()[0]
            assert sessions == 1  # (this one)
    finally:
        gc.enable()


# --- a receipt number is unique per store ------------------------------------------------------------

def test_two_stores_files_with_the_same_receipt_numbers_both_go_in(vip, isolated):
    """Each store's POS numbers its receipts from 000001: the chain's import keeps both, a re-run of either
    adds nothing, and a refund names the store when the number is not enough."""
    rows = {"SZ01": ["000001,13900000001,SZ01,2026-05-01T10:00:00,100.00",
                     "000002,13900000002,SZ01,2026-05-01T11:00:00,1200.00"],
            "GZ01": ["000001,13900000003,GZ01,2026-05-01T10:30:00,50.00",
                     "000002,13900000002,GZ01,2026-05-02T09:00:00,30.00"]}
    for store, lines in rows.items():
        (isolated / f"{store}.csv").write_text("receipt,phone,store,purchased_at,amount\n" + "\n".join(lines) + "\n",
                                               encoding="utf-8")
        r = vip("import", "purchases", str(isolated / f"{store}.csv"))
        assert r.code == 0 and (r["inserted"], r["duplicates"]) == (2, 0), r
    again = vip("import", "purchases", str(isolated / "GZ01.csv"))
    assert (again["inserted"], again["duplicates"]) == (0, 2)
    assert vip("info")["counts"]["purchases"] == 4
    ambiguous = vip("refund", "000002")
    assert ambiguous.code == 2 and ambiguous["error"]["code"] == "ambiguous_receipt"
    assert "SZ01" in ambiguous["error"]["message"] and "GZ01" in ambiguous["error"]["message"]
    assert vip("refund", "000002", "--store", "GZ01")["refunded"] == "26.40"  # (a member by then: 0.88)
    assert vip("points", "13900000002")["points_balance"] == 1200  # (the SZ01 purchase's points stay)
    assert vip("check", "--all")["ok"] is True


def test_the_same_receipt_at_two_tills_of_two_stores(vip, member):
    card = member()
    first = vip("purchase", card, "--amount", "100", "--receipt", "T-1", "--store", "SZ01")
    other = vip("purchase", card, "--amount", "100", "--receipt", "T-1", "--store", "SZ02")
    assert first.code == other.code == 0 and not other["duplicate"]
    same = vip("purchase", card, "--amount", "100", "--receipt", "T-1", "--store", "SZ02")
    assert same["duplicate"] is True
    differs = vip("purchase", card, "--amount", "99", "--receipt", "T-1", "--store", "SZ02")
    assert differs.code == 1
    assert vip("refund", "T-1", "--store", "SZ01").code == 0  # (a till of SZ01 returns its own)
    assert vip("purchase", card, "--amount", "5", "--receipt", "T-2").code == 0
    assert vip("refund", "T-2", "--store", "SZ09").code == 0  # the only T-2: returned at any store


@pytest.mark.sqlite_only
def test_a_file_of_schema_6_keeps_every_purchase_when_receipts_become_per_store(vip, isolated, monkeypatch):
    """Migration 7 builds the purchases table again (SQLite cannot drop a UNIQUE): every row, its
    indexes, its check-journal triggers and the foreign keys pointing at it are there after."""
    import vipcli.cli
    from vipcli import db, migrations, roles

    (isolated / "vip.db").unlink()
    conn = sqlite3.connect(isolated / "vip.db", isolation_level=None)
    conn.execute("BEGIN")
    for number, (name, script) in enumerate(migrations.MIGRATIONS[:6], 1):
        for statement in migrations._statements(script):
            conn.execute(statement)
        conn.execute("INSERT INTO migrations VALUES (?, ?, '2026-01-01')", (number, name))
    conn.execute("PRAGMA user_version = 6")
    conn.execute("COMMIT")
    conn.close()
    monkeypatch.setattr(migrations, "SCHEMA_VERSION", 6)  # (a vipcli of schema 6 fills it: no roles yet)
    monkeypatch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:6])
    monkeypatch.setattr(vipcli.cli, "authorize", lambda ctx: None)
    monkeypatch.setattr(roles, "first_user", lambda *args: None)
    assert vip("init").code == 0
    card = vip("enroll", "--phone", "13800138000", "--grant", "x")["card_no"]
    vip("purchase", card, "--amount", "1000", "--receipt", "A1", "--store", "SZ01")
    vip("refund", "A1", "--amount", "100")
    monkeypatch.undo()
    monkeypatch.setenv("VIPCLI_DB", str(isolated / "vip.db"))
    monkeypatch.setenv("VIPCLI_KEY_FILE", str(isolated / "vip.key"))
    monkeypatch.setenv("VIPCLI_OPERATOR", "tester")
    monkeypatch.setenv("VIPCLI_NOW", "2026-06-15T12:00:00")
    monkeypatch.setenv("VIPCLI_LANG", "en")
    assert vip("points", card)["points_balance"] == 780  # (migrated on opening)
    conn = db.connect(isolated / "vip.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == migrations.SCHEMA_VERSION
    assert [tuple(r) for r in conn.execute("SELECT name, role FROM users")] == [("tester", "hq")]  # (its first operator)
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert not conn.execute("PRAGMA foreign_key_check").fetchall()
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE tbl_name = 'purchases'")}
    assert {"purchases_receipt_store", "purchases_customer_time", "purchases_time", "check_purchase_update",
            "check_purchase_delete"} <= names
    with pytest.raises(sqlite3.IntegrityError):  # (the refund still points at its purchase)
        conn.execute("DELETE FROM purchases")
    conn.close()
    assert vip("purchase", card, "--amount", "10", "--receipt", "A1", "--store", "SZ02")["duplicate"] is False
    assert vip("check", "--all")["ok"] is True
