"""purchase, refund."""

import typer

from vipcli.cli import TILL_STORE, command, commands, session
from vipcli.cli.output import emit, styled, tier_label, yuan
from vipcli.i18n import N_, _

cli = commands()  # this module's commands, found by name through vipcli.cli.COMMANDS


def when(at: str | None, now):
    """--at: back-dating, never into the future."""
    if at is None:
        return now
    from vipcli.dates import iso, parse_when
    from vipcli.errors import InvalidInput

    moment = parse_when(at, "at")
    if moment > now:
        raise InvalidInput(_("at: {value} is in the future").format(value=iso(moment)), code="bad_date")
    return moment


@command(cli, "purchase", help=N_("Record a purchase: discount, points, qualification, tier. Example: vip purchase "
                                  "755000018 --amount 1000"))
def purchase(
    ctx: typer.Context,
    card: str = typer.Argument(None, metavar="CARD", help=N_("Card number (or use --phone).")),
    phone: str = typer.Option(None, "--phone", help=N_("Buyer's phone; an unknown phone becomes a new customer "
                                                       "(prospect).")),
    existing: bool = typer.Option(False, "--existing", help=N_("Refuse a phone that is not on file (exit 1) instead "
                                                               "of creating a customer.")),
    amount: str = typer.Option(..., "--amount", help=N_("Regular goods at list price, in yuan.")),
    promo: str = typer.Option(None, "--promo", help=N_("Promo/special goods at list price (no discount).")),
    paid: str = typer.Option(None, "--paid", help=N_("Total already paid at the till (POS data): no discount "
                                                     "computed.")),
    receipt: str = typer.Option(None, "--receipt", help=N_("Receipt number (generated if not given).")),
    store: str = TILL_STORE,
    at: str = typer.Option(None, "--at", help=N_("Back-date (YYYY-MM-DD[THH:MM]).")),
    birthday_id_checked: bool = typer.Option(False, "--birthday-id-checked",
                                             help=N_("ID seen on the birthday: birthday rate applies (第十四条).")),
) -> None:
    from vipcli import cards, fields, sales
    from vipcli.db import transaction
    from vipcli.money import parse_yuan

    s = session(ctx)
    rules = s.rules()
    store = s.till_store(store)
    sale = sales.Sale(
        regular=parse_yuan(amount, "amount"),
        promo=parse_yuan(promo, "promo") if promo is not None else 0,
        paid=parse_yuan(paid, "paid") if paid is not None else None,
        card_no=cards.parse_number(card, rules) if card is not None else None,
        phone=fields.normalize_phone(phone) if phone is not None else None,
        receipt=receipt.strip() if receipt is not None else None,
        store=fields.check_store(store) if store is not None else None,
        at=when(at, s.now) if at is not None else None,
        birthday_checked=birthday_id_checked,
        existing_only=existing,
    )
    sales.validate_sale(sale, rules, s.now)
    with transaction(s.conn) as conn:
        result = sales.record_purchase(conn, rules, sale, s.now, s.operator)

    def human(c):
        shown = cards.format_number(result["card_no"], rules)
        if result["duplicate"]:
            c.print(_("Receipt {receipt} was already recorded; nothing changed.").format(receipt=result["receipt"]))
            return
        if result["new_customer"]:
            c.print(styled((_("New customer"), "bold yellow"), " " + _(
                "{id} created for phone {phone} (not on file before).").format(
                    id=result["customer_id"], phone=fields.mask_phone(sale.phone))))
        rate = " " + _("at {rate}").format(rate=result["discount_rate"]) if result["discount_rate"] else ""
        tail = (_("{rate}, card {card}.").format(rate=rate, card=shown) if result["card_no"]
                else _("{rate}, no card (prospect).").format(rate=rate))
        c.print(styled(_("Receipt {receipt}: paid ").format(receipt=result["receipt"]), (yuan(result["paid"]), "bold"),
                       tail))
        if result["card_issued"]:
            c.print(styled((_("Qualified: card {card} issued").format(card=shown), "bold green"),
                           _(" ({tier}).").format(tier=tier_label(rules, result["tier"]))))
        c.print(_("Points earned {earned}, balance {balance}.").format(earned=result["points_earned"],
                                                                        balance=result["points_balance"]))
        if result["application"]:
            c.print(styled((_("Application {id} opened").format(id=result["application"]), "bold"), _(
                ": the card comes once the head office approves it (vip approve); until then list price, "
                "no points.")))
        elif result["note"]:
            c.print(result["note"])

    emit(s, result, human)


@command(cli, "refund", help=N_("Return goods of a receipt, whole or in part. Example: vip refund R20261123-000001 "
                                "--amount 100"))
def refund(
    ctx: typer.Context,
    receipt: str = typer.Argument(..., metavar="RECEIPT", help=N_("Receipt number of the purchase.")),
    amount: str = typer.Option(None, "--amount", help=N_("Part of the paid amount to refund (default: all that is "
                                                         "left).")),
    store: str = TILL_STORE,
) -> None:
    from vipcli import fields, refunds, roles
    from vipcli.db import transaction
    from vipcli.money import parse_yuan

    s = session(ctx)
    value = parse_yuan(amount, "amount") if amount is not None else None
    receipt, store = receipt.strip(), fields.check_store(store) if store is not None else None
    if s.role == "clerk":  # a clerk refunds the day's purchases; an earlier day's needs the store's manager
        day = refunds.purchased_on(s.conn, receipt, store)
        if day is not None and day != s.now.date().isoformat():
            roles.refuse(s.conn, s.operator, "refund", s.now, s.role, _(
                "not allowed: a clerk refunds the day's purchases; {receipt} is of {day} (a manager refunds it)").format(
                receipt=receipt, day=day))
    rules = s.rules()
    with transaction(s.conn) as conn:
        result = refunds.refund(conn, rules, receipt, value, s.now, s.operator, store)

    def human(c):
        c.print(_("Refunded {amount} of {receipt}; points reversed {points}, balance {balance}.").format(
            amount=yuan(result["refunded"]), receipt=receipt, points=result["points_reversed"],
            balance=result["points_balance"]))
        if result["tier_from"]:
            c.print(_("Tier {old} -> {new}: the remaining purchases no longer earn it.").format(
                old=tier_label(rules, result["tier_from"]), new=tier_label(rules, result["tier"])))
        if result["card_cancelled"]:
            c.print(_("Card {card} cancelled: no remaining purchase qualifies for it (its points are forfeited).")
                    .format(card=result["card_cancelled"]))

    emit(s, result, human)
