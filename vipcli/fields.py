"""Validation and masking of archive fields: phone, resident ID, gender, birthday, text."""

import re
import unicodedata
from datetime import date

from vipcli.dates import parse_date
from vipcli.errors import InvalidInput, shown
from vipcli.i18n import _

MOBILE = "1[3-9][0-9]{9}"  # a mainland mobile number, as normalize_phone returns it
_MOBILE = re.compile(MOBILE)
_PHONE_NOISE = re.compile(r"[\s\-()（）]")
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}")
_STORE = re.compile(r"[A-Za-z0-9_\-]{1,20}")
# GB 11643-1999: weights of the first 17 digits and the check character for each sum mod 11.
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def normalize_phone(text: str, field: str = "phone") -> str:
    """'+86 138-0013-8000' or full-width digits -> '13800138000'; else InvalidInput."""
    digits = _phone_digits(text)
    if digits is None or not _MOBILE.fullmatch(digits):
        raise InvalidInput(
            _("{field}: {text!r} is not a mainland mobile number (11 digits starting 13-19)").format(
                field=field, text=text),
            code="bad_phone",
        )
    return digits


def parse_count(text: str, field: str, low: int, high: int) -> int:
    """A whole number a person typed (ASCII or full-width digits), from `low` to `high`."""
    from vipcli.money import FULL_WIDTH

    digits = (text or "").strip().translate(FULL_WIDTH)
    if not (digits.isascii() and digits.isdigit() and len(digits) <= 12 and low <= int(digits) <= high):
        raise InvalidInput(_("{field}: {value} is not a whole number from {low} to {high}").format(
                               field=field, value=shown(text), low=low, high=high), code=f"bad_{field}")
    return int(digits)


def looks_like_phone(text: str) -> bool:
    digits = _phone_digits(text)
    return digits is not None and bool(_MOBILE.fullmatch(digits))


def _phone_digits(text: str) -> str | None:
    if not isinstance(text, str):
        return None
    if len(text) == 11 and text.isascii() and text.isdigit():
        return text  # the common case, without Unicode folding
    from vipcli.money import FULL_WIDTH

    folded = text.translate(FULL_WIDTH).strip()  # full-width digits only: '¹³⁸' is not a phone
    folded = _PHONE_NOISE.sub("", folded)
    if folded.startswith("+86"):
        folded = folded[3:]
    elif folded.startswith("0086"):
        folded = folded[4:]
    return folded if folded.isascii() and folded.isdigit() else None


def check_id_number(text: str, field: str = "id_number") -> str:
    """An 18-character resident ID whose GB 11643 check character and birth date are right."""
    value = unicodedata.normalize("NFKC", text).strip().upper() if isinstance(text, str) else ""
    if len(value) != 18 or not value[:17].isdigit() or value[17] not in "0123456789X":
        raise InvalidInput(_("{field}: must be 18 characters, 17 digits and a digit or X").format(
                               field=field), code="bad_id")
    total = sum(int(d) * w for d, w in zip(value[:17], _ID_WEIGHTS))
    if _ID_CHECK[total % 11] != value[17]:
        raise InvalidInput(_("{field}: check character is wrong (typo?)").format(field=field), code="bad_id")
    try:
        date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        raise InvalidInput(_("{field}: the birth date inside it is not a date").format(
                               field=field), code="bad_id") from None
    return value


GENDER_NAMES = {"女": "F", "男": "M"}  # as a clerk types them


def parse_gender(text: str) -> str:
    value = text.strip().upper() if isinstance(text, str) else ""
    value = GENDER_NAMES.get(value, value)
    if value not in ("F", "M"):
        raise InvalidInput(_("gender: {text!r} must be F or M").format(text=text), code="bad_gender")
    return value


def parse_birthday(text: str, today: date) -> date:
    value = parse_date(text, "birthday")
    if value > today:
        raise InvalidInput(_("birthday: {text!r} is in the future").format(text=text), code="bad_date")
    if value.year < 1900:
        raise InvalidInput(_("birthday: {text!r} is before 1900").format(text=text), code="bad_date")
    return value


def clean_text(text: str, field: str, max_length: int) -> str:
    """Free text (name, address, note): trimmed, no control characters, bounded length."""
    value = unicodedata.normalize("NFC", text).strip() if isinstance(text, str) else ""
    if not value:
        raise InvalidInput(_("{field}: must not be empty").format(field=field), code="bad_text")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") for ch in value):
        raise InvalidInput(_("{field}: contains control or invalid characters").format(field=field), code="bad_text")
    if len(value) > max_length:
        raise InvalidInput(_("{field}: longer than {max_length} characters").format(
                               field=field, max_length=max_length), code="bad_text")
    return value


def check_email(text: str) -> str:
    value = text.strip() if isinstance(text, str) else ""
    if len(value) > 254 or not _EMAIL.fullmatch(value):
        raise InvalidInput(_("email: {text!r} is not an e-mail address").format(text=text), code="bad_email")
    return value


def check_store(text: str) -> str:
    value = text.strip() if isinstance(text, str) else ""
    if not _STORE.fullmatch(value):
        raise InvalidInput(
            _("store: {text!r} must be 1-20 letters, digits, '-' or '_'").format(text=text), code="bad_store"
        )
    return value


def mask_phone(phone: str | None) -> str | None:
    """13800138000 -> 138****8000."""
    if not phone:
        return phone
    return phone[:3] + "****" + phone[-4:]


def mask_id(id_number: str | None) -> str | None:
    """First 6 and last 4 characters shown (SPEC §4)."""
    if not id_number:
        return id_number
    return id_number[:6] + "*" * (len(id_number) - 10) + id_number[-4:]
