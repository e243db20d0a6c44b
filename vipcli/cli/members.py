"""init, info, enroll, show, search, update, history."""

from contextlib import contextmanager

import typer

from vipcli.cli import CARD_OR_PHONE, STORE, TILL_STORE, UNMASK_REASON, command, commands, session
from vipcli.cli.output import emit, fields_panel, gender_label, status_label, styled, table, tier_label, yuan
from vipcli.i18n import N_, _

cli = commands()  # this module's commands, found by name through vipcli.cli.COMMANDS

# The archive's fields, as enroll and update take them.
NAME = typer.Option(None, "--name", help=N_("Name (姓名)."))
GENDER = typer.Option(None, "--gender", help=N_("F or M."))
BIRTHDAY = typer.Option(None, "--birthday", help=N_("YYYY-MM-DD."))
EMAIL = typer.Option(None, "--email", help=N_("Email address."))
ADDRESS = typer.Option(None, "--address", help=N_("Postal address."))


def _fmt_card(rules, card_no):
    from vipcli.cards import format_number

    return format_number(card_no, rules)


def _secret(value: str | None) -> str | None:
    """`--id-number -`: read from a hidden prompt on a terminal, else one line of stdin, so the number
    is not in the process list for every local user to see."""
    if value != "-":
        return value
    import sys

    if sys.stdin.isatty():
        return typer.prompt("ID number", hide_input=True, err=True)
    return sys.stdin.readline().strip()


@contextmanager
def _auditing_refused_ids(s, who: str):
    """An ID number refused because it is on another archive: the attempt is audited (the write that
    tried it rolls back), and the message names nobody."""
    from vipcli.errors import Refused

    try:
        yield
    except Refused as exc:
        if exc.code == "duplicate_id":
            from vipcli.auditlog import disclosed
            from vipcli.fields import looks_like_phone, mask_phone

            disclosed(s.conn, s.now, s.operator, "id number refused", mask_phone(who) if looks_like_phone(who) else who,
                      reason="on another archive")
        raise


@command(cli, "init", help=N_("Create the database with its rules. Example: vip init --region 755"))
def init(
    ctx: typer.Context,
    rules_file: str = typer.Option(None, "--rules", help=N_("A rules profile (TOML) instead of the built-in one.")),
    profile: str = typer.Option(None, "--profile", help=N_("A built-in profile by name (see `vip rules profiles`).")),
    region: str = typer.Option(None, "--region", help=N_("Default card region code.")),
) -> None:
    from vipcli.rulebook import initialise
    from vipcli.migrations import SCHEMA_VERSION
    from vipcli.rulefile import read_rules_file, with_default_region

    from vipcli.errors import InvalidInput
    from vipcli.rulefile import default_text, profile_names

    s = session(ctx)
    if rules_file and profile:
        raise InvalidInput(_("give --rules FILE or --profile NAME, not both"), code="bad_usage")
    if profile is not None and profile not in profile_names():
        raise InvalidInput(_("profile: {profile!r} is not one of {value}").format(
                               profile=profile, value=', '.join(profile_names())), code="bad_profile")
    text = read_rules_file(rules_file) if rules_file else default_text(profile or "store")
    if region is not None:
        text = with_default_region(text, region)
    version = initialise(s.open(create=True), text, rules_file or f"built-in:{profile or 'store'}", s.operator, s.now,
                         str(s.db_path))
    data = {"db": str(s.db_path), "schema_version": SCHEMA_VERSION, "rules_version": version}
    emit(s, data, lambda c: c.print(_("Created {db} (schema {schema}, rules version {version}).").format(
        db=s.db_path, schema=SCHEMA_VERSION, version=version)))


@command(cli, "info", help=N_("Which database file is used, its schema and rules versions. Example: vip info"))
def info(ctx: typer.Context) -> None:
    from vipcli.migrations import SCHEMA_VERSION
    from vipcli.db import counts as db_counts

    s = session(ctx)
    rules = s.rules()
    counts = db_counts(s.conn)
    data = {"db": str(s.db_path), "schema_version": SCHEMA_VERSION, "rules_version": rules.version,
            "profile": rules.name, "operator": s.operator, "role": s.role, "counts": counts}
    emit(s, data, lambda c: c.print(fields_panel([
        (N_("database"), s.db_path), (N_("schema version"), SCHEMA_VERSION),
        (N_("rules version"), f"{rules.version} ({rules.name})"), (N_("operator"), f"{s.operator} ({s.role})"),
        *[(_(COUNTED[k]), v) for k, v in counts.items()],
    ])))


COUNTED = {"customers": N_("customers"), "cards": N_("cards"), "purchases": N_("purchases"),
           "ledger": N_("ledger entries")}


@command(cli, "enroll", help=N_("Create or complete a customer archive. Example: vip enroll --phone 13800138000 "
                                "--name 王芳 --gender F --birthday 1990-05-01"))
def enroll(
    ctx: typer.Context,
    phone: str = typer.Option(..., "--phone", help=N_("Mobile number (+86, spaces and dashes accepted).")),
    name: str = NAME,
    gender: str = GENDER,
    birthday: str = BIRTHDAY,
    id_number: str = typer.Option(None, "--id-number", help=N_("18-character resident ID (stored encrypted); - reads "
                                                               "it from a prompt or stdin, out of the process list.")),
    email: str = EMAIL,
    address: str = ADDRESS,
    store: str = TILL_STORE,
    region: str = typer.Option(None, "--region", help=N_("Card region when a card is granted.")),
    grant: str = typer.Option(None, "--grant", help=N_("Issue a card without qualifying; the reason is audited.")),
    at: str = typer.Option(None, "--at", help=N_("Back-date (YYYY-MM-DD[THH:MM]).")),
) -> None:
    from vipcli import archive, cards, roles
    from vipcli.cli.sales_cmd import when
    from vipcli.db import transaction
    from vipcli.fields import clean_text

    s = session(ctx)
    moment = when(at, s.now)
    clean = archive.clean_profile(
        {"phone": phone, "name": name, "gender": gender, "birthday": birthday, "id_number": _secret(id_number),
         "email": email, "address": address, "store": s.till_store(store)}, moment.date())
    reason = clean_text(grant, "grant", 200) if grant is not None else None
    rules = s.rules()
    if reason is not None and not roles.may_grant(rules, s.role):
        roles.refuse(s.conn, s.operator, "enroll --grant", s.now, s.role, roles.grant_needs_hq())
    with _auditing_refused_ids(s, clean["phone"]), transaction(s.conn) as conn:
        result = archive.enroll(conn, rules, s.vault_for, clean, moment, s.operator, reason, region)
        customer = archive.customer(conn, result["customer_id"])
        card = cards.live_card(conn, customer["id"])
    status = (cards.effective_status(card, archive.is_registered(customer), rules, moment.date())
              if card else "prospect")
    data = {"customer_id": customer["id"], "card_no": card["card_no"] if card else None, "status": status,
            "tier": customer["tier"] if card else None, "created": result["created"],
            "changed": result["changed"], "card_issued": result["card_issued"],
            "registered": archive.is_registered(customer)}

    def human(c):
        line = _("Created customer {id} ({status}).") if result["created"] else _("Updated customer {id} ({status}).")
        c.print(line.format(id=customer["id"], status=status_label(status)))
        if result["card_issued"]:
            c.print(styled(_("Card issued: "), (_fmt_card(rules, card["card_no"]), "bold"),
                           f" ({tier_label(rules, customer['tier'])})"))
        if card and not data["registered"] and rules.registration_days is not None:
            c.print(_("Registration incomplete: name, gender, birthday and phone are needed within {days} days of "
                      "the card.").format(days=rules.registration_days))

    emit(s, data, human)


@command(cli, "show", help=N_("The whole archive of one customer. Example: vip show 13800138000"))
def show(
    ctx: typer.Context,
    ref: str = CARD_OR_PHONE,
    unmask: bool = typer.Option(False, "--unmask", help=N_("Show phone and ID in full (audited).")),
    reason: str = UNMASK_REASON,
) -> None:
    from vipcli import archive
    from vipcli.auditlog import disclosed

    s = session(ctx)
    why = s.may_unmask("show", reason) if unmask else None
    rules = s.rules()
    customer, card = archive.resolve(s.conn, rules, ref)
    if unmask:
        disclosed(s.conn, s.now, s.operator, "unmask", str(customer["id"]), via="show", reason=why)
    data = archive.summary(s.conn, rules, customer, card, s.now, unmask)

    def human(c):
        left = data["registration_days_left"]
        c.print(fields_panel([
            (N_("customer"), data["customer_id"]), (N_("name"), data["name"]), (N_("phone"), data["phone"]),
            (N_("gender"), gender_label(data["gender"])), (N_("birthday"), data["birthday"]),
            (N_("ID"), data["id_number"]), (N_("email"), data["email"]), (N_("address"), data["address"]),
            (N_("store"), data["store"]), (N_("card"), _fmt_card(rules, data["card_no"])),
            (N_("status"), status_label(data["status"])), (N_("valid to"), data["valid_to"]),
            (N_("tier"), tier_label(rules, data["tier"])), (N_("points"), data["points_balance"]),
            (_("spend {months} months").format(months=rules.upgrade_window_months), yuan(data["spend_12m"])),
            (N_("class"), data["class"]),
            (N_("registration"), _("complete") if data["registered"] else
             _("incomplete, {days} days left").format(days=left) if left is not None else _("incomplete")),
            *[(_("pref {key}").format(key=k), v) for k, v in data["prefs"].items()],
        ]))
        if data["recent_purchases"]:
            c.print(table(_("Recent purchases"), [N_("receipt"), N_("time"), N_("store"), N_("paid"), N_("refunded"),
                                                  N_("points")], [
                [p["receipt"], p["purchased_at"], p["store"], yuan(p["paid"]), yuan(p["refunded"]),
                 p["points_earned"]] for p in data["recent_purchases"]], justify_right=("paid", "refunded", "points")))

    emit(s, data, human, page=True)


@command(cli, "search", help=N_("Find archives; says how many match and which of them are shown. Example: vip search "
                                "王 --tier gold"))
def search(
    ctx: typer.Context,
    text: str = typer.Argument("", metavar="TEXT", help=N_("Part of a name, phone or card number.")),
    tier: str = typer.Option(None, "--tier", help=N_("Only this tier (code or name).")),
    cls: str = typer.Option(None, "--class", help=N_("A–E.")),
    store: str = STORE,
    status: str = typer.Option(None, "--status", help=N_("prospect, active, discount_only, blocked, expired...")),
    limit: str = typer.Option("200", "--limit", help=N_("At most this many rows (1-10000).")),
    offset: str = typer.Option("0", "--offset", help=N_("Skip this many matches first (the next page).")),
) -> None:
    from vipcli import archive
    from vipcli.errors import InvalidInput
    from vipcli.fields import parse_count

    s = session(ctx)
    rules = s.rules()
    from vipcli.cards import STATUSES, status_code

    if tier is not None:
        tier = rules.tier(tier).code  # (a code or the profile's name: gold, 金卡)
    if cls is not None and cls not in [c.code for c in rules.classes]:
        raise InvalidInput(_("class: {cls!r} is not one of {value}").format(
                               cls=cls, value=', '.join((c.code for c in rules.classes))))
    if status is not None:
        status = status_code(status, ("prospect", *STATUSES))
    page_size = parse_count(limit, "limit", 1, 10000)
    skip = parse_count(offset, "offset", 0, 10**9)
    total, results = archive.search(s.conn, rules, text, s.now, tier, cls, store, status, page_size, skip)
    more = skip + len(results) < total

    def human(c):
        shown = _("{total} found").format(total=total) if len(results) == total else (
            _("showing {first}-{last} of {total}").format(first=skip + 1, last=skip + len(results), total=total)
            if results else _("none of {total} from offset {offset}").format(total=total, offset=skip))
        spend = _("spend {months}m").format(months=rules.upgrade_window_months)
        c.print(table(shown, [N_("id"), N_("name"), N_("phone"), N_("card"), N_("status"), N_("tier"), N_("points"),
                              spend, N_("class")],
                      [[r["customer_id"], r["name"], r["phone"], _fmt_card(rules, r["card_no"]),
                        status_label(r["status"]), tier_label(rules, r["tier"]), r["points_balance"],
                        yuan(r["spend_12m"]), r["class"]] for r in results],
                      justify_right=("points", spend)))
        if more:
            c.print(_("More: --offset {offset}").format(offset=skip + len(results)))

    emit(s, {"results": results, "count": len(results), "total": total, "offset": skip, "limit": page_size},
         human, page=True)


@command(cli, "update", help=N_("Change profile fields; every change is recorded. Example: vip update 13800138000 "
                                "--address 深圳市南山区"))
def update(
    ctx: typer.Context,
    ref: str = CARD_OR_PHONE,
    name: str = NAME,
    gender: str = GENDER,
    birthday: str = BIRTHDAY,
    phone: str = typer.Option(None, "--phone", help=N_("New phone number.")),
    id_number: str = typer.Option(None, "--id-number", help=N_("New resident ID; - reads it from a prompt or stdin.")),
    email: str = EMAIL,
    address: str = ADDRESS,
    store: str = STORE,
    pref: list[str] = typer.Option(None, "--pref", help=N_("KEY=VALUE preference (软件档案); KEY= removes.")),
) -> None:
    from vipcli import archive
    from vipcli.db import transaction
    from vipcli.errors import InvalidInput

    s = session(ctx)
    clean = archive.clean_profile(
        {"phone": phone, "name": name, "gender": gender, "birthday": birthday, "id_number": _secret(id_number),
         "email": email, "address": address, "store": store}, s.now.date())
    prefs = archive.parse_prefs(pref)
    if not clean and not prefs:
        raise InvalidInput(_("nothing to change: give at least one --FIELD VALUE"), code="bad_usage")
    rules = s.rules()
    with _auditing_refused_ids(s, ref), transaction(s.conn) as conn:
        changed = archive.update(conn, rules, s.vault_for, ref, clean, prefs, s.now, s.operator)
    emit(s, {"changed": changed}, lambda c: c.print(
        _("Changed: {fields}.").format(fields=", ".join(changed)) if changed else _("Nothing changed (same values).")))


@command(cli, "history", help=N_("The archive's change log (修改记录). Example: vip history 13800138000"))
def history(
    ctx: typer.Context,
    ref: str = CARD_OR_PHONE,
    unmask: bool = typer.Option(False, "--unmask", help=N_("Show old and new phone numbers in full (audited).")),
    reason: str = UNMASK_REASON,
) -> None:
    from vipcli import archive
    from vipcli.auditlog import disclosed

    s = session(ctx)
    why = s.may_unmask("history", reason) if unmask else None
    rules = s.rules()
    customer_id, changes = archive.history(s.conn, rules, ref, unmask)
    if unmask:
        disclosed(s.conn, s.now, s.operator, "unmask", str(customer_id), via="history", reason=why)
    emit(s, {"customer_id": customer_id, "changes": changes}, lambda c: c.print(table(
        _("Changes to customer {id}").format(id=customer_id), [N_("time"), N_("field"), N_("old"), N_("new"),
                                                                N_("operator")],
        [[x["at"], _(x["field"]), x["old"], x["new"], x["operator"]] for x in changes])), page=True)  # (fields: show's labels)
