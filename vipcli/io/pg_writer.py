"""The purchases import's writer on PostgreSQL: the calls of io/writer.py's Writer (begin, write,
commit, rollback, slow, close, abandon), with the prepared rows sent by COPY, the bulk path of
PostgreSQL, instead of one INSERT per row. The rows, their columns and the rules that made them are
the same as on SQLite: the INSERT statements of io/writer.py are read here for each table's columns.

Each transaction holds the writers' lock (vipcli/pg.py), as the SQLite writer holds BEGIN IMMEDIATE:
the importer's ids (the greatest id + 1) stay free until it commits, and before it commits each
table's identity is moved past them, so that the next till's INSERT takes the id after the import's.
Constraints (foreign keys, CHECKs) hold on every row, as PostgreSQL always holds them.
"""

import re
import sqlite3

from vipcli.io.writer import RowWriter

_INSERT = re.compile(r"INSERT INTO (\w+)\(([^)]*)\) VALUES \((.*)\)$", re.S)
_IDS = ("customers", "purchases", "point_lots", "ledger", "tier_changes", "applications")


def _copies(statements: dict) -> dict:
    """For each plain INSERT of io/writer.py: (COPY statement, the constant values to add to each row
    and where)."""
    copies = {}
    for table, sql in statements.items():
        found = _INSERT.match(sql)
        if not found:
            continue  # (an UPDATE, an upsert: run as they are)
        name, columns, values = found.groups()
        values = [v.strip() for v in values.split(",")]
        constants = [(i, v.strip("'")) for i, v in enumerate(values) if v != "?"]
        copies[table] = (f"COPY {name} ({columns}) FROM STDIN", constants)
    return copies


class PgWriter(RowWriter):
    def __init__(self, url, rules, now, operator):
        from vipcli.dates import iso
        from vipcli.db import connect
        from vipcli.io.writer import SQL

        self.rules, self.now, self.operator = rules, now, operator
        self.tail = (rules.version, operator, iso(now))  # a purchase's last columns, the same for all
        self.sql = SQL
        self.copies = _copies(SQL)
        self.conn = connect(url)
        # Each transaction stays atomic; a crash of the server may lose the last ones' durability, and
        # a re-run of the import (idempotent by receipt) puts them back: the SQLite writer's
        # synchronous = NORMAL.
        self.conn.execute("SET synchronous_commit = off")
        self.seen = None
        self.unchecked = self._skip_row_checks()

    def _skip_row_checks(self) -> bool:
        """PostgreSQL checks each foreign key of each row COPY writes (a locked look-up in the parent
        table): half of an import's time. As the SQLite writer does, this session leaves them to
        construction and `vip check`, when its login may (a superuser, or one granted
        `SET ON PARAMETER session_replication_role`, PostgreSQL 15). The role also stops this session's
        triggers: nothing here updates the ledger or the audit, a customer whose tier it sets has a new
        tier_changes row (which the nightly check reads as the check journal's would), and `slow`
        turns them back on."""
        try:
            self.conn.execute("SET session_replication_role = replica")
        except sqlite3.Error:
            return False
        return True

    def begin(self, defer_index: bool = False) -> bool:
        """The writers' lock; True when another process wrote since our last commit (every write of
        vipcli adds an audit row or a ledger entry; an import adds purchases)."""
        from vipcli.db import translate

        try:
            self.conn.begin_write()
        except sqlite3.Error as exc:
            raise translate(exc) from None
        seen = self._last_ids()
        changed = self.seen is not None and seen != self.seen
        self.seen = seen
        return changed

    def _last_ids(self) -> tuple:
        return tuple(self.conn.execute(
            "SELECT (SELECT MAX(id) FROM audit), (SELECT MAX(id) FROM ledger), (SELECT MAX(id) FROM purchases), "
            "(SELECT MAX(id) FROM customers)").fetchone())

    def write(self, pending: dict) -> None:
        from vipcli.io.writer import TABLES

        try:
            for table in TABLES:
                rows = pending.get(table)
                if not rows:
                    continue
                if table == "purchases":
                    tail = self.tail
                    rows = [row + tail for row in rows]
                if table in self.copies:
                    self._copy(table, rows)
                elif table == "tier_set":
                    self._set_tiers(rows)
                else:
                    self.conn.executemany(self.sql[table], rows)
        except sqlite3.Error as exc:
            raise self._failed(exc) from None

    def _copy(self, table: str, rows) -> None:
        import psycopg

        from vipcli.pg import as_sqlite_error

        statement, constants = self.copies[table]
        try:
            with self.conn.raw.cursor().copy(statement) as copy:
                if constants:
                    for row in rows:
                        row = list(row)
                        for at, value in constants:
                            row.insert(at, value)
                        copy.write_row(row)
                else:
                    for row in rows:
                        copy.write_row(row)
        except psycopg.Error as exc:
            raise as_sqlite_error(exc) from None

    def _set_tiers(self, rows) -> None:
        """io/writer.py's tier_set (tier, since, customer id) as one UPDATE per thousand customers
        instead of one per customer: each statement is a round trip and a plan on a server."""
        for start in range(0, len(rows), 1000):
            chunk = rows[start:start + 1000]
            values = ", ".join(["(?, ?, CAST(? AS BIGINT))"] * len(chunk))
            self.conn.execute(f"UPDATE customers AS c SET tier = v.tier, tier_since = v.since FROM (VALUES {values}) "
                              "AS v(tier, since, id) WHERE c.id = v.id", [x for row in chunk for x in row])

    def commit(self) -> None:
        from vipcli.pg import sync_identities

        try:
            sync_identities(self.conn, _IDS)
            self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._failed(exc) from None
        self.seen = self._last_ids()

    def rollback(self) -> None:
        self.conn.rollback()

    def _before_slow(self) -> None:
        from vipcli.pg import sync_identities

        sync_identities(self.conn, _IDS)  # (its INSERTs take ids after the rows written before it)

    def _checked(self, on: bool) -> None:
        """The exact path of `vip purchase`: foreign keys and the check journal's triggers on."""
        if self.unchecked and self.conn.in_transaction:
            self.conn.execute(f"SET LOCAL session_replication_role = {'origin' if on else 'replica'}")

    def close(self) -> None:
        self.rollback()
        self.conn.close()

    abandon = close
