"""The domain at its public seams, on a real connection, without the CLI: sales, ledger, cards and
membership each called as the import, the CLI and a future chain server call them. Thresholds are
tested just below, at and just above; every test ends with the invariants (checks.run) clean."""

from datetime import datetime

import pytest

from vipcli import archive, cards, checks, db, ledger, membership, rewards, rulebook, sales
from vipcli.db import transaction
from vipcli.errors import Refused
from vipcli.rulefile import default_text

AT = datetime(2026, 3, 10, 10, 0)
OPERATOR = "domain-test"


@pytest.fixture
def conn(tmp_path):
    connection = db.connect(tmp_path / "d.db", create=True)
    rulebook.initialise(connection, default_text("store"), "built-in:store", OPERATOR, AT, "d.db")
    yield connection
    assert not any(checks.run_all(connection, rulebook.current_rules(connection), full=True).problems.values()), \
        "invariants broken"
    connection.close()


def buy(conn, amount_fen: int, phone: str = "13900000001", at: datetime = AT, **extra) -> dict:
    rules = rulebook.current_rules(conn)
    with transaction(conn):
        return sales.record_purchase(conn, rules, sales.Sale(regular=amount_fen, phone=phone, at=at, **extra), at,
                                     OPERATOR)


@pytest.mark.parametrize("fen, issued", [(99_999, False), (100_000, True), (100_001, True)])
def test_a_single_purchase_qualifies_at_the_threshold(conn, fen, issued):
    """第四条 (store: one purchase of 1000.00 paid): just below, at, just above."""
    result = buy(conn, fen)
    assert result["card_issued"] is issued and result["paid"] == fen  # a prospect pays list price
    assert (result["card_no"] is not None) is issued


def test_a_member_pays_the_tier_rate_half_up_and_earns_on_what_was_paid(conn):
    card = buy(conn, 100_000)["card_no"]
    result = buy(conn, 1005, at=AT.replace(hour=11))  # 10.05 at 0.88 = 8.844 -> 8.84
    assert (result["card_no"], result["paid"], result["discount_rate"], result["points_earned"]) == (card, 884, "0.88", 8)
    assert ledger.balance(conn, card, AT.replace(hour=12)) == 1000 + 8


def test_the_same_receipt_twice_is_one_purchase_and_other_content_is_refused(conn):
    first = buy(conn, 50_000, receipt="R1")
    again = buy(conn, 50_000, receipt="R1")
    assert again["duplicate"] is True and again["customer_id"] == first["customer_id"]
    with pytest.raises(Refused, match="different content"):
        buy(conn, 50_001, receipt="R1")


def test_a_lost_card_refuses_a_purchase_by_card_and_earns_by_phone(conn):
    rules = rulebook.current_rules(conn)
    card = buy(conn, 100_000)["card_no"]
    with transaction(conn):
        cards.report_lost(conn, card, AT.replace(hour=11))
    with pytest.raises(Refused, match="blocked"):
        with transaction(conn):
            sales.record_purchase(conn, rules, sales.Sale(regular=10_000, card_no=card, at=AT.replace(hour=12)),
                                  AT.replace(hour=12), OPERATOR)
    by_phone = buy(conn, 10_000, at=AT.replace(hour=13))
    assert by_phone["points_earned"] == 88 and "lost" in by_phone["note"]


def test_redeeming_never_goes_below_zero_and_needs_an_active_card(conn):
    rules = rulebook.current_rules(conn)
    card = buy(conn, 100_000)["card_no"]
    later = AT.replace(hour=12)
    with transaction(conn):
        rewards.redeem(conn, rules, card, 1000, None, later, OPERATOR)
    with pytest.raises(Refused, match="insufficient points"):
        with transaction(conn):
            rewards.redeem(conn, rules, card, 1, None, later, OPERATOR)
    assert ledger.balance(conn, card, later) == 0
    with transaction(conn):
        cards.report_lost(conn, card, later)
    with pytest.raises(Refused, match="only an active card can redeem"):
        with transaction(conn):
            rewards.redeem(conn, rules, card, 1, None, later, OPERATOR)


def test_cancelling_forfeits_the_points_and_ends_the_membership(conn):
    rules = rulebook.current_rules(conn)
    card = buy(conn, 100_000)["card_no"]
    with transaction(conn):
        done = membership.end(conn, rules, card, "customer asked", AT.replace(hour=11), OPERATOR, erase=False)
    assert (done["status"], done["points_forfeited"]) == ("cancelled", 1000)
    again = buy(conn, 200_000, at=AT.replace(hour=12))  # no second card for an ended membership
    assert again["card_no"] is None and "membership ended" in again["note"]
    customer = archive.customer(conn, done["customer_id"])
    assert cards.live_card(conn, customer["id"]) is None


def test_expiry_in_chunks_stopped_between_them_completes_to_the_same_state(conn, tmp_path, monkeypatch):
    """Points expire commits a chunk of lots at a time; stopped after the first chunk (as a kill
    between transactions would), the lots done stay done, and running it again expires the rest:
    the ledger and lots end as one uninterrupted run leaves them."""
    import shutil

    from vipcli import db as db_mod

    for n in range(7):  # seven cards, each with a lot that expires at the year's end
        buy(conn, 100_000, phone=f"1390000010{n}", at=AT.replace(minute=n))
    year_end = datetime(2027, 1, 1, 0, 0)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copy(tmp_path / "d.db", tmp_path / "whole.db")
    whole = db.connect(tmp_path / "whole.db")
    told = []  # (the progress bar is told after each chunk)
    assert sum(ledger.expire(whole, year_end, OPERATOR, chunk=3, progress=told.append).values()) == 7000
    assert told == [3000, 3000, 1000]

    def stopped(_conn):
        raise KeyboardInterrupt  # after the first chunk's commit
    monkeypatch.setattr(db_mod, "let_waiters_in", stopped)
    with pytest.raises(KeyboardInterrupt):
        ledger.expire(conn, year_end, OPERATOR, chunk=3)
    assert sum(ledger.expiring(conn, year_end).values()) == 4000  # 3 of 7 lots done, whole
    monkeypatch.undo()
    assert sum(ledger.expire(conn, year_end, OPERATOR, chunk=3).values()) == 4000
    assert ledger.expire(conn, year_end, OPERATOR, chunk=3) == {}  # idempotent
    table = "SELECT card_no, lot_id, kind, delta, at FROM ledger ORDER BY lot_id, id"
    assert conn.execute(table).fetchall() == whole.execute(table).fetchall()
    lots = "SELECT id, remaining FROM point_lots ORDER BY id"
    assert conn.execute(lots).fetchall() == whole.execute(lots).fetchall()
    whole.close()


def test_the_overview_with_fixed_queries_counts_as_one_customer_at_a_time(conn):
    """store_overview reads customers, cards and balances with a fixed number of queries; it counts
    what looking at each customer's card (live_card, else latest_card) and balance one by one gives."""
    from vipcli import overview

    rules = rules_of(conn)
    numbers = [buy(conn, 100_000, phone=f"1390000020{n}", at=AT.replace(minute=n))["card_no"] for n in range(5)]
    buy(conn, 500, phone="13900000299")  # a prospect
    later = AT.replace(hour=15)
    with transaction(conn):
        cards.report_lost(conn, numbers[0], later)
        cards.replace(conn, rules, numbers[1], later, OPERATOR)
        membership.end(conn, rules, numbers[2], "moved away", later, OPERATOR, erase=False)
        rewards.redeem(conn, rules, numbers[3], 400, None, later, OPERATOR)
    now = datetime(2027, 2, 1)  # the cards have expired meanwhile
    seen = overview.store_overview(conn, rules, now)
    by_status, by_tier, held = {}, {}, 0
    for customer in conn.execute("SELECT * FROM customers"):
        card = cards.live_card(conn, customer["id"]) or cards.latest_card(conn, customer["id"])
        status = cards.effective_status(card, archive.is_registered(customer), rules, now.date()) if card else "prospect"
        by_status[status] = by_status.get(status, 0) + 1
        if card is not None and status not in ("replaced", "cancelled"):
            by_tier[customer["tier"]] = by_tier.get(customer["tier"], 0) + 1
            held += max(ledger.balance(conn, card["card_no"], now), 0)
    assert seen["customers_by_status"] == by_status and sum(by_status.values()) == 6 and len(by_status) >= 4
    assert {k: v for k, v in seen["members_by_tier"].items() if v} == by_tier
    assert seen["points_outstanding"] == held


def rules_of(conn):
    return rulebook.current_rules(conn)


def test_a_tier_review_in_chunks_stopped_between_them_completes_to_the_same_state(conn, tmp_path, monkeypatch):
    """The review commits a chunk of members at a time; stopped after the first chunk, run again it
    reviews the rest (a reviewed member's tier dates from the review), and the tiers and their
    history end as one uninterrupted review leaves them; its dry run writes nothing."""
    import shutil

    from vipcli import db as db_mod

    rules = rules_of(conn)
    for n in range(5):  # five silver members (one 5000.00 purchase), two of whom buy again later
        buy(conn, 500_000, phone=f"1390000030{n}", at=datetime(2024, 1, 10, 10, n))
        if n % 2:
            buy(conn, 500_000, phone=f"1390000030{n}", at=datetime(2025, 6, 1, 10, n))
    review = datetime(2026, 2, 1, 12, 0)
    before = conn.execute("SELECT COUNT(*) FROM tier_changes").fetchone()[0]
    planned = sales.tier_review(conn, rules, review, OPERATOR, dry_run=True, chunk=2)
    assert conn.execute("SELECT COUNT(*) FROM tier_changes").fetchone()[0] == before
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copy(tmp_path / "d.db", tmp_path / "whole.db")
    whole = db.connect(tmp_path / "whole.db")
    told = []
    done = sales.tier_review(whole, rules, review, OPERATOR, chunk=2, progress=told.append)
    assert told == [2, 2, 1]
    assert done == planned and (done["reviewed"], done["confirmed"], len(done["changes"])) == (5, 2, 3)

    def stopped(_conn):
        raise KeyboardInterrupt  # after the first chunk's commit
    monkeypatch.setattr(db_mod, "let_waiters_in", stopped)
    with pytest.raises(KeyboardInterrupt):
        sales.tier_review(conn, rules, review, OPERATOR, chunk=2)
    monkeypatch.undo()
    rest = sales.tier_review(conn, rules, review, OPERATOR, chunk=2)
    assert rest["reviewed"] == 3
    history = "SELECT customer_id, from_tier, to_tier, at, reason FROM tier_changes ORDER BY customer_id, id"
    assert conn.execute(history).fetchall() == whole.execute(history).fetchall()
    tiers = "SELECT id, tier, tier_since FROM customers ORDER BY id"
    assert conn.execute(tiers).fetchall() == whole.execute(tiers).fetchall()
    whole.close()


def test_the_renewal_batch_in_chunks_stopped_between_them_renews_the_rest(conn, monkeypatch):
    """card renew --all commits a chunk of cards at a time; stopped after the first, run again it
    renews the rest and no card twice; its dry run renews nothing."""
    from vipcli import db as db_mod

    rules = rules_of(conn)
    numbers = [buy(conn, 100_000, phone=f"1390000040{n}", at=AT.replace(minute=n))["card_no"] for n in range(5)]
    december = datetime(2026, 12, 5, 10, 0)
    planned = membership.renew_all(conn, rules, december, OPERATOR, False, dry_run=True, chunk=2)
    assert planned["renewed"] == 5 and cards.due_for_renewal(conn, rules, december) == sorted(numbers)

    def stopped(_conn):
        raise KeyboardInterrupt
    monkeypatch.setattr(db_mod, "let_waiters_in", stopped)
    with pytest.raises(KeyboardInterrupt):
        membership.renew_all(conn, rules, december, OPERATOR, False, chunk=2)
    monkeypatch.undo()
    assert len(cards.due_for_renewal(conn, rules, december)) == 3
    told = []
    rest = membership.renew_all(conn, rules, december, OPERATOR, False, chunk=2, progress=told.append)
    assert rest["renewed"] == 3 and told == [2, 1] and cards.due_for_renewal(conn, rules, december) == []
    assert {r[0] for r in conn.execute("SELECT valid_to FROM cards")} == {"2027-12-31"}
    assert {r[0] for r in conn.execute("SELECT renewals FROM cards")} == {1}


def test_the_progress_of_a_check_an_export_and_the_report_adds_up(conn, tmp_path):
    """What a progress bar is told: a step per check and per report sheet, every row exported."""
    from vipcli.io import exports, report

    for n in range(3):
        buy(conn, 100_000, phone=f"1390000050{n}", at=AT.replace(minute=n))
    rules = rules_of(conn)
    steps = []
    checks.run_all(conn, rules, full=True, progress=steps.append)
    assert steps == [1] * (len(checks.ALL) + 1)
    rows = []
    records = exports.rows(conn, rules, "purchases", exports.Filters(), AT, False, None)
    assert exports.write(str(tmp_path / "p.csv"), "csv", exports.EXPORTS["purchases"],
                         exports.counted(records, rows.append, every=2), force=True) == 3
    assert rows == [2, 1]
    sheets = []
    report.build(conn, rules, AT, AT.year, str(tmp_path / "r.xlsx"), progress=sheets.append)
    assert sheets == [1] * report.STEPS
