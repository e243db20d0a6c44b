"""config show; db copy (a store's file into a chain's PostgreSQL database)."""

import typer

from vipcli.cli import command, commands, session, subgroup
from vipcli.cli.output import emit, table
from vipcli.cli.progress import progress_bar
from vipcli.i18n import N_, _

cli = commands()  # this module's commands, found by name through vipcli.cli.COMMANDS

config_app = subgroup(cli, "config", N_("This terminal's settings: config.toml, the environment, the flags."))
db_app = subgroup(cli, "db", N_("Move a store's database into a chain's PostgreSQL database."))

SOURCES = {"flag": N_("flag"), "environment": N_("environment"), "config": N_("config.toml"),
           "default": N_("default")}


@command(config_app, "show", help=N_("What is in force and where each value came from (flag, environment, "
                                     "config.toml, default). Example: vip config show"))
def config_show(ctx: typer.Context) -> None:
    from vipcli import config, i18n
    from vipcli.pg import redacted

    s = session(ctx)
    defaults = {"db": str(s.db_path), "lang": i18n.current(), "operator": s.given_operator,
                "busy_timeout": "15"}
    settings = config.in_force(ctx.find_root(), defaults)
    if settings["db"]["value"]:
        settings["db"]["value"] = redacted(str(settings["db"]["value"]))
    data = {"config_file": str(config.path()), "config_exists": config.path().exists(), "settings": settings}

    def human(c):
        c.print(_("Configuration file: {path} ({state})").format(
            path=data["config_file"], state=_("present") if data["config_exists"] else _("none")))
        c.print(table(None, [N_("setting"), N_("value in force"), N_("set from")],
                      [[key, item["value"] if item["value"] is not None else "-",
                        _(SOURCES[item["source"]]) + (f" ({item['from']})" if item["from"] else "")]
                       for key, item in settings.items()]))

    emit(s, data, human)


@command(db_app, "copy", help=N_("Copy this store's SQLite database into an empty chain database: every table, "
                                 "the ledger, the audit and the rules versions, then vip check on the copy. "
                                 "Example: vip db copy --to postgresql://vip_admin@hq/vip"))
def db_copy(
    ctx: typer.Context,
    to: str = typer.Option(..., "--to", metavar="URL", help=N_("The chain's database (postgresql://user@host/name; "
                                                              "the password in ~/.pgpass).")),
) -> None:
    from vipcli import dbcopy

    s = session(ctx)
    source = s.conn
    total = dbcopy.rows_to_copy(source)
    with progress_bar(s, N_("copy"), total=total, unit=N_("rows")) as advance:
        data = dbcopy.copy(source, to, s.now, progress=advance)

    def human(c):
        c.print(_("Copied {rows} rows into {target}; vip check on the copy: {verdict}.").format(
            rows=f"{data['rows']:,}", target=data["to"], verdict=_("clean") if data["check_ok"] else _("PROBLEMS")))

    emit(s, data, human)
