from datetime import datetime

from dateutil.relativedelta import relativedelta
from hypothesis import given, settings
from hypothesis import strategies as st

from vipcli.dates import add_months, months_after, months_before

moments = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(9998, 12, 31, 23, 59, 59))


@settings(max_examples=500, deadline=None)
@given(moments, st.integers(-1200, 1200))
def test_months_are_counted_as_dateutil_counts_them(moment, months):
    """add_months is relativedelta(months=...) in a quarter of the time: held to it."""
    try:
        expected = moment + relativedelta(months=months)
    except (ValueError, OverflowError):
        return  # past year 9999: no date vipcli takes gets there
    assert add_months(moment, months) == expected


def test_month_ends_clamp():
    assert months_before(datetime(2026, 8, 31, 10), 6) == datetime(2026, 2, 28, 10)
    assert months_before(datetime(2024, 8, 31), 6) == datetime(2024, 2, 29)
    assert months_after(datetime(2026, 3, 31), 1) == datetime(2026, 4, 30)
    assert months_after(datetime(2026, 12, 15), 1) == datetime(2027, 1, 15)
    assert months_before(datetime(2026, 1, 15), 1) == datetime(2025, 12, 15)


import pytest  # noqa: E402

from vipcli.dates import parse_as_of, parse_date, parse_when  # noqa: E402
from vipcli.errors import InvalidInput  # noqa: E402


@pytest.mark.parametrize("text", ["2026-03-05", "2026-3-5", "2026/3/5", "2026.3.5", "2026年3月5日", "2026年03月05日",
                                  "20260305", "２０２６年３月５日", " 2026/03/05 "])
def test_a_date_as_a_clerk_types_it(text):
    """Issue 16.6: every form a Chinese store writes a date in is the same day."""
    assert parse_date(text) == datetime(2026, 3, 5).date() and parse_when(text) == datetime(2026, 3, 5)


@pytest.mark.parametrize("text", ["2026/3-5", "2026-02-30", "2026/13/1", "202603055", "2026305", "2026年3月", "3/5/2026",
                                  "2026.03.05.", "2026 3 5", "2026年3月5日 25:00"])
def test_what_is_not_a_date_says_which_forms_are(text):
    with pytest.raises(InvalidInput) as info:
        parse_when(text)
    assert "2026年3月5日" in info.value.message and "\n" not in info.value.message


def test_a_time_after_a_typed_date_and_the_end_of_a_typed_day():
    assert parse_when("2026/3/5 9:05") == datetime(2026, 3, 5, 9, 5)
    assert parse_when("2026年3月5日 09:05:30".replace("日 ", "日T")) == datetime(2026, 3, 5, 9, 5, 30)
    now = datetime(2026, 6, 1, 12, 0)
    assert parse_as_of("2026年3月5日", now, writes=True) == datetime(2026, 3, 5, 23, 59, 59)  # a day means its end
    assert parse_as_of("2026/3/5 10:00", now, writes=True) == datetime(2026, 3, 5, 10, 0)
    with pytest.raises(InvalidInput):
        parse_date("2026/3/5 10:00")  # a birthday is a day
