"""The rules stored in a database: every version ever loaded, the latest in force. A purchase
records the version it was priced with, and its refund uses that one."""

from datetime import datetime

from vipcli import rulefile
from vipcli.auditlog import audit
from vipcli.dates import iso, now
from vipcli.db import transaction
from vipcli.errors import NotFound, Refused
from vipcli.rules import Rules
from vipcli.i18n import _


def current_rules(conn) -> Rules:
    """The rules in force; a database without any gets the built-in profile as version 1."""
    row = conn.execute("SELECT version, body FROM rules ORDER BY version DESC LIMIT 1").fetchone()
    if row is None:
        with transaction(conn):
            row = conn.execute("SELECT version, body FROM rules ORDER BY version DESC LIMIT 1").fetchone()
            if row is None:
                text = rulefile.default_text()
                version = store_rules(conn, text, "built-in:store", "vipcli")
                return rulefile.parse(text, version)
    return rulefile.parse(row["body"], row["version"])


def rules_version(conn, version: int) -> Rules:
    row = conn.execute("SELECT body FROM rules WHERE version = ?", (version,)).fetchone()
    if row is None:
        raise NotFound(_("rules version {version} is not in this database").format(version=version))
    return rulefile.parse(row["body"], version)


def store_rules(conn, text: str, source: str, operator: str) -> int:
    """Store a validated profile as the next rules version (inside the caller's transaction)."""
    parsed = rulefile.parse(text)
    cur = conn.execute(
        "INSERT INTO rules(name, body, source, loaded_at, operator) VALUES (?, ?, ?, ?, ?) RETURNING version",
        (parsed.name, text, source, iso(now()), operator),
    )
    return cur.fetchone()[0]


def has_rules(conn) -> bool:
    return conn.execute("SELECT 1 FROM rules LIMIT 1").fetchone() is not None


def initialise(conn, text: str, source: str, operator: str, at: datetime, where: str) -> int:
    """`vip init`: the first rules stored (their version returned); refused on a database that has them."""
    with transaction(conn):
        if has_rules(conn):
            raise Refused(_("{where} is already initialised (use `vip rules load` to change rules)").format(
                              where=where),
                          code="already_initialised")
        version = store_rules(conn, text, source, operator)
        from vipcli.roles import first_user

        first_user(conn, operator, at)  # whoever runs vip init is the first hq user
        audit(conn, at, operator, "init", where, rules_version=version)
    return version


def load_rules(conn, text: str, source: str, operator: str, at: datetime) -> int:
    """`vip rules load`: `text` stored as the next rules version (returned); earlier purchases keep theirs."""
    with transaction(conn):
        version = store_rules(conn, text, source, operator)
        audit(conn, at, operator, "rules load", source, rules_version=version)
    return version
