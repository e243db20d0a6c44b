import sqlite3

import pytest
from conftest import open_db

P = "13800138000"


def _card_with(vip, member, paid="1000.00", at=None):
    card = member()
    args = ["purchase", card, "--amount", "5000", "--paid", paid] + (["--at", at] if at else [])
    assert vip(*args).code == 0
    return card


def test_redeem_spends_and_refuses_beyond_balance(vip, member):
    card = _card_with(vip, member)
    r = vip("redeem", card, "--points", "600")
    assert r["points_redeemed"] == 600 and r["points_balance"] == 400
    short = vip("redeem", card, "--points", "401")
    assert short.code == 1 and "400 available" in short["error"]["message"]
    assert vip("redeem", card, "--points", "400")["points_balance"] == 0
    assert vip("points", card)["points_balance"] == 0
    assert vip("check")["ok"] is True


@pytest.mark.parametrize("points", ["0", "-5", "1.5", "abc", "", "99999999999"])
def test_bad_points_value(vip, member, points):
    card = _card_with(vip, member)
    assert vip("redeem", card, "--points", points).code == 2


def test_reward_catalog(vip, member):
    card = _card_with(vip, member)
    rewards = vip("rewards")["rewards"]
    assert rewards[0] == {"code": "GIFT300", "name": "300元商品", "points": 500, "value": "300.00"}
    r = vip("redeem", card, "--reward", "GIFT300")
    assert r["points_redeemed"] == 500 and r["reward"] == "GIFT300"
    assert vip("redeem", card, "--reward", "NOPE").code == 2
    assert vip("redeem", card, "--reward", "GIFT300", "--points", "10").code == 2


def test_redeem_needs_active_card(vip, member, isolated):
    card = _card_with(vip, member)
    with open_db() as conn:
        conn.execute("UPDATE cards SET status = 'blocked'")
    r = vip("redeem", card, "--points", "1")
    assert r.code == 1 and "blocked" in r["error"]["message"]


def test_first_expiring_lots_first(vip, member, isolated):
    from vipcli.rulefile import default_text
    rolling = isolated / "rolling.toml"
    rolling.write_text(default_text().replace('expiry = "calendar_year"', 'expiry = "rolling"')
                       .replace("validity_months = 12", "validity_months = 24"), encoding="utf-8")
    vip("init", "--rules", str(rolling))
    card = member(now="2025-01-01T10:00")
    vip("purchase", card, "--amount", "2000", "--paid", "1000", "--at", "2025-01-10")
    vip("purchase", card, "--amount", "1000", "--paid", "500", "--at", "2025-03-10", now="2025-03-10T12:00")
    vip("redeem", card, "--points", "1200", now="2025-06-01T10:00")
    lots = vip("points", card, now="2025-06-01T10:00")["lots"]
    assert [(x["points"], x["remaining"]) for x in lots] == [(500, 300)]


@pytest.mark.parametrize("now,balance", [
    ("2026-12-31T23:59:59", 1000), ("2027-01-01T00:00:00", 0), ("2027-01-01T00:00:01", 0),
])
def test_calendar_year_points_gone_at_new_year_even_before_the_job(vip, member, now, balance):
    card = member()
    vip("purchase", card, "--amount", "2000", "--paid", "1000", now="2026-12-31T23:59:00")
    assert vip("points", card, now=now)["points_balance"] == balance
    if balance:
        assert vip("redeem", card, "--points", "1000", now=now)["points_balance"] == 0
    else:
        assert vip("redeem", card, "--points", "1", now=now).code == 1


def test_expire_job_is_idempotent_and_keeps_check_clean(vip, member):
    card = _card_with(vip, member)
    vip("redeem", card, "--points", "100")
    first = vip("points", "expire", "--yes", "--as-of", "2027-01-01", now="2027-01-02")
    assert first["expired_points"] == 900 and first["cards"] == [{"card_no": card, "expired_points": 900}]
    assert vip("points", "expire", "--yes", "--as-of", "2027-01-01", now="2027-01-02")["expired_points"] == 0
    assert vip("points", card)["points_balance"] == 0
    assert vip("check")["ok"] is True
    assert vip("points", "expire", "--yes", "--as-of", "2030-01-01").code == 2


def test_redemption_months_and_next_day_rules(vip, member, tmp_path):
    from vipcli.rulefile import default_text
    counter = tmp_path / "counter.toml"
    counter.write_text(default_text().replace("redeem_months = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]",
                                              "redeem_months = [3, 8]")
                       .replace("usable_after_days = 0", "usable_after_days = 1"), encoding="utf-8")
    vip("init", "--rules", str(counter))
    card = member(now="2026-03-01T10:00")
    vip("purchase", card, "--amount", "2000", "--paid", "1000", now="2026-03-10T10:00")
    same_day = vip("redeem", card, "--points", "10", now="2026-03-10T23:59")
    assert same_day.code == 1 and "0 available" in same_day["error"]["message"]
    assert vip("redeem", card, "--points", "10", now="2026-03-11T00:00")["points_balance"] == 990
    april = vip("redeem", card, "--points", "10", now="2026-04-01T10:00")
    assert april.code == 1 and "months 3, 8" in april["error"]["message"]
    assert vip("redeem", card, "--points", "10", now="2026-08-31T23:59")["points_balance"] == 980


def test_negative_balance_blocks_redemption(vip, member):
    card = member()
    first = vip("purchase", card, "--amount", "2000", "--paid", "1000")
    vip("redeem", card, "--points", "900")
    vip("purchase", card, "--amount", "100", "--paid", "50")
    r = vip("refund", first["receipt"])
    assert r["points_balance"] == -850
    blocked = vip("redeem", card, "--points", "1")
    assert blocked.code == 1 and "negative" in blocked["error"]["message"]
    assert vip("check")["ok"] is True


@pytest.mark.damaged
def test_check_catches_tampering(vip, member, isolated):
    card = _card_with(vip, member)
    assert vip("check")["ok"] is True
    with open_db() as conn:
        conn.execute("UPDATE point_lots SET remaining = remaining + 50")
    r = vip("check")
    assert r.code == 1 and r["ok"] is False
    assert any("lot" in p for p in r["problems"]) and any(card in p for p in r["problems"])


@pytest.mark.damaged
def test_check_catches_tier_and_card_tampering(vip, member, isolated):
    member()
    with open_db() as conn:
        conn.execute("UPDATE customers SET tier = 'gold'")
        conn.execute("UPDATE cards SET sequence = 7")
    problems = vip("check")["problems"]
    assert any("history says vip" in p for p in problems)
    assert any("should be" in p for p in problems)


def test_adjust_adds_and_takes_never_below_zero_and_is_audited(vip, member, isolated):
    card = member()
    assert vip("points", "adjust", card, "--points", "120", "--reason", "goodwill")["points_balance"] == 120
    assert vip("points", "adjust", card, "--points", "-20", "--reason", "typo")["points_balance"] == 100
    too_much = vip("points", "adjust", card, "--points", "-101", "--reason", "x")
    assert too_much.code == 1 and "balance is 100" in too_much["error"]["message"]
    assert vip("points", "adjust", card, "--points", "0", "--reason", "x").code == 2
    assert vip("points", "adjust", card, "--points", "5").code == 2
    with open_db() as conn:
        rows = conn.execute("SELECT operator FROM audit WHERE command = 'points adjust'").fetchall()
    assert len(rows) == 2 and vip("check")["ok"] is True


# --- a refund takes back what the refunded amount earned (seed 000 第四条, 以实付金额为准) ---------------

def test_a_full_refund_takes_back_the_tier_it_earned(vip, member, isolated):
    card = member()
    bought = vip("purchase", card, "--amount", "12000", "--receipt", "G1", now="2026-06-14T10:00:00")
    assert bought["paid"] == "10560.00" and bought["tier"] == "gold"
    r = vip("refund", "G1")
    assert (r["tier_from"], r["tier"], r["card_cancelled"]) == ("gold", "vip", None)
    shown = vip("tier", "show", card)
    assert shown["tier"] == "vip" and shown["spend_12m"] == "0.00"
    assert vip("purchase", card, "--amount", "100")["paid"] == "88.00"
    with open_db() as conn:
        reason = conn.execute("SELECT reason FROM tier_changes ORDER BY id DESC LIMIT 1").fetchone()[0]
    assert "refund of receipt G1" in reason
    assert vip("check")["ok"] is True


@pytest.mark.parametrize("refund,tier", [
    ("560.00", "gold"),     # 10000.00 left: still one purchase of gold's standard
    ("560.01", "silver"),   # 9999.99 left: silver's single purchase
    ("5560.01", "vip"),     # 4999.99 left
])
def test_a_partial_refund_leaves_what_the_rest_earns(vip, member, refund, tier):
    card = member()
    vip("purchase", card, "--amount", "12000", "--receipt", "G1", now="2026-06-14T10:00:00")
    r = vip("refund", "G1", "--amount", refund)
    assert r["tier"] == tier and r["tier_from"] == (None if tier == "gold" else "gold")
    assert vip("check")["ok"] is True


def test_a_refund_never_takes_what_came_from_elsewhere(vip, member):
    """A tier set by hand, or earned by another purchase, stays; a refund never raises a tier."""
    card = member()
    vip("purchase", card, "--amount", "6000", "--receipt", "S1", now="2026-06-01T10:00:00")  # silver
    vip("tier", "set", card, "gold", "--reason", "店长决定")
    assert vip("refund", "S1")["tier"] == "gold"
    other = member(phone="13900139000")
    vip("purchase", other, "--amount", "6000", "--receipt", "A1", now="2026-06-01T10:00:00")
    vip("purchase", other, "--amount", "6000", "--receipt", "A2", now="2026-06-02T10:00:00")
    r = vip("refund", "A2")
    assert (r["tier_from"], r["tier"]) == (None, "silver")
    assert vip("check")["ok"] is True


@pytest.mark.parametrize("refund,cancelled", [("0.01", True), (None, True)])
def test_a_card_whose_qualifying_purchase_is_refunded_is_cancelled(vip, refund, cancelled):
    bought = vip("purchase", "--phone", P, "--amount", "1000", "--receipt", "Q1", now="2026-06-14T10:00:00")
    card = bought["card_no"]
    assert bought["card_issued"] is True and bought["points_earned"] == 1000
    vip("purchase", card, "--amount", "100", "--receipt", "Q2", now="2026-06-14T11:00:00")
    r = vip("refund", "Q1", *(["--amount", refund] if refund else []))
    assert r["card_cancelled"] == (card if cancelled else None)
    points = vip("points", card)
    assert points["points_balance"] == 0
    assert vip("purchase", card, "--amount", "10").code == 1  # cancelled
    assert vip("check")["ok"] is True


def test_a_card_still_earned_by_other_purchases_or_granted_stays(vip, member):
    bought = vip("purchase", "--phone", P, "--amount", "1000", "--receipt", "Q1", now="2026-06-01T10:00:00")
    vip("purchase", bought["card_no"], "--amount", "1200", "--receipt", "Q2", now="2026-06-02T10:00:00")
    assert vip("refund", "Q1")["card_cancelled"] is None  # Q2 (1056.00 paid) qualifies on its own
    granted = member(phone="13900139000")
    vip("purchase", granted, "--amount", "500", "--receipt", "G1")
    assert vip("refund", "G1")["card_cancelled"] is None
    assert vip("purchase", granted, "--amount", "10").code == 0
    assert vip("check")["ok"] is True


@pytest.mark.parametrize("tamper,found", [
    (["UPDATE point_lots SET remaining = remaining - 1"], "remaining"),
    (["DROP TRIGGER ledger_no_update", "UPDATE ledger SET card_no = (SELECT MAX(card_no) FROM cards) "
      "WHERE id = (SELECT MIN(id) FROM ledger)"], "has entries on card"),
    (["INSERT INTO ledger(card_no, lot_id, kind, delta, at, operator) SELECT card_no, id, 'redeem', -2000, "
      "'2026-06-15T00:00:00', 't' FROM point_lots LIMIT 1", "UPDATE point_lots SET remaining = remaining - 2000"],
     "over-consumed"),
    (["INSERT INTO ledger(card_no, lot_id, kind, delta, at, operator) SELECT card_no, id, 'redeem', -1, "
      "expires_at, 't' FROM point_lots LIMIT 1", "UPDATE point_lots SET remaining = remaining - 1"], "after its expiry"),
    (["DROP TRIGGER ledger_no_update", "UPDATE ledger SET lot_id = 999"], "the lot does not exist"),
    (["UPDATE purchases SET points_earned = points_earned + 1"], "points_earned"),
    (["UPDATE purchases SET points_earned = 0"], "earn entries total"),
    (["UPDATE purchases SET refunded = 1"], "refunds total"),
    (["INSERT INTO refunds(purchase_id, amount, points_reversed, refunded_at, operator) "
      "SELECT id, 1, 0, '2026-06-15T00:00:00', 't' FROM purchases LIMIT 1"], "refunded 0 but refunds total 1"),
    (["UPDATE customers SET tier = NULL"], "tier None but history says vip"),
    (["UPDATE customers SET tier = 'platinum'", "UPDATE tier_changes SET to_tier = 'platinum'"],
     "not a tier of the rules"),
    (["UPDATE cards SET status = 'active'"], "holds 2 current cards"),
])
@pytest.mark.damaged
def test_check_catches_each_kind_of_damage(vip, member, isolated, tamper, found, engine):
    """Each invariant, broken on its own, is reported (and a clean database passes)."""
    card = member()
    vip("purchase", card, "--amount", "1000")
    vip("card", "lost", card)
    vip("card", "replace", card)
    assert vip("check")["ok"] is True
    with open_db() as conn:
        for statement in tamper:
            if engine == "postgresql" and statement == "DROP TRIGGER ledger_no_update":
                statement = "DROP TRIGGER ledger_no_change ON ledger"  # (one trigger there, for both)
            if engine == "postgresql" and "lot_id = 999" in statement:
                with pytest.raises(sqlite3.IntegrityError):  # PostgreSQL holds foreign keys on every write
                    conn.execute(statement)
                return
            conn.execute(statement)
    r = vip("check")
    assert r.code == 1 and any(found in p for p in r["problems"]), r["problems"]
    # What changed since the clean check was read, unless a guard it trusts was dropped; every row
    # (--all) finds the same.
    assert r["scope"] == ("all" if "DROP TRIGGER" in tamper[0] else "changes")
    assert vip("check", "--all")["problems"] == r["problems"]


@pytest.mark.damaged
def test_the_nightly_check_reads_what_changed_since_the_last_clean_one(vip, member, isolated):
    card = member()
    vip("purchase", card, "--amount", "1000", now="2026-06-01T10:00")
    first = vip("check", now="2026-06-01T23:00")
    assert first["scope"] == "all" and first["since"] is None
    vip("purchase", card, "--amount", "500", now="2026-06-02T10:00")
    vip("redeem", card, "--points", "100", now="2026-06-02T11:00")
    second = vip("check", now="2026-06-02T23:00")
    assert second["ok"] and second["scope"] == "changes" and second["since"] == "2026-06-01T23:00:00"
    with open_db() as conn:
        assert conn.execute("SELECT COUNT(*) FROM check_journal").fetchone()[0] == 0  # seen, forgotten
        # a lot older than both checks, changed by another tool: the journal has it
        conn.execute("UPDATE point_lots SET remaining = remaining + 7 WHERE id = 1")
    bad = vip("check", now="2026-06-03T23:00")
    assert bad.code == 1 and bad["scope"] == "changes" and "remaining" in bad["problems"][0]
    # a check that found problems does not move the marks: the next one finds them again
    again = vip("check", now="2026-06-04T23:00")
    assert again["problems"] == bad["problems"] and again["since"] == "2026-06-02T23:00:00"
    assert vip("check", "--all")["problems"] == bad["problems"]


@pytest.mark.sqlite_only  # (PostgreSQL refuses the orphan row itself)
def test_check_full_adds_sqlites_own_checks(vip, member, isolated):
    member()
    with open_db() as conn:
        conn.execute("INSERT INTO visits(customer_id, channel, at, operator) VALUES (99, 'phone', '2026-01-01', 't')")
    assert vip("check")["ok"] is True
    full = vip("check", "--full")
    assert full.code == 1 and any("foreign key: visits" in p for p in full["problems"])
    assert "structure" in full["checks"] and "structure" not in vip("check")["checks"]


def test_a_retried_redeem_with_its_request_id_returns_the_first_result(vip, member, isolated):
    """After a time-out a till could not tell whether the redeem went through."""
    card = member()
    vip("purchase", card, "--amount", "1000")  # 880 points
    first = vip("redeem", card, "--points", "100", "--request-id", "T3-0042")
    assert first.code == 0 and (first["points_balance"], first["duplicate"]) == (780, False)
    again = vip("redeem", card, "--points", "100", "--request-id", "T3-0042")
    assert again.code == 0 and (again["points_balance"], again["duplicate"]) == (780, True)
    assert vip("points", card)["points_balance"] == 780
    other = vip("redeem", card, "--points", "200", "--request-id", "T3-0042")
    assert other.code == 1 and other.data["error"]["code"] == "request_conflict"
    assert vip("redeem", card, "--points", "100", "--request-id", "x" * 65).code == 2
    assert vip("redeem", card, "--points", "100")["points_balance"] == 680  # no id: a new redeem
    with open_db() as conn:
        assert conn.execute("SELECT COUNT(*) FROM ledger WHERE kind = 'redeem'").fetchone()[0] == 2
    assert vip("check")["ok"] is True
