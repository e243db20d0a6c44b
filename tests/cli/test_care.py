import sqlite3

import pytest
from conftest import open_db

P = "13800138000"


def _buy(vip, phone, times, amount, start_day=1):
    for i in range(times):
        assert vip("purchase", "--phone", phone, "--amount", amount, "--at", f"2026-05-{start_day + i:02d}").code == 0


@pytest.mark.parametrize("times,amount,cls", [
    (12, "1.00", "A"), (11, "1.00", "B"), (1, "1200.00", "A"), (1, "1199.99", "B"),
    (4, "1.00", "C"), (3, "1.00", "D"), (1, "199.99", "E"), (1, "200.00", "D"),
])
def test_classes_at_their_thresholds(vip, times, amount, cls):
    _buy(vip, P, times, amount)
    rows = vip("class", "--as-of", "2026-06-15")["classes"]
    assert rows[0]["class"] == cls and rows[0]["purchases"] == times


def test_class_window_is_the_12_months_before(vip):
    vip("purchase", "--phone", P, "--amount", "1200", "--at", "2025-06-15T12:00:01")
    assert vip("class", "--as-of", "2026-06-15T12:00:00")["classes"][0]["class"] == "A"
    assert vip("class", "--as-of", "2026-06-15T12:00:01")["classes"][0]["class"] == "E"


def test_visit_due_by_class_interval_and_twelve_months(vip):
    vip("purchase", "--phone", P, "--amount", "1200", "--at", "2026-05-01")     # A: every month, by visit
    vip("purchase", "--phone", "13900139000", "--amount", "10", "--at", "2026-05-01")
    due = vip("visit", "due", "--as-of", "2026-06-01")["due"]
    assert [(d["class"], d["channel"], d["last_contact"]) for d in due] == [("A", "visit", None), ("E", "phone", None)]
    vip("visit", "log", P, "--channel", "visit", "--note", "上门拜访", "--at", "2026-06-01T10:00")
    due = vip("visit", "due", "--as-of", "2026-06-15")["due"]
    assert [d["customer_id"] for d in due] == [2]
    due = vip("visit", "due", "--as-of", "2026-07-01T10:00")["due"]
    assert due[0]["customer_id"] == 1 and due[0]["last_contact"] == "2026-06-01T10:00:00"
    assert vip("visit", "due", "--as-of", "2026-07-01T09:59")["count"] == 1


def test_visit_log_validates(vip, isolated):
    vip("purchase", "--phone", P, "--amount", "10")
    assert vip("visit", "log", P, "--channel", "pigeon").code == 2
    assert vip("visit", "log", "13900139000", "--channel", "phone").code == 1
    assert vip("visit", "log", P, "--channel", "SMS", "--note", "已发短信")["channel"] == "sms"
    with open_db() as conn:
        assert conn.execute("SELECT operator FROM visits").fetchone()[0] == "tester"


@pytest.mark.sqlite_only  # (SQLite's own files and query plans)
def test_older_database_is_migrated(vip, isolated):
    from vipcli import migrations
    (isolated / "vip.db").unlink(missing_ok=True)
    conn = sqlite3.connect(isolated / "vip.db", isolation_level=None)
    conn.execute("BEGIN")
    for statement in migrations._statements(migrations.MIGRATIONS[0][1]):
        conn.execute(statement)
    conn.execute("INSERT INTO migrations VALUES (1, 'core', '2026-01-01')")
    conn.execute("PRAGMA user_version = 1")
    conn.execute("COMMIT")
    conn.close()
    assert vip("purchase", "--phone", P, "--amount", "1000").code == 0
    with open_db() as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == migrations.SCHEMA_VERSION
        assert [r[0] for r in conn.execute("SELECT version FROM migrations")] == list(range(1, migrations.SCHEMA_VERSION + 1))


def test_class_as_of_a_date_counts_that_whole_day(vip):
    vip("purchase", "--phone", P, "--amount", "1", "--at", "2026-05-01T10:00:00")
    vip("purchase", "--phone", P, "--amount", "1200", "--at", "2026-05-31T20:00:00")
    assert vip("class", "--as-of", "2026-05-31T19:59:59")["classes"][0]["class"] == "E"
    assert vip("class", "--as-of", "2026-05-31")["classes"][0]["class"] == "A"
    assert vip("visit", "due", "--as-of", "2026-06-01")["due"][0]["class"] == "A"


def test_the_follow_up_lists_can_be_worked_from(vip, isolated):
    """Name and masked phone on every row, --class, --store and --limit, and both lists in a file."""
    vip("enroll", "--phone", P, "--name", "王芳", "--store", "SZ01", "--at", "2026-01-02")
    for i in range(12):
        vip("purchase", "--phone", P, "--amount", "10", "--at", f"2026-05-{i + 1:02d}")  # A
    for i in range(3):
        vip("purchase", "--phone", f"1390013900{i}", "--amount", "10", "--store", "GZ01", "--at", "2026-01-05")
    due = vip("visit", "due", "--class", "A")
    assert [(d["name"], d["phone"], d["store"], d["channel"]) for d in due["due"]] == [("王芳", "138****8000", "SZ01", "visit")]
    assert vip("visit", "due", "--store", "GZ01")["count"] == 3
    assert vip("class", "--store", "GZ01", "--class", "A")["classes"] == []
    limited = vip("visit", "due", "--limit", "2")
    assert len(limited["due"]) == 2 and limited["count"] == 4
    human = vip("visit", "due", "--limit", "1", json_output=False)
    assert "王芳" in human.stdout and "138****8000" in human.stdout and "Showing 1 of 4" in human.stdout
    assert vip("visit", "due", "--class", "Z").code == 2 and vip("class", "--limit", "0").code == 2
    out = isolated / "due.csv"
    r = vip("export", "due", "--out", str(out))
    assert r["rows"] == 4
    text = out.read_text(encoding="utf-8-sig")
    assert text.startswith("class,customer_id,name,phone,store,card_no,channel,last_contact,due_since")
    assert "138****8000" in text and "13800138000" not in text
    assert vip("export", "classes", "--out", str(isolated / "classes.xlsx"), "--store", "SZ01")["rows"] == 1
