"""Refunds, and what the refunded amount earned, taken back (seed 000 第四条, 以实付金额为准): the
points, the spend, a tier that the remaining paid amounts no longer earn, and a card issued by
qualification that no remaining purchase qualifies for."""

from bisect import bisect_right
from datetime import datetime

from vipcli import archive, cards, ledger, membership
from vipcli.dates import iso, months_before
from vipcli.auditlog import audit
from vipcli.rulebook import rules_version
from vipcli.errors import InvalidInput, NotFound, Refused
from vipcli.money import format_fen
from vipcli.rules import Rules
from vipcli.i18n import _


def refund(conn, rules: Rules, receipt: str, amount: int | None, now: datetime, operator: str,
           store: str | None = None) -> dict:
    """Return goods of a receipt, whole (amount None) or in part: paid, spend and the points that
    purchase earned are reversed under the rules version the purchase was recorded with; then the
    tier and a qualified card are held to what the remaining purchases earn (`rules`: in force).
    `store`: whose receipt, when stores of a chain recorded the same number."""
    purchase = _purchase(conn, receipt, store)
    if purchase is None:
        raise NotFound(_("receipt {receipt} is not on record").format(receipt=receipt), code="unknown_receipt")
    left = purchase["paid"] - purchase["refunded"]
    if left <= 0:
        raise Refused(_("receipt {receipt} is already fully refunded").format(
                          receipt=receipt), code="already_refunded")
    amount = left if amount is None else amount
    if amount <= 0:
        raise InvalidInput(_("amount: a refund must be more than 0.00"), code="bad_amount")
    if amount > left:
        raise Refused(_("receipt {receipt}: only {value} can still be refunded").format(
                          receipt=receipt, value=format_fen(left)),
                      code="refund_too_large")
    reversed_before = conn.execute(
        "SELECT COALESCE(SUM(points_reversed), 0) FROM refunds WHERE purchase_id = ?", (purchase["id"],)
    ).fetchone()[0]
    points = 0
    if purchase["points_earned"]:
        old_rules = rules_version(conn, purchase["rules_version"])
        still_owed = purchase["points_earned"] - reversed_before
        if amount == left:
            points = still_owed
        else:
            points = min(old_rules.points_for(left) - old_rules.points_for(left - amount), still_owed)
    live = cards.live_card(conn, purchase["customer_id"])
    ledger.reverse(conn, purchase["id"], points, reversed_before, now, operator,
                   live["card_no"] if live is not None else None)
    conn.execute("UPDATE purchases SET refunded = refunded + ? WHERE id = ?", (amount, purchase["id"]))
    conn.execute(
        "INSERT INTO refunds(purchase_id, amount, points_reversed, refunded_at, operator) VALUES (?, ?, ?, ?, ?)",
        (purchase["id"], amount, points, iso(now), operator),
    )
    taken = _take_back(conn, rules, purchase, amount, receipt, now, operator)
    card_no = _points_card(conn, purchase)
    audit(conn, now, operator, "refund", receipt, amount=amount, points_reversed=points, **taken)
    return {
        "receipt": receipt,
        "refunded": amount,
        "refunded_total": purchase["refunded"] + amount,
        "points_reversed": points,
        "card_no": card_no,
        "points_balance": ledger.balance(conn, card_no, now) if card_no else 0,
        **taken,
    }


def _points_card(conn, purchase) -> str | None:
    lot = conn.execute("SELECT card_no FROM point_lots WHERE purchase_id = ? ORDER BY id DESC LIMIT 1",
                       (purchase["id"],)).fetchone()
    return lot["card_no"] if lot else purchase["card_no"]


def _take_back(conn, rules: Rules, purchase, amount: int, receipt: str, now: datetime, operator: str) -> dict:
    """A tier or a qualified card that the purchase's refunded amount had earned, and the remaining
    purchases do not: the tier drops to what they earn, the card is cancelled (points forfeited, as on
    `vip cancel`). What came from elsewhere (a grant, a manual tier, a review, other purchases) stays."""
    customer = conn.execute("SELECT * FROM customers WHERE id = ?", (purchase["customer_id"],)).fetchone()
    recorded = conn.execute("SELECT id, purchased_at, paid, refunded, promo FROM purchases "
                            "WHERE customer_id = ? ORDER BY purchased_at, id", (customer["id"],)).fetchall()
    after = _history(rules, recorded)
    before = _history(rules, recorded, {purchase["id"]: amount})
    taken = {"tier_from": None, "tier": customer["tier"], "card_cancelled": None}
    live = cards.live_card(conn, customer["id"])
    if live is None:
        return taken
    why = f"refund of receipt {receipt}"
    if (cards.first_reason(conn, live).startswith("qualified:")
            and _qualifies(rules, before) and not _qualifies(rules, after)):
        membership.cancel(conn, live["card_no"], f"{why}: no remaining purchase qualifies", now, operator,
                          erase=False)
        return {**taken, "card_cancelled": live["card_no"]}
    current = customer["tier"]
    if current is None:
        return taken
    held_since = months_before(now, rules.hold_months)
    earned_before, earned_after = (_earned_tier(rules, rows, held_since) for rows in (before, after))
    if rules.tier_rank(earned_before.code) >= rules.tier_rank(current) > rules.tier_rank(earned_after.code):
        archive.set_tier(conn, customer["id"], current, earned_after.code, now,
                         f"{why}: the remaining purchases earn {earned_after.code}", operator)
        return {**taken, "tier_from": current, "tier": earned_after.code}
    return taken


def _history(rules: Rules, recorded, undone: dict[int, int] | None = None) -> list[tuple[str, int, int]]:
    """Purchases in time order as (time, paid net of refunds, what that counts toward qualification);
    `undone`: refunded amounts to count as not refunded (purchase id -> fen), to see what was before."""
    rows = []
    for r in recorded:
        net = r["paid"] - r["refunded"] + (undone or {}).get(r["id"], 0)
        rows.append((r["purchased_at"], net, rules.counted(net, r["promo"])))
    return rows


def _window_sums(rows: list[tuple], months: int, column: int) -> list[int]:
    """For each purchase, the sum of `column` over the purchases in the `months` calendar months
    ending with it, as the till summed them when it was recorded: (its time - months, its time]."""
    times = [row[0] for row in rows]
    prefix = [0]
    for row in rows:
        prefix.append(prefix[-1] + row[column])
    sums = []
    for at in times:
        start = bisect_right(times, iso(months_before(datetime.fromisoformat(at), months)))
        sums.append(prefix[bisect_right(times, at)] - prefix[start])
    return sums


def _qualifies(rules: Rules, rows: list[tuple]) -> bool:
    """Whether any of these purchases meets a qualification rule (第四条/第五条) as it stands now."""
    windows = {w.months: _window_sums(rows, w.months, 2) for w in rules.qualify_windows}
    return any(rules.qualification_reason(row[2], {m: sums[i] for m, sums in windows.items()}) is not None
               for i, row in enumerate(rows))


def _earned_tier(rules: Rules, rows: list[tuple], held_since: datetime):
    """The highest tier a purchase still held (recorded after `held_since`) earns as upgrades decide
    it: its own paid amount, or the upgrade window's spend ending with it."""
    spends = _window_sums(rows, rules.upgrade_window_months, 1)
    since = iso(held_since)
    earned = rules.tiers[0]
    for row, spend in zip(rows, spends):
        if row[0] > since:
            tier = rules.tier_for(row[1], spend)
            if rules.tier_rank(tier.code) > rules.tier_rank(earned.code):
                earned = tier
    return earned


def purchased_on(conn, receipt: str, store: str | None) -> str | None:
    """The day (ISO) the purchase of `receipt` was made, or None when there is none to refund."""
    found = _purchase(conn, receipt, store)
    return found["purchased_at"][:10] if found else None


def _purchase(conn, receipt: str, store: str | None):
    """The purchase of `receipt`: the only one of that number (a return at any store of the chain), or,
    where several stores recorded it, the one of `store`."""
    found = conn.execute("SELECT * FROM purchases WHERE receipt = ? ORDER BY id", (receipt,)).fetchall()
    if len(found) <= 1:
        return found[0] if found else None
    mine = [row for row in found if store is not None and (row["store"] or "") == store]
    if len(mine) != 1:
        raise InvalidInput(_("receipt {receipt} is recorded at several stores ({stores}): say which with --store")
                           .format(receipt=receipt, stores=", ".join(row["store"] or "-" for row in found)),
                           code="ambiguous_receipt")
    return mine[0]
