"""user add / role / remove / list, whoami; apply, applications, approve, reject (vipcli/roles.py,
vipcli/applications.py)."""

import typer

from vipcli.applications import STATUS_NAMES
from vipcli.cli import CARD_OR_PHONE, TILL_STORE, command, commands, session, subgroup
from vipcli.cli.output import emit, fields_panel, table, yuan
from vipcli.i18n import N_, _

cli = commands()  # this module's commands, found by name through vipcli.cli.COMMANDS

user_app = subgroup(cli, "user", N_("Who may use vipcli, and in which role (clerk, manager, hq, auditor)."))
USER = typer.Argument(..., metavar="NAME", help=N_("Login (chain) or operator name (file)."))
ROLE = typer.Option(..., "--role", metavar="clerk|manager|hq|auditor", help=N_("The role: clerk, manager, hq or "
                                                                               "auditor (README, Roles)."))


@command(user_app, "add", help=N_("Add a user: on a chain's database a login (granted its role in the database too), "
                                  "on a file an operator name. Example: vip user add anna --role clerk --store SZ01"))
def user_add(
    ctx: typer.Context,
    name: str = USER,
    role: str = ROLE,
    store: str = typer.Option(None, "--store", help=N_("The user's store (e.g. SZ01).")),
) -> None:
    from vipcli import roles
    from vipcli.fields import check_store

    s = session(ctx)
    data = roles.add_user(s.conn, name, role, check_store(store) if store else None, s.now, s.operator)
    emit(s, data, lambda c: c.print(_("Added {name} as {role}.").format(name=data["name"], role=data["role"])))


@command(user_app, "role", help=N_("Change a user's role (audited). Example: vip user role anna manager"))
def user_role(
    ctx: typer.Context,
    name: str = USER,
    role: str = typer.Argument(..., metavar="ROLE", help=N_("clerk, manager, hq or auditor.")),
) -> None:
    from vipcli import roles

    s = session(ctx)
    data = roles.set_role(s.conn, name, role, s.now, s.operator)
    emit(s, data, lambda c: c.print(_("{name}: {old} -> {new}.").format(name=name, old=data["from"], new=data["role"])))


@command(user_app, "remove", help=N_("Remove a user who left: no command accepts them any more (audited; what they "
                                     "did stays recorded). Example: vip user remove anna"))
def user_remove(
    ctx: typer.Context,
    name: str = USER,
) -> None:
    from vipcli import roles

    s = session(ctx)
    data = roles.remove_user(s.conn, name, s.now, s.operator)
    emit(s, data, lambda c: c.print(_("Removed {name} ({role}).").format(name=name, role=data["role"])))


@command(user_app, "list", help=N_("The users and their roles. Example: vip user list"))
def user_list(ctx: typer.Context) -> None:
    from vipcli import roles

    s = session(ctx)
    found = roles.users(s.conn)
    emit(s, {"users": found}, lambda c: c.print(table(
        _("Users ({count})").format(count=len(found)), [N_("user"), N_("role"), N_("store"), N_("added"), N_("by")],
        [[u["name"], u["role"], u["store"] or "", u["added_at"], u["added_by"]] for u in found])))


@command(cli, "whoami", help=N_("Who vipcli takes you for, and your role. Example: vip whoami"))
def whoami(ctx: typer.Context) -> None:
    s = session(ctx)
    data = {"name": s.operator, "role": s.role, "store": s.user["store"] if s.user else None}
    emit(s, data, lambda c: c.print(fields_panel([(N_("user"), data["name"]), (N_("role"), data["role"]),
                                                  (N_("store"), data["store"] or "")])))


# --- card applications ---------------------------------------------------------------------------


def _missing(data: dict) -> str:
    from vipcli.applications import FIELD_NAMES

    return ", ".join(_(FIELD_NAMES[name]) for name in data["missing"])


def _application_panel(c, data: dict) -> None:
    c.print(fields_panel([
        (N_("application"), data["id"]), (N_("status"), _(STATUS_NAMES[data["status"]])), (N_("customer"), data["customer_id"]),
        (N_("name"), data["name"] or ""), (N_("phone"), data["phone"] or ""), (N_("store"), data["store"] or ""),
        (N_("region"), data["region"]), (N_("reason"), data["reason"]),
        (N_("receipts"), ", ".join(f"{r['receipt']} {yuan(r['paid'])}" for r in data["receipts"])),
        (N_("missing"), _missing(data)), (N_("card"), data["card_no"] or ""),
        (N_("note"), data["note"] or ""),
    ]))


@command(cli, "apply", help=N_("Open a card application for a customer without a card (rules with card_issue = "
                               "\"review\"). Example: vip apply 13800138000 --note \"VIP申请函 SZ01-0012\""))
def apply(
    ctx: typer.Context,
    ref: str = CARD_OR_PHONE,
    note: str = typer.Option(None, "--note", help=N_("What the application says (recorded).")),
    store: str = TILL_STORE,
) -> None:
    from vipcli import applications
    from vipcli.db import transaction
    from vipcli.fields import check_store, clean_text

    s = session(ctx)
    rules = s.rules()
    store = s.till_store(store)
    with transaction(s.conn) as conn:
        data = applications.apply(conn, rules, ref, clean_text(note, "note", 200) if note else None,
                                  check_store(store) if store else None, s.now, s.operator)
    emit(s, data, lambda c: (c.print(_("Application {id} opened; the head office reviews it (vip approve).").format(
        id=data["id"])), _application_panel(c, data)))


@command(cli, "applications", help=N_("Card applications, oldest first (masked). Example: vip applications --status "
                                      "pending"))
def applications_list(
    ctx: typer.Context,
    status: str = typer.Option(None, "--status", metavar="pending|approved|rejected",
                               help=N_("Only applications in this state.")),
) -> None:
    from vipcli import applications

    s = session(ctx)
    found = applications.listing(s.conn, s.rules(), status)
    emit(s, {"applications": found}, lambda c: c.print(table(
        _("Applications ({count})").format(count=len(found)),
        [N_("application"), N_("status"), N_("customer"), N_("name"), N_("phone"), N_("store"), N_("paid"),
         N_("missing")],
        [[a["id"], _(STATUS_NAMES[a["status"]]), a["customer_id"], a["name"] or "", a["phone"] or "", a["store"] or "",
          yuan(sum(r["paid"] for r in a["receipts"])), _missing(a)] for a in found])), page=True)


APPLICATION = typer.Argument(..., metavar="ID", help=N_("The application's number (vip applications)."))


def _number(text: str) -> int:
    from vipcli.fields import parse_count

    return parse_count(text, "application", 1, 10**12)


@command(cli, "approve", help=N_("Approve a card application: the card gets the next number of the applicant's "
                                 "region, its SMS goes into the next vip notify card-issued. Example: vip approve 12"))
def approve(ctx: typer.Context, application: str = APPLICATION) -> None:
    from vipcli import applications
    from vipcli.db import transaction

    s = session(ctx)
    rules = s.rules()
    number = _number(application)
    with transaction(s.conn) as conn:
        data = applications.approve(conn, rules, number, s.now, s.operator)
    emit(s, data, lambda c: c.print(_("Approved application {id}: card {card_no}, {points} points for its purchases; "
                                      "the card-issued SMS goes out with the next vip notify card-issued.").format(
        id=data["id"], card_no=data["card_no"], points=data["points_earned"])))


@command(cli, "reject", help=N_("Reject a card application, saying why (recorded). Example: vip reject 12 --reason "
                                "\"资料填写不规范\""))
def reject(
    ctx: typer.Context,
    application: str = APPLICATION,
    reason: str = typer.Option(..., "--reason", help=N_("Why (recorded in the audit log).")),
) -> None:
    from vipcli import applications
    from vipcli.db import transaction
    from vipcli.fields import clean_text

    s = session(ctx)
    rules = s.rules()
    why = clean_text(reason, "reason", 200)
    with transaction(s.conn) as conn:
        data = applications.reject(conn, rules, _number(application), why, s.now, s.operator)
    emit(s, data, lambda c: c.print(_("Rejected application {id}: {reason}").format(id=data["id"], reason=why)))
