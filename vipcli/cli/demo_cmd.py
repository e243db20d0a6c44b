"""demo: build a throw-away database from bundled data and show the store overview."""

import typer

from vipcli.cli import command, commands, session
from vipcli.cli.output import emit, fields_panel, styled, table, yuan
from vipcli.i18n import N_

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
            raise InvalidInput(f"--keep: {keep} already exists; the demo writes a new database")
        data = demo_mod.build(path)
    else:
        with tempfile.TemporaryDirectory() as folder:
            data = demo_mod.build(Path(folder) / "demo.db")
            data["db"] = None
    for row in data["top_customers"]:
        row["phone"] = mask_phone(row["phone"])
    rules = parse(default_text())

    def human(c):
        c.print(styled(("Demo store", "bold"), f": {data['members']} members enrolled, {data['purchases']} purchases "
                       f"over a year, as of {data['as_of']}" + (f" — kept in {data['db']}" if data["db"] else "")))
        c.print(table("Members by tier", ["tier", "name", "members"], [
            [t.code, t.name, data["members_by_tier"].get(t.code, 0)] for t in rules.tiers],
            justify_right=("members",)))
        c.print(table("Customers by status", ["status", "customers"],
                      sorted(data["customers_by_status"].items()), justify_right=("customers",)))
        c.print(table(f"Top customers ({rules.upgrade_window_months} months)", ["customer", "name", "phone", "tier", "purchases", "spend"], [
            [r["customer_id"], r["name"], r["phone"], r["tier"], r["purchases"], yuan(r["spend"])]
            for r in data["top_customers"]], justify_right=("purchases", "spend")))
        share = data["top_fifth_share_permille"]
        c.print(fields_panel([
            ("points outstanding", f"{data['points_outstanding']:,}"),
            (f"spend, {rules.upgrade_window_months} months", yuan(data["spend_12m"])),
            ("二八定律", f"the top {data['top_fifth_customers']} customers (20%) brought "
                         f"{share // 10}.{share % 10}% of the spend"),
        ]))

    emit(s, data, human)
