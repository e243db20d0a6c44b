"""Points as lots with an expiry, and an append-only ledger of every change to them.

A lot is what one purchase earned (or what a replacement card received). Each ledger entry names
the lot it draws from, so a lot's `remaining` always equals the sum of its entries and a card's
balance the sum of its lots. A refund of points already spent leaves a lot negative: a debt paid
at once from the card's other unexpired points, and otherwise from the next points earned
('settle' entries, net zero); while it lasts the balance is negative and redemption is blocked.

Points past their expiry are never counted, whether or not `vip points expire` has written their
'expire' entries yet: every balance here is computed "as of" a moment.
"""

from collections import defaultdict
from datetime import datetime

from vipcli.dates import iso
from vipcli.errors import Refused
from vipcli.rules import Rules
from vipcli.i18n import N_, _


HELD = "(remaining < 0 OR expires_at > ?)"  # a lot that counts in a balance at a moment: debt, or unexpired


def balance(conn, card_no: str, at: datetime) -> int:
    """Points shown and held: unexpired lots plus any debt."""
    row = conn.execute(f"SELECT COALESCE(SUM(remaining), 0) FROM point_lots WHERE card_no = ? AND {HELD}",
                       (card_no, iso(at))).fetchone()
    return row[0]


def balances(conn, at: datetime) -> dict[str, int]:
    """Every card's balance (as `balance`), with one query."""
    return dict(conn.execute(f"SELECT card_no, SUM(remaining) FROM point_lots WHERE {HELD} GROUP BY card_no",
                             (iso(at),)))


def lots(conn, card_no: str, at: datetime) -> list[dict]:
    rows = conn.execute(
        "SELECT id, points, remaining, earned_at, usable_from, expires_at, purchase_id "
        "FROM point_lots WHERE card_no = ? AND remaining != 0 AND (remaining < 0 OR expires_at > ?) "
        "ORDER BY expires_at, id",
        (card_no, iso(at)),
    ).fetchall()
    return [dict(r) for r in rows]


def _entry(conn, card_no, lot_id, kind, delta, at, operator, purchase_id=None, reason=None):
    conn.execute(
        "INSERT INTO ledger(card_no, lot_id, kind, delta, at, operator, purchase_id, reason) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (card_no, lot_id, kind, delta, iso(at), operator, purchase_id, reason),
    )
    conn.execute("UPDATE point_lots SET remaining = remaining + ? WHERE id = ?", (delta, lot_id))


def _new_lot(conn, card_no, points, earned_at, usable_from, expires_at, purchase_id) -> int:
    return conn.execute(
        "INSERT INTO point_lots(card_no, purchase_id, points, earned_at, usable_from, expires_at, "
        "remaining) VALUES (?, ?, ?, ?, ?, ?, 0) RETURNING id",
        (card_no, purchase_id, points, iso(earned_at), iso(usable_from), iso(expires_at)),
    ).fetchone()[0]


def earn(conn, rules: Rules, card_no: str, purchase_id: int | None, points: int, at: datetime,
         operator: str, kind: str = "earn", reason: str | None = None) -> None:
    """A new lot for what a purchase earned (or a manual adjustment); debt is settled from it first."""
    if points <= 0:
        return
    lot_id = _new_lot(conn, card_no, points, at, rules.lot_usable_from(at), rules.lot_expiry(at), purchase_id)
    _entry(conn, card_no, lot_id, kind, points, at, operator, purchase_id, reason)
    _settle_debt(conn, card_no, at, operator)


def _settle_debt(conn, card_no: str, at: datetime, operator: str) -> None:
    """Pay any debt (negative lots) from the card's unexpired points, soonest-expiring first, so that
    a card never holds debt and spendable points at once."""
    debts = conn.execute(
        "SELECT id, remaining FROM point_lots WHERE card_no = ? AND remaining < 0 ORDER BY id",
        (card_no,),
    ).fetchall()
    if not debts:
        return
    sources = [dict(r) for r in conn.execute(
        "SELECT id, remaining FROM point_lots WHERE card_no = ? AND remaining > 0 AND expires_at > ? "
        "ORDER BY expires_at, id",
        (card_no, iso(at)),
    )]
    for debt in debts:
        owed = -debt["remaining"]
        for source in sources:
            if owed == 0:
                break
            amount = min(owed, source["remaining"])
            if amount == 0:
                continue
            _entry(conn, card_no, source["id"], "settle", -amount, at, operator,
                   reason=f"debt of lot {debt['id']}")
            _entry(conn, card_no, debt["id"], "settle", amount, at, operator, reason=f"from lot {source['id']}")
            source["remaining"] -= amount
            owed -= amount


def reverse(conn, purchase_id: int, points: int, reversed_before: int, at: datetime,
            operator: str, current_card: str | None = None) -> None:
    """Take back `points` that a purchase earned (a refund), after `reversed_before` taken by
    earlier partial refunds. Points of the purchase that already expired are gone anyway and are
    not charged twice; the rest comes off the purchase's lot, and what the customer already spent
    leaves the lot negative (debt)."""
    if points <= 0:
        return
    lot = conn.execute(
        "SELECT id, card_no, earned_at, usable_from, expires_at FROM point_lots WHERE purchase_id = ? "
        "ORDER BY id DESC LIMIT 1",
        (purchase_id,),
    ).fetchone()
    if lot is None:
        return
    if current_card is not None and lot["card_no"] != current_card:
        # The lot stayed on a replaced card (it was spent before the replacement, so nothing moved):
        # the debt belongs on the card the customer holds now, in a lot of its own for this purchase.
        lot = {"id": _new_lot(conn, current_card, 0, datetime.fromisoformat(lot["earned_at"]),
                              datetime.fromisoformat(lot["usable_from"]), datetime.fromisoformat(lot["expires_at"]),
                              purchase_id), "card_no": current_card}
    expired, refunded = conn.execute(
        "SELECT -COALESCE(SUM(CASE WHEN l.kind = 'expire' THEN l.delta END), 0), "
        "-COALESCE(SUM(CASE WHEN l.kind = 'refund' THEN l.delta END), 0) "
        "FROM ledger l JOIN point_lots p ON p.id = l.lot_id WHERE p.purchase_id = ?",
        (purchase_id,),
    ).fetchone()
    total = reversed_before + points
    delta = (total - min(expired, total)) - refunded
    if delta > 0:
        _entry(conn, lot["card_no"], lot["id"], "refund", -delta, at, operator, purchase_id)
        _settle_debt(conn, lot["card_no"], at, operator)


def usable(conn, card_no: str, at: datetime) -> int:
    row = conn.execute(
        "SELECT COALESCE(SUM(remaining), 0) FROM point_lots WHERE card_no = ? AND remaining > 0 "
        "AND expires_at > ? AND usable_from <= ?",
        (card_no, iso(at), iso(at)),
    ).fetchone()
    return row[0]


def redeem(conn, rules: Rules, card_no: str, points: int, at: datetime, operator: str,
           reason: str) -> int:
    """Spend points, lots that expire first first (第二十条/第二十一条). Returns the new balance."""
    if at.month not in rules.redeem_months:
        months = ", ".join(str(m) for m in rules.redeem_months)
        raise Refused(_("points can be redeemed only in months {months}").format(
                          months=months), code="redeem_season")
    held = balance(conn, card_no, at)
    if held < 0:
        raise Refused(_("the points balance is negative ({held}); redemption is blocked").format(held=held),
                      code="negative_balance")
    available = usable(conn, card_no, at)
    if points > available:
        waiting = held - available
        extra = f" ({waiting} more become usable later)" if waiting > 0 else ""
        raise Refused(_("insufficient points: {available} available, {points} asked{extra}").format(
                          available=available, points=points, extra=extra),
                      code="insufficient_points")
    _consume(conn, card_no, points, at, operator, "redeem", reason, usable_only=True)
    return held - points


def _consume(conn, card_no, points, at, operator, kind, reason, usable_only: bool) -> None:
    """Take `points` from the card's unexpired lots, the soonest-expiring first."""
    usable = "AND usable_from <= ? " if usable_only else ""
    rows = conn.execute(
        f"SELECT id, remaining FROM point_lots WHERE card_no = ? AND remaining > 0 AND expires_at > ? "
        f"{usable}ORDER BY expires_at, id",
        (card_no, iso(at), iso(at)) if usable_only else (card_no, iso(at)),
    ).fetchall()
    left = points
    for lot in rows:
        if left == 0:
            break
        take = min(lot["remaining"], left)
        _entry(conn, card_no, lot["id"], kind, -take, at, operator, reason=reason)
        left -= take
    assert left == 0, "caller checked the balance under the write lock"


def adjust(conn, rules: Rules, card_no: str, points: int, at: datetime, operator: str, reason: str) -> int:
    """A manual correction: adds a lot, or takes points (never below zero). Returns the new balance."""
    if points > 0:
        earn(conn, rules, card_no, None, points, at, operator, kind="adjust", reason=reason)
    else:
        held = balance(conn, card_no, at)
        if -points > held:
            raise Refused(_("can't take {value} points: the balance is {held}").format(
                              value=-points, held=held), code="insufficient_points")
        _consume(conn, card_no, -points, at, operator, "adjust", reason, usable_only=False)
    return balance(conn, card_no, at)


EXPIRY_CHUNK = 5_000  # lots expired per transaction: a till waits behind one chunk at most


PAST_EXPIRY = "remaining > 0 AND expires_at <= ?"  # a lot still holding points at a moment past its expiry
EXPIRED = N_("past expiry")  # the reason of an expiry entry (recorded in English, shown in the language in use)


def expiring(conn, as_of: datetime) -> dict[str, int]:
    """Points past their expiry at `as_of` still held, by card (what `expire` would write)."""
    return dict(conn.execute(f"SELECT card_no, SUM(remaining) FROM point_lots WHERE {PAST_EXPIRY} GROUP BY card_no",
                             (iso(as_of),)))


def expire(conn, as_of: datetime, operator: str, chunk: int = EXPIRY_CHUNK, progress=None) -> dict[str, int]:
    """Write an 'expire' entry for every lot past its expiry with points left, `chunk` lots per
    write transaction of its own (the lots found through the index of lots still holding points),
    letting waiting tills in between. Idempotent: an expired lot holds nothing, so a run killed
    between chunks leaves whole chunks, and running it again does the rest. Points by card.
    `progress(n)`: told after each chunk how many points it expired."""
    from vipcli.db import let_waiters_in, transaction

    stamp, per_card = iso(as_of), defaultdict(int)
    while True:
        with transaction(conn):
            lots = conn.execute(f"SELECT id, card_no, remaining FROM point_lots WHERE {PAST_EXPIRY} "
                                "ORDER BY expires_at, id LIMIT ?", (stamp, chunk)).fetchall()
            conn.executemany("INSERT INTO ledger(card_no, lot_id, kind, delta, at, operator, reason) "
                             "VALUES (?, ?, 'expire', ?, ?, ?, ?)",
                             [(card, lot, -left, stamp, operator, EXPIRED) for lot, card, left in lots])
            conn.executemany("UPDATE point_lots SET remaining = 0 WHERE id = ?", [(lot,) for lot, _card, _left in lots])
        for _lot, card, left in lots:
            per_card[card] += left
        if progress:
            progress(sum(left for _lot, _card, left in lots))
        if len(lots) < chunk:
            return dict(per_card)
        let_waiters_in(conn)


def transfer(conn, old_card: str, new_card: str, at: datetime, operator: str) -> int:
    """Card replacement: every lot with points (or debt) moves to the new card with its expiry, as a
    pair of 'transfer' entries. Returns the points moved (net)."""
    rows = conn.execute(
        "SELECT * FROM point_lots WHERE card_no = ? AND remaining != 0 AND (remaining < 0 OR expires_at > ?) "
        "ORDER BY id",
        (old_card, iso(at)),
    ).fetchall()
    moved = 0
    for lot in rows:
        amount = lot["remaining"]
        new_lot = conn.execute(
            "INSERT INTO point_lots(card_no, purchase_id, points, earned_at, usable_from, expires_at, remaining) "
            "VALUES (?, ?, ?, ?, ?, ?, 0) RETURNING id",
            (new_card, lot["purchase_id"], amount, lot["earned_at"], lot["usable_from"], lot["expires_at"]),
        ).fetchone()[0]
        _entry(conn, old_card, lot["id"], "transfer", -amount, at, operator, reason=f"to card {new_card}")
        _entry(conn, new_card, new_lot, "transfer", amount, at, operator, reason=f"from card {old_card}")
        moved += amount
    return moved


def forfeit(conn, card_no: str, at: datetime, operator: str, reason: str) -> int:
    """End of membership: the points still held are forfeited (debt stays on record)."""
    rows = conn.execute(
        "SELECT id, remaining FROM point_lots WHERE card_no = ? AND remaining > 0 AND expires_at > ?",
        (card_no, iso(at)),
    ).fetchall()
    for lot in rows:
        _entry(conn, card_no, lot["id"], "forfeit", -lot["remaining"], at, operator, reason=reason)
    return sum(r["remaining"] for r in rows)


def recent_entries(conn, card_no: str, limit: int = 20) -> list[dict]:
    """A card's latest ledger entries, newest first, with the receipt of the purchase each concerns."""
    return [dict(r) for r in conn.execute(
        "SELECT l.at, l.kind, l.delta, l.lot_id, p.receipt, l.reason, l.operator FROM point_lots k "
        "JOIN ledger l ON l.lot_id = k.id LEFT JOIN purchases p ON p.id = l.purchase_id "
        "WHERE k.card_no = ? ORDER BY l.id DESC LIMIT ?", (card_no, limit))]
