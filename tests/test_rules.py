import pytest
from hypothesis import given
from hypothesis import strategies as st

from vipcli.errors import InvalidInput
from vipcli.rulefile import default_text, parse

RULES = parse(default_text())


def test_default_profile_numbers():
    assert RULES.qualify_single == 100000
    assert [(w.months, w.amount) for w in RULES.qualify_windows] == [(6, 200000), (12, 300000)]
    assert [t.code for t in RULES.tiers] == ["vip", "silver", "gold"]
    assert str(RULES.tiers[0].rate) == "0.88" and str(RULES.birthday_rate) == "0.60"
    assert RULES.registration_days == 30 and RULES.hold_months == 24


@pytest.mark.parametrize("single,window,expected", [
    (99999, {}, None), (100000, {}, "single"), (100001, {}, "single"),
    (0, {6: 199999}, None), (0, {6: 200000}, "6-month"),
    (0, {6: 0, 12: 299999}, None), (0, {12: 300000}, "12-month"),
])
def test_qualification_edges(single, window, expected):
    reason = RULES.qualification_reason(single, window)
    assert (reason is None) if expected is None else reason.startswith(expected)


@pytest.mark.parametrize("single,spend,tier", [
    (499999, 0, "vip"), (500000, 0, "silver"), (0, 999999, "vip"), (0, 1000000, "silver"),
    (999999, 1999999, "silver"), (1000000, 0, "gold"), (0, 2000000, "gold"),
])
def test_tier_edges(single, spend, tier):
    assert RULES.tier_for(single, spend).code == tier


@given(st.integers(0, 10**9), st.integers(0, 10**9), st.integers(0, 10**8))
def test_tier_is_monotone_in_spend(single, spend, more):
    low = RULES.tier_rank(RULES.tier_for(single, spend).code)
    assert RULES.tier_rank(RULES.tier_for(single + more, spend).code) >= low
    assert RULES.tier_rank(RULES.tier_for(single, spend + more).code) >= low


@pytest.mark.parametrize("purchases,spend,cls", [
    (12, 0, "A"), (11, 0, "B"), (0, 120000, "A"), (0, 119999, "B"), (8, 0, "B"), (7, 0, "C"),
    (4, 0, "C"), (3, 0, "D"), (2, 0, "D"), (1, 0, "E"), (0, 19999, "E"), (0, 20000, "D"), (0, 0, "E"),
])
def test_customer_class_edges(purchases, spend, cls):
    assert RULES.customer_class(purchases, spend).code == cls


def _broken(old, new):
    text = default_text()
    assert old in text, old
    return text.replace(old, new, 1)


@pytest.mark.parametrize("old,new,key", [
    ('[limits]', '[limits]\nsurprise = 1', "limits.surprise"),
    ('per_yuan = 1', 'per_yuan = "one"', "points.per_yuan"),
    ('birthday_rate = "0.60"', 'birthday_rate = "-0.60"', "discount.birthday_rate"),
    ('birthday_rate = "0.60"', 'birthday_rate = "1.5"', "discount.birthday_rate"),
    ('single_purchase = "5000.00"', 'single_purchase = "20000.00"', "tiers.levels[2]"),
    ('rate = "0.85"', 'rate = "0.90"', "tiers.levels[1].rate"),
    ('window_days = 30', 'window_days = -1', "registration.window_days"),
    ('expiry = "calendar_year"', 'expiry = "never"', "points.expiry"),
    ('default_region = "755"', 'default_region = "75"', "card.default_region"),
    ('single_purchase = "1000.00"', 'single_purchase = 1000.505', "qualification.single_purchase"),
    ('redeem_months = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]', 'redeem_months = [13]', "points.redeem_months"),
])
def test_invalid_rules_name_the_key(old, new, key):
    with pytest.raises(InvalidInput) as info:
        parse(_broken(old, new))
    assert str(info.value).startswith(key), str(info.value)
    assert info.value.exit_code == 2


def test_not_toml():
    with pytest.raises(InvalidInput, match="not valid TOML"):
        parse("this is = = not toml")
