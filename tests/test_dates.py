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
