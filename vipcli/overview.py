"""The store manager's overview: members by tier and status, top customers, points outstanding."""

from datetime import datetime

from vipcli import archive, cards, ledger
from vipcli.dates import iso, months_before
from vipcli.rules import Rules


def store_overview(conn, rules: Rules, now: datetime, top: int = 10) -> dict:
    by_tier: dict[str, int] = {t.code: 0 for t in rules.tiers}
    by_status: dict[str, int] = {}
    points_outstanding = 0
    # A fixed number of queries whatever the number of customers: customers and their cards read
    # side by side in customer order, every balance at once.
    held = ledger.balances(conn, now)
    with_cards = cards.customers_cards(conn)
    next_card = next(with_cards, (None, None))
    for customer in conn.execute(f"SELECT id, tier, {', '.join(archive.REGISTRATION_FIELDS)} FROM customers "
                                 "ORDER BY id"):
        card = None
        if next_card[0] == customer["id"]:
            card, next_card = next_card[1], next(with_cards, (None, None))
        status = (cards.effective_status(card, archive.is_registered(customer), rules, now.date())
                  if card else "prospect")
        by_status[status] = by_status.get(status, 0) + 1
        if card is not None and status not in ("replaced", "cancelled"):
            by_tier[customer["tier"]] = by_tier.get(customer["tier"], 0) + 1
            points_outstanding += max(held.get(card["card_no"], 0), 0)
    since = iso(months_before(now, rules.upgrade_window_months))
    spenders = conn.execute(
        "SELECT c.id AS customer_id, c.name, c.phone, c.tier, COUNT(*) AS purchases, "
        "SUM(p.paid - p.refunded) AS spend FROM purchases p JOIN customers c ON c.id = p.customer_id "
        "WHERE p.purchased_at > ? AND p.purchased_at <= ? GROUP BY c.id ORDER BY spend DESC, c.id",
        (since, iso(now)),
    ).fetchall()
    total = sum(r["spend"] for r in spenders)
    fifth = max(len(spenders) // 5, 1) if spenders else 0
    top_share = (sum(r["spend"] for r in spenders[:fifth]) * 1000 // total) if total else 0
    return {
        "as_of": iso(now),
        "members_by_tier": by_tier,
        "customers_by_status": by_status,
        "points_outstanding": points_outstanding,
        "spend_12m": total,
        "top_fifth_customers": fifth,
        "top_fifth_share_permille": top_share,
        "top_customers": [dict(r) for r in spenders[:top]],
    }
