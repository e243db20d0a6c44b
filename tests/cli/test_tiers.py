import pytest
from conftest import open_db

P = "13800138000"


def _silver_since(vip, at):
    r = vip("purchase", "--phone", P, "--amount", "5000", "--at", at)
    assert r["tier"] == "silver"
    return r["card_no"]


@pytest.mark.parametrize("reached,reviewed", [
    ("2024-06-15T11:59:59", True),   # the 24 months have passed
    ("2024-06-15T12:00:00", True),   # exactly 24 months: due
    ("2024-06-15T12:00:01", False),  # one second short
    ("2024-06-16T12:00:00", False),
])
def test_review_only_after_the_hold_period(vip, reached, reviewed):
    _silver_since(vip, reached)
    r = vip("tier", "review", "--yes", "--as-of", "2026-06-15T12:00:00")
    assert r["reviewed"] == (1 if reviewed else 0)
    assert [c["to"] for c in r["changes"]] == (["vip"] if reviewed else [])


@pytest.mark.parametrize("third,expected", [("1999.99", "vip"), ("2000.00", "silver")])
def test_review_compares_24_month_spend_with_the_12_month_threshold(vip, third, expected):
    card = _silver_since(vip, "2024-01-10")
    vip("purchase", card, "--amount", "6000", "--paid", "4000.00", "--at", "2025-01-10")
    vip("purchase", card, "--amount", "6000", "--paid", "4000.00", "--at", "2025-02-10")
    vip("purchase", card, "--amount", "6000", "--paid", third, "--at", "2025-02-11")
    r = vip("tier", "review", "--yes", "--as-of", "2026-06-15")
    assert vip("tier", "show", card)["tier"] == expected
    assert r["confirmed"] == (1 if expected == "silver" else 0)


def test_gold_steps_down_to_what_spend_meets_and_review_is_idempotent(vip):
    r = vip("purchase", "--phone", P, "--amount", "10000", "--at", "2024-01-10")
    assert r["tier"] == "gold"
    vip("purchase", r["card_no"], "--amount", "20000", "--paid", "6000.00", "--at", "2025-03-01")
    vip("purchase", r["card_no"], "--amount", "20000", "--paid", "6000.00", "--at", "2025-03-02")
    first = vip("tier", "review", "--yes", "--as-of", "2026-06-15")
    assert first["changes"] == [{"card_no": r["card_no"], "from": "gold", "to": "silver"}]
    assert vip("tier", "review", "--yes", "--as-of", "2026-06-15")["changes"] == []


def test_upgrade_counts_spend_on_an_expired_card_but_review_skips_cancelled(vip, isolated):
    card = _silver_since(vip, "2024-01-10")
    with open_db() as conn:
        conn.execute("UPDATE cards SET status = 'cancelled'")
    assert vip("tier", "review", "--yes", "--as-of", "2026-06-15")["reviewed"] == 0
    del card


def test_tier_show_next_tier(vip, member):
    card = member()
    vip("purchase", card, "--amount", "1000")
    r = vip("tier", "show", card)
    assert r["tier"] == "vip" and r["discount_rate"] == "0.88" and r["next_tier"] == "silver"
    assert r["needed_for_next"] == "9120.00" and r["single_purchase_for_next"] == "5000.00"
    vip("tier", "set", card, "gold", "--reason", "t")
    top = vip("tier", "show", card)
    assert top["next_tier"] is None and top["needed_for_next"] is None


def test_tier_set_is_audited_and_validated(vip, member, isolated):
    card = member()
    r = vip("tier", "set", card, "silver", "--reason", "店长决定")
    assert r["from"] == "vip" and r["to"] == "silver" and r["discount_rate"] == "0.85"
    assert vip("purchase", card, "--amount", "100")["paid"] == "85.00"
    with open_db() as conn:
        assert conn.execute("SELECT operator FROM audit WHERE command = 'tier set'").fetchone()[0] == "tester"
    assert vip("tier", "set", card, "diamond", "--reason", "x").code == 2
    assert vip("tier", "set", card, "gold").code == 2  # --reason is required
    assert vip("tier", "show", "13900139000").code == 1


@pytest.mark.parametrize("command", [["tier", "review", "--yes"], ["points", "expire", "--yes"]])
@pytest.mark.parametrize("as_of,refused", [
    ("2026-06-14", False),           # yesterday
    ("2026-06-15", False),           # today: now
    ("2026-06-15T12:00:00", False),  # exactly now
    ("2026-06-15T12:00:01", True),   # one second ahead
    ("2026-06-16", True),            # tomorrow
])
def test_a_write_refuses_a_future_as_of(vip, command, as_of, refused):
    """A review dated ahead downgraded members at once; now it is exit 2 and writes nothing."""
    vip("purchase", "--phone", P, "--amount", "10000", "--at", "2024-01-10")
    r = vip(*command, "--as-of", as_of)
    if refused:
        assert r.code == 2 and r.data["error"]["code"] == "bad_date" and "future" in r.data["error"]["message"]
        assert vip("audit", "--command", " ".join(command))["count"] == 0
    else:
        assert r.code == 0 and r["as_of"] <= "2026-06-15T12:00:00"


def test_an_as_of_date_is_the_end_of_that_day(vip):
    """The review of 10 June 2026 covers a tier reached at 20:00 on 10 June 2024."""
    _silver_since(vip, "2024-06-10T20:00:00")
    assert vip("tier", "review", "--yes", "--as-of", "2026-06-09")["reviewed"] == 0
    assert vip("tier", "review", "--yes", "--as-of", "2026-06-10T19:59:59")["reviewed"] == 0
    r = vip("tier", "review", "--yes", "--as-of", "2026-06-10")
    assert r["reviewed"] == 1 and r["as_of"] == "2026-06-10T23:59:59"


@pytest.mark.parametrize("single,expected", [("4999.99", "vip"), ("5000.00", "silver")])
def test_review_keeps_a_tier_for_one_purchase_of_its_standard(vip, single, expected):
    """003 退出机制 "相应消费标准": one purchase meeting silver's single-purchase standard inside the
    review window keeps silver, though the window's spend (below 10000.00) does not."""
    card = _silver_since(vip, "2024-01-10")
    vip("purchase", card, "--amount", "6000", "--paid", single, "--at", "2025-03-10")
    r = vip("tier", "review", "--yes", "--as-of", "2026-06-15")
    assert vip("tier", "show", card)["tier"] == expected
    assert r["confirmed"] == (1 if expected == "silver" else 0)


def test_review_counts_a_purchase_net_of_its_refund(vip):
    card = _silver_since(vip, "2024-01-10")
    vip("purchase", card, "--amount", "6000", "--paid", "5000.00", "--receipt", "R1", "--at", "2025-03-10")
    vip("refund", "R1", "--amount", "0.01")
    vip("tier", "review", "--yes", "--as-of", "2026-06-15")
    assert vip("tier", "show", card)["tier"] == "vip"
