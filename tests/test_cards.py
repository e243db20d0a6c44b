import pytest
from hypothesis import given
from hypothesis import strategies as st

from vipcli.cards import format_number, luhn_digit, make_number, parse_number
from vipcli.errors import InvalidInput
from vipcli.rulefile import default_text, parse

RULES = parse(default_text())


def test_luhn_known_value():
    assert luhn_digit("7992739871") == "3"  # the textbook example


@given(st.text(alphabet="0123456789", max_size=20))
def test_luhn_digit_as_the_textbook_loop(digits):
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    assert luhn_digit(digits) == str((10 - total % 10) % 10)
    assert (total + int(luhn_digit(digits))) % 10 == 0


@pytest.mark.parametrize("text", ["755000015", "755 00001 5", "755-00001-5", " 755 0000 15 "])
def test_any_spacing(text):
    assert parse_number(text, RULES) == "755000015"


def test_wrong_check_digit_is_a_typo():
    with pytest.raises(InvalidInput, match="check digit") as info:
        parse_number("755000016", RULES)
    assert info.value.exit_code == 2


@pytest.mark.parametrize("text", ["75500001", "7550000150", "abc", "", "７５５００００１５"])
def test_not_a_card_number(text):
    with pytest.raises(InvalidInput):
        parse_number(text, RULES)


@given(st.from_regex(r"[0-9]{3}", fullmatch=True), st.integers(1, 99999))
def test_round_trip_and_single_digit_typos_caught(region, sequence):
    number = make_number(RULES, region, sequence)
    assert parse_number(format_number(number, RULES), RULES) == number
    for i in range(len(number)):
        for digit in "0123456789":
            if digit != number[i]:
                typo = number[:i] + digit + number[i + 1:]
                with pytest.raises(InvalidInput):
                    parse_number(typo, RULES)
