"""Card numbers (region + per-region sequence + check digit) and the card's state over time."""

import re
from datetime import date, datetime

from vipcli.dates import iso
from vipcli.errors import InvalidInput, NotFound, Refused
from vipcli.rules import Rules

LIVE = ("active", "discount_only", "blocked", "expired")
_SEPARATORS = re.compile(r"[\s\-]")


def luhn_digit(digits: str) -> str:
    """The Luhn check digit that makes `digits + d` pass the Luhn test."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def card_length(rules: Rules) -> int:
    return rules.region_digits + rules.sequence_digits + (1 if rules.check_digit == "luhn" else 0)


def make_number(rules: Rules, region: str, sequence: int) -> str:
    body = region + str(sequence).zfill(rules.sequence_digits)
    return body + luhn_digit(body) if rules.check_digit == "luhn" else body


def parse_number(text: str, rules: Rules) -> str:
    """'755 00001 8', '755-00001-8' -> '755000018'; a wrong check digit is a typo (exit 2)."""
    digits = _SEPARATORS.sub("", text) if isinstance(text, str) else ""
    if not digits.isascii() or not digits.isdigit() or len(digits) != card_length(rules):
        raise InvalidInput(
            f"card: {text!r} is not a card number ({card_length(rules)} digits)", code="bad_card"
        )
    if rules.check_digit == "luhn":
        body = digits[:-1]
        if luhn_digit(body) != digits[-1]:
            raise InvalidInput(
                f"card: {text!r} has a wrong check digit (typo?)", code="bad_card_check"
            )
    return digits


def format_number(card_no: str | None, rules: Rules) -> str | None:
    """'755000018' -> '755 00001 8' for people; JSON keeps the digits."""
    if not card_no:
        return card_no
    r, s = rules.region_digits, rules.sequence_digits
    parts = [card_no[:r], card_no[r:r + s], card_no[r + s:]]
    return " ".join(p for p in parts if p)


def issue(conn, rules: Rules, customer_id: int, at: datetime, reason: str,
          region: str | None = None, store: str | None = None) -> str:
    """Give the customer a new card number in the region; the sequence is per region."""
    region = region or rules.region_for(store)
    if len(region) != rules.region_digits or not region.isdigit():
        raise InvalidInput(f"region: {region!r} must be {rules.region_digits} digits", code="bad_region")
    sequence = conn.execute(
        "INSERT INTO card_sequences(region, last) VALUES (?, 1) "
        "ON CONFLICT(region) DO UPDATE SET last = last + 1 RETURNING last",
        (region,),
    ).fetchone()[0]
    if sequence >= 10 ** rules.sequence_digits:
        raise Refused(
            f"region {region} has used all {10 ** rules.sequence_digits - 1} card numbers; "
            "issue in another region or widen card.sequence_digits",
            code="card_sequence_overflow",
        )
    number = make_number(rules, region, sequence)
    conn.execute(
        "INSERT INTO cards(card_no, customer_id, region, sequence, status, issued_at, valid_to, "
        "reason, status_at) VALUES (?, ?, ?, ?, 'active', ?, ?, ?, ?)",
        (number, customer_id, region, sequence, iso(at), iso(rules.card_valid_to(at.date())),
         reason, iso(at)),
    )
    return number


def effective_status(card, registered: bool, rules: Rules, today: date) -> str:
    """The card's state today: stored states plus the ones time brings (expired after its
    validity; discount_only when unregistered past the registration window, 第七条)."""
    status = card["status"]
    if status in ("blocked", "replaced", "cancelled"):
        return status
    if status == "expired" or today > date.fromisoformat(card["valid_to"]):
        return "expired"
    if not registered:
        issued = date.fromisoformat(card["issued_at"][:10])
        if (today - issued).days > rules.registration_days:  # 第七条: 30天内 includes day 30
            return "discount_only"
    return "active"


def registration_days_left(card, registered: bool, rules: Rules, today: date) -> int | None:
    if registered or card is None:
        return None
    issued = date.fromisoformat(card["issued_at"][:10])
    return max(rules.registration_days - (today - issued).days, 0)


def live_card(conn, customer_id: int):
    return conn.execute(
        f"SELECT * FROM cards WHERE customer_id = ? AND status IN ({','.join('?' * len(LIVE))}) "
        "ORDER BY issued_at DESC LIMIT 1",
        (customer_id, *LIVE),
    ).fetchone()


def latest_card(conn, customer_id: int):
    return conn.execute(
        "SELECT * FROM cards WHERE customer_id = ? ORDER BY issued_at DESC, rowid DESC LIMIT 1",
        (customer_id,),
    ).fetchone()


def get(conn, card_no: str):
    row = conn.execute("SELECT * FROM cards WHERE card_no = ?", (card_no,)).fetchone()
    if row is None:
        raise NotFound(f"card {card_no} is not on record", code="unknown_card")
    return row
