"""rules show / validate / load."""

import sys

import typer

from vipcli.cli import command, commands, session, subgroup
from vipcli.cli.output import emit, fields_panel, table, yuan
from vipcli.i18n import N_, _

cli = commands()  # this module's commands, found by name through vipcli.cli.COMMANDS

rules_app = subgroup(cli, "rules", N_("The business rules in force: show, validate, load."))


def _summary(rules) -> dict:
    return {
        "rules_version": rules.version,
        "profile": rules.name,
        "description": rules.description,
        "qualify_single": rules.qualify_single,
        "card_on_registration": rules.card_on_registration,
        "registration_days": rules.registration_days,
        "renewal_month": rules.renewal_month,
        "qualify_windows": [{"months": w.months, "amount": w.amount} for w in rules.qualify_windows],
        "card_issue": rules.card_issue,
        "review_requires": list(rules.review_requires),
        "birthday_rate": str(rules.birthday_rate),
        "points_per_yuan": rules.points_per_yuan,
        "expiry": rules.expiry,
        "tiers": [{"code": t.code, "name": t.name, "rate": str(t.rate), "single_purchase": t.single_purchase,
                   "spend": t.spend} for t in rules.tiers],
    }


@command(rules_app, "show", help=N_("Print the rules in force: on a terminal a summary and the TOML text; into a "
                                    "file or a pipe the TOML text alone, a rules file (under --json too, as "
                                    "\"text\"). Example: vip rules show > rules.toml"))
def rules_show(ctx: typer.Context) -> None:
    s = session(ctx)
    rules = s.rules()
    data = {**_summary(rules), "text": rules.text}

    def human(c):
        if not sys.stdout.isatty():  # into a file or a pipe: the rules file itself, for `vip rules validate`
            sys.stdout.write(rules.text if rules.text.endswith("\n") else rules.text + "\n")
            return
        c.print(fields_panel([(N_("version"), rules.version), (N_("profile"), f"{rules.name}: {rules.description}"),
                              (N_("qualify"), "; ".join(
                                  ([_("on registration")] if rules.card_on_registration else [])
                                  + ([_("one purchase {amount}").format(amount=yuan(rules.qualify_single))]
                                     if rules.qualify_single else [])
                                  + [_("{months} months {amount}").format(months=w.months, amount=yuan(w.amount))
                                     for w in rules.qualify_windows])
                              + (_(" (an application, reviewed by hq)") if rules.card_issue == "review" else "")),
                              (N_("birthday rate"), rules.birthday_rate),
                              (N_("points"), _("{per_yuan} per yuan, expiry {expiry}").format(
                                  per_yuan=rules.points_per_yuan, expiry=rules.expiry))]))
        c.print(table(_("Tiers"), [N_("code"), N_("tier name"), N_("rate"), N_("one purchase"), N_("spend")], [
            [t.code, t.name, t.rate, yuan(t.single_purchase), yuan(t.spend)] for t in rules.tiers]))
        c.print(rules.text, highlight=False)

    emit(s, data, human, page=True)


@command(rules_app, "validate", help=N_("Check a rules file without loading it. Example: vip rules validate "
                                        "examples/rules/store.toml"))
def rules_validate(ctx: typer.Context, path: str = typer.Argument(..., metavar="FILE", help=N_("A rules file (TOML)."))) -> None:
    from vipcli.rulefile import parse, read_rules_file

    s = session(ctx)
    rules = parse(read_rules_file(path))
    emit(s, {"valid": True, "file": path, "profile": rules.name},
         lambda c: c.print(_("{path}: valid ({profile}).").format(path=path, profile=rules.name)))


@command(rules_app, "load", help=N_("Load a rules file as the next rules version; earlier purchases keep theirs. "
                                    "Example: vip rules load my.toml"))
def rules_load(ctx: typer.Context, path: str = typer.Argument(..., metavar="FILE", help=N_("A rules file (TOML)."))) -> None:
    from vipcli.rulebook import load_rules
    from vipcli.rulefile import read_rules_file

    s = session(ctx)
    text = read_rules_file(path)
    s.rules()  # a database without rules gets version 1 first
    version = load_rules(s.conn, text, path, s.operator, s.now)
    emit(s, {"rules_version": version, "file": path},
         lambda c: c.print(_("Loaded {path} as rules version {version}.").format(path=path, version=version)))


@command(rules_app, "profiles", help=N_("The built-in rule profiles. Example: vip rules profiles"))
def rules_profiles(ctx: typer.Context) -> None:
    from vipcli.rulefile import default_text, parse, profile_names

    s = session(ctx)
    items = [{"name": n, "description": parse(default_text(n)).description} for n in profile_names()]
    emit(s, {"profiles": items}, lambda c: c.print(table(_("Profiles (vip init --profile NAME)"),
                                                         [N_("profile"), N_("description")],
                                                         [[p["name"], p["description"]] for p in items])))
