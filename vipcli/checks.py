"""Invariants of the database. Each check returns a list of problems (empty when clean); `vip check`
runs them all. Read-only. Each is one pass (an aggregate per table, joined once), so a check of a
million purchases costs a few scans of the tables, never a look-up per row (that was quadratic).
Aggregates read their table in its own order and sort (NOT INDEXED): at a million rows that is three
times faster than walking an index and fetching each row from it.
`structure` (SQLite's own integrity and foreign-key checks, which verify every index and every
reference) reads the whole file and more: `vip check --full`."""

from vipcli import cards
from vipcli.rules import Rules

# What a lot gives out (its negative entries of these kinds) and what it receives (positive entries
# that are not refund corrections).
_GIVES = "('redeem', 'expire', 'forfeit', 'transfer', 'settle')"


def structure(conn, rules: Rules) -> list[str]:
    """SQLite's integrity_check (pages, indexes, NOT NULL and CHECK constraints, which an import's
    writer leaves to construction) and foreign_key_check."""
    problems = [f"integrity_check: {row[0]}" for row in conn.execute("PRAGMA integrity_check")
                if row[0] != "ok"]
    problems += [f"foreign key: {row[0]} row {row[1]} points at missing {row[2]}"
                 for row in conn.execute("PRAGMA foreign_key_check")]
    return problems


def lots(conn, rules: Rules) -> list[str]:
    """Each lot's remaining equals the sum of its entries, and every entry is on its lot's card (so a
    card's balance, the sum of its lots, equals the sum of its entries); no lot gives out more than
    it received; nothing is redeemed from a lot after its expiry; no entry without its lot."""
    problems = []
    for row in conn.execute(
        "SELECT p.id, p.card_no, p.remaining, p.points, p.expires_at, COALESCE(e.total, 0) AS total, "
        "e.low_card, e.high_card, COALESCE(e.got, 0) AS got, COALESCE(e.gave, 0) AS gave, e.last_redeem "
        "FROM point_lots p LEFT JOIN ("
        "  SELECT lot_id, SUM(delta) AS total, MIN(card_no) AS low_card, MAX(card_no) AS high_card,"
        "  SUM(CASE WHEN delta > 0 AND kind != 'refund' THEN delta ELSE 0 END) AS got,"
        f" -SUM(CASE WHEN delta < 0 AND kind IN {_GIVES} THEN delta ELSE 0 END) AS gave,"
        "  MAX(CASE WHEN kind = 'redeem' THEN at END) AS last_redeem"
        "  FROM ledger NOT INDEXED GROUP BY lot_id) e ON e.lot_id = p.id "
        "WHERE p.remaining != COALESCE(e.total, 0) OR e.low_card != p.card_no OR e.high_card != p.card_no "
        "OR COALESCE(e.gave, 0) > COALESCE(e.got, 0) + MAX(-p.points, 0) OR e.last_redeem >= p.expires_at"
    ):
        lot = f"lot {row['id']} of card {row['card_no']}"
        if row["remaining"] != row["total"]:
            problems.append(f"{lot}: remaining {row['remaining']} but its entries sum to {row['total']}")
        if row["low_card"] is not None and not row["low_card"] == row["high_card"] == row["card_no"]:
            other = row["low_card"] if row["low_card"] != row["card_no"] else row["high_card"]
            problems.append(f"{lot}: has entries on card {other}")
        # A lot created to carry debt to a new card starts negative and gives exactly that.
        if row["gave"] > row["got"] + max(-row["points"], 0):
            problems.append(f"{lot} over-consumed: gave {row['gave']} of {row['got']}")
        if row["last_redeem"] is not None and row["last_redeem"] >= row["expires_at"]:
            problems.append(f"{lot}: redeemed at {row['last_redeem']}, after its expiry {row['expires_at']}")
    problems += [f"ledger entries of lot {row[0]}: the lot does not exist" for row in conn.execute(
        "SELECT DISTINCT lot_id FROM ledger WHERE lot_id NOT IN (SELECT id FROM point_lots)")]
    return problems


def purchases(conn, rules: Rules) -> list[str]:
    """A purchase's points_earned equals its earn entries, and its refunded amount its refunds.
    Looked at from both sides, each a join on a primary key or an index built for the query: the
    purchases that claim points or refunds, and the entries and refunds that name a purchase."""
    earned = "SELECT purchase_id, SUM(delta) AS earned FROM ledger NOT INDEXED WHERE kind = 'earn' GROUP BY purchase_id"
    refunded = "SELECT purchase_id, SUM(amount) AS total FROM refunds GROUP BY purchase_id"
    rows = conn.execute(
        f"SELECT p.id, p.receipt, p.points_earned, COALESCE(e.earned, 0) AS earned, p.refunded, "
        f"COALESCE(r.total, 0) AS total FROM purchases p LEFT JOIN ({earned}) e ON e.purchase_id = p.id "
        f"LEFT JOIN ({refunded}) r ON r.purchase_id = p.id "
        "WHERE (p.points_earned != 0 OR p.refunded != 0) "
        "AND (p.points_earned != COALESCE(e.earned, 0) OR p.refunded != COALESCE(r.total, 0))").fetchall()
    rows += conn.execute(
        f"SELECT e.purchase_id AS id, p.receipt, COALESCE(p.points_earned, 0) AS points_earned, e.earned, "
        f"COALESCE(p.refunded, 0) AS refunded, COALESCE(p.refunded, 0) AS total FROM ({earned}) e "
        "LEFT JOIN purchases p ON p.id = e.purchase_id WHERE p.id IS NULL OR p.points_earned = 0").fetchall()
    rows += conn.execute(
        f"SELECT r.purchase_id AS id, p.receipt, COALESCE(p.points_earned, 0) AS points_earned, "
        f"COALESCE(p.points_earned, 0) AS earned, COALESCE(p.refunded, 0) AS refunded, r.total FROM ({refunded}) r "
        "LEFT JOIN purchases p ON p.id = r.purchase_id WHERE p.id IS NULL OR p.refunded = 0").fetchall()
    problems = []
    for row in rows:
        name = f"purchase {row['receipt'] or '#' + str(row['id'])}"
        if row["points_earned"] != row["earned"]:
            problems.append(f"{name}: points_earned {row['points_earned']} but earn entries total {row['earned']}")
        if row["refunded"] != row["total"]:
            problems.append(f"{name}: refunded {row['refunded']} but refunds total {row['total']}")
    return problems


def tiers(conn, rules: Rules) -> list[str]:
    """Each member's tier is the last one their tier history records, and a tier of these rules."""
    # Each customer's last change: with MAX(), SQLite takes the other columns from the row holding the
    # maximum (documented for bare columns in an aggregate query).
    last = "SELECT customer_id, to_tier, MAX(id) FROM tier_changes NOT INDEXED GROUP BY customer_id"
    rows = conn.execute(f"SELECT c.id, c.tier, t.to_tier AS last FROM customers c LEFT JOIN ({last}) t "
                        "ON t.customer_id = c.id WHERE c.tier IS NOT NULL").fetchall()
    rows += conn.execute(f"SELECT t.customer_id AS id, c.tier, t.to_tier AS last FROM ({last}) t "
                         "LEFT JOIN customers c ON c.id = t.customer_id WHERE c.tier IS NULL").fetchall()
    problems = []
    codes = {t.code for t in rules.tiers}
    for row in rows:
        if row["tier"] != row["last"]:
            problems.append(f"customer {row['id']}: tier {row['tier']} but history says {row['last']}")
        elif row["tier"] not in codes:
            problems.append(f"customer {row['id']}: tier {row['tier']} is not a tier of the rules")
    return problems


def card_numbers(conn, rules: Rules) -> list[str]:
    problems = []
    for card_no, region, sequence in conn.execute("SELECT card_no, region, sequence FROM cards").fetchall():
        expected = cards.make_number(rules, region, sequence)
        if card_no != expected:
            problems.append(f"card {card_no}: should be {expected} (region {region}, sequence {sequence}, "
                            "check digit)")
    for row in conn.execute(
        "SELECT customer_id, COUNT(*) AS n FROM cards WHERE status IN "
        f"({','.join('?' * len(cards.LIVE))}) GROUP BY customer_id HAVING n > 1", cards.LIVE
    ):
        problems.append(f"customer {row['customer_id']} holds {row['n']} current cards")
    return problems


def id_numbers(conn, rules: Rules) -> list[str]:
    """Every stored ID number opens with the key in force and matches its look-up hash (a rotation
    that missed one would leave it unreadable, found here and not at the next unmask)."""
    rows = conn.execute("SELECT id, id_enc, id_hmac FROM customers WHERE id_enc IS NOT NULL").fetchall()
    if not rows:
        return []
    from vipcli.errors import DatabaseProblem
    from vipcli.vault import open_vault

    try:
        vault = open_vault(conn, create=False)
    except DatabaseProblem as exc:
        return [f"ID numbers: {exc.message}"]
    problems = []
    for row in rows:
        try:
            plain = vault.decrypt(row["id_enc"])
        except DatabaseProblem:
            problems.append(f"customer {row['id']}: the ID number does not open with the key in force")
            continue
        if vault.lookup_hash(plain) != row["id_hmac"]:
            problems.append(f"customer {row['id']}: the ID number's look-up hash is not the key's")
    return problems


ALL = (lots, purchases, tiers, card_numbers, id_numbers)


def run_all(conn, rules: Rules, full: bool = False) -> dict[str, list[str]]:
    return {check.__name__: check(conn, rules) for check in ((structure,) if full else ()) + ALL}
