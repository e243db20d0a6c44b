"""class, visit log / due, birthdays, notify."""

import typer

from vipcli.cli import CARD_OR_PHONE, command, commands, session, subgroup
from vipcli.cli.output import aligned, channel_label, emit, emit_rows, status_label, table, yuan
from vipcli.i18n import N_, _

cli = commands()  # this module's commands, found by name through vipcli.cli.COMMANDS

visit_app = subgroup(cli, "visit", N_("Follow-ups (回访): log a contact, list who is due."))


def _as_of(s, text: str | None):
    from vipcli.dates import parse_as_of

    return parse_as_of(text, s.now, writes=False)


AS_OF = typer.Option(None, "--as-of", help=N_("At the end of this date, or at this date-time (default now)."))
CLASS = typer.Option(None, "--class", help=N_("Only this class (A–E)."))
STORE = typer.Option(None, "--store", help=N_("Only customers of this store."))
LIMIT = typer.Option(None, "--limit", help=N_("Show at most this many rows (people: 200 unless given; JSON: all)."))


def _filters(s, rules, cls, store, limit):
    from vipcli.errors import InvalidInput
    from vipcli.fields import check_store, parse_count

    if cls is not None and cls not in [c.code for c in rules.classes]:
        raise InvalidInput(_("class: {cls!r} is not one of {value}").format(
                               cls=cls, value=', '.join((c.code for c in rules.classes))),
                           code="bad_class")
    shown = parse_count(limit, "limit", 1, 10**7) if limit is not None else (None if s.json else 200)
    store = s.till_store(store)  # (a store's manager: that store's customers)
    return cls, check_store(store) if store is not None else None, shown


def _more(c, count, shown, command):
    if shown is not None and count > shown:
        c.print(_("Showing {shown} of {count}: --limit N for more, or `vip export {command} --out FILE.xlsx` for the "
                  "whole list.").format(shown=shown, count=count, command=command))


CLASS_LINE = ([N_("customer"), N_("name"), N_("phone"), N_("store"), N_("card"), N_("class"), N_("purchases"),
               N_("spend")], [9, 12, 11, 6, 10, 5, 9, 12])
DUE_LINE = ([N_("class"), N_("customer"), N_("name"), N_("phone"), N_("card"), N_("channel"), N_("last contact"),
             N_("due since")], [5, 9, 12, 11, 10, 7, 19, 10])


def _header(line) -> str:
    names, widths = line
    return aligned([_(name) for name in names], widths)


@command(cli, "class", help=N_("A–E classes over the class window before the date (顾客分类): the counts, and with "
                               "--list the customers. Example: vip class --list --class A --store SZ01"))
def classes(ctx: typer.Context, as_of: str = AS_OF, cls: str = CLASS, store: str = STORE,
            limit: str = LIMIT,
            listing: bool = typer.Option(False, "--list", help=N_("The customers too, a line each (the counts alone "
                                                                  "otherwise)."))
            ) -> None:
    from vipcli import care

    s = session(ctx)
    rules = s.rules()
    cls, store, shown = _filters(s, rules, cls, store, limit)
    if not s.json and not listing:
        shown = 0
    elif not s.json and limit is None:
        shown = None  # --list: every customer, written as read
    counts = {c.code: 0 for c in rules.classes}
    moment = _as_of(s, as_of)

    def counted():
        for row in care.classify(s.conn, rules, moment, store, cls):
            counts[row["class"]] += 1
            del row["known_since"]
            yield row

    def head(c):
        if listing:
            c.print(_header(CLASS_LINE))

    def tail(c):
        c.print(table("客户归类汇总表", [N_("class"), N_("customers")], [[k, v] for k, v in counts.items()],
                      justify_right=("customers",)))
        if listing:
            _more(c, sum(counts.values()), shown, "classes")
        else:
            c.print(_("The customers: vip class --list (or vip export classes --out FILE.xlsx)."))

    emit_rows(s, "classes", counted(), shown, lambda: {"counts": counts, "count": sum(counts.values())}, head,
              lambda r: aligned([r["customer_id"], r["name"], r["phone"], r["store"], r["card_no"], r["class"],
                                 r["purchases"], yuan(r["spend"])], CLASS_LINE[1]), tail)


@command(visit_app, "log", help=N_("Record a contact with a customer. Example: vip visit log 13800138000 --channel "
                                   "phone --note 满意"))
def visit_log(
    ctx: typer.Context,
    ref: str = CARD_OR_PHONE,
    channel: str = typer.Option(..., "--channel", help=N_("phone, visit, sms, email or letter.")),
    note: str = typer.Option(None, "--note", help=N_("What was said or agreed.")),
    at: str = typer.Option(None, "--at", help=N_("When (default now).")),
) -> None:
    from vipcli import care
    from vipcli.cli.sales_cmd import when
    from vipcli.db import transaction
    from vipcli.fields import clean_text

    s = session(ctx)
    text = clean_text(note, "note", 500) if note is not None else None
    moment = when(at, s.now)
    rules = s.rules()
    with transaction(s.conn) as conn:
        data = care.log_visit(conn, rules, ref, channel, text, moment, s.operator)  # (rules.channel_code reads it)
    emit(s, data, lambda c: c.print(_("Logged {channel} contact with customer {id}.").format(
        channel=channel_label(data["channel"]), id=data["customer_id"])))


@command(visit_app, "due", help=N_("Who is due for a follow-up, by class, with the channel to use and how to reach "
                                   "them. Example: vip visit due --class A"))
def visit_due(ctx: typer.Context, as_of: str = AS_OF, cls: str = CLASS, store: str = STORE,
              limit: str = LIMIT) -> None:
    from vipcli import care

    s = session(ctx)
    rules = s.rules()
    cls, store, shown = _filters(s, rules, cls, store, limit)
    count, rows = care.due(s.conn, rules, _as_of(s, as_of), store, cls)
    never = _("never")
    emit_rows(s, "due", rows, shown, lambda: {"count": count},
              lambda c: (c.print(_("Due for a follow-up (回访): {count}").format(count=count)),
                         c.print(_header(DUE_LINE))),
              lambda r: aligned([r["class"], r["customer_id"], r["name"], r["phone"], r["card_no"],
                                 channel_label(r["channel"]), r["last_contact"] or never, r["due_since"][:10]],
                                DUE_LINE[1]),
              lambda c: _more(c, count, shown, "due"))


@command(cli, "birthdays", help=N_("Members whose birthday is today or in the next days. Example: vip birthdays "
                                   "--within 3"))
def birthdays(ctx: typer.Context, within: str = typer.Option("7", "--within", help=N_("Days ahead (0 = today)."))) -> None:
    from vipcli import care
    from vipcli.fields import parse_count

    s = session(ctx)
    days = parse_count(within, "within", 0, 366)
    rows = care.birthdays(s.conn, s.rules(), s.now.date(), days)
    emit(s, {"birthdays": rows, "count": len(rows)}, lambda c: c.print(table(
        _("Birthdays"), [N_("date"), N_("in days"), N_("customer"), N_("name"), N_("phone"), N_("card"),
                         N_("status")],
        [[r["date"], r["days"], r["customer_id"], r["name"], r["phone"], r["card_no"], status_label(r["status"])]
         for r in rows])), page=True)


@command(cli, "notify", help=N_("Write an SMS outbox CSV (phones in full there only; audited). Example: vip notify "
                                "birthday --out sms.csv"))
def notify(
    ctx: typer.Context,
    kind: str = typer.Argument(..., metavar="card-issued|birthday|renewal", help=N_("Which messages: cards issued, "
                                                                                    "birthdays, renewals due.")),
    out: str = typer.Option(..., "--out", help=N_("The SMS outbox CSV to write.")),
    since: str = typer.Option(None, "--since", help=N_("card-issued: cards issued since this date (default today).")),
    within: str = typer.Option("0", "--within", help=N_("birthday: days ahead (default today only).")),
    force: bool = typer.Option(False, "--force", help=N_("Replace an existing file that is not an SMS outbox.")),
) -> None:
    from vipcli import notify as notify_mod
    from vipcli.dates import parse_date
    from vipcli.auditlog import disclosed
    from vipcli.errors import InvalidInput
    from vipcli.fields import parse_count
    from vipcli.io.files import atomic_output, csv_headed

    s = session(ctx)
    kinds = {"card-issued": "card_issued", "birthday": "birthday", "renewal": "renewal"}
    if kind not in kinds:
        raise InvalidInput(_("kind: {kind!r} must be card-issued, birthday or renewal").format(
                               kind=kind), code="bad_usage")
    days = parse_count(within, "within", 0, 366)
    rules = s.rules()
    people = notify_mod.recipients(s.conn, rules, kinds[kind], s.now.date(),
                                   parse_date(since, "since") if since else None, days)
    text = notify_mod.outbox_csv(rules, kinds[kind], people)
    disclosed(s.conn, s.now, s.operator, "notify (unmasked phones)", out, kind=kind, messages=len(people))
    with atomic_output(out, encoding="utf-8-sig", own=csv_headed(notify_mod.OUTBOX_HEADER),
                       force=force) as handle:  # Excel on Chinese Windows needs the BOM
        handle.write(text)
    emit(s, {"kind": kind, "messages": len(people), "out": out},
         lambda c: c.print(_("Wrote {count} {kind} messages to {out}.").format(count=len(people), kind=kind, out=out)),
         out=out)
