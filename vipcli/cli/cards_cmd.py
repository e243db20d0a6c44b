"""card lost / found / replace / renew, cards (the tracking table), cancel."""

import typer

from vipcli.cli import CARD_OR_PHONE, command, commands, session, subgroup
from vipcli.cli.confirm import DRY_RUN, YES, run_confirmed, run_planned
from vipcli.cli.output import emit, status_label, styled, table
from vipcli.i18n import N_, _

cli = commands()  # this module's commands, found by name through vipcli.cli.COMMANDS

card_app = subgroup(cli, "card", N_("Card lifecycle: lost, found, replace, renew."))


def _lifecycle(ctx, ref: str, step: str, force: bool = False) -> None:
    """One card lifecycle step in a write transaction (membership.card_step), printed."""
    from vipcli import membership
    from vipcli.cards import format_number
    from vipcli.db import transaction

    s = session(ctx)
    rules = s.rules()
    with transaction(s.conn) as conn:
        data = membership.card_step(conn, rules, ref, step, s.now, s.operator, force)
    data.setdefault("new_card_no", None)
    emit(s, data, lambda c: c.print(styled(
        _("Card {card}: {status}").format(card=format_number(data["card_no"], rules), status=status_label(data["status"])),
        *(((_("; new card "), (format_number(data["new_card_no"], rules), "bold"),
            _(" ({points} points moved)").format(points=data["points_moved"])) if data["new_card_no"] else ())),
        _("; valid to {date}.").format(date=data["valid_to"]) if data.get("valid_to") else _("."))))


@command(card_app, "lost", help=N_("Report a card lost: purchases and redemptions refused at once. Example: vip card "
                                   "lost 755000015"))
def card_lost(ctx: typer.Context, ref: str = CARD_OR_PHONE) -> None:
    _lifecycle(ctx, ref, "card lost")


@command(card_app, "found", help=N_("A card reported lost was found: it works again. Example: vip card found "
                                    "755000015"))
def card_found(ctx: typer.Context, ref: str = typer.Argument(..., metavar="CARD", help=N_("Card number."))) -> None:
    _lifecycle(ctx, ref, "card found")


@command(card_app, "replace", help=N_("Issue a new number in the same region; points, tier and history carry over. "
                                      "Example: vip card replace 755000015"))
def card_replace(ctx: typer.Context, ref: str = CARD_OR_PHONE) -> None:
    _lifecycle(ctx, ref, "card replace")


@command(card_app, "renew", help=N_("Renew a card for a year (December is the renewal month); --all asks first on a "
                                    "terminal. Example: vip card renew 755000015"))
def card_renew(
    ctx: typer.Context,
    ref: str = typer.Argument(None, metavar="CARD/PHONE", help=N_("Card number, or the customer's mobile number.")),
    all_cards: bool = typer.Option(False, "--all", help=N_("Renew every current card due this year (the month's "
                                                           "batch).")),
    force: bool = typer.Option(False, "--force", help=N_("Renew outside the renewal window (audited).")),
    yes: bool = YES,
    dry_run: bool = DRY_RUN,
) -> None:
    from vipcli import membership
    from vipcli.errors import InvalidInput

    if all_cards == (ref is not None):
        raise InvalidInput(_("give a CARD or --all"), code="bad_usage")
    if ref is not None:
        _lifecycle(ctx, ref, "card renew", force)
        return
    s = session(ctx)
    rules = s.rules()

    data = run_planned(s, "card renew --all",
                       lambda conn: membership.renew_all(conn, rules, s.now, s.operator, force, dry_run=True),
                       lambda conn, advance: membership.renew_all(conn, rules, s.now, s.operator, force,
                                                                  progress=advance),
                       lambda p: _("Renew {count} cards valid to {date} for a year.").format(
                           count=p["renewed"], date=rules.validity_end(s.now.year)),
                       yes, dry_run, size=lambda p: p["renewed"])
    emit(s, data, lambda c: c.print((_("Dry run, nothing changed: would renew {count} cards.") if data["dry_run"]
                                     else _("Renewed {count} cards.")).format(count=data["renewed"])))


@command(cli, "cards", help=N_("The card tracking table (VIP卡跟踪表). Example: vip cards --status blocked"))
def cards_table(
    ctx: typer.Context,
    status: str = typer.Option(None, "--status", help=N_("Only cards in this status (active, blocked, 挂失...).")),
    region: str = typer.Option(None, "--region", help=N_("Only cards of this region code.")),
) -> None:
    from vipcli import cards

    s = session(ctx)
    rules = s.rules()
    if status is not None:
        status = cards.status_code(status)
    rows = cards.tracking_table(s.conn, rules, s.now.date(), status, region)
    emit(s, {"cards": rows, "count": len(rows)}, lambda c: c.print(table(
        f"VIP卡跟踪表 ({len(rows)})", [N_("card"), N_("holder"), N_("phone"), N_("issued"), N_("valid to"),
                                       N_("status"), N_("renewals"), N_("replaced by")],
        [[cards.format_number(r["card_no"], rules), r["holder"], r["phone"], r["issued_at"][:10], r["valid_to"],
          status_label(r["status"]), r["renewals"], cards.format_number(r["replaced_by"], rules)] for r in rows],
        justify_right=("renewals",))), page=True)


@command(cli, "cancel", help=N_("End a membership; remaining points are forfeited. Asks first on a terminal. "
                                "Example: vip cancel 755000015 --reason \"customer asked\""))
def cancel(
    ctx: typer.Context,
    ref: str = CARD_OR_PHONE,
    reason: str = typer.Option(..., "--reason", help=N_("Voluntary exit, breach of the rules...")),
    erase: bool = typer.Option(False, "--erase", help=N_("Also anonymise the archive's personal data (can't be "
                                                         "undone).")),
    yes: bool = YES,
    dry_run: bool = DRY_RUN,
) -> None:
    from vipcli import membership
    from vipcli.fields import clean_text

    s = session(ctx)
    why = clean_text(reason, "reason", 200)
    rules = s.rules()

    def work(conn):
        return membership.end(conn, rules, ref, why, s.now, s.operator, erase)

    def plan(p):
        if p["card_no"] is None:
            return _("Erase the personal data of customer {id} (no card) for good.").format(id=p["customer_id"])
        return (_("Cancel card {card} of customer {id}: {points} points forfeited; the customer's personal data "
                  "erased for good.") if erase else
                _("Cancel card {card} of customer {id}: {points} points forfeited.")).format(
                    card=p["card_no"], id=p["customer_id"], points=p["points_forfeited"])

    data = run_confirmed(s, "cancel", work, plan, yes, dry_run)
    if data["erased"] and not data["dry_run"]:
        membership.journal_erasure(s.conn, data["customer_id"], s.now)
        data["wiped_from_file"] = membership.wipe_wal(s.conn)

    def human(c):
        if data["dry_run"]:
            c.print(_("Dry run, nothing changed: {plan}").format(plan=plan(data)))
            return
        if data["card_no"] is not None:
            c.print(_("Card {card} cancelled; {points} points forfeited.").format(card=data["card_no"],
                                                                                 points=data["points_forfeited"]))
        if data["erased"]:
            c.print(_("Personal data erased. This can't be undone; purchases and points history stay for the "
                      "accounts."))
            if not data["wiped_from_file"]:
                c.print(_("Another program is still reading the database, so the old values stay in its "
                          "write-ahead log (DATABASE-wal) until that program stops reading."))

    emit(s, data, human)
