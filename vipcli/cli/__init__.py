"""The `vip` command line: a thin skin that parses, calls one domain function and renders.

Errors are translated here, once: a VipError becomes one line on stderr (a JSON object under
--json, also on stdout) and its exit code; a usage error exits 2; a database failure exits 4.
No traceback ever reaches a user (and none would carry locals: personal data).
"""

import getpass
import json
import os
import sqlite3
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import typer

from vipcli.cli.fastparams import PlainCommand, PlainGroup
from vipcli import i18n
from vipcli.errors import ExitStatus, InvalidInput, VipError
from vipcli.i18n import N_, _


class VipGroup(PlainGroup):
    """Root group: finds a command through COMMANDS (importing its module only when it is asked
    for), runs it, and translates every failure to a line and an exit code."""

    def list_commands(self, ctx) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx, name: str):
        module = COMMANDS.get(name)
        return _module_group(module).get_command(ctx, name) if module else None

    def format_commands(self, ctx, formatter) -> None:
        """The commands by job, each job a section of the help."""
        from vipcli.i18n import _

        limit = formatter.width - 6 - max(map(len, COMMANDS))
        for title, names in JOBS:
            with formatter.section(_(title)):
                formatter.write_dl([(name, self.get_command(ctx, name).get_short_help_str(limit)) for name in names])

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        """The till's config.toml in force for the command (vipcli/config.py), then the command."""
        from vipcli import config

        argv = _globals_first(list(sys.argv[1:] if args is None else args))
        as_json = "--json" in argv[: argv.index("--")] if "--" in argv else "--json" in argv
        try:
            with config.applied():
                return self._run(argv, as_json, complete_var, standalone_mode, **extra)
        except VipError as exc:  # (config.toml itself is wrong)
            code = report(exc.code, exc.message, exc.exit_code, as_json)
            if standalone_mode:
                sys.exit(code)
            return code

    def _run(self, argv, as_json, complete_var, standalone_mode, **extra):
        try:
            i18n.use(i18n.choose(_global_value(argv, "--lang")))
        except VipError as exc:
            i18n.use("en")
            code = report(exc.code, exc.message, exc.exit_code, as_json)
            if standalone_mode:
                sys.exit(code)
            return code
        try:
            result = super().main(args=argv, prog_name="vip", complete_var=complete_var,
                                  standalone_mode=False, **extra)
            code = result if isinstance(result, int) else ExitStatus.OK
        except VipError as exc:
            code = report(exc.code, exc.message, exc.exit_code, as_json)
        except typer.Exit as exc:
            if isinstance(exc.__cause__, KeyboardInterrupt):  # typer's translation of Ctrl-C
                code = report("interrupted", i18n._(INTERRUPTED), ExitStatus.INTERRUPTED, as_json)
            else:
                code = exc.exit_code
        except typer.Abort:
            code = report("aborted", i18n._("aborted"), ExitStatus.REFUSED, as_json)
        except _click_exception() as exc:
            if type(exc).__name__ == "NoArgsIsHelpError" and exc.ctx is not None:
                print(exc.ctx.get_help())  # `vip` or `vip tier` alone: the help, not an error
                code = 0
            else:
                code = report("usage", _usage_line(exc), ExitStatus.INVALID, as_json)
        except sqlite3.Error as exc:
            from vipcli.db import translate

            problem = translate(exc)
            code = report(problem.code, problem.message, problem.exit_code, as_json)
        except KeyboardInterrupt:
            code = report("interrupted", i18n._(INTERRUPTED), ExitStatus.INTERRUPTED, as_json)
        except OSError as exc:
            code = report("os_error", f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), ExitStatus.REFUSED,
                          as_json)
        except Exception as exc:  # noqa: BLE001 - the promise is: never a traceback
            if os.environ.get("VIPCLI_DEBUG"):
                raise
            code = report("internal", i18n._("internal error ({kind}); nothing was written").format(
                kind=type(exc).__name__), ExitStatus.REFUSED, as_json)
        if standalone_mode:
            sys.exit(code)
        return code


# The global options, and whether each takes a value: given after the command name too
# (`vip purchase 755000015 --amount 10 --json`), they are moved before it, unless the command has
# an option of that name itself (`vip audit --operator O` filters by operator).
GLOBAL_OPTIONS = {"--json": False, "--db": True, "--operator": True, "--lang": True, "--no-pager": False}


def _global_value(argv: list[str], name: str) -> str | None:
    """The value of a global option (moved before the command name by _globals_first)."""
    for i, arg in enumerate(argv):
        if not arg.startswith("-"):
            return None  # the command name: what follows is the command's
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _globals_first(argv: list[str]) -> list[str]:
    end = argv.index("--") if "--" in argv else len(argv)
    command = next((i for i, a in enumerate(argv[:end]) if not a.startswith("-")
                    and (i == 0 or argv[i - 1] not in GLOBAL_OPTIONS or not GLOBAL_OPTIONS[argv[i - 1]])), None)
    if command is None:
        return argv
    own = _own_options(argv[command])
    front, rest, i = argv[:command], [], command
    while i < end:
        name = argv[i].split("=", 1)[0]
        if name in GLOBAL_OPTIONS and name not in own:
            takes = GLOBAL_OPTIONS[name] and "=" not in argv[i]
            front += argv[i:i + 1 + takes]
            i += 1 + takes
        else:
            takes = own.get(name, False) and "=" not in argv[i]  # (its value is the command's: `--receipt --json`)
            rest += argv[i:i + 1 + takes]
            i += 1 + takes
    return front + rest + argv[end:]


def _own_options(name: str) -> dict[str, bool]:
    """The option names a command (or any command of a group) defines itself, and whether each takes a
    value."""
    module = COMMANDS.get(name)
    if module is None:
        return {}
    found, todo = {}, [_module_group(module).get_command(None, name)]
    while todo:
        command = todo.pop()
        if command is None:
            continue
        for param in command.params:
            takes = getattr(param, "param_type_name", "") == "option" and not getattr(param, "is_flag", False)
            found.update({opt: takes for opt in getattr(param, "opts", ())})
        todo += list(getattr(command, "commands", {}).values())
    return found


INTERRUPTED = N_("interrupted: what was saved before stays, the transaction under way was rolled back "
                 "(nothing is half-written); run the same command again to finish")


def _click_exception():
    from typer._click.exceptions import ClickException

    return ClickException


def _usage_line(exc) -> str:
    message = _usage_message(exc)
    command = getattr(getattr(exc, "ctx", None), "command_path", None)
    line = " ".join(message.split())
    return f"{command}: {line}" if command else line


def _usage_message(exc) -> str:
    """Typer's usage errors in the language in use (its vendored click writes them in English):
    the commonest by their kind, the others as click words them."""
    from typer._click.exceptions import MissingParameter, NoSuchOption

    from vipcli.i18n import _

    if isinstance(exc, MissingParameter) and exc.param is not None:
        name = exc.param.get_error_hint()
        if exc.param.param_type_name == "option":
            return _("missing option {name}").format(name=name)
        return _("missing argument {name}").format(name=name)
    if isinstance(exc, NoSuchOption):
        line = _("no such option: {name}").format(name=exc.option_name)
        if exc.possibilities:
            line += " " + _("(did you mean {names}?)").format(names=", ".join(sorted(exc.possibilities)))
        return line
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    extra = "Got unexpected extra argument"
    if message.startswith(extra):
        return _("unexpected extra arguments: {args}").format(args=message[len(extra):].lstrip("s (").rstrip(")"))
    return message


def report(code: str, message: str, exit_code: int, as_json: bool) -> int:
    from vipcli.cli.output import printable

    line = printable(" ".join(str(message).split()))
    if as_json:  # SPEC §1: the error line on stderr, as a JSON object; stdout stays empty
        print(json.dumps({"error": {"code": code, "message": line}}, ensure_ascii=False), file=sys.stderr)
    else:
        print(f"error: {line}", file=sys.stderr)
    return exit_code


@dataclass
class Session:
    """What every command needs: where the database is, who is working, what time it is."""

    db_path: Path | str  # a file, or a chain's postgresql:// URL
    json: bool
    given_operator: str  # --operator / VIPCLI_OPERATOR / the OS user
    now: datetime
    pager: bool = True  # lists on a terminal through the pager (--no-pager: off)
    user: dict | None = None  # the operator's users row, once the command's role check passed
    _conn: sqlite3.Connection | None = field(default=None, repr=False)
    _login: str | None = field(default=None, repr=False)

    @property
    def operator(self) -> str:
        """Who is working, as the audit and change log record it: on a chain's PostgreSQL database the
        database login (current_user), which no option or variable can change; on a file, the name
        given (--operator, VIPCLI_OPERATOR, else the OS user)."""
        from vipcli.pg import is_url, login

        if not is_url(str(self.db_path)):
            return self.given_operator
        if self._login is None:
            self._login = login(self.conn)
        return self._login

    @property
    def conn(self) -> sqlite3.Connection:
        """The database, which must exist: only `open(create=True)` (vip init, vip restore) makes one."""
        return self.open()

    def open(self, create: bool = False) -> sqlite3.Connection:
        if self._conn is None:
            from vipcli.db import connect

            self._conn = connect(self.db_path, create=create)
        return self._conn

    def exists(self) -> bool:
        """Whether there is a vipcli database to open (a file, or a chain's database with its tables)."""
        from vipcli.errors import DatabaseProblem

        try:
            self.conn
        except DatabaseProblem as exc:
            if exc.code == "no_database":
                return False
            raise
        return True

    @property
    def role(self) -> str | None:
        return self.user["role"] if self.user else None

    def may_unmask(self, command: str, reason: str | None) -> str | None:
        """--unmask: hq, or a manager who gives --reason (002: 借阅资格), else refused and audited; the
        reason, cleaned, for the record of the look (借阅记录)."""
        from vipcli import roles
        from vipcli.fields import clean_text

        why = clean_text(reason, "reason", 200) if reason is not None else None
        roles.check_unmask(self.conn, self.operator, self.role, command, why, self.now)
        return why

    def till_store(self, given: str | None) -> str | None:
        """The store a sale, an enrolment or an application is recorded at, or a store's list or export
        is drawn from: --store (VIPCLI_STORE, config.toml), else the user's own store; a clerk or
        manager of one store works only there."""
        from vipcli import roles

        own = self.user["store"] if self.user else None
        if given is not None and own and given.strip() != own and self.role in ("clerk", "manager"):
            roles.refuse(self.conn, self.operator, "--store", self.now, self.role, _(
                "not allowed: {name} works at store {own}, not {store} (an hq user changes it)").format(
                name=self.operator, own=own, store=given.strip()))
        return given if given is not None else own

    def close(self) -> None:
        """When the command ends (its context closes): the connection, so that a process running many
        commands (a test, a script through the app) does not hold one per command."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def rules(self):
        from vipcli.rulebook import current_rules

        return current_rules(self.conn)

    def vault_for(self, create: bool):
        from vipcli.vault import open_vault

        return open_vault(self.conn, create=create)


app = typer.Typer(
    cls=VipGroup,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    help=N_("VIP membership and customer archive: one SQLite file, or a chain's PostgreSQL database."),
)


def _operator_default() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _version(value: bool) -> None:
    if value:
        from vipcli import __version__

        print(f"vip {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    db: str = typer.Option(None, "--db", envvar="VIPCLI_DB", show_default=False,
                           help=N_("Database file, or a chain's database (postgresql://user@host/name).")),
    json_output: bool = typer.Option(False, "--json", help=N_("Print exactly one JSON object.")),
    lang: str = typer.Option(None, "--lang", envvar="VIPCLI_LANG", metavar="zh|en", show_default=False,
                             help=N_("Language of what people read (default: VIPCLI_LANG, then LC_ALL, LC_MESSAGES, "
                                     "LANG; zh* is Chinese).")),
    operator: str = typer.Option(None, "--operator", envvar="VIPCLI_OPERATOR",
                                 help=N_("Who is doing this (recorded on every write).")),
    no_pager: bool = typer.Option(False, "--no-pager", help=N_("Print lists straight to the terminal, not through "
                                                               "the pager ($PAGER, or less).")),
    version: bool = typer.Option(False, "--version", is_eager=True, expose_value=False, callback=_version,
                                 help=N_("Print the version and exit.")),
) -> None:
    from vipcli.dates import now
    from vipcli.fields import clean_text

    if db is not None and not db.strip():
        raise InvalidInput(_("--db: must not be empty"))
    from vipcli.pg import is_url

    if db is None:
        from vipcli.places import default_db

        path = default_db()
    elif is_url(db):
        from vipcli.config import refuse_password

        refuse_password(db, "--db")
        path = db  # a chain's PostgreSQL database (vipcli/pg.py)
    else:
        path = Path(db).expanduser()
    who = clean_text(operator, "operator", 40) if operator is not None else _operator_default()
    _protect(path)
    ctx.obj = Session(db_path=path, json=json_output, given_operator=who, now=now(), pager=not no_pager)
    ctx.call_on_close(ctx.obj.close)


def _protect(db_path: Path) -> None:
    """No output of this command may be the database, its companions or its ID-number key (listed
    only if the command writes a file)."""
    import vipcli.io

    def paths() -> dict:
        from vipcli.vault import key_candidates, retired_keys

        found = {db_path: "the database"}
        found.update({f"{db_path}{end}": "part of the database" for end in ("-wal", "-shm", "-journal", "-waiting")})
        for key in key_candidates(db_path):
            found.update({key: "the ID-number key", f"{key}.new": "the next ID-number key", f"{key}.lock": "a lock file"})
            found.update({kept: "a retired ID-number key" for kept in retired_keys(key)})
        return found

    vipcli.io.protected_paths = paths


def session(ctx: typer.Context) -> Session:
    return ctx.find_root().obj


def authorize(ctx: typer.Context) -> None:
    """The operator's role against the command's (vipcli/roles.py), before it reads or writes anything:
    refused (and audited) with one line. A command missing from roles.PERMISSIONS needs hq."""
    from vipcli import roles

    name = ctx.command_path.partition(" ")[2]
    allowed = roles.PERMISSIONS.get(name, roles.HQ)
    s = session(ctx)
    if allowed == roles.NO_DATABASE or (name in roles.CREATES and not s.exists()):
        return
    s.user = dict(roles.require(s.conn, s.operator, name, s.now))


# The argument most commands take: a card, or the customer's mobile (as the till types either).
CARD_OR_PHONE = typer.Argument(..., metavar="CARD/PHONE", help=N_("Card number, or the customer's mobile number."))
STORE = typer.Option(None, "--store", help=N_("Store code (e.g. SZ01)."))  # a store, where several commands take one
# Why a person looks at a customer's full phone and ID number (recorded with the look; a manager must say).
UNMASK_REASON = typer.Option(None, "--reason", help=N_("With --unmask: why (recorded; a manager must give it)."))
# This terminal's store, where a command records one (a sale, an enrolment): VIPCLI_STORE or config.toml
# say it once for the till.
TILL_STORE = typer.Option(None, "--store", envvar="VIPCLI_STORE", show_default=False,
                          help=N_("This terminal's store code (e.g. SZ01); default VIPCLI_STORE or config.toml."))


def command(group: typer.Typer, name: str | None = None, help: str | None = None):  # noqa: A002 - typer's name
    return group.command(name, cls=PlainCommand, help=help)


def commands() -> typer.Typer:
    """A command module's own registry (`cli`): its commands and groups, found through COMMANDS."""
    return typer.Typer(cls=PlainGroup, rich_markup_mode=None)


def subgroup(parent: typer.Typer, name: str, help_text: str) -> typer.Typer:
    group = typer.Typer(cls=PlainGroup, help=help_text, no_args_is_help=True, rich_markup_mode=None)
    parent.add_typer(group, name=name)
    return group


# Every command and group of `vip`, in the order the help lists them, and the module (in
# vipcli/cli/) that defines it: only that module is imported to run a command.
COMMANDS = {
    "purchase": "sales_cmd", "refund": "sales_cmd", "redeem": "points_cmd", "points": "points_cmd",
    "show": "members", "search": "members", "enroll": "members", "update": "members", "history": "members",
    "card": "cards_cmd", "cards": "cards_cmd", "cancel": "cards_cmd", "tier": "tiers", "gift": "tiers",
    "rewards": "points_cmd", "class": "care_cmd", "visit": "care_cmd", "birthdays": "care_cmd",
    "notify": "care_cmd", "import": "import_cmd", "export": "export_cmd", "check": "points_cmd",
    "audit": "safety_cmd", "backup": "safety_cmd", "restore": "safety_cmd", "key": "safety_cmd",
    "rules": "rules_cmd", "init": "members", "info": "members", "demo": "demo_cmd", "config": "chain_cmd",
    "db": "chain_cmd", "user": "users_cmd", "whoami": "users_cmd", "apply": "users_cmd",
    "applications": "users_cmd", "approve": "users_cmd", "reject": "users_cmd",
}


# The top-level help lists the commands by job (every command in one).
JOBS = (
    (N_("Members"), ("enroll", "show", "search", "update", "history", "cancel")),
    (N_("At the till"), ("purchase", "refund", "redeem")),
    (N_("Points"), ("points", "rewards", "gift")),
    (N_("Cards and tiers"), ("card", "cards", "tier")),
    (N_("Card applications"), ("apply", "applications", "approve", "reject")),
    (N_("Care and follow-ups"), ("class", "visit", "birthdays", "notify")),
    (N_("Reports and files"), ("export", "import")),
    (N_("Maintenance"), ("init", "info", "check", "audit", "backup", "restore", "key", "rules", "config", "db",
                         "demo")),
    (N_("Users and roles"), ("user", "whoami")),
)


def _module_group(module: str):
    """The click group of one command module's registry, built once per run."""
    import importlib

    if module not in _GROUPS:
        _GROUPS[module] = typer.main.get_group(importlib.import_module(f"vipcli.cli.{module}").cli)
    return _GROUPS[module]


_GROUPS: dict = {}


def main() -> None:
    for stream in (sys.stdout, sys.stderr):
        if (getattr(stream, "encoding", "") or "").lower() not in ("utf-8", "utf8"):
            stream.reconfigure(encoding="utf-8", errors="replace")
    app()
