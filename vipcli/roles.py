"""Who may do what: the four roles, the roles each command allows, and the users table.

The seeds separate the jobs: the counter collects a customer's details and sends the application,
the head office's VIP desk reviews it and issues the card (003: "VIP卡发放需经公司主管人员审核"), and
the key-customer rules (002) give the custodian the approval and the record of every look at a
customer's data (借阅资格和借阅记录). So:

- clerk: the till (purchases, same-day refunds, redeeming, masked look-ups, enrolment, applications);
- manager: a store's back office (refunds of any day, card lost/found/replace/renew, follow-ups,
  imports, masked exports; unmasking with a reason);
- hq: the head office's VIP desk (approvals, tier overrides, points adjustments, cancellations and
  erasure, rules, notifications, users, keys and backups; unmasking);
- auditor: reads the audit log and runs `vip check`, nothing else.

Every command is in PERMISSIONS (a test fails for a command that is not); the check runs before the
command reads or writes anything (vipcli.cli.fastparams.PlainCommand.invoke), and a refusal is
itself written to the audit log. On a chain's PostgreSQL database a user is a login, also granted
its role in the database (vipcli/pg_roles.py); on a file, the operator's name is looked up.
"""

from datetime import datetime

from vipcli.auditlog import audit, disclosed
from vipcli.dates import iso
from vipcli.db import engine, transaction
from vipcli.errors import InvalidInput, NotFound, Refused
from vipcli.i18n import _

ROLES = ("clerk", "manager", "hq", "auditor")
TILL = ("clerk", "manager", "hq")
STORE = ("manager", "hq")
HQ = ("hq",)
AUDIT = ("hq", "auditor")
CHECK = ("manager", "hq", "auditor")  # (vip check shows no one's data: a store's nightly job runs it)
EVERYONE = ROLES
NO_DATABASE = ()  # reads no vipcli database (a rules file, config.toml, the demo's own): nothing to check

# The roles each command allows, by its name as typed (`vip tier set` -> "tier set").
PERMISSIONS = {
    "purchase": TILL, "refund": TILL, "redeem": TILL, "points show": TILL, "points expire": HQ,
    "points adjust": HQ, "show": TILL, "search": TILL, "enroll": TILL, "update": TILL, "history": STORE,
    "card lost": STORE, "card found": STORE, "card replace": STORE, "card renew": STORE, "cards": STORE,
    "cancel": HQ, "tier show": TILL, "tier review": HQ, "tier set": HQ, "gift": TILL, "rewards": TILL,
    "class": STORE, "visit log": STORE, "visit due": STORE, "birthdays": STORE, "notify": HQ,
    "import purchases": STORE, "import members": STORE, "export": STORE, "check": CHECK, "audit": AUDIT,
    "backup": HQ, "restore": HQ, "key export": HQ, "key rotate": HQ, "rules show": TILL, "rules load": HQ,
    "rules validate": NO_DATABASE, "rules profiles": NO_DATABASE, "init": HQ, "info": EVERYONE,
    "demo": NO_DATABASE, "config show": NO_DATABASE, "db copy": HQ,
    "user add": HQ, "user list": HQ, "user role": HQ, "user remove": HQ, "whoami": EVERYONE,
    "apply": TILL, "applications": TILL, "approve": HQ, "reject": HQ,
}
# The commands that make their database: checked only when it exists (vip init's operator is then the
# first hq user; a restore into a new file is anyone's who may write there)
CREATES = {"init", "restore"}


class NotAllowed(Refused):
    code = "not_allowed"


def needs(allowed: tuple[str, ...]) -> str:
    return " or ".join(allowed)


def user(conn, name: str):
    return conn.execute("SELECT * FROM users WHERE name = ?", (name,)).fetchone()


def require(conn, operator: str, command: str, at: datetime):
    """The operator's users row if their role may run `command`; else the refusal is audited and
    NotAllowed raised. A database made before roles (no user yet) takes its first operator as its
    first hq user, as `vip init` does (on PostgreSQL only the database's owner)."""
    allowed = PERMISSIONS[command]
    found = user(conn, operator)
    if found is None and _may_found(conn):
        with transaction(conn):
            first_user(conn, operator, at)  # (if there is still none, under the write lock)
        found = user(conn, operator)
    if found is None:
        refuse(conn, operator, command, at, None, _(
            "not allowed: {name!r} is not a vipcli user of this database (an hq user adds it: vip user add "
            "{name} --role clerk)").format(name=operator))
    if found["role"] not in allowed:
        refuse(conn, operator, command, at, found["role"], _("not allowed: '{command}' needs role {roles} "
                                                             "({name} is {role})").format(
            command=command, roles=needs(allowed), name=operator, role=found["role"]))
    return found


def refuse(conn, operator: str, command: str, at: datetime, role: str | None, message: str):
    """Record the refusal (who, what, with which role), then raise it."""
    import sqlite3

    try:
        disclosed(conn, at, operator, "refused", command, role=role)
    except sqlite3.Error:
        pass  # (a file opened read-only: the refusal stands, unrecorded)
    raise NotAllowed(message)


def _may_found(conn) -> bool:
    """Whether this connection may make the first hq user of a database without users."""
    if conn.execute("SELECT 1 FROM users LIMIT 1").fetchone() is not None:
        return False
    if engine(conn) == "sqlite":
        return True
    return bool(conn.execute(
        "SELECT pg_has_role(current_user, d.datdba, 'MEMBER') FROM pg_database d "
        "WHERE d.datname = current_database()").fetchone()[0])


def first_user(conn, name: str, at: datetime) -> None:
    """Inside the caller's write transaction: `name` as the first hq user, if there is none yet."""
    if conn.execute("SELECT 1 FROM users LIMIT 1").fetchone() is None:
        _insert(conn, name, "hq", None, at, name, first=True)
        audit(conn, at, name, "user add", name, role="hq", first=True)


def check_unmask(conn, operator: str, role: str, command: str, reason: str | None, at: datetime) -> None:
    """`--unmask`: hq, or a manager who says why (002: 借阅资格); else refused and audited."""
    if not (role == "hq" or (role == "manager" and reason)):
        refuse(conn, operator, f"{command} --unmask", at, role,
               _("not allowed: '{command} --unmask' needs role hq, or manager with --reason").format(
                   command=command))


def may_grant(rules, role: str | None) -> bool:
    """Whether `role` may issue a card without qualifying (vip enroll --grant, a members import's grant
    column): under review rules only hq, the desk that approves cards (003: VIP卡发放需经公司主管人员审核)."""
    return rules.card_issue != "review" or role == "hq"


def grant_needs_hq() -> str:
    return _("not allowed: under these rules a card is reviewed before it is issued, and only hq grants one "
             "(leave the grant out: vip apply opens an application)")


# --- users ---------------------------------------------------------------------------------------


def _role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput(_("role: {role!r} is not one of {roles}").format(role=role, roles=", ".join(ROLES)),
                           code="bad_role")
    return role


def _name(name: str) -> str:
    name = name.strip()
    if not (0 < len(name) <= 40) or not name.isprintable() or '"' in name:
        raise InvalidInput(_("user: {name!r} must be 1-40 printable characters, no quotes").format(name=name),
                           code="bad_user")
    return name


def _insert(conn, name: str, role: str, store: str | None, at: datetime, operator: str, first: bool = False) -> None:
    conn.execute("INSERT INTO users(name, role, store, added_at, added_by) VALUES (?, ?, ?, ?, ?)",
                 (name, role, store, iso(at), operator))
    if engine(conn) == "postgresql":
        from vipcli import pg_roles

        pg_roles.grant(conn, name, role, first)


def add_user(conn, name: str, role: str, store: str | None, at: datetime, operator: str) -> dict:
    name, role = _name(name), _role(role)
    with transaction(conn):
        if user(conn, name) is not None:
            raise Refused(_("user {name} exists already (change the role with: vip user role {name} ROLE)").format(
                name=name), code="user_exists")
        _insert(conn, name, role, store, at, operator)
        audit(conn, at, operator, "user add", name, role=role, store=store)
    return {"name": name, "role": role, "store": store}


def _changing(conn, name: str, role: str | None):
    """Inside the caller's write transaction: the user whose role changes to `role` (None: removed);
    the last hq user keeps the role."""
    found = user(conn, name)
    if found is None:
        raise NotFound(_("no user {name} (add one: vip user add {name} --role {role})").format(
            name=name, role=role or "clerk"), code="unknown_user")
    if found["role"] == "hq" and role != "hq" and conn.execute(
            "SELECT COUNT(*) FROM users WHERE role = 'hq'").fetchone()[0] == 1:
        raise Refused(_("{name} is the last hq user: make another user hq first").format(name=name),
                      code="last_hq")
    return found


def set_role(conn, name: str, role: str, at: datetime, operator: str) -> dict:
    role = _role(role)
    with transaction(conn):
        found = _changing(conn, name, role)
        conn.execute("UPDATE users SET role = ? WHERE name = ?", (role, name))
        if engine(conn) == "postgresql":
            from vipcli import pg_roles

            pg_roles.grant(conn, name, role)
        audit(conn, at, operator, "user role", name, from_role=found["role"], to_role=role)
    return {"name": name, "role": role, "from": found["role"], "store": found["store"]}


def remove_user(conn, name: str, at: datetime, operator: str) -> dict:
    """Someone who left: no command accepts them any more (on PostgreSQL their login loses its group
    role; the login itself is the server's administrator's to drop). What they did stays recorded."""
    with transaction(conn):
        found = _changing(conn, name, None)
        conn.execute("DELETE FROM users WHERE name = ?", (name,))
        if engine(conn) == "postgresql":
            from vipcli import pg_roles

            pg_roles.revoke(conn, name)
        audit(conn, at, operator, "user remove", name, role=found["role"])
    return {"name": name, "removed": True, "role": found["role"]}


def users(conn) -> list[dict]:
    return [dict(r) for r in conn.execute("SELECT name, role, store, added_at, added_by FROM users ORDER BY name")]
