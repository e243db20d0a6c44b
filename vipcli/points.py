"""Points outside a sale: the expiry run (第十一条: points lapse) and a manager's correction. Each
writes its ledger entries and its audit row inside the caller's write transaction."""

from datetime import datetime

from vipcli import archive, ledger
from vipcli.auditlog import audit
from vipcli.errors import Refused
from vipcli.rules import Rules
from vipcli.i18n import _


def statement(conn, rules: Rules, ref: str, now: datetime) -> dict:
    """`vip points`: a card's balance, what is usable now, its lots with their expiry, recent entries."""
    customer, card = archive.resolve(conn, rules, ref)
    if card is None:
        raise Refused(_("customer {id} has no card, so no points").format(id=customer['id']), code="no_card")
    number = card["card_no"]
    return {"card_no": number, "points_balance": ledger.balance(conn, number, now),
            "usable": ledger.usable(conn, number, now), "lots": ledger.lots(conn, number, now),
            "entries": ledger.recent_entries(conn, number)}


def expiry_plan(conn, as_of: datetime) -> dict:
    """What `expire_due` would do at `as_of`, read only (the dry run and the question asked first)."""
    return _expiry_report(as_of, ledger.expiring(conn, as_of))


def expire_due(conn, as_of: datetime, now: datetime, operator: str, progress=None) -> dict:
    """Expire every lot past its expiry at `as_of`, in transactions of ledger.EXPIRY_CHUNK lots
    (idempotent: a lot expired once has nothing left), then one audit row for the run."""
    from vipcli.db import transaction

    per_card = ledger.expire(conn, as_of, operator, progress=progress)
    with transaction(conn):
        audit(conn, now, operator, "points expire", None, as_of=as_of.isoformat(), cards=len(per_card),
              points=sum(per_card.values()))
    return _expiry_report(as_of, per_card)


def _expiry_report(as_of: datetime, per_card: dict[str, int]) -> dict:
    return {"as_of": as_of.isoformat(), "expired_points": sum(per_card.values()),
            "cards": [{"card_no": k, "expired_points": v} for k, v in sorted(per_card.items())]}


def adjust(conn, rules: Rules, ref: str, amount: int, reason: str, now: datetime, operator: str) -> dict:
    """Add (or with a negative amount take, never below zero) points on a current card by hand."""
    _customer, card = archive.resolve(conn, rules, ref)
    if card is None or card["status"] in ("replaced", "cancelled"):
        raise Refused(_("only a current card's points can be adjusted"), code="no_card")
    left = ledger.adjust(conn, rules, card["card_no"], amount, now, operator, reason)
    audit(conn, now, operator, "points adjust", card["card_no"], points=amount, reason=reason)
    return {"card_no": card["card_no"], "points_adjusted": amount, "points_balance": left}
