"""Yuan text <-> integer fen, and the one rounding rule (half-up to the fen).

No float ever touches money: amounts are int fen, rates are Decimal.
"""

import re
from decimal import Decimal
from functools import lru_cache

from vipcli.errors import InvalidInput, shown
from vipcli.i18n import _

# Full-width digits and point, as a Chinese input method types them; nothing else is folded
# (superscripts, circled or mathematical digits are not amounts).
FULL_WIDTH = str.maketrans("０１２３４５６７８９．＋－　", "0123456789.+- ")

YUAN = r"([0-9]{1,15})(?:\.([0-9]{1,2}))?"  # yuan as parse_yuan takes it, after folding and stripping
_YUAN = re.compile(YUAN)


# An amount as a clerk types it: ¥ or ￥ before it or 元 after it, thousands separated by commas
# where they group by three (1,000.50 yes, 1,00 no); full-width digits folded first.
_DRESSED = re.compile(r"[¥￥]?\s*((?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]{1,2})?)\s*元?")


def parse_yuan(text: str, field: str = "amount") -> int:
    """'880.5', '¥1,000', '1000元' -> fen. At most two decimals, no sign, no exponent."""
    cleaned = text.translate(FULL_WIDTH).strip() if isinstance(text, str) else ""
    match = _YUAN.fullmatch(cleaned)
    if not match:
        dressed = _DRESSED.fullmatch(cleaned)
        match = _YUAN.fullmatch(dressed.group(1).replace(",", "")) if dressed else None
    if not match:
        raise InvalidInput(
            _("{field}: {value} is not an amount in yuan (at most two decimals, e.g. 880.50, ¥1,000 or 1000元)").format(
                field=field, value=shown(text)),
            code="bad_amount",
        )
    whole, cents = match.group(1), (match.group(2) or "").ljust(2, "0")
    return int(whole) * 100 + int(cents)


def format_fen(fen: int) -> str:
    """88050 -> '880.50'; negative amounts keep their sign."""
    if fen >= 0:
        return f"{fen // 100}.{fen % 100:02d}"
    return "-" + format_fen(-fen)


def apply_rate(fen: int, rate: Decimal) -> int:
    """Discounted price of `fen` at `rate`, rounded half-up to the fen (10.05 at 0.88 -> 8.84),
    away from zero for a negative amount (Decimal's ROUND_HALF_UP). In integers: a rate is an exact
    fraction, and a test holds this to Decimal's quantize."""
    numerator, denominator = _fraction(rate)
    if fen < 0:
        return -((-2 * fen * numerator + denominator) // (2 * denominator))
    return (2 * fen * numerator + denominator) // (2 * denominator)


@lru_cache(maxsize=64)
def _fraction(rate: Decimal) -> tuple[int, int]:
    return rate.as_integer_ratio()

