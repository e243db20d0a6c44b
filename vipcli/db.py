"""The database: a SQLite file (WAL, busy timeout, 0600; the schema in vipcli/migrations.py), or a
chain's PostgreSQL database (a `postgresql://` URL: what differs is in vipcli/pg.py); write
transactions that hold the write lock from their first statement, and the fairness between a long
writer and the tills. The stored rules are in vipcli/rulebook.py, the audit log in vipcli/auditlog.py.

sqlite3 from the standard library on purpose: `vip purchase` must start fast, and sqlite-utils
costs more imports than the whole of `vip purchase` (it is used by the exporters, off the hot path).
"""

import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path

from vipcli.errors import DatabaseProblem
from vipcli.i18n import _



def busy_timeout() -> float:
    """Seconds a write waits for another writer before giving up (exit 4); VIPCLI_BUSY_TIMEOUT."""
    return float(os.environ.get("VIPCLI_BUSY_TIMEOUT", "15"))



def connect_raw(path: str | os.PathLike, create: bool = False) -> sqlite3.Connection:
    """The file opened with the busy timeout, without migrating it. Only `create` makes a missing file
    (0600): a mistyped path is an error, never a new empty database (SPEC §6)."""
    path = Path(path)
    if not path.exists():
        if not create:
            raise DatabaseProblem(_("no vipcli database at {path} (run vip init)").format(
                                      path=path), code="no_database")
        _create_private(path)
    elif not create and path.is_file() and path.stat().st_size == 0:
        # An empty file is not a database to fill silently (a truncated copy, a wrong path).
        raise DatabaseProblem(_("{path} is an empty file, not a vipcli database (run vip init to make one)").format(
                                  path=path),
                              code="no_database")
    timeout = busy_timeout()
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
    return conn


def engine(conn) -> str:
    """"sqlite" or "postgresql"."""
    return getattr(conn, "engine", "sqlite")


def file_path(conn) -> str | None:
    """The SQLite file behind `conn` (None for PostgreSQL, or a database in memory)."""
    if engine(conn) != "sqlite":
        return None
    return conn.execute("PRAGMA database_list").fetchone()[2] or None


def connect(target: str | os.PathLike, create: bool = False):
    """Open and migrate the database: a file, where `create` (vip init, vip demo, vip restore) makes a
    missing one with mode 0600; or a PostgreSQL URL, where `create` makes the schema."""
    from vipcli import pg

    if pg.is_url(target):
        return _connect_postgresql(target, create)
    path = Path(target)
    if not create and path.is_file() and not os.access(path.parent, os.W_OK):
        return _connect_read_only(path)
    try:
        conn = connect_raw(path, create)
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        if mode != "wal":
            # A new file gets 16 KB pages (SQLite's default is 4 KB; this does nothing to a file
            # that has tables already): a large import writes a quarter as many pages to the WAL
            # and copies a quarter as many into the file (measured in docs/performance.md).
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
        from vipcli import migrations  # (it builds on transaction, below)

        migrations.migrate(conn)
        _restore_deferred_index(conn)
    except sqlite3.DatabaseError as exc:
        raise translate(exc, path) from None
    return conn


def _connect_postgresql(url: str, create: bool):
    from vipcli import migrations, pg

    conn = pg.connect(url, busy_timeout())
    try:
        try:
            version = pg.schema_version(conn)
        except sqlite3.OperationalError as exc:
            if not str(exc).startswith("not allowed"):
                raise
            from vipcli.roles import NotAllowed  # (a login without a vipcli role: unrecorded, it may write nothing)

            login = pg.login(conn)
            raise NotAllowed(_("not allowed: the login {login} holds no vipcli role in this database (an hq user "
                               "adds it: vip user add {login} --role clerk)").format(login=login)) from None
        if not create and not version:
            raise DatabaseProblem(_("no vipcli database at {path} (run vip init)").format(path=pg.redacted(url)),
                                  code="no_database")
        migrations.migrate(conn, version)  # (no index is deferred here: the import's COPY keeps them)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise translate(exc, pg.redacted(url)) from None
    except BaseException:
        conn.close()
        raise
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
    from vipcli.migrations import SCHEMA_VERSION

    if version != SCHEMA_VERSION:
        raise DatabaseProblem(_("{path} is read-only here and has schema {version}, not {schema_version}: open it "
                                "where it can be written (to migrate it) first").format(
                                  path=path, version=version, schema_version=SCHEMA_VERSION), code="read_only")
    return conn


def _create_private(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
    except FileExistsError:
        pass  # another process created it first
    except OSError as exc:
        raise DatabaseProblem(_("cannot create database {path}: {strerror}").format(
                                  path=path, strerror=exc.strerror)) from None


def translate(exc: sqlite3.Error, path=None) -> DatabaseProblem:
    """A plain one-line message for a database failure; never SQLite's raw text alone."""
    text = str(exc)
    if "disk is full" in text or "disk I/O error" in text:
        return DatabaseProblem(_("{value}: the disk is full (or failing): nothing was written; free some space and "
                                 "run the command again").format(
                                   value=path or 'the database'), code="disk_full")
    if "locked" in text or "busy" in text:
        return DatabaseProblem(
            _("the database is busy: another vip command held it for over {value:g} s; nothing was written, try "
              "again").format(
                value=busy_timeout()),
            code="busy",
        )
    if "readonly" in text or "read-only" in text:
        return DatabaseProblem(_("{value} is read-only here (its folder can't be written): only reading commands "
                                 "work; nothing was written").format(
                                   value=path or 'the database'), code="read_only")
    if "not a database" in text or "malformed" in text:
        return DatabaseProblem(_("{value} is damaged or not a vipcli database ({text})").format(
                                   value=path or 'the database', text=text),
                               code="corrupt")
    return DatabaseProblem(_("database error: {text}").format(text=text))


# A bulk import defers this index (built once at its end, from sorted keys, instead of one random
# insert per row); one that was killed leaves it missing, and the next command rebuilds it.
DEFERRABLE_INDEX = "CREATE INDEX IF NOT EXISTS purchases_customer_time ON purchases(customer_id, purchased_at)"


def defer_index(conn: sqlite3.Connection, owner: int) -> None:
    """Inside the caller's transaction: drop the index; `owner` (a pid) will build it again."""
    conn.execute("DROP INDEX IF EXISTS purchases_customer_time")
    set_meta(conn, "index_deferred_by", str(owner))


def has_deferrable_index(conn) -> bool:
    if engine(conn) == "postgresql":
        return conn.execute("SELECT to_regclass('purchases_customer_time') IS NOT NULL").fetchone()[0]
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


@contextmanager
def transaction(conn: sqlite3.Connection, dry_run: bool = False):
    """One write transaction holding the write lock from its first statement (BEGIN IMMEDIATE), so
    what it reads cannot change under it before it writes. `dry_run`: everything is done, then
    rolled back (what a command would do, shown before it is asked for)."""
    try:
        if engine(conn) == "postgresql":
            conn.begin_write()  # (the writers' lock: vipcli/pg.py)
        else:
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


def begin_read(conn) -> None:
    """A read transaction: everything it reads from one snapshot."""
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ" if engine(conn) == "postgresql" else "BEGIN")


def _rollback(conn) -> None:
    """Undo what is left: SQLite has already rolled back after some failures (a full disk), and a
    second ROLLBACK would hide the first error behind "no transaction is active"."""
    if engine(conn) == "postgresql":
        conn.rollback()  # (or, when the connection cannot take one, closed: vipcli/pg.py)
    elif conn.in_transaction:
        conn.execute("ROLLBACK")


# --- fairness between a long writer and the tills ------------------------------------------------
#
# SQLite has no queue for its write lock: a waiting process retries now and then (every 100 ms at
# most), and a writer that commits and begins again at once (an import, transaction after
# transaction) can keep it out for many transactions (benchmarks/till_during_import.py). So a process waiting for the lock says so, with a shared lock on a file beside the
# database, and the long writer lets every such waiter in before its next transaction.


def _waiters_file(conn) -> str | None:
    path = file_path(conn)  # (PostgreSQL queues its lock's waiters itself)
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


# --- meta, counts ---------------------------------------------------------------------------


def get_meta(conn, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


def set_meta(conn, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def counts(conn) -> dict[str, int]:
    """Rows in the main tables (vip info)."""
    return {name: conn.execute(f"SELECT COUNT(*) FROM {name}").fetchone()[0]
            for name in ("customers", "cards", "purchases", "ledger")}


def last_id(conn, table: str) -> int:
    """The greatest id of `table` (0 when empty): what an import saved after it is what comes above."""
    return conn.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()[0]


def count_after(conn, table: str, last: int) -> int:
    return conn.execute(f"SELECT COUNT(*) FROM {table} WHERE id > ?", (last,)).fetchone()[0]
