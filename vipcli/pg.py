"""The PostgreSQL engine: a chain's tills sharing one database (`--db postgresql://…`).

The domain writes its SQL once, in what both engines accept (`?` and `:name` parameters,
`ON CONFLICT`, `RETURNING`, standard functions). This module is what differs:

- `Connection` wraps a psycopg 3 connection in the few methods the domain uses of sqlite3's
  (`execute`, `executemany`, `cursor`, `in_transaction`), turning `?` / `:name` into psycopg's
  `%s` / `%(name)s`, giving rows that answer by position and by name as sqlite3.Row does, sums
  (NUMERIC in PostgreSQL) as int, and reporting failures as the DB-API classes of sqlite3 the
  domain already handles (a lock wait past the busy timeout is `database is locked`: exit 4).
- `ddl()` turns a migration's tables into PostgreSQL's types (ids BIGINT identity, money BIGINT,
  text in the "C" collation so that order and comparison are SQLite's byte order, BLOB -> BYTEA);
  triggers, written in each engine's language, are in `TRIGGERS`, by migration number.
- Writes: `begin_write` is the chain's BEGIN IMMEDIATE. Every write transaction of vipcli first
  takes one transaction-scoped advisory lock, so writers run one at a time, exactly as on SQLite,
  and whatever a read-modify-write reads after it (READ COMMITTED: each statement sees all that was
  committed before it) cannot change before it commits. Readers never wait (MVCC). A write is a few
  milliseconds, so one server serialises hundreds of purchases a second (benchmarks/chain.py).

psycopg is imported only when a PostgreSQL URL is used: a single store's `vip purchase` never
loads it.
"""

import os
import re
import sqlite3

from vipcli import pg_roles
from vipcli.errors import DatabaseProblem
from vipcli.i18n import _

WRITE_LOCK = 0x76697063  # "vipc": the advisory lock every write transaction takes first


def is_url(target) -> bool:
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def connect(url: str, busy_timeout: float):
    try:
        import psycopg
    except ImportError:
        raise DatabaseProblem(_("PostgreSQL needs psycopg: pip install 'psycopg[binary]'"),
                              code="no_driver") from None
    try:
        # Parameters bound in the client, as literals: PostgreSQL then types them from where they stand
        # (`? IS NULL OR store = ?`), as SQLite does, instead of refusing a parameter it cannot type.
        raw = psycopg.connect(url, autocommit=True, connect_timeout=max(1, int(busy_timeout)),
                              cursor_factory=psycopg.ClientCursor)
    except psycopg.Error as exc:
        raise DatabaseProblem(_("cannot connect to {url}: {text}").format(
            url=redacted(url), text=_first_line(exc)), code="no_database") from None
    raw.adapters.register_loader("numeric", _integral_numeric_loader())
    conn = Connection(raw, url)
    conn.execute(f"SET lock_timeout = '{int(busy_timeout * 1000)}ms'")
    return conn


def login(conn) -> str:
    """Who is connected: the operator every write records on a chain's database."""
    return conn.execute("SELECT current_user").fetchone()[0]


def redacted(url: str) -> str:
    """The URL without a password (which belongs in ~/.pgpass, never in a command line or a log)."""
    return re.sub(r"(//[^/:@]*):[^@/]*@", r"\1:***@", url)


def _first_line(exc) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _integral_numeric_loader():
    from psycopg.types.numeric import NumericLoader

    class IntegralNumeric(NumericLoader):
        """SUM() of BIGINT is NUMERIC in PostgreSQL: whole numbers come back as int, as in SQLite."""

        def load(self, data):
            value = super().load(data)
            return int(value) if value == value.to_integral_value() else value

    return IntegralNumeric


# --- the connection ----------------------------------------------------------------------------

class Row(tuple):
    """A row by position and by name (`row[0]`, `row["phone"]`, `dict(row)`), as sqlite3.Row."""

    _index: dict = {}

    def __getitem__(self, key):
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self):
        return list(self._index)


_row_classes: dict[tuple, type] = {}  # a Row class for each list of column names met


def _named_rows(cursor):
    if cursor.description is None:
        return tuple
    names = tuple(column.name for column in cursor.description)
    cls = _row_classes.get(names)
    if cls is None:
        index = {name: i for i, name in enumerate(names)}
        cls = _row_classes[names] = type("Row", (Row,), {"_index": index, "__slots__": ()})
    return cls


def _tuple_rows(cursor):
    return tuple


_PARAM = re.compile(r"'(?:[^']|'')*'|\"[^\"]*\"|::|\?|%|(?<![:\w]):([A-Za-z_]\w*)")
_translated: dict = {}


def translate_sql(sql: str, params=None) -> str:
    """With parameters: `?` -> `%s` and `:name` -> `%(name)s` outside quotes, `%` -> `%%` everywhere
    (psycopg reads it inside quotes too)."""
    if params is None:
        return sql
    named = isinstance(params, dict)
    key = (sql, named)
    found = _translated.get(key)
    if found is None:
        def swap(match):
            text = match.group(0)
            if text == "?":
                return "%s"
            if text == "%":
                return "%%"
            if match.group(1) is not None and named:
                return f"%({match.group(1)})s"
            return text.replace("%", "%%")  # (psycopg reads % inside quotes too)

        found = _translated[key] = _PARAM.sub(swap, sql)
    return found


class Cursor:
    """What `conn.cursor()` gives: rows as tuples when row_factory is None (sqlite3's way)."""

    def __init__(self, conn):
        self._conn = conn
        self.row_factory = "named"

    def execute(self, sql, params=None):
        return self._conn.execute(sql, params, tuples=self.row_factory is None)


class Connection:
    engine = "postgresql"

    def __init__(self, raw, url: str):
        self.raw = raw
        self.url = url
        self.row_factory = None  # (accepted and ignored: rows always answer by name and position)

    def execute(self, sql: str, params=None, tuples: bool = False):
        import psycopg

        cursor = self.raw.cursor(row_factory=_tuple_rows if tuples else _named_rows)
        try:
            cursor.execute(translate_sql(sql, params), params)
        except psycopg.Error as exc:
            raise as_sqlite_error(exc) from None
        return _Result(cursor)

    def executemany(self, sql: str, rows):
        import psycopg

        rows = list(rows)
        if not rows:
            return None
        cursor = self.raw.cursor()
        try:
            cursor.executemany(translate_sql(sql, rows[0]), rows)
        except psycopg.Error as exc:
            raise as_sqlite_error(exc) from None
        return cursor

    def cursor(self) -> Cursor:
        return Cursor(self)

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return not self.raw.closed and self.raw.info.transaction_status != TransactionStatus.IDLE

    def begin_write(self) -> None:
        """BEGIN, then the writers' lock (waiting at most lock_timeout: then `database is locked`)."""
        self.execute("BEGIN")
        try:
            self.execute("SELECT pg_advisory_xact_lock(?)", (WRITE_LOCK,))
        except sqlite3.Error:
            self.execute("ROLLBACK")
            raise

    def rollback(self) -> None:
        """Undo the open transaction; when the connection cannot take a ROLLBACK (Ctrl-C landed in the
        middle of a statement or a COPY), close it instead: the server rolls back what was not committed."""
        if not self.in_transaction:
            return
        try:
            self.execute("ROLLBACK")
        except (sqlite3.Error, KeyboardInterrupt):
            self.raw.close()

    def close(self) -> None:
        self.raw.close()


class _Result:
    """A finished statement: rows to fetch or iterate, lastrowid (None: use RETURNING), rowcount."""

    __slots__ = ("_cursor",)
    lastrowid = None

    def __init__(self, cursor):
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def description(self):
        return self._cursor.description

    def fetchone(self):
        return self._cursor.fetchone() if self._cursor.description is not None else None

    def fetchall(self):
        return self._cursor.fetchall() if self._cursor.description is not None else []

    def fetchmany(self, size: int):
        return self._cursor.fetchmany(size)

    def __iter__(self):
        return iter(self._cursor) if self._cursor.description is not None else iter(())


def as_sqlite_error(exc) -> sqlite3.Error:
    """psycopg's failure as the DB-API class (of sqlite3) the domain handles, with a plain text."""
    from psycopg import errors

    text = _first_line(exc)
    if isinstance(exc, (errors.LockNotAvailable, errors.QueryCanceled, errors.DeadlockDetected,
                        errors.SerializationFailure)):
        return sqlite3.OperationalError(f"database is locked ({text})")
    if isinstance(exc, (errors.IntegrityError, errors.RaiseException)):
        return sqlite3.IntegrityError(text)
    if isinstance(exc, errors.DiskFull):
        return sqlite3.OperationalError(f"database or disk is full ({text})")
    if isinstance(exc, errors.InsufficientPrivilege):
        return sqlite3.OperationalError(f"not allowed: {text}")
    return sqlite3.DatabaseError(text)


# --- the schema --------------------------------------------------------------------------------

_TYPES = [
    (re.compile(r"\b(\w+) INTEGER PRIMARY KEY\b"), r"\1 BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
    (re.compile(r"\bBLOB\b"), "BYTEA"),
    (re.compile(r"\bTEXT\b"), 'TEXT COLLATE "C"'),
]


def ddl(statement: str) -> str:
    """A migration's statement in PostgreSQL's types (the version tables keep their given numbers)."""
    for pattern, replacement in _TYPES:
        statement = pattern.sub(replacement, statement)
    return statement


def schema_version(conn) -> int:
    found = conn.execute("SELECT to_regclass('migrations') IS NOT NULL").fetchone()[0]
    if not found:
        return 0
    return conn.execute("SELECT COALESCE(MAX(version), 0) FROM migrations").fetchone()[0]


def sync_identities(conn, tables) -> None:
    """After rows were written with their own ids (an import, a copy): each identity goes on from the
    greatest id, so the next till's INSERT does not take an id already used. `tables`: names, or
    "table.column" where the key is not `id`."""
    for name in tables:
        table, _dot, key = name.partition(".")
        key = key or "id"
        conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', '{key}'), "
                     f"GREATEST((SELECT MAX({key}) FROM {table}), 1), (SELECT MAX({key}) FROM {table}) IS NOT NULL)")


TILL_ROLE = "vipcli_till"  # the group role a till's login is granted (README, "Chain")

# The ledger and the audit are append-only for every login: a trigger refuses an UPDATE or DELETE
# (even the owner's, unless the owner drops it), and the tills' role may not UPDATE, DELETE or
# TRUNCATE them at all. The role is made when the login running `vip init` may create roles.
_APPEND_ONLY = f"""
CREATE FUNCTION vip_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION '% entries are append-only', TG_TABLE_NAME; END $$;
CREATE TRIGGER ledger_no_change BEFORE UPDATE OR DELETE ON ledger
    FOR EACH ROW EXECUTE FUNCTION vip_append_only();
CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION vip_append_only();
CREATE TRIGGER no_truncate BEFORE TRUNCATE ON ledger
    FOR EACH STATEMENT EXECUTE FUNCTION vip_append_only();
CREATE TRIGGER no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION vip_append_only();
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{TILL_ROLE}') THEN
        CREATE ROLE {TILL_ROLE} NOLOGIN;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'no role {TILL_ROLE}: this login may not create roles (README, Chain)';
END $$;
"""


def grant_tills(conn) -> None:
    """After every migration (new tables included): the groups of the roles their privileges
    (vipcli/pg_roles.py), and the tills' role of the databases made before roles reads and writes what
    the commands do, and only appends to the ledger and the audit."""
    pg_roles.grant_groups(conn)
    if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = ?", (TILL_ROLE,)).fetchone():
        return
    for statement in (
        f"GRANT USAGE ON SCHEMA public TO {TILL_ROLE}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {TILL_ROLE}",
        f"REVOKE UPDATE, DELETE, TRUNCATE ON ledger, audit FROM {TILL_ROLE}",
        f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {TILL_ROLE}",
    ):
        conn.execute(statement)

# The check journal (migration 6, vipcli/checks.py): (table, trigger, the ids written, as SQLite's).
_JOURNALED = [
    ("point_lots", "check_lot", "UPDATE OR DELETE", "'point_lots', OLD.id", "'point_lots', NEW.id"),
    ("purchases", "check_purchase", "UPDATE OR DELETE", "'purchases', OLD.id", "'purchases', NEW.id"),
    ("refunds", "check_refund", "UPDATE OR DELETE", "'purchases', OLD.purchase_id", "'purchases', NEW.purchase_id"),
    ("customers", "check_customer", "UPDATE OF id, tier, id_enc, id_hmac OR DELETE",
     "'customers', OLD.id", "'customers', NEW.id"),
    ("tier_changes", "check_tier_change", "UPDATE OR DELETE", "'customers', OLD.customer_id",
     "'customers', NEW.customer_id"),
    ("cards", "check_card", "UPDATE OR DELETE", "'cards', OLD.rowid", "'cards', NEW.rowid"),
]


def _journal_triggers() -> str:
    script = []
    for table, name, events, old, new in _JOURNALED:
        script.append(f"""
CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO check_journal(tbl, row_id) VALUES ({old});
    IF TG_OP = 'UPDATE' THEN INSERT INTO check_journal(tbl, row_id) VALUES ({new}); END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER {name} AFTER {events} ON {table} FOR EACH ROW EXECUTE FUNCTION {name}();
""")
    return "".join(script)


# SQLite's triggers are in the migrations' own text; these are PostgreSQL's, by migration number.
# (cards has no integer key in SQLite but its rowid; here it gets a column of that name.)
TRIGGERS = {
    1: 'ALTER TABLE cards ADD COLUMN rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE;\n' + _APPEND_ONLY,
    6: _journal_triggers(),
    8: pg_roles.CREATE,
}


# Migrations whose SQLite script does what PostgreSQL does another way, by number.
INSTEAD = {
    7: """ALTER TABLE purchases DROP CONSTRAINT purchases_receipt_key;
CREATE UNIQUE INDEX purchases_receipt_store ON purchases(receipt, COALESCE(store, ''))""",
}


def journal_guarded(conn) -> bool:
    """The ledger's guard and every check-journal trigger are in place (vipcli/checks.py)."""
    names = {"ledger_no_change"} | {name for _table, name, *_rest in _JOURNALED}
    found = {row[0] for row in conn.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")}
    return found >= names


def statements(script: str):
    """A PostgreSQL script split at the semicolons that end statements (not those in $$ bodies)."""
    parts, buffer, quoted = [], [], False
    for piece in re.split(r"(\$\$|;)", script):
        if piece == "$$":
            quoted = not quoted
        if piece == ";" and not quoted:
            text = "".join(buffer).strip()
            if text:
                parts.append(text)
            buffer = []
        else:
            buffer.append(piece)
    if "".join(buffer).strip():
        parts.append("".join(buffer).strip())
    return parts


# --- backup and restore: PostgreSQL's own tools -------------------------------------------------

DUMP_MAGIC = b"PGDMP"  # the first bytes of pg_dump's custom format


def _tool(name: str) -> str:
    """pg_dump / pg_restore: on PATH, else in the server's folder (pg_config --bindir, Debian's)."""
    import glob
    import shutil
    import subprocess

    found = shutil.which(name)
    if found:
        return found
    folders = []
    try:
        folders.append(subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                                      check=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        pass
    folders += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for folder in folders:
        candidate = os.path.join(folder, name)
        if os.access(candidate, os.X_OK):
            return candidate
    raise DatabaseProblem(_("{name} is not installed: install PostgreSQL's client programs (Debian: apt install "
                            "postgresql-client)").format(name=name), code="no_pg_tools")


def _run(argv: list) -> None:
    import subprocess

    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        text = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        raise DatabaseProblem(_("{name} failed: {text}").format(name=os.path.basename(argv[0]), text=text))


def dump(url: str, dest: str) -> None:
    """A consistent copy (pg_dump reads one snapshot while others write), custom format."""
    _run([_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges", f"--exclude-schema={KEPT}",
          f"--file={dest}", url])


def is_dump(path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(len(DUMP_MAGIC)) == DUMP_MAGIC


def restore(url: str, src: str) -> None:
    """SRC's schema and rows in place of the database's, in one transaction (seen whole or not at all)."""
    _run([_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--no-privileges", "--single-transaction",
          f"--dbname={url}", src])


def dump_schema_version(src: str) -> int:
    """The schema version a backup holds (its migrations table's greatest version), read from the dump
    without restoring it; 0 when it holds no vipcli schema."""
    import subprocess

    done = subprocess.run([_tool("pg_restore"), "--data-only", "--table=migrations", "--file=-", src],
                          capture_output=True, text=True)
    if done.returncode != 0:
        return 0
    versions, rows = [], False
    for line in done.stdout.splitlines():
        if line.startswith("COPY ") and "migrations" in line:
            rows = True
        elif line == "\\.":
            rows = False
        elif rows and line.split("\t", 1)[0].isdigit():
            versions.append(int(line.split("\t", 1)[0]))
    return max(versions, default=0)


# --- erasures (PIPL art. 47): what a restore of an older backup must not bring back ---------------

KEPT = "vipcli_kept"  # a schema `vip backup` leaves out: pg_restore of an older backup does not touch it


def journal_erasure(conn, customer_id: int, at: str) -> None:
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {KEPT}")
    conn.execute(f"CREATE TABLE IF NOT EXISTS {KEPT}.erasures (customer_id BIGINT NOT NULL, at TEXT NOT NULL)")
    conn.execute(f"INSERT INTO {KEPT}.erasures VALUES (?, ?)", (customer_id, at))


def erased_before(conn) -> list[int]:
    if not conn.execute(f"SELECT to_regclass('{KEPT}.erasures') IS NOT NULL").fetchone()[0]:
        return []
    return [row[0] for row in conn.execute(f"SELECT DISTINCT customer_id FROM {KEPT}.erasures ORDER BY 1")]


def vacuum_erased(conn, deadline: float) -> bool:
    """After an erasure: VACUUM the tables it changed, once no other session of this database holds a
    snapshot that still sees the old row versions (tried until `deadline`); False when one still does.
    (The server's WAL and its backups keep the old values until they are recycled.)"""
    import time

    while True:
        others = conn.execute(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_xmin IS NOT NULL").fetchone()[0]
        if not others:
            conn.execute("VACUUM customers, changes, visits")
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
