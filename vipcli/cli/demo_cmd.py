"""demo: build a throw-away database from bundled data and show the store overview."""

import typer

from vipcli.cli import command, commands, session
from vipcli.cli.output import emit, fields_panel, status_label, styled, table, tier_label, yuan
from vipcli.i18n import N_, _

cli = commands()  # this module's commands, found by name through vipcli.cli.COMMANDS


@command(cli, "demo", help=N_("Build a demo store from bundled members and a year of purchases, and show its "
                              "overview. Example: vip demo"))
def demo(
    ctx: typer.Context,
    keep: str = typer.Option(None, "--keep", help=N_("Keep the demo database at this path (must not exist).")),
) -> None:
    import tempfile
    from pathlib import Path

    from vipcli import demo as demo_mod
    from vipcli.errors import InvalidInput
    from vipcli.fields import mask_phone
    from vipcli.rulefile import default_text, parse

    s = session(ctx)
    if keep is not None:
        path = Path(keep)
        if path.exists():
            raise InvalidInput(_("--keep: {keep} already exists; the demo writes a new database").format(keep=keep))
        data = demo_mod.build(path)
    else:
        with tempfile.TemporaryDirectory() as folder:
            data = demo_mod.build(Path(folder) / "demo.db")
            data["db"] = None
    for row in data["top_customers"]:
        row["phone"] = mask_phone(row["phone"])
    rules = parse(default_text())

    def human(c):
        c.print(styled((_("Demo store"), "bold"), _(": {members} members enrolled, {purchases} purchases over a year, "
                                                    "as of {date}").format(members=data["members"],
                                                                           purchases=data["purchases"],
                                                                           date=data["as_of"])
                       + (_(" — kept in {db}").format(db=data["db"]) if data["db"] else "")))
        c.print(table(_("Members by tier"), [N_("tier"), N_("tier name"), N_("members")], [
            [t.code, t.name, data["members_by_tier"].get(t.code, 0)] for t in rules.tiers],
            justify_right=("members",)))
        c.print(table(_("Customers by status"), [N_("status"), N_("customers")],
                      [[status_label(k), v] for k, v in sorted(data["customers_by_status"].items())],
                      justify_right=("customers",)))
        c.print(table(_("Top customers ({months} months)").format(months=rules.upgrade_window_months),
                      [N_("customer"), N_("name"), N_("phone"), N_("tier"), N_("purchases"), N_("spend")], [
            [r["customer_id"], r["name"], r["phone"], tier_label(rules, r["tier"]), r["purchases"], yuan(r["spend"])]
            for r in data["top_customers"]], justify_right=("purchases", "spend")))
        share = data["top_fifth_share_permille"]
        c.print(fields_panel([
            (N_("points outstanding"), f"{data['points_outstanding']:,}"),
            (_("spend, {months} months").format(months=rules.upgrade_window_months), yuan(data["spend_12m"])),
            ("二八定律", _("the top {count} customers (a fifth) brought {share} of the spend").format(
                count=data["top_fifth_customers"], share=f"{share // 10}.{share % 10}%")),
        ]))

    emit(s, data, human)
