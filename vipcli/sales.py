"""Purchases and refunds: discount, points, qualification (card issue) and tier changes."""

from dataclasses import dataclass
from datetime import datetime

from vipcli import archive, cards, ledger
from vipcli.dates import is_birthday, iso, months_after, months_before
from vipcli.auditlog import audit
from vipcli.errors import InvalidInput, NotFound, Refused
from vipcli.money import format_fen
from vipcli.rules import Rules
from vipcli.i18n import _


@dataclass(slots=True)
class Sale:
    """One purchase as given by the till or a POS file, already validated."""

    regular: int
    promo: int = 0
    paid: int | None = None
    card_no: str | None = None
    phone: str | None = None
    receipt: str | None = None
    store: str | None = None
    at: datetime | None = None
    birthday_checked: bool = False
    existing_only: bool = False  # the till's --existing: an unknown phone is refused, not a new prospect


def validate_sale(sale: Sale, rules: Rules, now: datetime) -> None:
    if (sale.card_no is None) == (sale.phone is None):
        raise InvalidInput(_("give a card number or --phone, not both"), code="bad_usage")
    for name, value in (("amount", sale.regular), ("promo", sale.promo), ("paid", sale.paid)):
        if value is not None and value > rules.max_amount:
            raise InvalidInput(_("{name}: {value} is above the limit of {value2} (limits.max_amount)").format(
                                   name=name,
                                   value=format_fen(value),
                                   value2=format_fen(rules.max_amount)), code="bad_amount")
    if sale.regular + sale.promo <= 0:
        raise InvalidInput(_("amount: the purchase must be more than 0.00"), code="bad_amount")
    if sale.paid is not None and sale.paid > sale.regular + sale.promo:
        raise InvalidInput(_("paid: {value} is more than the list price {value2}").format(
                               value=format_fen(sale.paid),
                               value2=format_fen(sale.regular + sale.promo)), code="bad_amount")
    if sale.at is not None and sale.at > now:
        raise InvalidInput(_("at: {value} is in the future").format(value=iso(sale.at)), code="bad_date")
    if sale.receipt is not None and not (0 < len(sale.receipt) <= 40 and sale.receipt.isprintable()):
        raise InvalidInput(_("receipt: must be 1-40 printable characters"), code="bad_receipt")


def record_purchase(conn, rules: Rules, sale: Sale, now: datetime, operator: str) -> dict:
    """Record a purchase inside the caller's write transaction."""
    at = sale.at or now
    if sale.receipt is not None:
        existing = recorded(conn, sale.receipt, sale.store)
        if existing is not None:
            return _replay(conn, rules, existing, sale, now)
    customer, card, created = _buyer(conn, rules, sale, at, operator)
    status = cards.effective_status(card, archive.is_registered(customer), rules, at.date()) if card else None
    note = None
    if status == "blocked" and sale.phone is not None:
        # 二.2 临时丢失或忘记携带 (counter rules, 003): a member without the card, known by name and phone,
        # keeps earning; the points stay on the card and move with a replacement. Redeeming waits.
        status = cards.effective_status(card, archive.is_registered(customer), rules, at.date(), blocked=False)
        note = f"card {card['card_no']} is reported lost: priced and earning by phone; redeeming waits until it is found or replaced"
    if status in cards.REFUSES_PURCHASE:
        raise Refused(_("card {card_no} is {status}; purchase refused").format(
                          card_no=card['card_no'], status=cards.status_label(status)), code=f"card_{status}")

    birthday = datetime.fromisoformat(customer["birthday"]).date() if customer["birthday"] else None
    paid, rate = price(rules, sale, status, customer["tier"], birthday, at)
    note = status_note(status, card) or note

    receipt = sale.receipt or _new_receipt(conn, at, sale.store)
    purchase_id = conn.execute(
        "INSERT INTO purchases(receipt, customer_id, card_no, store, purchased_at, regular, promo, "
        "paid, paid_given, discount_rate, rules_version, operator, recorded_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (receipt, customer["id"], card["card_no"] if card else None, sale.store, iso(at),
         sale.regular, sale.promo, paid, int(sale.paid is not None),
         str(rate) if rate is not None else None, rules.version, operator, iso(now)),
    ).fetchone()[0]

    issued = application = None
    tier = customer["tier"]
    if card is None:
        cancelled = cards.latest_card(conn, customer["id"])
        if cancelled is None:
            issued, tier, application = _qualify(conn, rules, customer, purchase_id, paid, sale, at, operator)
            if issued:
                card = cards.get(conn, issued)
                status = "active"
            elif application:
                note = (f"application {application} waits for the head office's review: list price and no points "
                        "until it is approved (vip approve)")
        else:
            note = f"membership ended (card {cancelled['card_no']} {cancelled['status']}): no card issued"
    else:
        tier = _upgrade(conn, rules, customer, paid, at, operator)

    points = 0
    if card is not None and status == "active":
        points = rules.points_for(paid)
        if points:
            conn.execute("UPDATE purchases SET points_earned = ? WHERE id = ?", (points, purchase_id))
            ledger.earn(conn, rules, card["card_no"], purchase_id, points, at, operator)
    audit(conn, now, operator, "purchase", receipt, customer_id=customer["id"], paid=paid,
          card_issued=issued)
    return {
        "receipt": receipt,
        "customer_id": customer["id"],
        "card_no": card["card_no"] if card else None,
        "status": status or "prospect",
        "regular": sale.regular,
        "promo": sale.promo,
        "paid": paid,
        "discount_rate": str(rate) if rate is not None else None,
        "points_earned": points,
        "points_balance": ledger.balance(conn, card["card_no"], now) if card else 0,
        "card_issued": issued is not None,
        "tier": tier if card else None,
        "duplicate": False,
        "new_customer": created,
        "application": application,
        "note": note,
    }


def price(rules: Rules, sale: Sale, status: str | None, tier: str | None, birthday, at: datetime):
    """(paid, rate): rules.discount_rate and rules.price; given `paid` (POS data) is taken as is."""
    if sale.paid is not None:
        return sale.paid, None
    birthday_today = birthday is not None and is_birthday(birthday, at.date())
    rate = rules.discount_rate(tier, status, birthday_today, sale.birthday_checked)
    return rules.price(sale.regular, sale.promo, rate), rate


def status_note(status: str | None, card) -> str | None:
    if status == "expired":
        return f"card expired on {card['valid_to']}: list price, no points (renew the card)"
    if status == "discount_only":
        return "card is discount-only (registration not completed): no points"
    return None


def _buyer(conn, rules: Rules, sale: Sale, at: datetime, operator: str):
    """(customer, card, created): an unknown phone becomes a new prospect, unless `existing_only`."""
    if sale.card_no is not None:
        card = cards.get(conn, sale.card_no)
        customer = conn.execute("SELECT * FROM customers WHERE id = ?", (card["customer_id"],)).fetchone()
        return customer, card, False
    customer = conn.execute("SELECT * FROM customers WHERE phone = ?", (sale.phone,)).fetchone()
    if customer is None:
        if sale.existing_only:
            raise NotFound(_("no customer has the phone {phone}; nothing was recorded (check the number, or leave "
                             "out --existing to record it for a new customer)").format(
                               phone=sale.phone), code="unknown_phone")
        customer_id = archive.create_prospect(conn, sale.phone, at, sale.store)
        customer = conn.execute("SELECT * FROM customers WHERE id = ?", (customer_id,)).fetchone()
        return customer, None, True
    return customer, cards.live_card(conn, customer["id"]), False


def _replay(conn, rules: Rules, existing, sale: Sale, now: datetime) -> dict:
    """Same receipt again: the same content is a no-op, different content is refused."""
    if sale.card_no is not None:
        card = conn.execute("SELECT customer_id FROM cards WHERE card_no = ?", (sale.card_no,)).fetchone()
        same_buyer = card is not None and card["customer_id"] == existing["customer_id"]
    else:
        owner = conn.execute("SELECT id FROM customers WHERE phone = ?", (sale.phone,)).fetchone()
        same_buyer = owner is not None and owner["id"] == existing["customer_id"]
    same = (
        same_buyer
        and existing["regular"] == sale.regular
        and existing["promo"] == sale.promo
        and (sale.paid is None) == (not existing["paid_given"])
        and (sale.paid is None or existing["paid"] == sale.paid)
        and existing["store"] == sale.store
        and (sale.at is None or existing["purchased_at"] == iso(sale.at))
    )
    if not same:
        raise Refused(_("receipt {receipt} is already recorded with different content").format(
                          receipt=existing['receipt']),
                      code="receipt_conflict")
    card_no = existing["card_no"]
    customer = conn.execute("SELECT tier FROM customers WHERE id = ?", (existing["customer_id"],)).fetchone()
    return {
        "receipt": existing["receipt"],
        "customer_id": existing["customer_id"],
        "card_no": card_no,
        "status": None,
        "regular": existing["regular"],
        "promo": existing["promo"],
        "paid": existing["paid"],
        "discount_rate": existing["discount_rate"],
        "points_earned": existing["points_earned"],
        "points_balance": ledger.balance(conn, card_no, now) if card_no else 0,
        "card_issued": False,
        "tier": customer["tier"] if card_no else None,
        "duplicate": True,
        "new_customer": False,
        "application": None,
        "note": "already recorded: nothing changed",
    }


def recorded(conn, receipt: str, store: str | None):
    """The purchase recorded as `receipt` at `store`: a receipt number is unique per store (a chain's
    stores may number theirs alike); no store is a store of its own."""
    return conn.execute("SELECT * FROM purchases WHERE receipt = ? AND COALESCE(store, '') = ?",
                        (receipt, store or "")).fetchone()


def is_recorded(conn, receipt: str, store: str | None) -> bool:
    return recorded(conn, receipt, store) is not None


def _new_receipt(conn, at: datetime, store: str | None = None) -> str:
    """The day's next receipt number: R20261202-000001, or with the till's store R20261202-SZ01-000001, so
    that the tills of a chain's stores never draw the same number."""
    prefix = f"R{at:%Y%m%d}-{store}-" if store else f"R{at:%Y%m%d}-"
    row = conn.execute(  # (the greatest of the prefix followed by digits: ':' sorts just after '9')
        "SELECT receipt FROM purchases WHERE receipt >= ? AND receipt < ? ORDER BY receipt DESC LIMIT 1",
        (prefix, prefix + ":"),
    ).fetchone()
    number = 1
    if row is not None and row[0][len(prefix):].isdigit():
        number = int(row[0][len(prefix):]) + 1
    return f"{prefix}{number:06d}"


def _window_spend(conn, rules: Rules, customer_id: int, months: int, at: datetime, for_qualifying: bool) -> int:
    """What the customer paid (net of refunds) in the `months` before `at`; for qualifying, what
    of it counts (rules.counted)."""
    rows = conn.execute("SELECT paid - refunded, promo FROM purchases "
                        "WHERE customer_id = ? AND purchased_at > ? AND purchased_at <= ?",
                        (customer_id, iso(months_before(at, months)), iso(at)))
    if for_qualifying:
        return sum(rules.counted(net, promo) for net, promo in rows)
    return sum(net for net, _ in rows)


def upgrade_reason(rules: Rules, paid: int, spend: int) -> str:
    return f"upgrade: purchase {format_fen(paid)}, {rules.upgrade_window_months}-month spend {format_fen(spend)}"


def _qualify(conn, rules: Rules, customer, purchase_id: int, paid: int, sale: Sale, at: datetime,
             operator: str):
    """第四条/第五条: a prospect whose purchase meets a rule gets a card at once, or under review rules
    an application (vipcli/applications.py). (card, tier, application)."""
    windows = {w.months: _window_spend(conn, rules, customer["id"], w.months, at, True)
               for w in rules.qualify_windows}
    reason = rules.qualification_reason(rules.counted(paid, sale.promo), windows)
    if reason is None:
        return None, None, None
    if rules.card_issue == "review":
        from vipcli import applications

        return None, None, applications.on_qualifying(conn, rules, customer, purchase_id, reason, at, sale.store,
                                                      operator)
    number = cards.issue(conn, rules, customer["id"], at, cards.qualified_reason(reason), store=sale.store)
    conn.execute("UPDATE purchases SET card_no = ? WHERE id = ?", (number, purchase_id))
    spend = _window_spend(conn, rules, customer["id"], rules.upgrade_window_months, at, False)
    tier = rules.tier_for(paid, spend).code
    archive.set_tier(conn, customer["id"], None, tier, at, cards.issue_reason(reason), operator)
    return number, tier, None


def _upgrade(conn, rules: Rules, customer, paid: int, at: datetime, operator: str) -> str:
    """Upgrade at once on the purchase that reaches a higher tier (paid amounts)."""
    current = customer["tier"]
    spend = _window_spend(conn, rules, customer["id"], rules.upgrade_window_months, at, False)
    reached = rules.tier_for(paid, spend)
    if rules.tier_rank(reached.code) > rules.tier_rank(current):
        archive.set_tier(conn, customer["id"], current, reached.code, at, upgrade_reason(rules, paid, spend),
                         operator)
        return reached.code
    return current


# --- tiers ------------------------------------------------------------------------------------


def tier_status(conn, rules: Rules, ref: str, now: datetime) -> dict:
    customer, card = archive.resolve(conn, rules, ref)
    if card is None or customer["tier"] is None:
        raise Refused(_("customer {id} has no card, so no tier").format(id=customer['id']), code="no_card")
    tier = rules.tier(customer["tier"])
    spend = _window_spend(conn, rules, customer["id"], rules.upgrade_window_months, now, False)
    nxt = rules.next_tier(tier.code)
    since = datetime.fromisoformat(customer["tier_since"])
    return {
        "card_no": card["card_no"],
        "tier": tier.code,
        "tier_name": tier.name,
        "discount_rate": str(tier.rate),
        "tier_since": customer["tier_since"],
        "held_until": iso(months_after(since, rules.hold_months).date()),
        "spend_12m": spend,
        "next_tier": nxt.code if nxt else None,
        "needed_for_next": max(nxt.spend - spend, 0) if nxt else None,
        "single_purchase_for_next": nxt.single_purchase if nxt else None,
        "gifts_per_year": tier.gifts_per_year,
        "gifts_left": tier.gifts_per_year - gifts_left(conn, rules, customer, now.year)[1] if tier.gifts_per_year else 0,
    }


REVIEW_CHUNK = 2_000  # members reviewed per write transaction: a till waits behind one chunk at most


def tier_review(conn, rules: Rules, as_of: datetime, operator: str, dry_run: bool = False,
                chunk: int = REVIEW_CHUNK, progress=None) -> dict:
    """The periodic review: members whose tier has been held `hold_months` keep it if their spend over
    the review window, or one purchase inside it, meets the tier's standard; else they move to the
    highest tier that spend or purchase meets. Every member with a card not cancelled or replaced is
    covered (expired cards too).

    Members in id order, `chunk` per write transaction of its own, their spend read with one query
    per chunk; waiting tills go between chunks. A reviewed member's tier dates from `as_of`, so a
    review killed between chunks, run again, reviews the rest. `dry_run`: the same decisions, read
    without the write lock, nothing written. `progress(n)`: told after each chunk how many it reviewed."""
    from contextlib import nullcontext

    from vipcli.db import let_waiters_in, transaction

    cutoff = iso(months_before(as_of, rules.hold_months))
    since, until = iso(months_before(as_of, rules.review_window_months)), iso(as_of)
    reviewed, confirmed, changes, last = 0, 0, [], 0
    while True:
        with nullcontext(conn) if dry_run else transaction(conn):
            rows = conn.execute(
                f"SELECT c.id, c.tier, k.card_no FROM customers c JOIN cards k ON k.customer_id = c.id "
                f"AND k.status IN ({','.join('?' * len(cards.LIVE))}) "
                "WHERE c.id > ? AND c.tier IS NOT NULL AND c.tier != ? AND c.tier_since <= ? ORDER BY c.id LIMIT ?",
                (*cards.LIVE, last, rules.tiers[0].code, cutoff, chunk),
            ).fetchall()
            # 003 退出机制 "相应消费标准": the window's spend, or one purchase (net of its refunds) of the
            # tier's single-purchase standard inside it.
            spent = {cid: (spend, single) for cid, spend, single in conn.execute(
                f"SELECT customer_id, SUM(paid - refunded), MAX(paid - refunded) FROM purchases WHERE customer_id IN "
                f"({','.join('?' * len(rows))}) AND purchased_at > ? AND purchased_at <= ? GROUP BY customer_id",
                (*[r["id"] for r in rows], since, until))} if rows else {}
            for row in rows:
                spend, single = spent.get(row["id"], (0, 0))
                meets, current = rules.tier_for(single, spend), row["tier"]
                keeps = rules.tier_rank(meets.code) >= rules.tier_rank(current)
                if keeps:
                    confirmed += 1
                else:
                    changes.append({"card_no": row["card_no"], "from": current, "to": meets.code})
                if not dry_run:
                    archive.set_tier(conn, row["id"], current, current if keeps else meets.code, as_of,
                                     review_reason(rules, spend, single, keeps), operator)
        reviewed += len(rows)
        if progress:
            progress(len(rows))
        if len(rows) < chunk:
            break
        last = rows[-1]["id"]
        if not dry_run:
            let_waiters_in(conn)
    if not dry_run:
        with transaction(conn):
            audit(conn, as_of, operator, "tier review", None, reviewed=reviewed, confirmed=confirmed,
                  changed=len(changes))
    return {"as_of": iso(as_of), "reviewed": reviewed, "confirmed": confirmed, "changes": changes}


def review_reason(rules: Rules, spend: int, single: int, confirmed: bool) -> str:
    window = (f"{rules.review_window_months}-month spend {format_fen(spend)}, largest purchase "
              f"{format_fen(single)}")
    return f"review: confirmed ({window})" if confirmed else f"review: {window}"


def tier_set(conn, rules: Rules, ref: str, code: str, reason: str, now: datetime, operator: str) -> dict:
    customer, card = archive.resolve(conn, rules, ref)
    target = rules.tier(code)
    if card is None or card["status"] in ("replaced", "cancelled") or customer["tier"] is None:
        raise Refused(_("only a member with a current card has a tier"), code="no_card")
    archive.set_tier(conn, customer["id"], customer["tier"], target.code, now, f"set by hand: {reason}",
                      operator)
    audit(conn, now, operator, "tier set", card["card_no"], from_tier=customer["tier"],
          to_tier=target.code, reason=reason)
    return {"card_no": card["card_no"], "from": customer["tier"], "to": target.code,
            "tier": target.code, "discount_rate": str(target.rate)}



# --- gift allowances ----------------------------------------------------------------------------


def gifts_left(conn, rules: Rules, customer, year: int) -> tuple[int, int]:
    """(allowance, used) this calendar year for the customer's tier."""
    allowance = rules.tier(customer["tier"]).gifts_per_year if customer["tier"] else 0
    used = conn.execute("SELECT COUNT(*) FROM gifts WHERE customer_id = ? AND year = ?",
                        (customer["id"], year)).fetchone()[0]
    return allowance, used


def give_gift(conn, rules: Rules, ref: str, now: datetime, operator: str) -> dict:
    """Hand out one gift of the tier's yearly allowance (the clinic's 口腔护理套餐), never more."""
    customer, card = archive.resolve(conn, rules, ref)
    if card is None or customer["tier"] is None:
        raise Refused(_("customer {id} has no card, so no gift allowance").format(id=customer['id']), code="no_card")
    status = cards.effective_status(card, archive.is_registered(customer), rules, now.date())
    if status != "active":
        raise Refused(_("card {card_no} is {status}; gifts need an active card").format(
                          card_no=card['card_no'], status=cards.status_label(status)), code=f"card_{status}")
    allowance, used = gifts_left(conn, rules, customer, now.year)
    if used >= allowance:
        raise Refused(_("the {name} allowance is {allowance} gift(s) a year; {used} given in {year}").format(
                          name=rules.tier(customer['tier']).name,
                          allowance=allowance,
                          used=used,
                          year=now.year), code="gift_allowance_used")
    conn.execute("INSERT INTO gifts(customer_id, card_no, year, tier, at, operator) VALUES (?, ?, ?, ?, ?, ?)",
                 (customer["id"], card["card_no"], now.year, customer["tier"], iso(now), operator))
    audit(conn, now, operator, "gift", card["card_no"], gift=rules.gift_name, year=now.year)
    return {"card_no": card["card_no"], "gift": rules.gift_name, "value": rules.gift_value,
            "gifts_used": used + 1, "gifts_left": allowance - used - 1}
