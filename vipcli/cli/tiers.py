"""tier show / review / set."""

import typer

from vipcli.cli import CARD_OR_PHONE, command, commands, session, subgroup
from vipcli.cli.confirm import DRY_RUN, YES, run_planned
from vipcli.cli.output import emit, fields_panel, table, tier_label, yuan
from vipcli.i18n import N_, _

cli = commands()  # this module's commands, found by name through vipcli.cli.COMMANDS

tier_app = subgroup(cli, "tier", N_("Tier status, the periodic review, manual override."))


@command(tier_app, "show", help=N_("Tier, rate and what the next tier needs. Example: vip tier show 755000018"))
def tier_show(ctx: typer.Context, ref: str = CARD_OR_PHONE) -> None:
    from vipcli import sales

    s = session(ctx)
    rules = s.rules()
    data = sales.tier_status(s.conn, rules, ref, s.now)
    emit(s, data, lambda c: c.print(fields_panel([
        (N_("tier"), f"{data['tier']} ({data['tier_name']})"), (N_("discount rate"), data["discount_rate"]),
        (N_("since"), data["tier_since"]), (N_("held at least until"), data["held_until"]),
        (_("spend {months} months").format(months=rules.upgrade_window_months), yuan(data["spend_12m"])),
        (N_("next tier"), tier_label(rules, data["next_tier"]) or _("— (highest)")),
        (N_("needed for next"), _("{spend} more spend, or one purchase of {single}").format(
            spend=yuan(data["needed_for_next"]), single=yuan(data["single_purchase_for_next"]))
         if data["next_tier"] else ""),
    ])))


@command(tier_app, "review", help=N_("Confirm or lower tiers held past their hold period; asks first on a terminal. "
                                     "Example: vip tier review --as-of 2026-12-31"))
def tier_review(
    ctx: typer.Context,
    as_of: str = typer.Option(None, "--as-of", help=N_("Review at the end of this date, or at this date-time "
                                                       "(default now; not in the future).")),
    yes: bool = YES,
    dry_run: bool = DRY_RUN,
) -> None:
    from vipcli import sales
    from vipcli.dates import parse_as_of

    s = session(ctx)
    moment = parse_as_of(as_of, s.now, writes=True)
    rules = s.rules()

    def plan(p):
        return _("Review {reviewed} members as of {date}: {confirmed} keep their tier, {changed} move down.").format(
            reviewed=p["reviewed"], date=p["as_of"], confirmed=p["confirmed"], changed=len(p["changes"]))

    data = run_planned(s, "tier review", lambda conn: sales.tier_review(conn, rules, moment, s.operator, dry_run=True),
                       lambda conn, advance: sales.tier_review(conn, rules, moment, s.operator, progress=advance), plan,
                       yes, dry_run, size=lambda p: p["reviewed"])
    emit(s, data, lambda c: (c.print((_("Dry run, nothing changed: ") if data["dry_run"] else "")
                                     + _("Reviewed {reviewed}: {confirmed} confirmed, {changed} changed.").format(
                                         reviewed=data["reviewed"], confirmed=data["confirmed"],
                                         changed=len(data["changes"]))),
                             data["changes"] and c.print(table(None, [N_("card"), N_("from"), N_("to")], [
                                 [x["card_no"], tier_label(rules, x["from"]), tier_label(rules, x["to"])]
                                 for x in data["changes"]]))))


@command(tier_app, "set", help=N_("Set a tier by hand (audited). Example: vip tier set 755000018 gold --reason "
                                  "\"store manager decision\""))
def tier_set(
    ctx: typer.Context,
    ref: str = CARD_OR_PHONE,
    tier: str = typer.Argument(..., metavar="TIER", help=N_("Tier code or name from the rules (e.g. gold, 金卡).")),
    reason: str = typer.Option(..., "--reason", help=N_("Why (recorded in the audit log).")),
) -> None:
    from vipcli import sales
    from vipcli.db import transaction
    from vipcli.fields import clean_text

    s = session(ctx)
    why = clean_text(reason, "reason", 200)
    rules = s.rules()
    with transaction(s.conn) as conn:
        data = sales.tier_set(conn, rules, ref, tier, why, s.now, s.operator)
    emit(s, data, lambda c: c.print(_("Tier of {card}: {old} -> {new}.").format(
        card=data["card_no"], old=tier_label(rules, data["from"]), new=tier_label(rules, data["to"]))))


@command(cli, "gift", help=N_("Give one gift of the tier's yearly allowance (audited). Example: vip gift 755000015"))
def gift(ctx: typer.Context, ref: str = CARD_OR_PHONE) -> None:
    from vipcli import sales
    from vipcli.db import transaction

    s = session(ctx)
    rules = s.rules()
    with transaction(s.conn) as conn:
        data = sales.give_gift(conn, rules, ref, s.now, s.operator)
    emit(s, data, lambda c: c.print(_("Gave {gift} ({value}); {left} left this year.").format(
        gift=data["gift"], value=yuan(data["value"]), left=data["gifts_left"])))
