import pytest
from conftest import open_db

P = "13800138000"


def test_qualifying_purchase_paid_at_list_price_and_earns_points(vip):
    below = vip("purchase", "--phone", P, "--amount", "999.99")
    assert below.code == 0 and below["card_no"] is None and below["status"] == "prospect"
    assert below["points_earned"] == 0
    at = vip("purchase", "--phone", "13900139000", "--amount", "1000.00")
    assert at["card_issued"] is True and at["paid"] == "1000.00" and at["discount_rate"] is None
    assert at["points_earned"] == 1000 and at["points_balance"] == 1000 and at["tier"] == "vip"
    assert len(at["card_no"]) == 9 and at["card_no"].startswith("755")


def test_single_purchase_counts_promo_goods_by_default(vip):
    r = vip("purchase", "--phone", P, "--amount", "600", "--promo", "400")
    assert r["card_issued"] is True


@pytest.mark.parametrize("third,qualifies", [("0.01", False), ("0.02", True)])
def test_six_month_window(vip, third, qualifies):
    vip("purchase", "--phone", P, "--amount", "999.99", "--at", "2026-01-10T10:00")
    vip("purchase", "--phone", P, "--amount", "999.99", "--at", "2026-03-10T10:00")
    r = vip("purchase", "--phone", P, "--amount", third)
    assert r["card_issued"] is qualifies


@pytest.mark.parametrize("first_at,qualifies", [
    ("2025-12-15T12:00:01", True),   # just inside 6 months
    ("2025-12-15T12:00:00", False),  # exactly 6 months before: left the window
])
def test_purchases_leave_the_six_month_window(vip, first_at, qualifies):
    vip("purchase", "--phone", P, "--amount", "999.00", "--at", first_at)
    vip("purchase", "--phone", P, "--amount", "999.00", "--at", "2026-01-01")
    r = vip("purchase", "--phone", P, "--amount", "2.00")  # 2000.00 only with the first one
    assert r["card_issued"] is qualifies


@pytest.mark.parametrize("last,qualifies", [("0.02", False), ("0.03", True)])
def test_twelve_month_window(vip, last, qualifies):
    for at in ("2025-07-01", "2025-11-01", "2026-01-01"):
        assert vip("purchase", "--phone", P, "--amount", "999.99", "--at", at)["card_issued"] is False
    r = vip("purchase", "--phone", P, "--amount", last)  # 12 months: 2999.97 + last
    assert r["card_issued"] is qualifies


def test_refunded_spend_does_not_qualify(vip):
    first = vip("purchase", "--phone", P, "--amount", "999.99", "--at", "2026-05-01")
    vip("refund", first["receipt"], "--amount", "100")
    r = vip("purchase", "--phone", P, "--amount", "1000.00")
    assert r["card_issued"] is True  # single purchase rule
    vip("purchase", "--phone", "13900139000", "--amount", "999.99", "--at", "2026-05-01")
    vip("refund", "R20260501-000002", "--amount", "0.02")
    again = vip("purchase", "--phone", "13900139000", "--amount", "0.03", "--at", "2026-05-02")
    assert again["card_issued"] is False  # 999.99 + 999.97 + 0.03 = 1999.99 once the refund counts


def test_vip_discount_promo_at_list_and_rounding(vip, member):
    card = member()
    r = vip("purchase", card, "--amount", "10.05")
    assert r["paid"] == "8.84" and r["discount_rate"] == "0.88" and r["points_earned"] == 8
    r = vip("purchase", card, "--amount", "100", "--promo", "50")
    assert r["paid"] == "138.00" and r["points_earned"] == 138


def test_points_are_whole_yuan(vip, member):
    card = member()
    assert vip("purchase", card, "--amount", "1.13")["points_earned"] == 0   # pays 0.99
    assert vip("purchase", card, "--amount", "1.14")["points_earned"] == 1   # pays 1.00


@pytest.mark.parametrize("now,flag,rate", [
    ("2026-06-15T10:00", True, "0.60"),
    ("2026-06-15T10:00", False, "0.88"),
    ("2026-06-14T10:00", True, "0.88"),
    ("2026-06-16T10:00", True, "0.88"),
])
def test_birthday_rate_only_on_the_day_with_id_check(vip, member, now, flag, rate):
    card = member(birthday="1990-06-15")
    args = ["purchase", card, "--amount", "100"] + (["--birthday-id-checked"] if flag else [])
    r = vip(*args, now=now)
    assert r["discount_rate"] == rate


def test_best_single_rate_applies_gold_vs_birthday(vip, member):
    card = member()
    vip("tier", "set", card, "gold", "--reason", "test")
    r = vip("purchase", card, "--amount", "100", "--birthday-id-checked")
    assert r["discount_rate"] == "0.60"  # 0.60 beats gold 0.80; rates do not stack


def test_paid_given_no_discount_computed(vip, member):
    card = member()
    r = vip("purchase", card, "--amount", "100", "--paid", "95.50")
    assert r["paid"] == "95.50" and r["discount_rate"] is None and r["points_earned"] == 95
    bad = vip("purchase", card, "--amount", "100", "--paid", "100.01")
    assert bad.code == 2


@pytest.mark.parametrize("amount,tier", [("4999.99", "vip"), ("5000.00", "silver"), ("10000.00", "gold")])
def test_upgrade_on_one_purchase_paid(vip, member, amount, tier):
    card = member()
    r = vip("purchase", card, "--amount", "20000", "--paid", amount)
    assert r["tier"] == tier


def test_upgrade_on_twelve_month_spend(vip, member):
    card = member()
    vip("purchase", card, "--paid", "4999.99", "--amount", "6000", "--at", "2026-02-01")
    r = vip("purchase", card, "--paid", "4999.99", "--amount", "6000", "--at", "2026-03-01")
    assert r["tier"] == "vip"  # 9999.98
    r = vip("purchase", card, "--paid", "0.02", "--amount", "1")
    assert r["tier"] == "silver"  # 10000.00


def test_first_purchase_of_a_prospect_can_land_on_gold(vip):
    r = vip("purchase", "--phone", P, "--amount", "10000")
    assert r["card_issued"] and r["tier"] == "gold"


def test_same_receipt_same_content_is_a_noop(vip, member, isolated):
    card = member()
    first = vip("purchase", card, "--amount", "100", "--receipt", "R1", "--store", "SZ01")
    again = vip("purchase", card.replace("755", "755 "), "--amount", "100.00", "--receipt", "R1", "--store", "SZ01")
    assert again.code == 0 and again["duplicate"] is True and again["paid"] == first["paid"]
    assert again["points_balance"] == first["points_balance"]
    conflict = vip("purchase", card, "--amount", "101", "--receipt", "R1", "--store", "SZ01")
    assert conflict.code == 1 and conflict["error"]["code"] == "receipt_conflict"
    with open_db() as conn:
        assert conn.execute("SELECT COUNT(*) FROM purchases").fetchone()[0] == 1


def test_blocked_card_refused(vip, member, isolated):
    card = member()
    with open_db() as conn:
        conn.execute("UPDATE cards SET status = 'blocked'")
    r = vip("purchase", card, "--amount", "100")
    assert r.code == 1 and "blocked" in r["error"]["message"]


def test_expired_card_list_price_no_points(vip, member):
    card = member(now="2026-01-10T10:00:00")
    r = vip("purchase", card, "--amount", "100", now="2027-01-01T09:00:00")
    assert r.code == 0 and r["paid"] == "100.00" and r["points_earned"] == 0
    assert r["status"] == "expired" and "expired" in r["note"]
    last_day = vip("purchase", card, "--amount", "100", now="2026-12-31T23:59:00")
    assert last_day["status"] == "active" and last_day["paid"] == "88.00"


def test_card_issued_in_renewal_month_valid_to_end_of_next_year(vip):
    r = vip("purchase", "--phone", P, "--amount", "1000", now="2026-12-01T10:00")
    shown = vip("show", r["card_no"])
    assert shown["valid_to"] == "2027-12-31"
    r = vip("purchase", "--phone", "13900139000", "--amount", "1000", now="2026-11-30T10:00")
    assert vip("show", r["card_no"])["valid_to"] == "2026-12-31"


def test_unknown_card_and_bad_values(vip):
    assert vip("purchase", "755000015", "--amount", "100").code == 1
    assert vip("purchase", "755000016", "--amount", "100").code == 2
    assert vip("purchase", "--phone", "12345", "--amount", "100").code == 2
    assert vip("purchase", "--phone", P, "--amount", "0").code == 2
    assert vip("purchase", "--phone", P, "--amount", "1000000.01").code == 2
    assert vip("purchase", "--phone", P, "--amount", "10", "--at", "2027-01-01").code == 2
    assert vip("purchase", "755000015", "--phone", P, "--amount", "10").code == 2


def test_refund_full_and_partial(vip, member):
    card = member()
    bought = vip("purchase", card, "--amount", "1000")  # pays 880.00, 880 points
    part = vip("refund", bought["receipt"], "--amount", "100.50")
    assert part["refunded"] == "100.50" and part["points_reversed"] == 101  # 880 -> 779
    assert part["points_balance"] == 779
    rest = vip("refund", bought["receipt"])
    assert rest["refunded"] == "779.50" and rest["points_reversed"] == 779 and rest["points_balance"] == 0
    again = vip("refund", bought["receipt"])
    assert again.code == 1
    assert vip("show", card)["spend_12m"] == "0.00"


def test_refund_more_than_paid_refused(vip, member):
    card = member()
    bought = vip("purchase", card, "--amount", "100")
    r = vip("refund", bought["receipt"], "--amount", "88.01")
    assert r.code == 1 and "88.00" in r["error"]["message"]
    assert vip("refund", "NOPE").code == 1


def test_refund_of_spent_points_goes_negative_then_settles(vip, member, isolated):
    card = member()
    first = vip("purchase", card, "--amount", "1000")  # 880 points
    with open_db() as conn:   # spend them (redeem comes with the points commands)
        lot = conn.execute("SELECT id FROM point_lots").fetchone()[0]
        conn.execute("INSERT INTO ledger(card_no, lot_id, kind, delta, at, operator) "
                     "VALUES (?, ?, 'redeem', -800, '2026-06-15T12:00:00', 't')", (card, lot))
        conn.execute("UPDATE point_lots SET remaining = remaining - 800")
    r = vip("refund", first["receipt"])
    assert r["points_reversed"] == 880 and r["points_balance"] == -800
    later = vip("purchase", card, "--amount", "1000")
    assert later["points_balance"] == 80
    with open_db() as conn:
        total = conn.execute("SELECT SUM(delta) FROM ledger WHERE card_no = ?", (card,)).fetchone()[0]
        lots = conn.execute("SELECT SUM(remaining) FROM point_lots WHERE card_no = ?", (card,)).fetchone()[0]
    assert total == lots == 80


def test_refund_uses_the_purchase_rules_version(vip, member, tmp_path):
    card = member()
    bought = vip("purchase", card, "--amount", "1000")  # 880 points at 1 per yuan
    from vipcli.rulefile import default_text
    doubled = tmp_path / "double.toml"
    doubled.write_text(default_text().replace("per_yuan = 1", "per_yuan = 2"), encoding="utf-8")
    assert vip("rules", "load", str(doubled))["rules_version"] == 2
    assert vip("purchase", card, "--amount", "100")["points_earned"] == 176
    r = vip("refund", bought["receipt"], "--amount", "80")
    assert r["points_reversed"] == 80  # version 1: 880 -> 800, not doubled


def test_human_output_is_readable(vip, member):
    card = member()
    r = vip("purchase", card, "--amount", "100", json_output=False)
    assert r.code == 0 and "88.00" in r.stdout and "755 00001" in r.stdout


def test_replay_later_without_at_is_still_a_duplicate(vip, member):
    card = member()
    vip("purchase", card, "--amount", "100", "--receipt", "T1", now="2026-06-15T10:00")
    again = vip("purchase", card, "--amount", "100", "--receipt", "T1", now="2026-06-20T10:00")
    assert again.code == 0 and again["duplicate"] is True
    moved = vip("purchase", card, "--amount", "100", "--receipt", "T1", "--at", "2026-06-14")
    assert moved.code == 1


def test_a_new_customer_is_said_plainly_and_the_till_can_refuse_unknown_phones(vip, member):
    """A mistyped phone silently made a prospect; now JSON and the human line say a customer was
    created, and --existing refuses (exit 1, nothing written)."""
    member()
    known = vip("purchase", "--phone", P, "--amount", "10")
    assert known.code == 0 and known["new_customer"] is False
    refused = vip("purchase", "--phone", "13800138001", "--amount", "10", "--existing")
    assert refused.code == 1 and refused.data["error"]["code"] == "unknown_phone"
    assert vip("show", "13800138001").code == 1
    assert vip("purchase", "--phone", P, "--amount", "10", "--existing")["new_customer"] is False
    human = vip("purchase", "--phone", "13800138001", "--amount", "10", json_output=False)
    assert human.code == 0 and "New customer 2 created for phone 138****8001" in human.stdout
    again = vip("purchase", "--phone", "13800138001", "--amount", "10", "--receipt", "T1")
    assert again["new_customer"] is False
    assert vip("purchase", "--phone", "13800138001", "--amount", "10", "--receipt", "T1")["new_customer"] is False
    fresh = vip("purchase", "--phone", "13900139001", "--amount", "1000")
    assert fresh["new_customer"] is True and fresh["card_issued"] is True
