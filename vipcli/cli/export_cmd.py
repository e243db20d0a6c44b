"""export members / purchases / ledger / cards / visits / report."""

import typer

from vipcli.cli import STORE, UNMASK_REASON, command, commands, session
from vipcli.cli.output import emit
from vipcli.cli.progress import progress_bar
from vipcli.i18n import N_, _

cli = commands()  # this module's commands, found by name through vipcli.cli.COMMANDS


@command(cli, "export", help=N_("Export for people (XLSX) and cron jobs (CSV, JSON). Example: vip export members "
                                "--format xlsx --out members.xlsx"))
def export(
    ctx: typer.Context,
    kind: str = typer.Argument(..., metavar="members|purchases|ledger|cards|visits|classes|due|report",
                              help=N_("What to export.")),
    fmt: str = typer.Option(None, "--format", help=N_("xlsx, csv, json or jsonl (default: from --out's suffix).")),
    out: str = typer.Option(..., "--out", help=N_("File to write (atomically: temporary file, then rename).")),
    since: str = typer.Option(None, "--since", help=N_("From this date/time (inclusive).")),
    until: str = typer.Option(None, "--until", help=N_("Up to this date/time (exclusive).")),
    store: str = STORE,
    tier: str = typer.Option(None, "--tier", help=N_("members: only this tier.")),
    status: str = typer.Option(None, "--status", help=N_("members/cards: only this status.")),
    year: str = typer.Option(None, "--year", help=N_("report: the year of the monthly sheets (default this year).")),
    unmask: bool = typer.Option(False, "--unmask", help=N_("Phone and ID numbers in full (audited).")),
    reason: str = UNMASK_REASON,
    headers: str = typer.Option("keys", "--headers", metavar="keys|zh",
                                help=N_("CSV: the keys as the header (for scripts, the default), or the "
                                        "Chinese headings (zh).")),
    force: bool = typer.Option(False, "--force", help=N_("Replace an existing file that is not an earlier export of "
                                                         "this kind.")),
) -> None:
    from pathlib import Path

    from vipcli.dates import parse_when
    from vipcli.auditlog import disclosed
    from vipcli.errors import InvalidInput
    from vipcli.fields import check_store
    from vipcli.io import exports

    s = session(ctx)
    why = s.may_unmask("export", reason) if unmask else None
    kinds = (*exports.EXPORTS, "report")
    if kind not in kinds:
        raise InvalidInput(_("export: {kind!r} must be one of {value}").format(
                               kind=kind, value=', '.join(kinds)), code="bad_usage")
    if out == "-" and fmt is None:
        raise InvalidInput(_("format: give --format with --out - (stdout has no suffix)"), code="bad_format")
    fmt = (fmt or Path(out).suffix.lstrip(".")).lower()
    if fmt not in exports.FORMATS:
        raise InvalidInput(_("format: {fmt!r} must be one of {value}").format(
                               fmt=fmt, value=', '.join(exports.FORMATS)), code="bad_format")
    if headers not in exports.HEADINGS:
        raise InvalidInput(_("headers: {headers!r} must be keys or zh").format(headers=headers), code="bad_usage")
    rules = s.rules()
    if tier is not None:
        tier = rules.tier(tier).code  # (a code or the profile's name: gold, 金卡)
    if status is not None:
        from vipcli.cards import STATUSES, status_code

        status = status_code(status, ("prospect", *STATUSES))
    store = s.till_store(store)  # (a store's manager: that store's rows)
    filters = exports.Filters(
        since=parse_when(since, "since") if since else None, until=parse_when(until, "until") if until else None,
        store=check_store(store) if store else None, tier=tier, status=status)
    if kind == "report":
        if fmt != "xlsx":
            raise InvalidInput(_("format: the report is a workbook (xlsx)"), code="bad_format")
        from vipcli.io import report

        if year is not None and not (year.isdigit() and 2000 <= int(year) <= 2100):
            raise InvalidInput(_("year: {year!r} is not a year").format(year=year), code="bad_year")
        with progress_bar(s, N_("report"), report.STEPS) as advance:
            result = report.build(s.conn, rules, s.now, int(year) if year else s.now.year, out, force, advance)
        data = {"rows": result["rows"], "out": out, "sheets": result["sheets"]}
        emit(s, data, lambda c: c.print(_("Wrote the report ({sheets}) to {out}.").format(
            sheets=", ".join(result["sheets"]), out=out)),
             out=out)
        return
    from vipcli.vault import stored_ids

    vault = s.vault_for(create=False) if unmask and kind == "members" and stored_ids(s.conn) else None
    if unmask:  # recorded before a single full phone or ID number is written anywhere
        disclosed(s.conn, s.now, s.operator, "unmask", out, via=f"export {kind}", format=fmt, store=filters.store,
                  since=filters.since, until=filters.until, reason=why)
    records = exports.rows(s.conn, rules, kind, filters, s.now, unmask, vault)
    with progress_bar(s, N_("export"), unit=N_("rows")) as advance:
        count = exports.write(out, fmt, exports.EXPORTS[kind], exports.counted(records, advance), force, headers)
    emit(s, {"rows": count, "out": out, "format": fmt, "masked": not unmask},
         lambda c: c.print(_("Wrote {count} {kind} rows to {out} ({format}).").format(count=count, kind=kind, out=out,
                                                                                      format=fmt)), out=out)

