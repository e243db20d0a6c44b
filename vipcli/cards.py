"""Card numbers (region + per-region sequence + check digit) and the card's state over time."""

import re
from datetime import date, datetime, timedelta

from vipcli.dates import iso
from vipcli.errors import InvalidInput, NotFound, Refused
from vipcli.rules import Rules
from vipcli.i18n import _, current

LIVE = ("active", "discount_only", "blocked", "expired")
STATUSES = ("active", "discount_only", "blocked", "replaced", "expired", "cancelled")
STATUS_NAMES = {"有效": "active", "仅折扣": "discount_only", "挂失": "blocked", "已换卡": "replaced", "过期": "expired",
                "注销": "cancelled", "潜在": "prospect"}  # as a clerk types them


def status_label(code: str | None) -> str | None:
    """A status as people read it: its code (blocked), or in Chinese the name a clerk types (挂失)."""
    if code is None or current() != "zh":
        return code
    return next((name for name, known in STATUS_NAMES.items() if known == code), code)


def status_code(text: str, allowed: tuple = STATUSES) -> str:
    """A card status typed in English or Chinese (有效, 挂失...) -> its code, one of `allowed`."""
    value = text.strip().lower() if isinstance(text, str) else ""
    value = STATUS_NAMES.get(value, value)
    if value not in allowed:
        names = {code: name for name, code in STATUS_NAMES.items()}
        raise InvalidInput(_("status: {text!r} is not one of {value}").format(
                               text=text,
                               value=', '.join((f'{code} ({names[code]})' for code in allowed))), code="bad_status")
    return value


# the states in which a card's purchase is refused (a lost card's owner may still buy by phone)
REFUSES_PURCHASE = ("blocked", "replaced", "cancelled")
_SEPARATORS = re.compile(r"[\s\-]")


_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)  # a Luhn digit doubled, its digits summed


def luhn_digit(digits: str) -> str:
    """The Luhn check digit that makes `digits + d` pass the Luhn test: from the right, every
    other digit doubled (the rightmost first), then summed."""
    total = sum(map(_DOUBLED.__getitem__, map(int, digits[::-2]))) + sum(map(int, digits[-2::-2]))
    return str(-total % 10)


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
            _("card: {text!r} is not a card number ({value} digits)").format(
                text=text, value=card_length(rules)), code="bad_card"
        )
    if rules.check_digit == "luhn":
        body = digits[:-1]
        if luhn_digit(body) != digits[-1]:
            raise InvalidInput(
                _("card: {text!r} has a wrong check digit (typo?)").format(text=text), code="bad_card_check"
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
          region: str | None = None, store: str | None = None, valid_to: str | None = None,
          registration_from: str | None = None) -> str:
    """Give the customer a new card number in the region; the sequence is per region. A replacement
    passes on the old card's validity and registration window."""
    region = region or rules.region_for(store)
    if len(region) != rules.region_digits or not region.isdigit():
        raise InvalidInput(_("region: {region!r} must be {region_digits} digits").format(
                               region=region, region_digits=rules.region_digits), code="bad_region")
    sequence = conn.execute(
        "INSERT INTO card_sequences(region, last) VALUES (?, 1) "
        "ON CONFLICT(region) DO UPDATE SET last = card_sequences.last + 1 RETURNING last",
        (region,),
    ).fetchone()[0]
    if sequence >= 10 ** rules.sequence_digits:
        raise Refused(
            _("region {region} has used all {value} card numbers; issue in another region or widen "
              "card.sequence_digits").format(
                region=region, value=10 ** rules.sequence_digits - 1),
            code="card_sequence_overflow",
        )
    number = make_number(rules, region, sequence)
    conn.execute(
        "INSERT INTO cards(card_no, customer_id, region, sequence, status, issued_at, valid_to, "
        "reason, status_at, registration_from) VALUES (?, ?, ?, ?, 'active', ?, ?, ?, ?, ?)",
        (number, customer_id, region, sequence, iso(at), valid_to or iso(rules.card_valid_to(at.date())),
         reason, iso(at), registration_from or iso(at)),
    )
    return number


def effective_status(card, registered: bool, rules: Rules, today: date, blocked: bool = True) -> str:
    """The card's state today: stored states plus the ones time brings (expired after its
    validity; discount_only when unregistered past the registration window, 第七条). With
    `blocked=False`, a card reported lost is taken as it would be if it were found."""
    return status_until(card, registered, rules, today, blocked)[0]


def status_until(card, registered: bool, rules: Rules, today: date, blocked: bool = True) -> tuple[str, date]:
    """(effective_status, the last day it holds): time turns an active card discount_only after
    the registration window (when unregistered) and any card expired after its validity; a stored
    state holds for good. An import asks again only once that day has passed."""
    status = card["status"]
    if status in ("replaced", "cancelled") or (status == "blocked" and blocked):
        return status, date.max
    valid_to = date.fromisoformat(card["valid_to"])
    if status == "expired" or today > valid_to:
        return "expired", date.max
    window_ends = None if registered else registration_ends(card, rules)
    if window_ends is None:
        return "active", valid_to
    if today > window_ends:
        return "discount_only", valid_to
    return "active", min(valid_to, window_ends)


def qualified_reason(rule: str) -> str:
    """A card's reason when a purchase qualified for it (rules.qualification_reason's rule)."""
    return f"qualified: {rule}"


def issue_reason(rule: str) -> str:
    """The first tier's reason when a card is issued on a rule (purchase or registration)."""
    return f"card issued ({rule})"


def registration_ends(card, rules: Rules) -> date | None:
    """第七条: the last day an unregistered card has full rights (30天内 includes day 30), or None
    where the profile has no registration window."""
    if rules.registration_days is None:
        return None
    return date.fromisoformat(card["registration_from"][:10]) + timedelta(days=rules.registration_days)


def registration_days_left(card, registered: bool, rules: Rules, today: date) -> int | None:
    if registered or card is None or rules.registration_days is None:
        return None
    return max((registration_ends(card, rules) - today).days, 0)


def first_reason(conn, card) -> str:
    """Why the customer's card was first issued ('qualified: ...', 'granted: ...'), through the
    replacements that followed it."""
    reason = card["reason"]
    while reason.startswith("replaces "):
        reason = get(conn, reason.removeprefix("replaces "))["reason"]
    return reason


def live_card(conn, customer_id: int):
    return conn.execute(
        f"SELECT * FROM cards WHERE customer_id = ? AND status IN ({','.join('?' * len(LIVE))}) "
        "ORDER BY issued_at DESC LIMIT 1",
        (customer_id, *LIVE),
    ).fetchone()


def customers_cards(conn):
    """(customer id, its card) for every customer with one, in customer order, with one query: the
    card `live_card` gives, else the one `latest_card` gives (what an overview counts them by)."""
    live, chosen, current = set(LIVE), None, None
    for card in conn.execute("SELECT * FROM cards ORDER BY customer_id, issued_at DESC, rowid DESC"):
        if card["customer_id"] != current:
            if chosen is not None:
                yield current, chosen
            current, chosen = card["customer_id"], card
        elif chosen["status"] not in live and card["status"] in live:
            chosen = card  # the latest live card comes before an older one, after a newer ended one
    if chosen is not None:
        yield current, chosen


def latest_card(conn, customer_id: int):
    return conn.execute(
        "SELECT * FROM cards WHERE customer_id = ? ORDER BY issued_at DESC, rowid DESC LIMIT 1",
        (customer_id,),
    ).fetchone()


def get(conn, card_no: str):
    row = conn.execute("SELECT * FROM cards WHERE card_no = ?", (card_no,)).fetchone()
    if row is None:
        raise NotFound(_("card {card_no} is not on record").format(card_no=card_no), code="unknown_card")
    return row


# --- lifecycle: lost, found, replace, renew (003: 挂失/补办, 第十六条/第十七条: 换卡) ---------------


def _customer(conn, card):
    return conn.execute("SELECT * FROM customers WHERE id = ?", (card["customer_id"],)).fetchone()


def _set_status(conn, card_no: str, status: str, at: datetime) -> None:
    conn.execute("UPDATE cards SET status = ?, status_at = ? WHERE card_no = ?", (status, iso(at), card_no))


def report_lost(conn, card_no: str, at: datetime) -> dict:
    """Block a card at once: no purchase, no redemption until found or replaced."""
    card = get(conn, card_no)
    if card["status"] not in ("active", "expired"):
        raise Refused(_("card {card_no} is {status}; only a current card can be reported lost").format(
                          card_no=card_no, status=status_label(card['status'])),
                      code=f"card_{card['status']}")
    _set_status(conn, card_no, "blocked", at)
    return {"card_no": card_no, "status": "blocked"}


def found(conn, rules: Rules, card_no: str, at: datetime) -> dict:
    card = get(conn, card_no)
    if card["status"] != "blocked":
        raise Refused(_("card {card_no} is not reported lost (it is {status})").format(
                          card_no=card_no, status=status_label(card['status'])), code="not_blocked")
    _set_status(conn, card_no, "active", at)
    from vipcli.archive import is_registered

    card = get(conn, card_no)
    return {"card_no": card_no, "status": effective_status(card, is_registered(_customer(conn, card)), rules,
                                                            at.date())}


def replace(conn, rules: Rules, card_no: str, at: datetime, operator: str) -> dict:
    """A new number in the same region for a lost or damaged card. Points move through transfer
    entries (lots keep their expiry); tier, spend and archive belong to the customer and stay."""
    from vipcli import ledger

    card = get(conn, card_no)
    if card["status"] not in ("active", "blocked", "expired"):
        raise Refused(_("card {card_no} is {status}; it can't be replaced").format(
                          card_no=card_no, status=status_label(card['status'])), code=f"card_{card['status']}")
    new = issue(conn, rules, card["customer_id"], at, f"replaces {card_no}", region=card["region"],
                valid_to=card["valid_to"], registration_from=card["registration_from"])
    conn.execute("UPDATE cards SET renewals = ? WHERE card_no = ?", (card["renewals"], new))
    conn.execute("UPDATE cards SET status = 'replaced', status_at = ?, replaced_by = ? WHERE card_no = ?",
                 (iso(at), new, card_no))
    moved = ledger.transfer(conn, card_no, new, at, operator)
    return {"card_no": card_no, "status": "replaced", "new_card_no": new, "points_moved": moved}


def renew(conn, rules: Rules, card_no: str, at: datetime, force: bool) -> dict:
    """第十七条: renewal in the renewal month of the card's last year extends it a year; outside the
    window only with force (the caller audits it). An expired card renewed runs to the end of this
    year (of next year in the renewal month)."""
    card = get(conn, card_no)
    if rules.renewal_month is None:
        raise Refused(_("cards of these rules do not expire; there is nothing to renew"), code="no_renewal")
    if card["status"] not in ("active", "expired"):
        raise Refused(_("card {card_no} is {status}; it can't be renewed").format(
                          card_no=card_no, status=status_label(card['status'])), code=f"card_{card['status']}")
    valid_to = date.fromisoformat(card["valid_to"])
    today = at.date()
    in_window = rules.in_renewal_window(valid_to, today)
    if not in_window and not force:
        raise Refused(
            _("card {card_no} is valid to {valid_to}; renewal is in month {renewal_month} of {year} (use --force "
              "to renew outside the window; it is audited)").format(
                card_no=card_no, valid_to=card['valid_to'], renewal_month=rules.renewal_month, year=valid_to.year),
            code="outside_renewal_window")
    if valid_to.year > today.year:
        raise Refused(_("card {card_no} is already valid to {valid_to}").format(
                          card_no=card_no, valid_to=card['valid_to']), code="already_renewed")
    expired = today > valid_to
    new_valid_to = rules.card_valid_to(today) if expired else rules.validity_end(valid_to.year + 1)
    conn.execute(
        "UPDATE cards SET valid_to = ?, renewals = renewals + 1, status = 'active', status_at = ? WHERE card_no = ?",
        (iso(new_valid_to), iso(at), card_no))
    return {"card_no": card_no, "status": "active", "valid_to": iso(new_valid_to), "forced": not in_window}


def due_for_renewal(conn, rules: Rules, at: datetime, after: str = "", limit: int = -1) -> list[str]:
    """Current, unblocked cards whose validity ends this year (the month's batch), in number order
    from after `after`, at most `limit` of them (-1: all)."""
    rows = conn.execute(
        "SELECT card_no FROM cards WHERE status = 'active' AND valid_to = ? AND card_no > ? ORDER BY card_no LIMIT ?",
        (iso(rules.validity_end(at.year)), after, limit),
    ).fetchall()
    return [r["card_no"] for r in rows]


def tracking_table(conn, rules: Rules, today: date, status: str | None = None,
                   region: str | None = None, unmask: bool = False) -> list[dict]:
    """The card tracking table (VIP卡跟踪表): every card ever issued with its state."""
    from vipcli.fields import mask_phone

    rows = conn.execute(
        "SELECT k.*, c.name, c.phone, c.name IS NOT NULL AND c.gender IS NOT NULL AND c.birthday IS NOT NULL "
        "AND c.phone IS NOT NULL AS registered FROM cards k JOIN customers c ON c.id = k.customer_id "
        "WHERE (? IS NULL OR k.region = ?) ORDER BY k.region, k.sequence",
        (region, region),
    ).fetchall()
    out = []
    for row in rows:
        state = effective_status(row, bool(row["registered"]), rules, today)
        if status and state != status:
            continue
        out.append({
            "card_no": row["card_no"], "customer_id": row["customer_id"],
            "holder": _mask_name(row["name"]), "phone": row["phone"] if unmask else mask_phone(row["phone"]),
            "issued_at": row["issued_at"], "valid_to": row["valid_to"], "status": state,
            "renewals": row["renewals"], "replaced_by": row["replaced_by"], "reason": row["reason"],
        })
    return out


def _mask_name(name: str | None) -> str | None:
    """王芳 -> 王*, 欧阳娜娜 -> 欧***: the family name is enough at the counter."""
    if not name:
        return name
    return name[0] + "*" * (len(name) - 1)
