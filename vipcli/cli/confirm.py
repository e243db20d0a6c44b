"""Asking before a command that changes much or destroys: on a terminal the command shows what it
will do (a dry run, rolled back) and asks; without one it needs --yes; --dry-run only shows."""

import sys

import typer

from vipcli.errors import Refused
from vipcli.i18n import N_, _

YES = typer.Option(False, "--yes", "-y", help=N_("Don't ask (needed without a terminal: cron, scripts)."))
DRY_RUN = typer.Option(False, "--dry-run", help=N_("Show what it would do; change nothing."))


def interactive(s) -> bool:
    return not s.json and sys.stdin.isatty() and sys.stderr.isatty()


def ask(s, command: str, plan: str, yes: bool) -> None:
    """Go on only with --yes, or when the person at the terminal says yes to `plan`."""
    if yes:
        return
    if not interactive(s):
        raise Refused(_("{command}: {plan} Add --yes to do it without a terminal (--dry-run shows it first)").format(
            command=command, plan=plan), code="needs_yes")
    typer.echo(plan, err=True)
    if not typer.confirm(_("Go ahead?"), default=False, err=True):
        raise Refused(_("{command}: not confirmed; nothing was changed").format(command=command), code="not_confirmed")


def run_planned(s, command: str, plan, work, describe, yes: bool, dry_run: bool, size=None) -> dict:
    """For a job that commits in chunks of its own (a year-end run): `plan(conn)` reads what it
    would do (shown, or asked about); then `work(conn, advance)` does it, after `ask`, under a
    progress bar of `size(plan)` steps (advance(n) after each chunk; None without a terminal)."""
    from vipcli.cli.progress import progress_bar

    preview = plan(s.conn)
    if dry_run:
        return {**preview, "dry_run": True}
    ask(s, command, describe(preview), yes)
    with progress_bar(s, command, size(preview) if size else None) as advance:
        return {**work(s.conn, advance), "dry_run": False}


def run_confirmed(s, command: str, work, describe, yes: bool, dry_run: bool) -> dict:
    """`work(conn) -> data` in one write transaction, after `ask`; with `dry_run`, rolled back and
    marked. The plan shown is a dry run of the same work (the lock is not held while asking)."""
    from vipcli.db import transaction

    if dry_run:
        with transaction(s.conn, dry_run=True) as conn:
            return {**work(conn), "dry_run": True}
    if not yes:
        with transaction(s.conn, dry_run=True) as conn:
            preview = work(conn)
        ask(s, command, describe(preview), yes)
    with transaction(s.conn) as conn:
        return {**work(conn), "dry_run": False}
