"""redeem, points CARD, points expire, rewards, check."""

import typer

from vipcli.cli import CARD_OR_PHONE, command, commands, session
from vipcli.cli.fastparams import PlainGroup
from vipcli.cli.confirm import DRY_RUN, YES, run_planned
from vipcli.errors import ExitStatus
from vipcli.cli.output import emit, fields_panel, table, yuan
from vipcli.cli.progress import progress_bar
from vipcli.i18n import N_, _

# The ledger's kinds of entry, as people read them.
ENTRY_KINDS = {"earn": N_("earn"), "redeem": N_("redeem"), "expire": N_("expire"), "refund": N_("refund"),
               "adjust": N_("adjust"), "transfer": N_("transfer"), "forfeit": N_("forfeit"), "settle": N_("settle")}

cli = commands()  # this module's commands, found by name through vipcli.cli.COMMANDS


class _CardOrCommand(PlainGroup):
    """`vip points CARD` shows a card; `vip points expire` runs the expiry job."""

    def resolve_command(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["show", *args]
        return super().resolve_command(ctx, args)


points_app = typer.Typer(cls=_CardOrCommand, no_args_is_help=True, rich_markup_mode=None,
                         help=N_("Points balance with lots and history (vip points CARD), and the expiry job."))
cli.add_typer(points_app, name="points")


def _parse_points(text: str) -> int:
    from vipcli.errors import InvalidInput

    value = text.strip()
    if not value.isascii() or not value.isdigit() or not 0 < int(value) <= 10**9:
        raise InvalidInput(_("points: {text!r} must be a whole number from 1 to 1000000000").format(
                               text=text), code="bad_points")
    return int(value)


@command(cli, "redeem", help=N_("Spend points of one card (never below zero, never pooled). Example: vip redeem "
                                "755000015 --reward GIFT300 --request-id T3-0042"))
def redeem(
    ctx: typer.Context,
    ref: str = CARD_OR_PHONE,
    points: str = typer.Option(None, "--points", help=N_("Points to spend (default: the reward's price).")),
    reward: str = typer.Option(None, "--reward", help=N_("Reward code from `vip rewards`.")),
    request_id: str = typer.Option(None, "--request-id",
                                   help=N_("The till's id for this request: asked again (after a time-out), it "
                                           "returns the first result.")),
) -> None:
    from vipcli import rewards
    from vipcli.db import transaction

    s = session(ctx)
    rules = s.rules()
    amount = _parse_points(points) if points is not None else None
    with transaction(s.conn) as conn:
        data = rewards.redeem(conn, rules, ref, amount, reward, s.now, s.operator,
                              request_id.strip() if request_id is not None else None)
    def human(c):
        line = (_("Redeemed {points} points for {reward}; balance {balance}.") if data["reward"]
                else _("Redeemed {points} points; balance {balance}."))
        c.print((_("Already done (same request): ") if data["duplicate"] else "") + line.format(
            points=data["points_redeemed"], reward=data.get("reward_name"), balance=data["points_balance"]))

    emit(s, data, human)


@command(points_app, "show", help=N_("Balance, lots with their expiry, recent entries. Example: vip points 755000015"))
def points_show(ctx: typer.Context, ref: str = CARD_OR_PHONE) -> None:
    from vipcli import points as points_mod

    s = session(ctx)
    data = points_mod.statement(s.conn, s.rules(), ref, s.now)
    lots, entries = data["lots"], data["entries"]

    def human(c):
        c.print(fields_panel([(N_("card"), data["card_no"]), (N_("balance"), data["points_balance"]),
                              (N_("usable now"), data["usable"])]))
        c.print(table(_("Lots"), [N_("lot"), N_("earned"), N_("points"), N_("remaining"), N_("usable from"),
                                  N_("expires")], [
            [x["id"], x["earned_at"], x["points"], x["remaining"], x["usable_from"], x["expires_at"]] for x in lots],
            justify_right=("points", "remaining")))
        c.print(table(_("Recent entries"), [N_("time"), N_("kind"), N_("points"), N_("lot"), N_("receipt"),
                                            N_("reason"), N_("operator")], [
            [e["at"], _(ENTRY_KINDS.get(e["kind"], e["kind"])), e["delta"], e["lot_id"], e["receipt"],
             _(e["reason"] or ""), e["operator"]] for e in entries], justify_right=("points",)))

    emit(s, data, human, page=True)


@command(points_app, "expire", help=N_("Write the expiry entries of points past their expiry (idempotent); asks "
                                       "first on a terminal. Example: vip points expire --as-of 2027-01-01"))
def points_expire(
    ctx: typer.Context,
    as_of: str = typer.Option(None, "--as-of", help=N_("Expire what is past its expiry at this moment (a date: its "
                                                       "end; default now).")),
    yes: bool = YES,
    dry_run: bool = DRY_RUN,
) -> None:
    from vipcli import points as points_mod
    from vipcli.dates import parse_as_of

    s = session(ctx)
    moment = parse_as_of(as_of, s.now, writes=True)

    data = run_planned(s, "points expire", lambda conn: points_mod.expiry_plan(conn, moment),
                       lambda conn, advance: points_mod.expire_due(conn, moment, s.now, s.operator, progress=advance),
                       lambda p: (
        _("Expire {points} points on {cards} cards as of {date}.").format(
            points=p["expired_points"], cards=len(p["cards"]), date=p["as_of"])), yes, dry_run,
                       size=lambda p: p["expired_points"])
    emit(s, data, lambda c: c.print(
        (_("Dry run, nothing changed: would expire {points} points on {cards} cards as of {date}.") if data["dry_run"]
         else _("Expired {points} points on {cards} cards as of {date}.")).format(
            points=data["expired_points"], cards=len(data["cards"]), date=data["as_of"])))


@command(points_app, "adjust", help=N_("Correct a card's points by hand (audited). Example: vip points adjust "
                                       "755000015 --points -50 --reason \"typo\""))
def points_adjust(
    ctx: typer.Context,
    ref: str = CARD_OR_PHONE,
    points: str = typer.Option(..., "--points", help=N_("Points to add, or to take with a minus sign (-50).")),
    reason: str = typer.Option(..., "--reason", help=N_("Why (recorded in the ledger and the audit log).")),
) -> None:
    from vipcli import points as points_mod
    from vipcli.db import transaction
    from vipcli.fields import clean_text

    s = session(ctx)
    text = points.strip()
    amount = -_parse_points(text[1:]) if text.startswith("-") else _parse_points(text.lstrip("+"))
    why = clean_text(reason, "reason", 200)
    rules = s.rules()
    with transaction(s.conn) as conn:
        data = points_mod.adjust(conn, rules, ref, amount, why, s.now, s.operator)
    left = data["points_balance"]
    emit(s, data,
         lambda c: c.print(_("Adjusted {points} points; balance {balance}.").format(points=f"{amount:+d}",
                                                                                   balance=left)))


@command(cli, "rewards", help=N_("The reward catalog of the rules. Example: vip rewards"))
def rewards(ctx: typer.Context) -> None:
    s = session(ctx)
    rules = s.rules()
    items = [{"code": r.code, "name": r.name, "points": r.points, "value": r.value} for r in rules.rewards]
    months = list(rules.redeem_months)
    emit(s, {"rewards": items, "redeem_months": months}, lambda c: c.print(table(
        _("Rewards"), [N_("code"), N_("reward"), N_("points"), N_("value")],
        [[r["code"], r["name"], r["points"], yuan(r["value"])] for r in items], justify_right=("points", "value"))))


# The checks of `vip check`, as people read them (vipcli/checks.py).
CHECKS = {"structure": N_("SQLite's own checks"), "lots": N_("points lots and balances"),
          "purchases": N_("purchases, their points and refunds"), "tiers": N_("tiers and their history"),
          "card_numbers": N_("card numbers"), "id_numbers": N_("ID numbers and their key")}


@command(cli, "check", help=N_("Run every invariant (lots and balances, purchases, tiers, card numbers) over what "
                               "changed since the last clean check, or every row. Example: vip check --full"))
def check(ctx: typer.Context,
          every_row: bool = typer.Option(False, "--all", help=N_("Read every row, not only what changed since the "
                                         "last clean check.")),
          full: bool = typer.Option(False, "--full", help=N_("Every row, and SQLite's integrity and foreign-key "
                                    "checks (reads every page and index; weekly)."))) -> None:
    from vipcli.checks import run_all

    from vipcli.checks import ALL

    s = session(ctx)
    rules = s.rules()
    with progress_bar(s, N_("check"), len(ALL) + full) as advance:
        report = run_all(s.conn, rules, full, every_row, at=s.now, progress=advance)
    results = report.problems
    problems = [p for found in results.values() for p in found]
    data = {"ok": not problems, "problems": problems, "checks": {k: len(v) for k, v in results.items()},
            "scope": "all" if report.every_row else "changes", "since": report.since}

    def human(c):
        c.print(_("every row") if report.every_row else
                _("what changed since the last clean check ({since}; --all: every row)").format(
                    since=report.since.replace("T", " ")[:16]))
        for name, found in results.items():
            mark = _("BAD") if found else _("ok")
            c.print(f"{mark} {_(CHECKS[name])}"
                    + (": " + _("{count} problems").format(count=len(found)) if found else ""))
            for problem in found:
                c.print(f"    {problem}")

    emit(s, data, human)
    if problems:
        raise typer.Exit(ExitStatus.REFUSED)  # problems found (SPEC: exit 1)
