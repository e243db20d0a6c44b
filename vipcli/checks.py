"""Invariants of the database. Each check returns a list of problems (empty when clean); `vip check`
runs them all. Each is one pass (an aggregate per table, joined once), never a look-up per row.

What a check reads is its Scope. EVERY_ROW (`vip check --all`, the tests' own check) reads every
row: aggregates read their table in its own order and sort (NOT INDEXED), at a million rows three
times faster than walking an index. The nightly `vip check` reads the rows written since the last
clean check (a Scope of changes): new rows are those above the ids it recorded (the ledger cannot be
changed, only added to: its triggers), changed and deleted ones are in the check journal, which
triggers fill on every UPDATE and DELETE of a checked table, made by vipcli or by any other SQLite
tool (migration 6). Each group a new or changed row belongs to (a lot and all its entries, a
purchase, a customer's tier history, a card and its holder's other cards) is checked whole, through
the indexes. A database whose journal triggers are missing is checked row by row.
`structure` (SQLite's own integrity and foreign-key checks, which verify every index and every
reference) reads the whole file and more: `vip check --full`."""

import json
import re
from dataclasses import dataclass

from vipcli import cards
from vipcli.db import begin_read, engine, get_meta, set_meta, transaction
from vipcli.dates import iso
from vipcli.errors import DatabaseProblem
from vipcli.i18n import _
from vipcli.rules import Rules

# What a lot gives out (its negative entries of these kinds) and what it receives (positive entries
# that are not refund corrections).
_GIVES = "('redeem', 'expire', 'forfeit', 'transfer', 'settle')"

MARK = "check_mark"  # meta: the greatest id of each table at the last clean check, and when it ran
_TABLES = ("ledger", "point_lots", "purchases", "refunds", "customers", "tier_changes", "cards")
_KEY = {"cards": "rowid"}  # (cards' key is its number; its rowid orders it, a column on PostgreSQL)
# What the scope of changes trusts: the ledger cannot be changed and every change to a checked table
# is journaled.
_GUARDS = ("ledger_no_update", "ledger_no_delete", "check_lot_update", "check_lot_delete",
           "check_purchase_update", "check_purchase_delete", "check_refund_update", "check_refund_delete",
           "check_customer_update", "check_customer_delete", "check_tier_change_update",
           "check_tier_change_delete", "check_card_update", "check_card_delete")
# The rows each group of checks reads under a scope of changes (temp tables of ids, filled once from
# the marks, the journal and the new rows of the tables that point at the group).
_GROUPS = {
    "lots": "SELECT id FROM point_lots WHERE id > :point_lots "
            "UNION SELECT row_id FROM check_journal WHERE tbl = 'point_lots' "
            "UNION SELECT lot_id FROM ledger WHERE id > :ledger",
    "purchases": "SELECT id FROM purchases WHERE id > :purchases "
                 "UNION SELECT row_id FROM check_journal WHERE tbl = 'purchases' "
                 "UNION SELECT purchase_id FROM ledger WHERE id > :ledger AND purchase_id IS NOT NULL "
                 "UNION SELECT purchase_id FROM refunds WHERE id > :refunds",
    "customers": "SELECT id FROM customers WHERE id > :customers "
                 "UNION SELECT row_id FROM check_journal WHERE tbl = 'customers' "
                 "UNION SELECT customer_id FROM tier_changes WHERE id > :tier_changes",
    "cards": "SELECT rowid FROM cards WHERE rowid > :cards "
             "UNION SELECT row_id FROM check_journal WHERE tbl = 'cards'",
}


@dataclass(frozen=True)
class Scope:
    """Every row, or (`changes`) the groups listed in the temp tables check_<group>."""

    changes: bool = False

    def hint(self, conn) -> str:
        """Every row: read the table in its own order; changes: through the index on the group.
        (PostgreSQL's planner makes that choice by itself.)"""
        return "" if self.changes or engine(conn) != "sqlite" else "NOT INDEXED"

    def where(self, column: str, group: str) -> str:
        return f"WHERE {column} IN (SELECT id FROM check_{group})" if self.changes else ""

    def also(self, column: str, group: str) -> str:
        return f" AND {column} IN (SELECT id FROM check_{group})" if self.changes else ""


EVERY_ROW = Scope()


def structure(conn, rules: Rules, scope: Scope = EVERY_ROW) -> list[str]:
    """SQLite's integrity_check (pages, indexes, NOT NULL and CHECK constraints, which an import's
    writer leaves to construction) and foreign_key_check. PostgreSQL holds every constraint on every
    write (its import's COPY included) and checksums its own pages: nothing to add there."""
    if engine(conn) != "sqlite":
        return []
    problems = [f"integrity_check: {row[0]}" for row in conn.execute("PRAGMA integrity_check")
                if row[0] != "ok"]
    problems += [f"foreign key: {row[0]} row {row[1]} points at missing {row[2]}"
                 for row in conn.execute("PRAGMA foreign_key_check")]
    return problems


def lots(conn, rules: Rules, scope: Scope = EVERY_ROW) -> list[str]:
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
        f"  FROM ledger {scope.hint(conn)} {scope.where('lot_id', 'lots')} GROUP BY lot_id) e ON e.lot_id = p.id "
        "WHERE (p.remaining != COALESCE(e.total, 0) OR e.low_card != p.card_no OR e.high_card != p.card_no "
        "OR COALESCE(e.gave, 0) > COALESCE(e.got, 0) + CASE WHEN p.points < 0 THEN -p.points ELSE 0 END OR e.last_redeem >= p.expires_at)"
        + scope.also("p.id", "lots")
    ):
        lot = _("lot {id} of card {card}").format(id=row["id"], card=row["card_no"])
        if row["remaining"] != row["total"]:
            problems.append(_("{lot}: remaining {remaining} but its entries sum to {total}").format(
                lot=lot, remaining=row["remaining"], total=row["total"]))
        if row["low_card"] is not None and not row["low_card"] == row["high_card"] == row["card_no"]:
            other = row["low_card"] if row["low_card"] != row["card_no"] else row["high_card"]
            problems.append(_("{lot}: has entries on card {card}").format(lot=lot, card=other))
        # A lot created to carry debt to a new card starts negative and gives exactly that.
        if row["gave"] > row["got"] + max(-row["points"], 0):
            problems.append(_("{lot} over-consumed: gave {gave} of {got}").format(lot=lot, gave=row["gave"],
                                                                                   got=row["got"]))
        if row["last_redeem"] is not None and row["last_redeem"] >= row["expires_at"]:
            problems.append(_("{lot}: redeemed at {at}, after its expiry {expires}").format(
                lot=lot, at=row["last_redeem"], expires=row["expires_at"]))
    problems += [_("ledger entries of lot {id}: the lot does not exist").format(id=row[0]) for row in conn.execute(
        "SELECT DISTINCT lot_id FROM ledger WHERE lot_id NOT IN (SELECT id FROM point_lots)"
        + scope.also("lot_id", "lots"))]
    return problems


def purchases(conn, rules: Rules, scope: Scope = EVERY_ROW) -> list[str]:
    """A purchase's points_earned equals its earn entries, and its refunded amount its refunds.
    Looked at from both sides, each a join on a primary key or an index built for the query: the
    purchases that claim points or refunds, and the entries and refunds that name a purchase.
    A scope of changes finds a purchase's earn entries through its lots (the ledger has no index by
    purchase), so it also checks that each earn entry it reads is on a lot of its purchase."""
    problems = []
    if scope.changes:
        earned = ("SELECT purchase_id, SUM(delta) AS earned FROM ledger WHERE kind = 'earn' AND lot_id IN "
                  "(SELECT id FROM point_lots WHERE purchase_id IN (SELECT id FROM check_purchases)) "
                  "GROUP BY purchase_id")
        problems += [_("earn entry {id} of purchase #{purchase} is on lot {lot} of another purchase").format(
                         id=row[0], purchase=row[1], lot=row[2])
                     for row in conn.execute(
                         "SELECT e.id, e.purchase_id, e.lot_id FROM ledger e JOIN point_lots l ON l.id = e.lot_id "
                         "WHERE e.kind = 'earn' AND l.purchase_id IS DISTINCT FROM e.purchase_id" + scope.also("e.lot_id", "lots"))]
    else:
        earned = (f"SELECT purchase_id, SUM(delta) AS earned FROM ledger {scope.hint(conn)} WHERE kind = 'earn' "
                  "GROUP BY purchase_id")
    refunded = f"SELECT purchase_id, SUM(amount) AS total FROM refunds {scope.where('purchase_id', 'purchases')} GROUP BY purchase_id"
    rows = conn.execute(
        f"SELECT p.id, p.receipt, p.points_earned, COALESCE(e.earned, 0) AS earned, p.refunded, "
        f"COALESCE(r.total, 0) AS total FROM purchases p LEFT JOIN ({earned}) e ON e.purchase_id = p.id "
        f"LEFT JOIN ({refunded}) r ON r.purchase_id = p.id "
        "WHERE (p.points_earned != 0 OR p.refunded != 0) "
        "AND (p.points_earned != COALESCE(e.earned, 0) OR p.refunded != COALESCE(r.total, 0))"
        + scope.also("p.id", "purchases")).fetchall()
    rows += conn.execute(
        f"SELECT e.purchase_id AS id, p.receipt, COALESCE(p.points_earned, 0) AS points_earned, e.earned, "
        f"COALESCE(p.refunded, 0) AS refunded, COALESCE(p.refunded, 0) AS total FROM ({earned}) e "
        "LEFT JOIN purchases p ON p.id = e.purchase_id WHERE p.id IS NULL OR p.points_earned = 0").fetchall()
    rows += conn.execute(
        f"SELECT r.purchase_id AS id, p.receipt, COALESCE(p.points_earned, 0) AS points_earned, "
        f"COALESCE(p.points_earned, 0) AS earned, COALESCE(p.refunded, 0) AS refunded, r.total FROM ({refunded}) r "
        "LEFT JOIN purchases p ON p.id = r.purchase_id WHERE p.id IS NULL OR p.refunded = 0").fetchall()
    for row in rows:
        name = _("purchase {receipt}").format(receipt=row["receipt"] or "#" + str(row["id"]))
        if row["points_earned"] != row["earned"]:
            problems.append(_("{purchase}: points_earned {points} but earn entries total {earned}").format(
                purchase=name, points=row["points_earned"], earned=row["earned"]))
        if row["refunded"] != row["total"]:
            problems.append(_("{purchase}: refunded {refunded} but refunds total {total}").format(
                purchase=name, refunded=row["refunded"], total=row["total"]))
    return problems


def tiers(conn, rules: Rules, scope: Scope = EVERY_ROW) -> list[str]:
    """Each member's tier is the last one their tier history records, and a tier of these rules."""
    # Each customer's last change: the row of the greatest id of each customer's history.
    last = (f"SELECT h.customer_id, h.to_tier FROM tier_changes h JOIN (SELECT MAX(id) AS id FROM tier_changes "
            f"{scope.hint(conn)} {scope.where('customer_id', 'customers')} GROUP BY customer_id) m ON m.id = h.id")
    rows = conn.execute(f"SELECT c.id, c.tier, t.to_tier AS last FROM customers c LEFT JOIN ({last}) t "
                        "ON t.customer_id = c.id WHERE c.tier IS NOT NULL" + scope.also("c.id", "customers")).fetchall()
    rows += conn.execute(f"SELECT t.customer_id AS id, c.tier, t.to_tier AS last FROM ({last}) t "
                         "LEFT JOIN customers c ON c.id = t.customer_id WHERE c.tier IS NULL").fetchall()
    problems = []
    codes = {t.code for t in rules.tiers}
    for row in rows:
        if row["tier"] != row["last"]:
            problems.append(_("customer {id}: tier {tier} but history says {last}").format(
                id=row["id"], tier=row["tier"], last=row["last"]))
        elif row["tier"] not in codes:
            problems.append(_("customer {id}: tier {tier} is not a tier of the rules").format(id=row["id"],
                                                                                              tier=row["tier"]))
    return problems


def card_numbers(conn, rules: Rules, scope: Scope = EVERY_ROW) -> list[str]:
    """Each card number is its region, sequence and check digit; nobody holds two current cards."""
    problems = []
    for card_no, region, sequence in conn.execute(
            "SELECT card_no, region, sequence FROM cards " + scope.where("rowid", "cards")).fetchall():
        expected = cards.make_number(rules, region, sequence)
        if card_no != expected:
            problems.append(_("card {card}: should be {expected} (region {region}, sequence {sequence}, check "
                              "digit)").format(card=card_no, expected=expected, region=region, sequence=sequence))
    for row in conn.execute(
        f"SELECT customer_id, COUNT(*) AS n FROM cards WHERE status IN ({','.join('?' * len(cards.LIVE))})"
        + scope.also("customer_id", "card_holders") + " GROUP BY customer_id HAVING COUNT(*) > 1", cards.LIVE
    ):
        problems.append(_("customer {id} holds {count} current cards").format(id=row["customer_id"], count=row["n"]))
    return problems


def id_numbers(conn, rules: Rules, scope: Scope = EVERY_ROW) -> list[str]:
    """Every stored ID number opens with the key in force and matches its look-up hash (a rotation
    that missed one would leave it unreadable, found here and not at the next unmask)."""
    rows = conn.execute("SELECT id, id_enc, id_hmac FROM customers WHERE id_enc IS NOT NULL"
                        + scope.also("id", "customers")).fetchall()
    if not rows:
        return []
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
            problems.append(_("customer {id}: the ID number does not open with the key in force").format(
                id=row["id"]))
            continue
        if vault.lookup_hash(plain) != row["id_hmac"]:
            problems.append(_("customer {id}: the ID number's look-up hash is not the key's").format(id=row["id"]))
    return problems


ALL = (lots, purchases, tiers, card_numbers, id_numbers)


@dataclass
class Report:
    problems: dict[str, list[str]]
    every_row: bool  # False: the rows written since the last clean check (`since`)
    since: str | None
    marked: bool  # the marks moved on (a clean check that could write)


def run_all(conn, rules: Rules, full: bool = False, every_row: bool = False, at=None, progress=None) -> Report:
    """Every check, over every row (`every_row`, `full`, or no clean check recorded yet) or over what
    changed since the last clean check, in one read transaction; a clean result moves the marks to
    what it read (`at`: when it ran, shown by the next check). `progress(1)` after each check."""
    begin_read(conn)
    try:
        marks = {table: conn.execute(f"SELECT COALESCE(MAX({_KEY.get(table, 'id')}), 0) FROM {table}").fetchone()[0]
                 for table in _TABLES}
        journal = conn.execute("SELECT COALESCE(MAX(id), 0) FROM check_journal").fetchone()[0]
        previous = None if full or every_row or not _guarded(conn) else json.loads(get_meta(conn, MARK) or "null")
        scope = EVERY_ROW if previous is None else _changes(conn, previous)
        problems = {}
        for check in ((structure,) if full else ()) + ALL:
            problems[check.__name__] = sorted(check(conn, rules, scope), key=_in_order)
            if progress:
                progress(1)
        if scope.changes:
            for group in (*_GROUPS, "card_holders"):
                conn.execute(f"DROP TABLE check_{group}")
    finally:
        conn.execute("COMMIT")
    clean = not any(problems.values())
    marked = clean and at is not None and _mark(conn, {**marks, "at": iso(at)}, journal)
    return Report(problems, previous is None, previous and previous["at"], marked)


def _in_order(problem: str) -> list:
    """Problems in the order of what they name, numbers as numbers (lot 9 before lot 10), whatever
    order the engine read the rows in."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", problem)]


def _guarded(conn) -> bool:
    if engine(conn) == "postgresql":
        from vipcli import pg

        return pg.journal_guarded(conn)
    found = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    return found.issuperset(_GUARDS)


def _changes(conn, previous: dict) -> Scope:
    marks = {table: previous.get(table, 0) for table in _TABLES}
    for group, rows in _GROUPS.items():
        conn.execute(f"CREATE TEMP TABLE check_{group} (id INTEGER PRIMARY KEY)")
        conn.execute(f"INSERT INTO check_{group} {rows}", marks)
    conn.execute("CREATE TEMP TABLE check_card_holders (id INTEGER PRIMARY KEY)")
    conn.execute("INSERT INTO check_card_holders "
                 "SELECT customer_id FROM cards WHERE rowid IN (SELECT id FROM check_cards) ON CONFLICT DO NOTHING")
    return Scope(changes=True)


def _mark(conn, marks: dict, journal: int) -> bool:
    """Record what a clean check read, and forget the journal it has seen. Not where it cannot
    write (a read-only copy) or wait its turn (the next check then reads from the older marks)."""
    try:
        with transaction(conn):
            set_meta(conn, MARK, json.dumps(marks))
            conn.execute("DELETE FROM check_journal WHERE id <= ?", (journal,))
    except DatabaseProblem:
        return False
    return True
