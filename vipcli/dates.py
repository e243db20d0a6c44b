"""Dates and times: parsing what users type, "now", and calendar-month arithmetic.

Times are naive local wall-clock times stored as ISO text ('2026-11-23T14:05:00'), which sorts
and compares correctly as text. Calendar months are counted as dateutil's relativedelta counts
them, clamping to the month's last day (31 August - 6 months = 28/29 February); a test holds
`add_months` to relativedelta, which is four times slower (an import asks once per points lot).
"""

import os
import re
from calendar import monthrange
from datetime import date, datetime, time

from vipcli.errors import InvalidInput, shown
from vipcli.i18n import _


# Dates vipcli takes: calendar arithmetic (a window of months, a year ahead) stays inside Python's.
FIRST_YEAR, LAST_YEAR = 1900, 9998


def _in_range(value, text, field: str):
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise InvalidInput(_("{field}: {value} is out of range ({first_year}-{last_year})").format(
                               field=field,
                               value=shown(text),
                               first_year=FIRST_YEAR,
                               last_year=LAST_YEAR), code="bad_date")
    return value


# A date as a clerk types it: 2026-03-05, 2026-3-5, 2026/3/5, 2026.3.5, 2026年3月5日, 20260305
# (full-width digits folded first); a time after it, when there is one, after a space or a T.
_DATE = r"(\d{4})(?:([-/.])(\d{1,2})\2(\d{1,2})|年(\d{1,2})月(\d{1,2})日?|(\d{2})(\d{2}))"
_TIME = r"(?:[T ](\d{1,2}):(\d{2})(?::(\d{2}))?)"
_WHEN = re.compile(rf"{_DATE}{_TIME}?", re.ASCII)
DATE_FORMS = "2026-03-05, 2026/3/5, 2026.3.5, 2026年3月5日 or 20260305"


def _folded(text) -> str:
    from vipcli.money import FULL_WIDTH

    return text.translate(FULL_WIDTH).strip() if isinstance(text, str) else ""


def _typed(text):
    """A date or date-time in one of the forms a person types: its match, or None."""
    return _WHEN.fullmatch(_folded(text))


def is_date_only(text) -> bool:
    """Whether `text` is a date without a time (in any form parse_date takes)."""
    match = _typed(text)
    return match is not None and match.group(9) is None


def _moment(match) -> datetime:
    """The moment a `_typed` match names; ValueError for a day that does not exist (2026-02-30)."""
    year, _, m1, d1, m2, d2, m3, d3, hour, minute, second = match.groups()
    month, day = next((m, d) for m, d in ((m1, d1), (m2, d2), (m3, d3)) if m is not None)
    return datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0))


def parse_date(text: str, field: str = "date") -> date:
    match = _typed(text)
    try:
        value = _moment(match) if match is not None and match.group(9) is None else None
    except ValueError:
        value = None
    if value is None:
        raise InvalidInput(_("{field}: {value} is not a date (e.g. {date_forms})").format(
                               field=field, value=shown(text), date_forms=DATE_FORMS), code="bad_date")
    return _in_range(value.date(), text, field)


def parse_when(text: str, field: str = "time") -> datetime:
    """A date (midnight) or a date and time, to the second, in the forms a person types (or ISO)."""
    try:
        match = _typed(text)
        value = _moment(match) if match is not None else datetime.fromisoformat(text.strip())
    except (ValueError, AttributeError, TypeError):
        raise InvalidInput(
            _("{field}: {value} is not a date or date-time (e.g. {date_forms}, 2026-03-05T10:00)").format(
                field=field, value=shown(text), date_forms=DATE_FORMS),
            code="bad_date",
        ) from None
    if value.tzinfo is not None:
        raise InvalidInput(_("{field}: {value} has a time zone; give local time").format(
                               field=field, value=shown(text)), code="bad_date")
    _in_range(value, text, field)
    return value.replace(microsecond=0) if value.microsecond else value


def parse_as_of(text: str | None, current: datetime, writes: bool) -> datetime:
    """`--as-of`: a date means the end of that day (a purchase at 20:00 on 31 December is in the
    year-end class list), today's date means now; a date-time is taken as given. A command that
    writes refuses a moment after now: a review or an expiry can't run ahead of the calendar."""
    if text is None:
        return current
    moment = parse_when(text, "as-of")
    if is_date_only(text):
        moment = min(datetime.combine(moment.date(), time(23, 59, 59)),
                     max(current, moment))  # today: now; a past day: its last second
    if writes and moment > current:
        raise InvalidInput(_("as-of: {value} is in the future (now is {value2}); a review or an expiry runs on a "
                             "date that has passed").format(
                               value=text.strip(), value2=iso(current)), code="bad_date")
    return moment


def now() -> datetime:
    """VIPCLI_NOW when set (tests, back-office replays), else the system clock."""
    fixed = os.environ.get("VIPCLI_NOW")
    if fixed:
        return parse_when(fixed, "VIPCLI_NOW")
    return datetime.now().replace(microsecond=0)


def iso(moment: datetime | date) -> str:
    if isinstance(moment, datetime):
        return moment.isoformat(timespec="seconds")
    return moment.isoformat()


def add_months(moment, months: int):
    """The same day and time `months` calendar months later (earlier when negative), on the
    month's last day when it is shorter (31 March + 1 month = 30 April)."""
    year, month = divmod(moment.year * 12 + moment.month - 1 + months, 12)
    month += 1
    return moment.replace(year=year, month=month, day=min(moment.day, monthrange(year, month)[1]))


def months_before(moment: datetime, months: int) -> datetime:
    return add_months(moment, -months)


def months_after(moment, months: int):
    return add_months(moment, months)


def start_of_next_year(moment: datetime) -> datetime:
    return datetime(moment.year + 1, 1, 1)


def is_birthday(birthday: date, today: date) -> bool:
    """Birthday today; someone born on 29 February celebrates on 28 February in common years."""
    if birthday.month == 2 and birthday.day == 29:
        leap = today.year % 4 == 0 and (today.year % 100 != 0 or today.year % 400 == 0)
        return (today.month, today.day) == ((2, 29) if leap else (2, 28))
    return (today.month, today.day) == (birthday.month, birthday.day)
