"""Invariants of the database. Each check returns a list of problems (empty when clean); `vip check`
runs them all. Read-only."""

from vipcli import cards
from vipcli.rules import Rules


def integrity(conn, rules: Rules) -> list[str]:
    problems = [f"integrity_check: {row[0]}" for row in conn.execute("PRAGMA integrity_check")
                if row[0] != "ok"]
    problems += [f"foreign key: {row[0]} row {row[1]} points at missing {row[2]}"
                 for row in conn.execute("PRAGMA foreign_key_check")]
    return problems


def balances(conn, rules: Rules) -> list[str]:
    """A card's entries sum to its lots; each lot's remaining equals its own entries."""
    problems = []
    for row in conn.execute(
        "SELECT p.id, p.card_no, p.remaining, COALESCE(SUM(l.delta), 0) AS total FROM point_lots p "
        "LEFT JOIN ledger l ON l.lot_id = p.id GROUP BY p.id HAVING p.remaining != total"
    ):
        problems.append(f"lot {row['id']} of card {row['card_no']}: remaining {row['remaining']} "
                        f"but its entries sum to {row['total']}")
    for row in conn.execute(
        "SELECT l.card_no, SUM(l.delta) AS total, "
        "(SELECT COALESCE(SUM(remaining), 0) FROM point_lots p WHERE p.card_no = l.card_no) AS lots "
        "FROM ledger l GROUP BY l.card_no HAVING total != lots"
    ):
        problems.append(f"card {row['card_no']}: entries sum to {row['total']} but lots hold {row['lots']}")
    for row in conn.execute("SELECT id, card_no FROM ledger l WHERE card_no != "
                            "(SELECT card_no FROM point_lots p WHERE p.id = l.lot_id)"):
        problems.append(f"ledger entry {row['id']} is on card {row['card_no']} but its lot is not")
    return problems


def lots(conn, rules: Rules) -> list[str]:
    """No lot gives out more than it received; nothing is spent from a lot after its expiry."""
    problems = []
    # A lot gives out at most what it received; a lot created to carry debt to a new card starts
    # with negative points and gives exactly that.
    for row in conn.execute(
        "SELECT l.lot_id, p.points, SUM(CASE WHEN l.delta > 0 AND l.kind != 'refund' THEN l.delta ELSE 0 END) AS got, "
        "-SUM(CASE WHEN l.delta < 0 AND l.kind IN ('redeem', 'expire', 'forfeit', 'transfer', 'settle') "
        "THEN l.delta ELSE 0 END) AS gave FROM ledger l JOIN point_lots p ON p.id = l.lot_id "
        "GROUP BY l.lot_id HAVING gave > got + MAX(-p.points, 0)"
    ):
        problems.append(f"lot {row['lot_id']} over-consumed: gave {row['gave']} of {row['got']}")
    for row in conn.execute(
        "SELECT l.id, l.lot_id, l.at, p.expires_at FROM ledger l JOIN point_lots p ON p.id = l.lot_id "
        "WHERE l.kind = 'redeem' AND l.at >= p.expires_at"
    ):
        problems.append(f"ledger entry {row['id']} redeemed from lot {row['lot_id']} at {row['at']}, "
                        f"after its expiry {row['expires_at']}")
    for row in conn.execute(
        "SELECT p.receipt, p.points_earned, COALESCE((SELECT SUM(delta) FROM ledger l "
        "WHERE l.purchase_id = p.id AND l.kind = 'earn'), 0) AS earned FROM purchases p "
        "WHERE p.points_earned != earned"
    ):
        problems.append(f"purchase {row['receipt']}: points_earned {row['points_earned']} "
                        f"but earn entries total {row['earned']}")
    return problems


def purchases(conn, rules: Rules) -> list[str]:
    return [
        f"purchase {row['receipt']}: refunded {row['refunded']} but refunds total {row['total']}"
        for row in conn.execute(
            "SELECT p.receipt, p.refunded, COALESCE((SELECT SUM(amount) FROM refunds r "
            "WHERE r.purchase_id = p.id), 0) AS total FROM purchases p WHERE p.refunded != total")
    ]


def tiers(conn, rules: Rules) -> list[str]:
    """Each member's tier is the last one their tier history records, and a tier of these rules."""
    problems = []
    codes = {t.code for t in rules.tiers}
    for row in conn.execute(
        "SELECT c.id, c.tier, (SELECT to_tier FROM tier_changes t WHERE t.customer_id = c.id "
        "ORDER BY t.id DESC LIMIT 1) AS last FROM customers c WHERE c.tier IS NOT NULL OR EXISTS "
        "(SELECT 1 FROM tier_changes t WHERE t.customer_id = c.id)"
    ):
        if row["tier"] != row["last"]:
            problems.append(f"customer {row['id']}: tier {row['tier']} but history says {row['last']}")
        elif row["tier"] not in codes:
            problems.append(f"customer {row['id']}: tier {row['tier']} is not a tier of the rules")
    return problems


def card_numbers(conn, rules: Rules) -> list[str]:
    problems = []
    for row in conn.execute("SELECT card_no, region, sequence FROM cards"):
        expected = cards.make_number(rules, row["region"], row["sequence"])
        if row["card_no"] != expected:
            problems.append(f"card {row['card_no']}: should be {expected} (region {row['region']}, "
                            f"sequence {row['sequence']}, check digit)")
    for row in conn.execute(
        "SELECT customer_id, COUNT(*) AS n FROM cards WHERE status IN "
        f"({','.join('?' * len(cards.LIVE))}) GROUP BY customer_id HAVING n > 1", cards.LIVE
    ):
        problems.append(f"customer {row['customer_id']} holds {row['n']} current cards")
    return problems


ALL = (integrity, balances, lots, purchases, tiers, card_numbers)


def run_all(conn, rules: Rules) -> dict[str, list[str]]:
    return {check.__name__: check(conn, rules) for check in ALL}
