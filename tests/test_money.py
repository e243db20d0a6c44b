from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vipcli.errors import InvalidInput
from vipcli.money import apply_rate, format_fen, parse_yuan


@pytest.mark.parametrize("text,fen", [
    ("1000", 100000), ("880.5", 88050), ("880.50", 88050), ("0.01", 1), ("0", 0), (" 12.3 ", 1230), ("１０.５", 1050),
    # as a clerk types them (issue 16.6): a currency sign before, 元 after, thousands grouped by three
    ("¥10", 1000), ("￥1,000", 100000), ("1000元", 100000), ("¥ 1,000.50 元", 100050), ("999", 99900),
    ("1,000", 100000), ("12,345,678.90", 1234567890), ("１，０００".replace("，", ","), 100000),
])
def test_parse_yuan_accepts(text, fen):
    assert parse_yuan(text) == fen


@pytest.mark.parametrize("text", ["", "1.234", "-1", "+5", "1e3", "1,00", "1,0000", ",100", "100,", "1,,000", "¥", "元",
                                  "¥-5", "10元元", "$10", "abc", "1.", ".5", "NaN", "٣"])
def test_parse_yuan_refuses(text):
    with pytest.raises(InvalidInput) as info:
        parse_yuan(text)
    assert info.value.exit_code == 2


@pytest.mark.parametrize("fen,rate,expected", [
    (1005, "0.88", 884),      # 8.844 -> 8.84
    (1006, "0.88", 885),      # 8.8528 -> 8.85
    (625, "0.88", 550),       # exactly 5.50
    (1, "0.60", 1),           # 0.6 fen -> 1 fen (half-up)
    (2, "0.25", 1),           # 0.5 fen -> 1 fen: half goes up
    (100000, "0.88", 88000),
])
def test_apply_rate_rounds_half_up(fen, rate, expected):
    assert apply_rate(fen, Decimal(rate)) == expected


@given(st.integers(min_value=0, max_value=10**15))
def test_format_parse_round_trip(fen):
    assert parse_yuan(format_fen(fen)) == fen


@given(st.integers(min_value=0, max_value=10**12),
       st.decimals(min_value=Decimal("0.01"), max_value=1, places=2))
def test_discount_never_exceeds_price_and_is_within_half_a_fen(fen, rate):
    paid = apply_rate(fen, rate)
    assert 0 <= paid <= fen
    assert abs(Decimal(paid) - Decimal(fen) * rate) <= Decimal("0.5")


def test_format_negative():
    assert format_fen(-150) == "-1.50"


@settings(max_examples=500, deadline=None)
@given(st.integers(-10 ** 12, 10 ** 12), st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("1"), places=4))
def test_integer_rounding_equals_decimal_half_up(fen, rate):
    """apply_rate works in integers; Decimal's ROUND_HALF_UP is the definition it is held to."""
    from decimal import ROUND_HALF_UP

    assert apply_rate(fen, rate) == int((Decimal(fen) * rate).quantize(Decimal(1), rounding=ROUND_HALF_UP))
