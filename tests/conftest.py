import contextlib
import itertools
import json
import os

import pytest
from typer.testing import CliRunner

from vipcli.cli import app


# --- the engines ------------------------------------------------------------------------------
#
# Every test that works a database through the app (`vip`) or asks for `engine` runs on SQLite and
# on PostgreSQL: a fresh database for each test, copied from a migrated template. The server is the
# one VIPCLI_TEST_PG names (.ci/run starts a throwaway cluster: tools/pg_cluster.sh); without it,
# the PostgreSQL half is skipped with one loud line, except on CI (CI set), where it fails.
# @pytest.mark.sqlite_only: what only a file has (its path, its pages, its companions);
# @pytest.mark.postgresql_only: what only a server has (logins, grants).

PG_SERVER = os.environ.get("VIPCLI_TEST_PG")
_TEMPLATE = "vip_template"


def pytest_generate_tests(metafunc):
    if "engine" in metafunc.fixturenames:  # (the `vip` fixture asks for it)
        engines = ["sqlite", "postgresql"]
        if metafunc.definition.get_closest_marker("sqlite_only") is not None:
            engines = ["sqlite"]
        elif metafunc.definition.get_closest_marker("postgresql_only") is not None:
            engines = ["postgresql"]
        metafunc.parametrize("engine", engines, indirect=True)


def pytest_report_header(config):
    if PG_SERVER:
        return f"PostgreSQL half: {PG_SERVER}"
    return "!!! VIPCLI_TEST_PG is not set: every PostgreSQL test is SKIPPED (bash .ci/run starts a server) !!!"


@pytest.fixture
def engine(request):
    return getattr(request, "param", "sqlite")


def _server():
    import psycopg

    return psycopg.connect(PG_SERVER, autocommit=True)


def as_login(url: str, name: str) -> str:
    """`url` with another user name."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{name}@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")))


@pytest.fixture(scope="session")
def pg_template():
    """A database as `vip init` leaves it before any rules, to copy for each test."""
    if not PG_SERVER:
        if os.environ.get("CI"):
            pytest.fail("CI: VIPCLI_TEST_PG is not set; the PostgreSQL half must run (bash .ci/run starts a server)")
        pytest.skip("no PostgreSQL server (VIPCLI_TEST_PG): the PostgreSQL half is skipped")
    from vipcli import db

    with _server() as server:
        server.execute(f"DROP DATABASE IF EXISTS {_TEMPLATE} WITH (FORCE)")
        server.execute(f"CREATE DATABASE {_TEMPLATE}")
        # The tests' login is "tester", the operator they expect (on PostgreSQL the operator is the login)
        if not server.execute("SELECT 1 FROM pg_roles WHERE rolname = 'tester'").fetchone():
            server.execute("CREATE ROLE tester LOGIN SUPERUSER")
    db.connect(pg_url(_TEMPLATE), create=True).close()
    return _TEMPLATE


def pg_url(name: str, login: str | None = None) -> str:
    """The URL of database `name` on the test server (as `login`, else the server URL's user)."""
    from urllib.parse import urlsplit, urlunsplit

    url = urlunsplit(urlsplit(PG_SERVER)._replace(path="/" + name))
    return as_login(url, login) if login else url


@pytest.fixture
def database(request, engine, tmp_path):
    """What --db names for this test: a file in its folder, or a fresh PostgreSQL database."""
    if engine == "sqlite":
        yield str(tmp_path / "vip.db")
        return
    template = request.getfixturevalue("pg_template")
    name = f"vt_{os.getpid()}_{next(_numbers)}"
    with _server() as server:
        server.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    yield pg_url(name, "tester")
    with _server() as server:
        server.execute(f"DROP DATABASE {name} WITH (FORCE)")


_numbers = itertools.count()


@pytest.fixture
def fresh_database(engine, tmp_path):
    """fresh_database("name"): one more empty target on the test's engine (a file not yet there, or an
    empty PostgreSQL database), for a restore or a copy into it."""
    made = []

    def make(name: str) -> str:
        if engine == "sqlite":
            return str(tmp_path / f"fresh-{name}.db")
        database = f"vt_{os.getpid()}_{next(_numbers)}_{name}"
        with _server() as server:
            server.execute(f"CREATE DATABASE {database}")
        made.append(database)
        return pg_url(database, "tester")

    yield make
    if made:
        with _server() as server:
            for database in made:
                server.execute(f"DROP DATABASE {database} WITH (FORCE)")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch, request):
    """Every test gets its own database, key file and home; never the user's real ones."""
    target = request.getfixturevalue("database") if "engine" in request.fixturenames else str(tmp_path / "vip.db")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    monkeypatch.setenv("VIPCLI_DB", target)
    monkeypatch.setenv("VIPCLI_KEY_FILE", str(tmp_path / "vip.key"))
    monkeypatch.setenv("VIPCLI_OPERATOR", "tester")
    monkeypatch.setenv("VIPCLI_NOW", "2026-06-15T12:00:00")
    monkeypatch.delenv("VIPCLI_DEBUG", raising=False)
    monkeypatch.setenv("VIPCLI_LANG", "en")  # the messages the tests read; tests of Chinese ask for it
    monkeypatch.delenv("LANGUAGE", raising=False)  # (set by vipcli.i18n.use: restored after each test)
    from vipcli import db

    if not target.startswith("postgresql:"):
        db.connect(target, create=True).close()  # as `vip init` leaves it, before any rules
    return tmp_path


@pytest.fixture(autouse=True)
def invariants_hold(request, isolated):
    """After every test, every vipcli database the test left in its folder passes the checks of
    `vip check` (lots and balances, purchases, tiers, card numbers): a test that writes the ledger ends with
    the invariants whole. A test that damages a database on purpose says so with
    @pytest.mark.damaged."""
    yield
    if request.node.get_closest_marker("damaged") is not None:
        return
    import sqlite3

    from vipcli import checks, db, rulebook
    from vipcli.errors import VipError

    targets = sorted(isolated.glob("*.db"))
    if os.environ.get("VIPCLI_DB", "").startswith("postgresql:"):
        targets.append(os.environ["VIPCLI_DB"])
    for path in targets:
        try:
            conn = db.connect(path) if isinstance(path, str) else db.connect_raw(path)
        except VipError:
            continue
        try:
            if not rulebook.has_rules(conn):
                continue
            rules = rulebook.current_rules(conn)
            # (ID numbers are left out: whether their key is at hand is the test's set-up, not an invariant)
            problems = {check.__name__: found for check in (checks.lots, checks.purchases, checks.tiers,
                                                            checks.card_numbers) if (found := check(conn, rules))}
        except (sqlite3.DatabaseError, VipError):
            continue  # not a (current) vipcli database: a backup of another schema, a damaged file
        finally:
            conn.close()
        assert not problems, f"{path}: {problems}"


class Result:
    def __init__(self, raw):
        self.raw = raw
        self.code = raw.exit_code
        self.stdout = raw.stdout
        self.stderr = raw.stderr
        # (under --json a command's object is on stdout, an error's on stderr)
        text = raw.stdout if raw.stdout.strip() or raw.exit_code == 0 else raw.stderr
        try:
            self.data = json.loads(text) if text.strip() else None
        except json.JSONDecodeError:
            self.data = None

    def __getitem__(self, key):
        return self.data[key]

    def __repr__(self):
        return f"<exit {self.code} stdout={self.stdout!r} stderr={self.stderr!r}>"


@pytest.fixture
def vip(monkeypatch, engine):
    """Run the real Typer app with --json: vip("purchase", "--phone", P, "--amount", "100", now=...)."""
    runner = CliRunner()

    def run(*args, now=None, json_output=True):
        if now is not None:
            monkeypatch.setenv("VIPCLI_NOW", now)
        argv = (["--json"] if json_output else []) + [str(a) for a in args]
        return Result(runner.invoke(app, argv, catch_exceptions=False))

    return run


@pytest.fixture
def member(vip, monkeypatch):
    """A registered member with a card (granted), returning its card number."""

    def make(phone="13800138000", birthday="1990-06-15", now="2026-01-10T10:00:00", **extra):
        args = ["enroll", "--phone", phone, "--name", "王芳", "--gender", "F", "--birthday", birthday,
                "--grant", "test member"]
        for key, value in extra.items():
            args += [f"--{key.replace('_', '-')}", value]
        result = vip(*args, now=now)
        assert result.code == 0, result
        monkeypatch.setenv("VIPCLI_NOW", "2026-06-15T12:00:00")
        return result["card_no"]

    return make


@contextlib.contextmanager
def open_db(target=None):
    """The test's database (VIPCLI_DB), on either engine, each statement committed as it runs: for a
    test that sets up or damages what the commands cannot."""
    from vipcli import db

    url = os.environ.get("VIPCLI_DB", "")
    if target is None or (url.startswith("postgresql:") and os.path.basename(str(target)) == "vip.db"):
        target = url  # (the test's own database, named by its file on SQLite)
    target = str(target)
    # (a file as SQLite opens it for any other tool: no foreign keys, no migration)
    conn = db.connect(target) if target.startswith("postgresql:") else db.connect_raw(target)
    try:
        yield conn
    finally:
        conn.close()


def stored_bytes(folder) -> bytes:
    """Everything the test's database holds, as bytes to search for a value that must not be there:
    a file's pages and its WAL; on PostgreSQL every row of every table, as text."""
    url = os.environ.get("VIPCLI_DB", "")
    if not url.startswith("postgresql:"):
        return b"".join(p.read_bytes() for p in sorted(folder.glob("vip.db*")) if p.is_file())
    with open_db() as conn:
        tables = [row[0] for row in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")]
        return "\n".join(str(row[0]) for table in tables
                         for row in conn.execute(f"SELECT t::text FROM {table} t")).encode()


@contextlib.contextmanager
def write_lock_held():
    """Another connection holding the test database's write lock (BEGIN IMMEDIATE, or PostgreSQL's
    writers' lock) until the block ends."""
    from vipcli import db

    with open_db() as conn:
        conn.execute("BEGIN IMMEDIATE") if db.engine(conn) == "sqlite" else conn.begin_write()
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
