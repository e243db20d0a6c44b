"""The schema, as numbered forward-only migrations: MIGRATIONS[n - 1] takes a database from
version n - 1 (PRAGMA user_version) to n, inside one write transaction, and is recorded in the
`migrations` table. A database newer than this vipcli is refused, never touched."""

import sqlite3

from vipcli.dates import iso, now
from vipcli.db import engine, transaction
from vipcli.errors import DatabaseProblem
from vipcli.i18n import _

MIGRATIONS: list[tuple[str, str]] = [
    (
        "core: archive, cards, purchases, points ledger, rules, audit",
        """
        CREATE TABLE migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL);
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE rules (
            version INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            body TEXT NOT NULL,
            source TEXT NOT NULL,
            loaded_at TEXT NOT NULL,
            operator TEXT NOT NULL
        );
        CREATE TABLE customers (
            id INTEGER PRIMARY KEY,
            phone TEXT UNIQUE,
            name TEXT,
            gender TEXT CHECK (gender IN ('F', 'M')),
            birthday TEXT,
            id_enc BLOB,
            id_hmac TEXT UNIQUE,
            id_masked TEXT,
            email TEXT,
            address TEXT,
            store TEXT,
            prefs TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL,
            registered_at TEXT,
            tier TEXT,
            tier_since TEXT,
            erased_at TEXT
        );
        CREATE TABLE card_sequences (region TEXT PRIMARY KEY, last INTEGER NOT NULL);
        CREATE TABLE cards (
            card_no TEXT PRIMARY KEY,
            customer_id INTEGER NOT NULL REFERENCES customers(id),
            region TEXT NOT NULL,
            sequence INTEGER NOT NULL,
            status TEXT NOT NULL CHECK (status IN
                ('active', 'discount_only', 'blocked', 'replaced', 'expired', 'cancelled')),
            issued_at TEXT NOT NULL,
            valid_to TEXT NOT NULL,
            reason TEXT NOT NULL,
            renewals INTEGER NOT NULL DEFAULT 0,
            replaced_by TEXT REFERENCES cards(card_no),
            status_at TEXT NOT NULL,
            UNIQUE (region, sequence)
        );
        CREATE INDEX cards_customer ON cards(customer_id);
        CREATE TABLE purchases (
            id INTEGER PRIMARY KEY,
            receipt TEXT NOT NULL UNIQUE,
            customer_id INTEGER NOT NULL REFERENCES customers(id),
            card_no TEXT REFERENCES cards(card_no),
            store TEXT,
            purchased_at TEXT NOT NULL,
            regular INTEGER NOT NULL CHECK (regular >= 0),
            promo INTEGER NOT NULL CHECK (promo >= 0),
            paid INTEGER NOT NULL CHECK (paid >= 0),
            paid_given INTEGER NOT NULL,
            discount_rate TEXT,
            points_earned INTEGER NOT NULL DEFAULT 0,
            refunded INTEGER NOT NULL DEFAULT 0 CHECK (refunded >= 0 AND refunded <= paid),
            rules_version INTEGER NOT NULL REFERENCES rules(version),
            note TEXT,
            operator TEXT NOT NULL,
            recorded_at TEXT NOT NULL
        );
        CREATE INDEX purchases_customer_time ON purchases(customer_id, purchased_at);
        CREATE TABLE refunds (
            id INTEGER PRIMARY KEY,
            purchase_id INTEGER NOT NULL REFERENCES purchases(id),
            amount INTEGER NOT NULL CHECK (amount > 0),
            points_reversed INTEGER NOT NULL,
            refunded_at TEXT NOT NULL,
            operator TEXT NOT NULL
        );
        CREATE TABLE point_lots (
            id INTEGER PRIMARY KEY,
            card_no TEXT NOT NULL REFERENCES cards(card_no),
            purchase_id INTEGER REFERENCES purchases(id),
            points INTEGER NOT NULL,
            earned_at TEXT NOT NULL,
            usable_from TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            remaining INTEGER NOT NULL
        );
        CREATE INDEX point_lots_card ON point_lots(card_no, expires_at);
        CREATE TABLE ledger (
            id INTEGER PRIMARY KEY,
            card_no TEXT NOT NULL REFERENCES cards(card_no),
            lot_id INTEGER NOT NULL REFERENCES point_lots(id),
            kind TEXT NOT NULL CHECK (kind IN
                ('earn', 'redeem', 'expire', 'refund', 'adjust', 'transfer', 'forfeit', 'settle')),
            delta INTEGER NOT NULL,
            at TEXT NOT NULL,
            operator TEXT NOT NULL,
            purchase_id INTEGER REFERENCES purchases(id),
            reason TEXT
        );
        CREATE INDEX ledger_lot ON ledger(lot_id);
        CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
            BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
        CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
            BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
        CREATE TABLE tier_changes (
            id INTEGER PRIMARY KEY,
            customer_id INTEGER NOT NULL REFERENCES customers(id),
            from_tier TEXT,
            to_tier TEXT NOT NULL,
            at TEXT NOT NULL,
            reason TEXT NOT NULL,
            operator TEXT NOT NULL
        );
        CREATE INDEX tier_changes_customer ON tier_changes(customer_id);
        CREATE TABLE changes (
            id INTEGER PRIMARY KEY,
            customer_id INTEGER NOT NULL REFERENCES customers(id),
            field TEXT NOT NULL,
            old TEXT,
            new TEXT,
            at TEXT NOT NULL,
            operator TEXT NOT NULL
        );
        CREATE INDEX changes_customer ON changes(customer_id);
        CREATE TABLE audit (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            operator TEXT NOT NULL,
            command TEXT NOT NULL,
            target TEXT,
            detail TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX audit_at ON audit(at);
        """,
    ),
    (
        "follow-ups (回访) and the registration window carried over on card replacement",
        """
        CREATE TABLE visits (
            id INTEGER PRIMARY KEY,
            customer_id INTEGER NOT NULL REFERENCES customers(id),
            channel TEXT NOT NULL CHECK (channel IN ('phone', 'visit', 'sms', 'email', 'letter')),
            note TEXT,
            at TEXT NOT NULL,
            operator TEXT NOT NULL
        );
        CREATE INDEX visits_customer ON visits(customer_id, at);
        ALTER TABLE cards ADD COLUMN registration_from TEXT;
        UPDATE cards SET registration_from = issued_at;
        """,
    ),
    (
        "yearly gift allowances by tier (the clinic's care packages)",
        """
        CREATE TABLE gifts (
            id INTEGER PRIMARY KEY,
            customer_id INTEGER NOT NULL REFERENCES customers(id),
            card_no TEXT NOT NULL REFERENCES cards(card_no),
            year INTEGER NOT NULL,
            tier TEXT NOT NULL,
            at TEXT NOT NULL,
            operator TEXT NOT NULL
        );
        CREATE INDEX gifts_customer_year ON gifts(customer_id, year);
        """,
    ),
    (
        "request ids: a till's retry after a time-out gets the first answer (vip redeem --request-id)",
        """
        CREATE TABLE requests (
            id TEXT PRIMARY KEY,
            command TEXT NOT NULL,
            params TEXT NOT NULL,
            result TEXT NOT NULL,
            at TEXT NOT NULL,
            operator TEXT NOT NULL
        );
        """,
    ),
    (
        "indexes for what is asked every day: purchases by time (exports), lots and refunds by purchase "
        "(refunds; a purchase's ledger entries are found through its lots), lots still holding points by "
        "expiry (points expire)",
        """
        CREATE INDEX purchases_time ON purchases(purchased_at);
        CREATE INDEX point_lots_purchase ON point_lots(purchase_id);
        CREATE INDEX refunds_purchase ON refunds(purchase_id);
        CREATE INDEX point_lots_live_expiry ON point_lots(expires_at) WHERE remaining > 0;
        """,
    ),
    (
        "the check journal: every change to a checked row since the last clean `vip check`, kept by "
        "triggers (so a change made with any SQLite tool is in it too), so that the nightly check reads "
        "what changed and not every row (vipcli/checks.py)",
        """
        CREATE TABLE check_journal (id INTEGER PRIMARY KEY, tbl TEXT NOT NULL, row_id INTEGER NOT NULL);
        CREATE TRIGGER check_lot_update AFTER UPDATE ON point_lots BEGIN
            INSERT INTO check_journal(tbl, row_id) VALUES ('point_lots', OLD.id), ('point_lots', NEW.id); END;
        CREATE TRIGGER check_lot_delete AFTER DELETE ON point_lots BEGIN
            INSERT INTO check_journal(tbl, row_id) VALUES ('point_lots', OLD.id); END;
        CREATE TRIGGER check_purchase_update AFTER UPDATE ON purchases BEGIN
            INSERT INTO check_journal(tbl, row_id) VALUES ('purchases', OLD.id), ('purchases', NEW.id); END;
        CREATE TRIGGER check_purchase_delete AFTER DELETE ON purchases BEGIN
            INSERT INTO check_journal(tbl, row_id) VALUES ('purchases', OLD.id); END;
        CREATE TRIGGER check_refund_update AFTER UPDATE ON refunds BEGIN
            INSERT INTO check_journal(tbl, row_id)
            VALUES ('purchases', OLD.purchase_id), ('purchases', NEW.purchase_id); END;
        CREATE TRIGGER check_refund_delete AFTER DELETE ON refunds BEGIN
            INSERT INTO check_journal(tbl, row_id) VALUES ('purchases', OLD.purchase_id); END;
        CREATE TRIGGER check_customer_update AFTER UPDATE OF id, tier, id_enc, id_hmac ON customers BEGIN
            INSERT INTO check_journal(tbl, row_id) VALUES ('customers', OLD.id), ('customers', NEW.id); END;
        CREATE TRIGGER check_customer_delete AFTER DELETE ON customers BEGIN
            INSERT INTO check_journal(tbl, row_id) VALUES ('customers', OLD.id); END;
        CREATE TRIGGER check_tier_change_update AFTER UPDATE ON tier_changes BEGIN
            INSERT INTO check_journal(tbl, row_id)
            VALUES ('customers', OLD.customer_id), ('customers', NEW.customer_id); END;
        CREATE TRIGGER check_tier_change_delete AFTER DELETE ON tier_changes BEGIN
            INSERT INTO check_journal(tbl, row_id) VALUES ('customers', OLD.customer_id); END;
        CREATE TRIGGER check_card_update AFTER UPDATE ON cards BEGIN
            INSERT INTO check_journal(tbl, row_id) VALUES ('cards', OLD.rowid), ('cards', NEW.rowid); END;
        CREATE TRIGGER check_card_delete AFTER DELETE ON cards BEGIN
            INSERT INTO check_journal(tbl, row_id) VALUES ('cards', OLD.rowid); END;
        """,
    ),
    (
        "a receipt number is unique per store, not in the whole database: a chain's stores may number "
        "their receipts alike (no store is a store of its own). SQLite cannot drop a column's UNIQUE, so "
        "the table is built again (PostgreSQL drops the constraint: vipcli/pg.py)",
        """
        CREATE TABLE purchases_by_store (
            id INTEGER PRIMARY KEY,
            receipt TEXT NOT NULL,
            customer_id INTEGER NOT NULL REFERENCES customers(id),
            card_no TEXT REFERENCES cards(card_no),
            store TEXT,
            purchased_at TEXT NOT NULL,
            regular INTEGER NOT NULL CHECK (regular >= 0),
            promo INTEGER NOT NULL CHECK (promo >= 0),
            paid INTEGER NOT NULL CHECK (paid >= 0),
            paid_given INTEGER NOT NULL,
            discount_rate TEXT,
            points_earned INTEGER NOT NULL DEFAULT 0,
            refunded INTEGER NOT NULL DEFAULT 0 CHECK (refunded >= 0 AND refunded <= paid),
            rules_version INTEGER NOT NULL REFERENCES rules(version),
            note TEXT,
            operator TEXT NOT NULL,
            recorded_at TEXT NOT NULL
        );
        INSERT INTO purchases_by_store SELECT * FROM purchases;
        DROP TABLE purchases;
        ALTER TABLE purchases_by_store RENAME TO purchases;
        CREATE UNIQUE INDEX purchases_receipt_store ON purchases(receipt, COALESCE(store, ''));
        CREATE INDEX purchases_customer_time ON purchases(customer_id, purchased_at);
        CREATE INDEX purchases_time ON purchases(purchased_at);
        CREATE TRIGGER check_purchase_update AFTER UPDATE ON purchases BEGIN
            INSERT INTO check_journal(tbl, row_id) VALUES ('purchases', OLD.id), ('purchases', NEW.id); END;
        CREATE TRIGGER check_purchase_delete AFTER DELETE ON purchases BEGIN
            INSERT INTO check_journal(tbl, row_id) VALUES ('purchases', OLD.id); END;
        """,
    ),
    (
        "roles and card applications: who may do what (clerk, manager, hq, auditor), and the applications "
        "a profile with card_issue = \"review\" opens instead of issuing a card (56饰, 003 贵宾卡申办及发放流程)",
        """
        CREATE TABLE users (
            name TEXT PRIMARY KEY,
            role TEXT NOT NULL CHECK (role IN ('clerk', 'manager', 'hq', 'auditor')),
            store TEXT,
            added_at TEXT NOT NULL,
            added_by TEXT NOT NULL
        );
        CREATE TABLE applications (
            id INTEGER PRIMARY KEY,
            customer_id INTEGER NOT NULL REFERENCES customers(id),
            status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
            reason TEXT NOT NULL,
            opened_by INTEGER REFERENCES purchases(id),
            store TEXT,
            applied_at TEXT NOT NULL,
            operator TEXT NOT NULL,
            decided_at TEXT,
            decided_by TEXT,
            card_no TEXT REFERENCES cards(card_no),
            note TEXT
        );
        CREATE UNIQUE INDEX applications_one_pending ON applications(customer_id) WHERE status = 'pending';
        CREATE INDEX applications_status ON applications(status, id);
        CREATE TABLE application_receipts (
            application_id INTEGER NOT NULL REFERENCES applications(id),
            purchase_id INTEGER NOT NULL REFERENCES purchases(id),
            PRIMARY KEY (application_id, purchase_id)
        );
        """,
    ),
]
REBUILDS = {7}  # migrations that build a table again: SQLite's foreign keys are off while they run

SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn, current: int | None = None) -> None:
    """Bring the database to SCHEMA_VERSION (`current`: its version, when the caller has read it)."""
    current = _version(conn) if current is None else current
    if current > SCHEMA_VERSION:
        raise DatabaseProblem(
            _("this database has schema version {current}, newer than this vipcli knows ({schema_version}); "
              "upgrade vipcli").format(
                current=current, schema_version=SCHEMA_VERSION),
            code="newer_schema",
        )
    if current == SCHEMA_VERSION:
        return
    rebuilds = engine(conn) == "sqlite" and any(n in REBUILDS for n in range(current + 1, SCHEMA_VERSION + 1))
    if rebuilds:
        conn.execute("PRAGMA foreign_keys = OFF")  # (a no-op inside a transaction: set before it)
    try:
        _migrate(conn)
    finally:
        if rebuilds:
            conn.execute("PRAGMA foreign_keys = ON")


def _migrate(conn) -> None:
    with transaction(conn):
        current = _version(conn)  # re-read under the lock
        for number in range(current + 1, SCHEMA_VERSION + 1):
            name, script = MIGRATIONS[number - 1]
            for statement in _engine_statements(conn, number, script):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO migrations VALUES (?, ?, ?)", (number, name, iso(now()))
            )
            if engine(conn) == "sqlite":
                conn.execute(f"PRAGMA user_version = {number}")
        if engine(conn) == "postgresql":
            from vipcli import pg

            pg.grant_tills(conn)


def _version(conn) -> int:
    if engine(conn) == "postgresql":
        from vipcli import pg

        return pg.schema_version(conn)
    return conn.execute("PRAGMA user_version").fetchone()[0]


def _engine_statements(conn, number: int, script: str):
    """The migration's statements for this engine: on PostgreSQL, its tables in PostgreSQL's types and
    its triggers in PostgreSQL's language (vipcli/pg.py)."""
    if engine(conn) == "sqlite":
        yield from _statements(script)
        return
    from vipcli import pg

    if number in pg.INSTEAD:
        yield from pg.statements(pg.INSTEAD[number])
        return
    for statement in _statements(script):
        if not statement.lstrip().upper().startswith("CREATE TRIGGER"):
            yield pg.ddl(statement)
    yield from pg.statements(pg.TRIGGERS.get(number, ""))


def _statements(script: str):
    """Split a migration script into statements (sqlite3.execute runs one at a time; executescript
    would commit our transaction)."""
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                yield buffer
            buffer = ""
