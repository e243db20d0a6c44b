"""Each built-in profile driven through the CLI at the edges of its distinctive rules."""

import pytest

from vipcli.rulefile import default_text, parse, profile_names
from conftest import open_db

P = "13800138000"


def test_profiles_listed_and_valid(vip):
    names = [p["name"] for p in vip("rules", "profiles")["profiles"]]
    assert names == ["clinic", "counter", "department", "fashion", "health", "store"] == profile_names()
    for name in names:
        assert parse(default_text(name)).name == name


@pytest.mark.parametrize("name", profile_names())
def test_rules_show_prints_money_as_yuan_text(vip, name):
    """SPEC §1: money in JSON is always a two-decimal string (single_purchase was printed in fen)."""
    assert vip("init", "--profile", name).code == 0
    r = vip("rules", "show")
    money = [r["qualify_single"], *(w["amount"] for w in r["qualify_windows"]),
             *(t[k] for t in r["tiers"] for k in ("single_purchase", "spend"))]
    if name == "clinic":  # a card on registration: no purchase qualifies
        assert money.pop(0) is None and r["card_on_registration"] is True
    assert all(isinstance(m, str) and m.split(".")[1].__len__() == 2 for m in money), money
    assert r["tiers"][0]["single_purchase"] == "0.00"


def test_unknown_profile_and_both_options(vip, tmp_path):
    assert vip("init", "--profile", "casino").code == 2
    assert vip("init", "--profile", "store", "--rules", str(tmp_path / "x.toml")).code == 2


def _member(vip, phone=P, birthday="1990-06-15"):
    r = vip("enroll", "--phone", phone, "--name", "王芳", "--gender", "F", "--birthday", birthday, "--grant", "t")
    assert r.code == 0, r
    return r["card_no"]


# --- fashion (003, 56饰) ----------------------------------------------------------------------------

@pytest.mark.parametrize("amount,applies", [("679.99", False), ("680.00", True)])
def test_fashion_single_purchase_680(vip, amount, applies):
    """003 一,1: 680 paid qualifies; the card waits for the head office's review (an application)."""
    vip("init", "--profile", "fashion")
    r = vip("purchase", "--phone", P, "--amount", amount)
    assert r["card_issued"] is False and (r["application"] is not None) is applies


def test_fashion_year_of_1000_promo_not_counted(vip):
    vip("init", "--profile", "fashion")
    vip("purchase", "--phone", P, "--amount", "600", "--at", "2025-07-01")
    r = vip("purchase", "--phone", P, "--amount", "399.99", "--promo", "300")
    assert r["application"] is None  # 999.99 of regular goods; the 300.00 promo does not count
    r = vip("purchase", "--phone", P, "--amount", "0.01")
    assert r["application"] is not None and r["card_issued"] is False
    receipts = vip("applications")["applications"][0]["receipts"]
    assert len(receipts) == 3  # (the purchases of the qualifying 12 months)


def test_fashion_card_number_without_check_digit_and_birthday_085(vip):
    vip("init", "--profile", "fashion")
    card = _member(vip)
    assert card == "75500001"
    shown = vip("purchase", "755 00001", "--amount", "100", json_output=False)
    assert "755 00001" in shown.stdout
    assert vip("purchase", card, "--amount", "100", "--birthday-id-checked")["discount_rate"] == "0.85"
    assert vip("purchase", card, "--amount", "100")["discount_rate"] == "0.88"
    new = vip("card", "replace", card)["new_card_no"]
    assert new == "75500002"


def test_fashion_card_issued_sms(vip, isolated):
    vip("init", "--profile", "fashion")
    application = vip("purchase", "--phone", P, "--amount", "680")["application"]
    vip("update", P, "--name", "王芳", "--gender", "F", "--birthday", "1990-06-15")
    assert vip("approve", application).code == 0
    vip("notify", "card-issued", "--out", str(isolated / "sms.csv"))
    assert "祝贺您成为56饰尊贵的会员" in (isolated / "sms.csv").read_text(encoding="utf-8")


# --- counter (003, 篇1) ------------------------------------------------------------------------------

@pytest.mark.parametrize("amount,tier", [("4999.99", None), ("5000.00", "silver"), ("9999.99", "silver"),
                                         ("10000.00", "gold")])
def test_counter_silver_and_gold_on_one_purchase(vip, amount, tier):
    vip("init", "--profile", "counter")
    r = vip("purchase", "--phone", P, "--amount", amount)
    assert r["tier"] == tier and r["paid"] == amount  # points, not discounts


def test_counter_year_spend_upgrades_to_gold(vip):
    vip("init", "--profile", "counter")
    vip("purchase", "--phone", P, "--amount", "6000", "--at", "2025-09-01")
    r = vip("purchase", "--phone", P, "--amount", "4000", "--at", "2026-01-01")
    assert r["tier"] == "silver"
    r = vip("purchase", "--phone", P, "--amount", "9999.99")
    assert r["tier"] == "silver"  # 19999.99
    assert vip("purchase", "--phone", P, "--amount", "0.01")["tier"] == "gold"


def test_counter_redemption_march_and_august_not_same_day_two_year_points(vip):
    vip("init", "--profile", "counter")
    card = vip("purchase", "--phone", P, "--amount", "5000", now="2026-03-10T10:00")["card_no"]
    vip("update", P, "--name", "王芳", "--gender", "F", "--birthday", "1990-01-01", now="2026-03-10T11:00")
    assert vip("redeem", card, "--reward", "A300", now="2026-03-10T18:00").code == 1  # not on the day earned
    assert vip("redeem", card, "--reward", "A300", now="2026-03-11T00:00")["points_balance"] == 4500
    assert vip("redeem", card, "--reward", "B800", now="2026-04-01T10:00").code == 1
    assert vip("redeem", card, "--reward", "B800", now="2026-08-31T23:00")["points_balance"] == 3500
    assert vip("points", card, now="2028-03-10T09:59:59")["points_balance"] == 3500
    assert vip("points", card, now="2028-03-10T10:00:00")["points_balance"] == 0  # two years, rolling


# --- clinic (003, 口腔门诊) ---------------------------------------------------------------------------

def test_clinic_gift_allowance_by_tier(vip, isolated):
    vip("init", "--profile", "clinic")
    card = _member(vip)
    r = vip("gift", card)
    assert r.code == 1 and "0 gift" in r["error"]["message"]  # 普通会员
    vip("purchase", card, "--amount", "20000", "--paid", "10000")  # gold
    assert vip("tier", "show", card)["gifts_left"] == 2
    assert vip("gift", card)["gifts_left"] == 1
    assert vip("gift", card)["gifts_left"] == 0
    assert vip("gift", card).code == 1
    assert vip("card", "renew", card, now="2026-12-15T10:00").data["error"]["code"] == "no_renewal"
    assert vip("gift", card, now="2027-01-02T10:00")["gifts_left"] == 1  # a new year, a new allowance
    with open_db() as conn:
        assert conn.execute("SELECT COUNT(*) FROM audit WHERE command = 'gift'").fetchone()[0] == 3


def test_clinic_issues_a_card_on_registration_whatever_was_spent(vip):
    """003 2.1 会员注册: the registration form earns the card; no purchase does."""
    vip("init", "--profile", "clinic")
    prospect = vip("purchase", "--phone", P, "--amount", "50000")
    assert prospect["card_issued"] is False and prospect["card_no"] is None
    partial = vip("enroll", "--phone", P, "--name", "王芳", "--gender", "F")
    assert partial["card_no"] is None
    r = vip("enroll", "--phone", P, "--birthday", "1990-06-15")
    assert r["card_no"] is not None and r["status"] == "active" and r["tier"] == "regular"
    fresh = vip("enroll", "--phone", "13900139000", "--name", "李娜", "--gender", "F", "--birthday", "1991-02-03")
    assert fresh["card_no"] is not None
    assert vip("check")["ok"] is True


@pytest.mark.parametrize("name", ["fashion", "counter", "clinic"])
def test_profiles_whose_seed_sets_no_window_or_renewal_inherit_none(vip, name):
    """003 sets no registration window and no renewal month for these cards: an unregistered card
    keeps its full rights (a counter card past 30 days gave nothing at all), and cards don't expire."""
    vip("init", "--profile", name)
    card = vip("enroll", "--phone", P, "--grant", "t", now="2024-01-10T10:00:00")["card_no"]
    r = vip("purchase", card, "--amount", "10000")
    assert r["status"] == "active" and r["points_earned"] > 0 and r["note"] is None
    shown = vip("show", card)
    assert shown["valid_to"] == "9999-12-31" and shown["registration_days_left"] is None
    assert vip("card", "renew", "--all", "--yes", now="2026-12-15T10:00:00").data["error"]["code"] == "no_renewal"


def test_clinic_points_100_to_a_yuan_valid_one_year(vip):
    vip("init", "--profile", "clinic")
    card = _member(vip)
    vip("purchase", card, "--amount", "2000", "--paid", "1000", now="2026-06-15T10:00")
    assert vip("rewards")["rewards"][0] == {"code": "V10", "name": "10元优惠券", "points": 1000, "value": "10.00"}
    assert vip("points", card, now="2027-06-15T09:59")["points_balance"] == 1000
    assert vip("points", card, now="2027-06-15T10:00")["points_balance"] == 0


@pytest.mark.parametrize("paid,tier", [("4999.99", "regular"), ("5000.00", "silver"), ("10000.00", "gold"),
                                       ("20000.00", "platinum")])
def test_clinic_four_tiers(vip, paid, tier):
    vip("init", "--profile", "clinic")
    card = _member(vip)
    assert vip("purchase", card, "--amount", "30000", "--paid", paid)["tier"] == tier


# --- health (000, 客史档案) ----------------------------------------------------------------------------

def test_health_classes_and_visit_schedule(vip):
    """E class: 外联员1个月电话拜望一次 (第三章 第二条(5)), not a letter every 6 months."""
    vip("init", "--profile", "health")
    for i in range(12):
        vip("purchase", "--phone", P, "--amount", "1", "--at", f"2026-05-{i + 1:02d}")
    vip("purchase", "--phone", "13900139000", "--amount", "10", "--at", "2026-05-15T10:00")  # due a month on
    classes = {c["customer_id"]: c["class"] for c in vip("class", "--as-of", "2026-06-15")["classes"]}
    assert classes == {1: "A", 2: "E"}
    due = vip("visit", "due", "--as-of", "2026-06-15")["due"]
    assert [(d["class"], d["channel"]) for d in due] == [("A", "visit"), ("E", "phone")]
    assert [d["customer_id"] for d in vip("visit", "due", "--as-of", "2026-06-15T09:59:59")["due"]] == [1]


@pytest.mark.parametrize("name", profile_names())
@pytest.mark.parametrize("channel,at,due", [
    ("sms", "2026-06-10", True),      # A: only the monthly visit counts
    ("phone", "2026-06-10", True),
    ("visit", "2026-06-10", False),
    ("visit", "2026-05-15T12:00:00", True),   # a month ago exactly: due again
    ("visit", "2026-05-15T12:00:01", False),
])
def test_an_a_class_customer_is_due_until_visited(vip, name, channel, at, due):
    vip("init", "--profile", name)
    for i in range(12):
        vip("purchase", "--phone", P, "--amount", "1", "--at", f"2026-01-{i + 1:02d}")
    vip("visit", "log", P, "--channel", channel, "--at", at)
    assert [d["customer_id"] for d in vip("visit", "due")["due"]] == ([1] if due else [])


@pytest.mark.parametrize("name", profile_names())
@pytest.mark.parametrize("channel,at,due", [
    ("phone", "2026-05-15T12:00:01", False),   # a call within the month
    ("phone", "2026-05-15T12:00:00", True),
    ("visit", "2026-04-15T12:00:01", False),   # or a visit within two months
    ("visit", "2026-04-15T12:00:00", True),
    ("sms", "2026-06-14", True),               # an SMS is neither
])
def test_b_to_d_are_satisfied_by_a_call_a_month_or_a_visit_every_two(vip, name, channel, at, due):
    vip("init", "--profile", name)
    for i in range(8):  # B: 8 purchases
        vip("purchase", "--phone", P, "--amount", "1", "--at", f"2026-01-{i + 1:02d}")
    vip("visit", "log", P, "--channel", channel, "--at", at)
    rows = vip("visit", "due")["due"]
    assert [(d["class"], d["customer_id"]) for d in rows] == ([("B", 1)] if due else [])


def test_rules_take_contacts_or_the_older_single_channel(tmp_path):
    from vipcli.rulefile import RulesError
    text = default_text("store")
    old_form = text.replace('contacts = [{ channel = "phone", months = 1 }]', 'interval_months = 6\nchannel = "letter"')
    level = parse(old_form).classes[-1]
    assert (level.channel, [(c.channel, c.months) for c in level.contacts]) == ("letter", [("letter", 6)])
    both = text.replace('contacts = [{ channel = "phone", months = 1 }]',
                        'contacts = [{ channel = "phone", months = 1 }]\nchannel = "sms"')
    with pytest.raises(RulesError, match=r"classes.levels\[4\]: give contacts"):
        parse(both)
    twice = text.replace('contacts = [{ channel = "phone", months = 1 }]',
                         'contacts = [{ channel = "phone", months = 1 }, { channel = "phone", months = 2 }]')
    with pytest.raises(RulesError, match="appears twice"):
        parse(twice)


# --- department (000, SVIP) ---------------------------------------------------------------------------

@pytest.mark.parametrize("paid,tier", [("19999.99", "vip"), ("20000.00", "platinum"), ("100000.00", "diamond")])
def test_department_three_cards(vip, paid, tier):
    vip("init", "--profile", "department")
    card = _member(vip)
    assert vip("purchase", card, "--amount", "200000", "--paid", paid)["tier"] == tier


def test_department_report_top_tier_share(vip, isolated):
    from decimal import Decimal

    from openpyxl import load_workbook
    vip("init", "--profile", "department")
    top = _member(vip)
    other = _member(vip, phone="13900139000")
    vip("purchase", top, "--amount", "200000", "--paid", "150000")
    vip("purchase", other, "--amount", "60000", "--paid", "50000")
    vip("export", "report", "--out", str(isolated / "r.xlsx"))
    sheet = load_workbook(isolated / "r.xlsx")["等级消费"]
    shares = {row[0].value: row[3].value for row in sheet.iter_rows(min_row=2)}
    assert shares["diamond"] == Decimal("0.75") and shares["platinum"] == Decimal("0.25")


def test_rules_change_applies_from_then_on_refunds_keep_their_version(vip, tmp_path):
    card = _member(vip)
    first = vip("purchase", card, "--amount", "1000")
    assert first["discount_rate"] == "0.88"
    cheaper = tmp_path / "cheaper.toml"
    cheaper.write_text(default_text().replace('rate = "0.88"', 'rate = "0.87"'), encoding="utf-8")
    vip("rules", "load", str(cheaper))
    assert vip("purchase", card, "--amount", "1000")["discount_rate"] == "0.87"
    assert vip("refund", first["receipt"])["points_reversed"] == 880
