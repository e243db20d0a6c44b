"""The everyday queries use an index where they ask for a range or a key: EXPLAIN QUERY PLAN shows
no full scan of the table (SCAN without an index) for any of them."""

import os
import pytest

from vipcli import db

# (what asks it, the query with parameters as a caller gives them)
EVERYDAY = [
    ("export purchases --since/--until", "SELECT * FROM purchases p WHERE p.purchased_at > ? AND p.purchased_at <= ? "
                                         "ORDER BY p.purchased_at, p.id", ("2026-01-01", "2026-02-01")),
    ("refund: the purchase's lots", "SELECT id, card_no, earned_at, usable_from, expires_at FROM point_lots "
                                    "WHERE purchase_id = ? ORDER BY id", (1,)),
    ("refund: points already reversed", "SELECT COALESCE(SUM(points_reversed), 0) FROM refunds WHERE purchase_id = ?",
     (1,)),
    ("a purchase's ledger entries", "SELECT l.kind, l.delta FROM ledger l JOIN point_lots p ON p.id = l.lot_id "
                                    "WHERE p.purchase_id = ?", (1,)),
    ("points expire", "SELECT id, card_no, remaining FROM point_lots WHERE remaining > 0 AND expires_at <= ? "
                      "ORDER BY card_no, id", ("2027-01-01T00:00:00",)),
    ("a card's balance", "SELECT COALESCE(SUM(remaining), 0) FROM point_lots WHERE card_no = ? AND remaining > 0 "
                         "AND expires_at > ?", ("755000015", "2026-06-01")),
    ("a customer's window spend", "SELECT paid - refunded, promo FROM purchases WHERE customer_id = ? "
                                  "AND purchased_at > ? AND purchased_at <= ?", (1, "2025-06-01", "2026-06-01")),
    ("a receipt", "SELECT * FROM purchases WHERE receipt = ?", ("R1",)),
    ("a phone", "SELECT * FROM customers WHERE phone = ?", ("13800138000",)),
]


@pytest.mark.parametrize("name, sql, params", EVERYDAY, ids=[e[0] for e in EVERYDAY])
def test_no_full_scan(isolated, name, sql, params):
    conn = db.connect(os.environ["VIPCLI_DB"])
    plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]
    conn.close()
    scans = [step for step in plan if step.startswith("SCAN") and "INDEX" not in step]
    assert not scans, f"{name}: {plan}"


@pytest.mark.sqlite_only  # (SQLite's own files and query plans)
def test_the_nightly_check_reads_through_the_indexes(isolated, vip, member):
    """`vip check` over what changed reads each group through an index: no table of the store is
    scanned whole (only the temp tables of the groups are)."""
    import re

    from vipcli import checks, rulebook

    card = member()
    vip("purchase", card, "--amount", "1000")
    vip("refund", vip("purchase", card, "--amount", "500")["receipt"])
    conn = db.connect(os.environ["VIPCLI_DB"])
    rules = rulebook.current_rules(conn)
    conn.execute("BEGIN")
    scope = checks._changes(conn, {"at": "2026-01-01T00:00:00"})
    statements = []
    conn.set_trace_callback(statements.append)
    for check in checks.ALL:
        check(conn, rules, scope)
    conn.set_trace_callback(None)
    for sql in statements:
        plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql)]
        subqueries = {step.split()[-1] for step in plan if step.startswith(("MATERIALIZE", "CO-ROUTINE"))}
        scans = [step for step in plan if (found := re.match(r"SCAN (\S+)", step)) and "USING" not in step
                 and found[1] not in subqueries and not found[1].startswith("check_")]
        assert not scans, f"{sql}: {plan}"
    assert len(statements) >= 8
    conn.execute("ROLLBACK")
    conn.close()
