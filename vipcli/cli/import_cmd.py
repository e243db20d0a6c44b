"""import members / purchases."""

import os
import sys
import time
from contextlib import contextmanager

import typer

from vipcli.cli import command, commands, session, subgroup
from vipcli.db import count_after, last_id
from vipcli.cli.output import emit
from vipcli.io.rejects import Rejects, check_rejects, default_rejects
from vipcli.i18n import N_, _

cli = commands()  # this module's commands, found by name through vipcli.cli.COMMANDS

import_app = subgroup(cli, "import", N_("Bulk import of members or purchases from CSV or XLSX."))


@contextmanager
def _progress(s, label: str, path: str):
    """The import's bar: rows of the file (rows, rows/s, ETA); nothing without a terminal."""
    from vipcli.cli.progress import progress_bar

    if s.json or not sys.stderr.isatty():
        yield None
        return
    with progress_bar(s, label, _count_rows(path), N_("rows")) as advance:
        yield advance


def _count_rows(path: str) -> int | None:
    if path.lower().endswith((".xlsx", ".xlsm")):
        return None
    with open(path, "rb") as handle:
        return max(sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b"")) - 1, 0)


def _finish(s, kind: str, path: str, rejects_path: str | None, report: dict, rejects: Rejects, columns,
            started: float) -> None:
    from vipcli.errors import ExitStatus

    elapsed = time.perf_counter() - started
    target = rejects_path or default_rejects(path)
    if rejects.rows:
        rejects.write(target, columns)
    data = {**report, "seconds": round(elapsed, 3),
            "rows_per_second": int(report["rows"] / elapsed) if elapsed > 0 else None,
            "rejects_file": target if rejects.rows else None}

    def human(c):
        counts = ", ".join(f"{report[key]} {_(label)}" for key, label in _COUNTS if key in report)
        c.print(_("{kind}: {rows} rows in {seconds} s ({speed} rows/s): {counts}").format(
            kind=_(kind), rows=report["rows"], seconds=f"{elapsed:.1f}", speed=data["rows_per_second"], counts=counts)
                + (f" -> {target}" if rejects.rows else "") + ".")

    emit(s, data, human, out=target if rejects.rows else None)
    if rejects.rows:
        raise typer.Exit(ExitStatus.ROWS_REJECTED)


# Every count an import reports, as a person reads it (the JSON has the same keys).
_COUNTS = (("inserted", N_("inserted")), ("updated", N_("updated")), ("duplicates", N_("already there")),
           ("rejected", N_("rejected")), ("cards_issued", N_("cards issued")), ("upgrades", N_("tier upgrades")))


@command(import_app, "purchases", help=N_("Import POS purchases with every rule applied, in time order. Example: vip "
                                          "import purchases pos.csv"))
def import_purchases(
    ctx: typer.Context,
    path: str = typer.Argument(..., metavar="FILE", help=N_("CSV or XLSX file.")),
    rejects_path: str = typer.Option(None, "--rejects", help=N_("Where bad rows go (default FILE.rejects.csv).")),
    encoding: str = typer.Option(None, "--encoding", help=N_("utf-8, utf-8-sig or gb18030 (default: detected).")),
    dry_run: bool = typer.Option(False, "--dry-run", help=N_("Validate and report; write nothing.")),
) -> None:
    from vipcli.io.import_purchases import import_purchases_file, in_processes

    s = session(ctx)
    started = time.perf_counter()
    spare = None
    if not dry_run and os.path.isfile(path) and in_processes(path):
        from vipcli.io.writer import WriterProcess

        spare = WriterProcess()  # it boots while this process reads the rules and the file's header
    try:
        rules = s.rules()
        check_rejects(path, rejects_path)
        if dry_run:  # (nothing is saved: no progress bar, no "saved" count on Ctrl-C)
            outcome = import_purchases_file(s.conn, s.db_path, rules, path, s.now, s.operator, encoding, dry_run=True)
        else:
            held = last_id(s.conn, "purchases")
            with _saying_what_was_saved(s, N_("purchases"), held, path), _progress(s, N_("purchases"), path) as advance:
                outcome = import_purchases_file(s.conn, s.db_path, rules, path, s.now, s.operator, encoding,
                                                progress=advance, spare=spare)
    except BaseException:
        if spare is not None:
            spare.abandon()  # (nothing when it was started and used: the import closed it)
        raise
    _finish(s, N_("dry run") if dry_run else N_("import purchases"), path, rejects_path, outcome.report, outcome.rejects,
            outcome.columns, started)


@contextmanager
def _saying_what_was_saved(s, table: str, held: int, path: str):
    """Ctrl-C during an import: say how many rows its committed transactions saved, that nothing is
    half-written, and that the same command completes it (what is saved counts as duplicates)."""
    from vipcli.errors import Interrupted

    try:
        yield
    except KeyboardInterrupt:
        saved = count_after(s.conn, table, held)
        raise Interrupted(_(
            "interrupted: {saved} new {rows} from {path} were saved in whole transactions; the one under way was "
            "rolled back, nothing is half-written. Run the same command again to complete the import (what was saved "
            "counts as already there)").format(saved=f"{saved:,}", rows=_(table), path=path)) from None


@command(import_app, "members", help=N_("Import customer archives (create or complete; --grant column issues cards). "
                                        "Example: vip import members members.xlsx"))
def import_members(
    ctx: typer.Context,
    path: str = typer.Argument(..., metavar="FILE", help=N_("CSV or XLSX file.")),
    rejects_path: str = typer.Option(None, "--rejects", help=N_("Where bad rows go (default FILE.rejects.csv).")),
    encoding: str = typer.Option(None, "--encoding", help=N_("utf-8, utf-8-sig or gb18030 (default: detected).")),
    dry_run: bool = typer.Option(False, "--dry-run", help=N_("Validate and report; write nothing.")),
) -> None:
    from vipcli.io.import_members import import_members_file
    from vipcli.roles import may_grant

    s = session(ctx)
    rules = s.rules()
    grants = may_grant(rules, s.role)
    started = time.perf_counter()
    check_rejects(path, rejects_path)
    if dry_run:
        outcome = import_members_file(s.conn, rules, s.vault_for, path, s.now, s.operator, encoding, dry_run=True,
                                      may_grant=grants)
    else:
        held = last_id(s.conn, "customers")
        with _saying_what_was_saved(s, N_("customers"), held, path), _progress(s, N_("members"), path) as advance:
            outcome = import_members_file(s.conn, rules, s.vault_for, path, s.now, s.operator, encoding,
                                          progress=advance, may_grant=grants)
    _finish(s, N_("dry run") if dry_run else N_("import members"), path, rejects_path, outcome.report, outcome.rejects,
            outcome.columns, started)
