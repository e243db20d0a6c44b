"""The database file: opening (WAL, busy timeout, 0600), numbered forward-only migrations, write
transactions taken with BEGIN IMMEDIATE, the stored rules and the audit log.

sqlite3 from the standard library on purpose: `vip purchase` must start fast, and sqlite-utils
costs ~150 ms of imports (it is used by the exporters and benchmarks, off the hot path).
"""

import json
import os
import sqlite3
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from vipcli import rules as rules_mod
from vipcli.dates import iso
from vipcli.errors import DatabaseProblem, NotFound



def busy_timeout() -> float:
    """Seconds a write waits for another writer before giving up (exit 4); VIPCLI_BUSY_TIMEOUT."""
    return float(os.environ.get("VIPCLI_BUSY_TIMEOUT", "15"))

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
]

SCHEMA_VERSION = len(MIGRATIONS)


def default_path() -> Path:
    import typer  # already imported by the CLI; only used for its app-dir convention

    return Path(typer.get_app_dir("vipcli")) / "vip.db"


def connect_raw(path: str | os.PathLike, create: bool = False) -> sqlite3.Connection:
    """The file opened with the busy timeout, without migrating it. Only `create` makes a missing file
    (0600): a mistyped path is an error, never a new empty database (SPEC §6)."""
    path = Path(path)
    if not path.exists():
        if not create:
            raise DatabaseProblem(f"no vipcli database at {path} (run vip init)", code="no_database")
        _create_private(path)
    elif not create and path.is_file() and path.stat().st_size == 0:
        # An empty file is not a database to fill silently (a truncated copy, a wrong path).
        raise DatabaseProblem(f"{path} is an empty file, not a vipcli database (run vip init to make one)",
                              code="no_database")
    timeout = busy_timeout()
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
    return conn


def connect(path: str | os.PathLike, create: bool = False) -> sqlite3.Connection:
    """Open and migrate the database file; with `create` (vip init, vip demo, vip restore), a missing
    file is created with mode 0600."""
    path = Path(path)
    if not create and path.is_file() and not os.access(path.parent, os.W_OK):
        return _connect_read_only(path)
    try:
        conn = connect_raw(path, create)
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        if mode != "wal":
            # A new file gets 16 KB pages (SQLite's default is 4 KB; this does nothing to a file
            # that has tables already): a large import writes a quarter as many pages to the WAL
            # and copies a quarter as many into the file (1,000,000 rows: 71,000 writes instead of
            # 277,000), and a 200,000-row import takes about 8 % less time and CPU.
            conn.execute("PRAGMA page_size = 16384")
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        # A large import checkpoints beside its next inserts, so its WAL restarts only now and
        # then (io/writer.py WAL_LIMIT, 256 MB); when the WAL is next reset, the file is cut back
        # to 64 MB instead of keeping that size.
        conn.execute("PRAGMA journal_size_limit = 67108864")
        conn.execute("PRAGMA foreign_keys = ON")
        # Freed bytes are overwritten, so erased or changed personal data does not linger in free
        # pages or cell gaps of the file.
        conn.execute("PRAGMA secure_delete = ON")
        _migrate(conn)
        _restore_deferred_index(conn)
    except sqlite3.DatabaseError as exc:
        raise translate(exc, path) from None
    return conn


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """A database in a folder this user can't write (a read-only mount, a backup on a locked share):
    SQLite could not make its -shm file there, so it is opened read-only, as an immutable file when
    no WAL is left beside it. Reading commands work; a write says why it can't."""
    from urllib.parse import quote

    wal = Path(f"{path}-wal")
    uri = f"file:{quote(str(path))}?mode=ro" + ("" if wal.exists() and wal.stat().st_size else "&immutable=1")
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=busy_timeout(), isolation_level=None)
        conn.row_factory = sqlite3.Row
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise translate(exc, path) from None
    if version != SCHEMA_VERSION:
        raise DatabaseProblem(f"{path} is read-only here and has schema {version}, not {SCHEMA_VERSION}: "
                              "open it where it can be written (to migrate it) first", code="read_only")
    return conn


def _create_private(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
    except FileExistsError:
        pass  # another process created it first
    except OSError as exc:
        raise DatabaseProblem(f"cannot create database {path}: {exc.strerror}") from None


def translate(exc: sqlite3.Error, path=None) -> DatabaseProblem:
    """A plain one-line message for a database failure; never SQLite's raw text alone."""
    text = str(exc)
    if "disk is full" in text or "disk I/O error" in text:
        return DatabaseProblem(f"{path or 'the database'}: the disk is full (or failing): nothing was written; "
                               "free some space and run the command again", code="disk_full")
    if "locked" in text or "busy" in text:
        return DatabaseProblem(
            f"the database is busy: another vip command held it for over {busy_timeout():g} s; "
            "nothing was written, try again",
            code="busy",
        )
    if "readonly" in text or "read-only" in text:
        return DatabaseProblem(f"{path or 'the database'} is read-only here (its folder can't be written): "
                               "only reading commands work; nothing was written", code="read_only")
    if "not a database" in text or "malformed" in text:
        return DatabaseProblem(f"{path or 'the database'} is damaged or not a vipcli database ({text})",
                               code="corrupt")
    return DatabaseProblem(f"database error: {text}")


def _migrate(conn: sqlite3.Connection) -> None:
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    if current > SCHEMA_VERSION:
        raise DatabaseProblem(
            f"this database has schema version {current}, newer than this vipcli knows "
            f"({SCHEMA_VERSION}); upgrade vipcli",
            code="newer_schema",
        )
    if current == SCHEMA_VERSION:
        return
    with transaction(conn):
        current = conn.execute("PRAGMA user_version").fetchone()[0]  # re-read under the lock
        for number in range(current + 1, SCHEMA_VERSION + 1):
            name, script = MIGRATIONS[number - 1]
            for statement in _statements(script):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO migrations VALUES (?, ?, ?)", (number, name, iso(datetime.now()))
            )
            conn.execute(f"PRAGMA user_version = {number}")


# A bulk import defers this index (built once at its end, from sorted keys, instead of one random
# insert per row); one that was killed leaves it missing, and the next command rebuilds it.
DEFERRABLE_INDEX = "CREATE INDEX IF NOT EXISTS purchases_customer_time ON purchases(customer_id, purchased_at)"


def defer_index(conn: sqlite3.Connection, owner: int) -> None:
    """Inside the caller's transaction: drop the index; `owner` (a pid) will build it again."""
    conn.execute("DROP INDEX IF EXISTS purchases_customer_time")
    set_meta(conn, "index_deferred_by", str(owner))


def has_deferrable_index(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'purchases_customer_time'").fetchone() is not None


def build_deferred_index(conn: sqlite3.Connection) -> None:
    """Inside the caller's transaction: the index back, its owner forgotten."""
    conn.execute(DEFERRABLE_INDEX)
    conn.execute("DELETE FROM meta WHERE key = 'index_deferred_by'")


def _restore_deferred_index(conn: sqlite3.Connection) -> None:
    """Rebuild the purchases index an import deferred, unless that import is still running."""
    if has_deferrable_index(conn):
        return
    owner = get_meta(conn, "index_deferred_by")
    if owner is not None and owner.isdigit() and _running(int(owner)):
        return  # the import builds it when it ends
    with transaction(conn):
        build_deferred_index(conn)


def _running(pid: int) -> bool:
    if os.name != "posix":
        return False  # imports defer the index only on POSIX (on Windows, kill(pid, 0) would kill)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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


@contextmanager
def transaction(conn: sqlite3.Connection, dry_run: bool = False):
    """One write transaction holding the write lock from its first statement (BEGIN IMMEDIATE), so
    what it reads cannot change under it before it writes. `dry_run`: everything is done, then
    rolled back (what a command would do, shown before it is asked for)."""
    try:
        with waiting_for_the_lock(conn):
            conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        raise translate(exc) from None
    try:
        yield conn
    except BaseException:
        _rollback(conn)
        raise
    if dry_run:
        conn.execute("ROLLBACK")
        return
    try:
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        _rollback(conn)
        raise translate(exc) from None


def _rollback(conn) -> None:
    """Undo what is left: SQLite has already rolled back after some failures (a full disk), and a
    second ROLLBACK would hide the first error behind "no transaction is active"."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")


# --- fairness between a long writer and the tills ------------------------------------------------
#
# SQLite has no queue for its write lock: a waiting process retries now and then (every 100 ms at
# most), and a writer that commits and begins again at once (an import, transaction after
# transaction) can keep it out for many transactions (a till waited 7 s behind a 1,000,000-row
# import). So a process waiting for the lock says so, with a shared lock on a file beside the
# database, and the long writer lets every such waiter in before its next transaction.


def _waiters_file(conn) -> str | None:
    path = conn.execute("PRAGMA database_list").fetchone()[2]
    return path + "-waiting" if path else None


@contextmanager
def waiting_for_the_lock(conn):
    """Hold a shared lock on DATABASE-waiting while this block waits for SQLite's write lock."""
    path = _waiters_file(conn) if os.name == "posix" else None
    if path is None:
        yield
        return
    import fcntl

    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:  # a read-only folder: no queue, SQLite's own retries only
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # (closing releases the lock)


def let_waiters_in(conn) -> None:
    """Between a long writer's transactions: wait until no process is waiting for the write lock
    (each has taken it, so the next BEGIN IMMEDIATE queues behind them), at most the busy timeout."""
    path = _waiters_file(conn) if os.name == "posix" else None
    if path is None or not os.path.exists(path):
        return
    import fcntl
    import time

    fd = os.open(path, os.O_RDWR)
    try:
        deadline = time.monotonic() + busy_timeout()
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return  # waiters that never get the lock: go on, SQLite times them out
                time.sleep(0.005)
    finally:
        os.close(fd)


# --- meta, rules, audit ---------------------------------------------------------------------------


def get_meta(conn, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


def set_meta(conn, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def current_rules(conn) -> rules_mod.Rules:
    """The rules in force; a database without any gets the built-in profile as version 1."""
    row = conn.execute("SELECT version, body FROM rules ORDER BY version DESC LIMIT 1").fetchone()
    if row is None:
        with transaction(conn):
            row = conn.execute("SELECT version, body FROM rules ORDER BY version DESC LIMIT 1").fetchone()
            if row is None:
                text = rules_mod.default_text()
                version = store_rules(conn, text, "built-in:store", "vipcli")
                return rules_mod.parse(text, version)
    return rules_mod.parse(row["body"], row["version"])


def rules_version(conn, version: int) -> rules_mod.Rules:
    row = conn.execute("SELECT body FROM rules WHERE version = ?", (version,)).fetchone()
    if row is None:
        raise NotFound(f"rules version {version} is not in this database")
    return rules_mod.parse(row["body"], version)


def store_rules(conn, text: str, source: str, operator: str) -> int:
    """Store a validated profile as the next rules version (inside the caller's transaction)."""
    parsed = rules_mod.parse(text)
    cur = conn.execute(
        "INSERT INTO rules(name, body, source, loaded_at, operator) VALUES (?, ?, ?, ?, ?)",
        (parsed.name, text, source, iso(datetime.now()), operator),
    )
    return cur.lastrowid


def audit(conn, at: datetime, operator: str, command: str, target: str | None = None, **detail) -> None:
    conn.execute(
        "INSERT INTO audit(at, operator, command, target, detail) VALUES (?, ?, ?, ?, ?)",
        (iso(at), operator, command, target, json.dumps(detail, ensure_ascii=False, default=str)),
    )


def audit_entries(conn, since: str | None, operator: str | None, command: str | None, limit: int) -> list[dict]:
    """The audit log, newest first, filtered (`since`: ISO text); details as objects."""
    sql, params = "SELECT * FROM audit WHERE 1 = 1", []
    for condition, value in (("at >= ?", since), ("operator = ?", operator), ("command = ?", command)):
        if value:
            sql += f" AND {condition}"
            params.append(value)
    return [{**dict(r), "detail": json.loads(r["detail"])}
            for r in conn.execute(sql + " ORDER BY id DESC LIMIT ?", (*params, limit))]


def counts(conn) -> dict[str, int]:
    """Rows in the main tables (vip info)."""
    return {name: conn.execute(f"SELECT COUNT(*) FROM {name}").fetchone()[0]
            for name in ("customers", "cards", "purchases", "ledger")}


def last_id(conn, table: str) -> int:
    """The greatest id of `table` (0 when empty): what an import saved after it is what comes above."""
    return conn.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()[0]


def count_after(conn, table: str, last: int) -> int:
    return conn.execute(f"SELECT COUNT(*) FROM {table} WHERE id > ?", (last,)).fetchone()[0]


def has_rules(conn) -> bool:
    return conn.execute("SELECT 1 FROM rules LIMIT 1").fetchone() is not None
