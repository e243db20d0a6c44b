"""The roles of vipcli.roles in a chain's PostgreSQL database: one group role per role, granted to each
user's login, so that what the app refuses the database refuses too (a clerk's login cannot read the
audit log with psql, an auditor's cannot change a purchase).

The group roles belong to the server (as every PostgreSQL role): two chains on one server share them.
They are made by migration 8 when the login running it may create roles (the owner, usually).
"""

from vipcli.errors import Refused
from vipcli.i18n import _

GROUP = {"clerk": "vipcli_clerk", "manager": "vipcli_manager", "hq": "vipcli_hq", "auditor": "vipcli_auditor"}

CREATE = "DO $$ BEGIN\n" + "".join(
    f"    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{group}') THEN CREATE ROLE {group} NOLOGIN; END IF;\n"
    for group in GROUP.values()) + """EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'no vipcli group roles: this login may not create roles (docs/chain.md)';
END $$;
"""

_EVERY = "ALL TABLES IN SCHEMA public"
# What each group may do, table by table (after every migration: new tables included). The ledger and
# the audit log are append-only for all (their triggers refuse even the owner); only hq and the
# auditor read the audit log (the others see its ids: an import notices other writers by them).
_GRANTS = {
    "vipcli_clerk": (
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {_EVERY} TO {{g}}",
        "REVOKE SELECT, UPDATE, DELETE, TRUNCATE ON audit FROM {g}",
        "GRANT SELECT (id) ON audit TO {g}",
        "REVOKE UPDATE, DELETE, TRUNCATE ON ledger FROM {g}",
        "REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON users, rules, migrations FROM {g}",
    ),
    "vipcli_hq": (
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {_EVERY} TO {{g}}",
        "REVOKE UPDATE, DELETE, TRUNCATE ON ledger, audit FROM {g}",
    ),
    "vipcli_auditor": (
        f"GRANT SELECT ON {_EVERY} TO {{g}}",
        "GRANT INSERT ON audit TO {g}",
        "GRANT INSERT, UPDATE, DELETE ON meta, check_journal TO {g}",  # (vip check's marks)
    ),
}
_GRANTS["vipcli_manager"] = _GRANTS["vipcli_clerk"]


def grant_groups(conn) -> None:
    """After every migration: each group's privileges on every table (those the server has)."""
    present = {row[0] for row in conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE 'vipcli\\_%'")}
    for group, statements in _GRANTS.items():
        if group not in present:
            continue
        conn.execute(f"GRANT USAGE ON SCHEMA public TO {group}")
        conn.execute(f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {group}")
        for statement in statements:
            conn.execute(statement.format(g=group))


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def grant(conn, login: str, role: str, first: bool = False) -> None:
    """Inside the caller's transaction: `login` (made when missing, if this login may create roles) gets
    the group of `role` and loses the others; an hq login is given every group with the admin option, so
    that it may grant them in turn. `first`: the owner running `vip init`, who needs no group (it owns the
    tables): given hq's where it may, else left as it is."""
    import sqlite3

    who = quoted(login)
    conn.execute("SAVEPOINT vip_grant")
    try:
        missing = [g for g in GROUP.values()
                   if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = ?", (g,)).fetchone() is None]
        if missing:
            raise Refused(_("this server has no role {roles}: the server's administrator creates them (CREATE ROLE "
                            "{role} NOLOGIN), then the database's owner runs vip user role again").format(
                roles=", ".join(missing), role=missing[0]), code="no_group_roles")
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = ?", (login,)).fetchone() is None:
            try:
                conn.execute(f"CREATE ROLE {who} LOGIN")
            except sqlite3.Error:
                raise Refused(_("there is no login {name} on this server, and this login may not create one: the "
                                "server's administrator runs CREATE ROLE {name} LOGIN PASSWORD '…', then vip user "
                                "add again").format(name=login), code="no_login") from None
        revoke(conn, login)
        if role == "hq":  # (hq holds every group's privileges anyway)
            conn.execute(f"GRANT {', '.join(GROUP.values())} TO {who} WITH ADMIN OPTION")
        else:
            conn.execute(f"GRANT {GROUP[role]} TO {who}")
    except (sqlite3.Error, Refused):
        conn.execute("ROLLBACK TO vip_grant")
        if not first:
            raise
    conn.execute("RELEASE vip_grant")


def revoke(conn, login: str) -> None:
    """Inside the caller's transaction: `login` loses every vipcli group role it holds."""
    held = {row[0] for row in conn.execute(
        "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
        "JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = ?", (login,))}
    for group in sorted(held & set(GROUP.values())):
        conn.execute(f"REVOKE {group} FROM {quoted(login)}")
