"""Spending points on rewards (第十一条, 兑换), once per request id: a till that timed out and asks
again gets the first answer instead of spending twice."""

import json
from datetime import datetime

from vipcli import archive, cards, ledger
from vipcli.dates import iso
from vipcli.auditlog import audit
from vipcli.errors import InvalidInput, Refused
from vipcli.rules import Rules
from vipcli.i18n import N_, _


def redeem(conn, rules: Rules, ref: str, points: int | None, reward: str | None, now: datetime, operator: str,
           request_id: str | None = None) -> dict:
    """Inside the caller's write transaction: spend `points` (or the reward's price) of the card of
    `ref`, never below zero, only from an active card. With `request_id`, the same request again
    returns the first result (`"duplicate": true`); other parameters under that id are refused."""
    chosen = rules.reward(reward) if reward is not None else None
    if points is None and chosen is None:
        raise InvalidInput(_("give --points N or --reward CODE"), code="bad_usage")
    amount = points if points is not None else chosen.points
    if chosen is not None and amount != chosen.points:
        raise InvalidInput(_("reward {code} costs {points} points, not {amount}").format(
                               code=chosen.code, points=chosen.points, amount=amount), code="bad_points")
    params = json.dumps({"ref": ref, "points": amount, "reward": reward}, sort_keys=True, ensure_ascii=False)
    if request_id is not None:
        if not (0 < len(request_id) <= 64 and request_id.isprintable()):
            raise InvalidInput(_("request-id: 1-64 printable characters"), code="bad_request_id")
        seen = conn.execute("SELECT command, params, result FROM requests WHERE id = ?", (request_id,)).fetchone()
        if seen is not None:
            if (seen["command"], seen["params"]) != ("redeem", params):
                raise Refused(_("request {request_id} was a different request; nothing was done").format(
                                  request_id=request_id),
                              code="request_conflict")
            return {**json.loads(seen["result"]), "duplicate": True}
    customer, card = archive.resolve(conn, rules, ref)
    status = cards.effective_status(card, archive.is_registered(customer), rules, now.date()) if card else None
    if card is None:
        raise Refused(_("this customer has no card; only an active card can redeem"), code="card_missing")
    if status != "active":
        raise Refused(_("card {card} is {status}; only an active card can redeem").format(
            card=card["card_no"], status=cards.status_label(status)), code=f"card_{status}")
    reason = f"reward {chosen.code}: {chosen.name}" if chosen else N_("points redeemed")  # (recorded in English)
    left = ledger.redeem(conn, rules, card["card_no"], amount, now, operator, reason)
    audit(conn, now, operator, "redeem", card["card_no"], points=amount, reward=chosen.code if chosen else None,
          request_id=request_id)
    result = {"card_no": card["card_no"], "points_redeemed": amount, "points_balance": left,
              "reward": chosen.code if chosen else None, "reward_name": chosen.name if chosen else None}
    if request_id is not None:
        conn.execute("INSERT INTO requests(id, command, params, result, at, operator) VALUES (?, ?, ?, ?, ?, ?)",
                     (request_id, "redeem", params, json.dumps(result, ensure_ascii=False), iso(now), operator))
    return {**result, "duplicate": False}
