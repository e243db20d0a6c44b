"""A chain on one database: tills of many stores at once, who is recorded, what no login may change."""

import json
import os
import sqlite3

import pytest
from conftest import as_login, open_db, pg_login
from test_concurrency import run_workers

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
    pg_login("till_sz01", "vipcli_till")
    monkeypatch.setenv("VIPCLI_DB", as_login(os.environ["VIPCLI_DB"], "till_sz01"))
    monkeypatch.setenv("VIPCLI_OPERATOR", "the-manager")
    assert vip("--operator", "someone-else", "purchase", card, "--amount", "100").code == 0
    entries = vip("audit", "--command", "purchase")["entries"]
    assert [e["operator"] for e in entries] == ["till_sz01"]


@pytest.mark.postgresql_only
def test_no_login_can_change_or_delete_the_ledger_or_the_audit(vip, member):
    card = member()
    vip("purchase", card, "--amount", "1000")
    pg_login("till_sz02", "vipcli_till")
    till_url = as_login(os.environ["VIPCLI_DB"], "till_sz02")
    with open_db(till_url) as till:  # a till's login, through plain SQL (as psql would)
        assert till.execute("SELECT COUNT(*) FROM audit").fetchone()[0] > 0
        for statement in ("UPDATE audit SET operator = 'nobody'", "DELETE FROM audit",
                          "UPDATE ledger SET delta = delta + 1", "DELETE FROM ledger", "TRUNCATE ledger"):
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
    assert vip("audit")["count"] == audits + 2  # every entry, the copy's, and the unmask just now
    assert vip("purchase", card, "--amount", "10").code == 0  # new ids go on after the copied ones
    assert vip("enroll", "--phone", "13900139000", "--grant", "x").code == 0
    assert vip("check", "--all")["ok"] is True
    monkeypatch.setenv("VIPCLI_DB", str(isolated / "store.db"))
    again = vip("db", "copy", "--to", chain)
    assert again.code == 1 and again["error"]["code"] == "target_not_empty"
    assert vip("db", "copy", "--to", str(isolated / "x.db")).code == 2


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
