"""backup, restore, audit, key rotate."""

import typer

from vipcli.cli import command, commands, session, subgroup
from vipcli.cli.confirm import DRY_RUN, YES, ask
from vipcli.cli.output import emit, table
from vipcli.cli.progress import progress_bar
from vipcli.i18n import N_, _

cli = commands()  # this module's commands, found by name through vipcli.cli.COMMANDS

key_app = subgroup(cli, "key", N_("The key that encrypts ID numbers."))


@command(cli, "backup", help=N_("A consistent copy of the database while others work (online backup). Example: vip "
                                "backup /mnt/usb/vip-2026-11-23.db"))
def backup(ctx: typer.Context, dest: str = typer.Argument(..., metavar="DEST", help=N_("Where to write the backup.")),
           force: bool = typer.Option(False, "--force", help=N_("Replace an existing file that is not a vipcli "
                                                                "backup."))) -> None:
    from vipcli import safekeeping

    s = session(ctx)
    with progress_bar(s, N_("backup")):  # (one step: the copy is one snapshot; the bar says it is under way)
        data = safekeeping.backup(s.conn, dest, s.now, s.operator, force)

    def human(c):
        c.print(_("Backed up to {dest} ({bytes} bytes, {customers} customers).").format(
            dest=dest, bytes=f"{data['bytes']:,}", customers=data["counts"]["customers"]))
        if data["key_file"]:
            c.print(_("ID numbers need the key {key}: keep a copy of it apart from this backup (vip key export DEST).")
                    .format(key=data["key_file"]))

    emit(s, data, human, out=dest)


@command(cli, "restore", help=N_("Replace the database with a backup, after checking the backup. Example: vip "
                                 "restore vip-2026-11-23.db --yes"))
def restore(
    ctx: typer.Context,
    src: str = typer.Argument(..., metavar="SRC", help=N_("The backup file to restore.")),
    yes: bool = typer.Option(False, "--yes", help=N_("Replace a database that holds data.")),
) -> None:
    from vipcli import membership, safekeeping

    s = session(ctx)
    with progress_bar(s, N_("restore")):  # (one step, as the backup)
        data = safekeeping.restore(s.db_path, src, yes)
    data["erased_again"] = membership.after_restore(s.open(create=True), src, s.now, s.operator)
    if data["erased_again"]:
        data["wiped_from_file"] = membership.wipe_wal(s.conn)

    def human(c):
        c.print(_("Restored {db} from {src}.").format(db=s.db_path, src=src))
        if data["erased_again"]:
            c.print(_("{count} customers erased after that backup was made were erased again (the erasure journal "
                      "beside the database).").format(count=len(data["erased_again"])))
        if data["key_needed"]:
            c.print(_("Its ID numbers were written under another key: they need {key} (copy it to the key file, or "
                      "set VIPCLI_KEY_FILE).").format(key=data["key_needed"]))

    emit(s, data, human)


@command(cli, "audit", help=N_("Who did what and when: every write, unmask, override and erase. Example: vip audit "
                               "--command unmask"))
def audit_log(
    ctx: typer.Context,
    since: str = typer.Option(None, "--since", help=N_("From this date/time (inclusive).")),
    operator: str = typer.Option(None, "--operator", help=N_("Only this operator's entries (the global --operator "
                                                             "goes before `audit`).")),
    command_name: str = typer.Option(None, "--command", help=N_("Only this command (e.g. unmask).")),
    limit: str = typer.Option("200", "--limit", help=N_("At most this many entries, newest first.")),
) -> None:
    import json

    from vipcli.dates import iso, parse_when
    from vipcli.auditlog import audit_entries
    from vipcli.errors import InvalidInput

    s = session(ctx)
    if not limit.isdigit() or not 0 < int(limit) <= 100000:
        raise InvalidInput(_("limit: a number from 1 to 100000"), code="bad_limit")
    rows = audit_entries(s.conn, iso(parse_when(since, "since")) if since else None, operator, command_name,
                         int(limit))
    emit(s, {"entries": rows, "count": len(rows)}, lambda c: c.print(table(
        _("Audit ({count})").format(count=len(rows)), [N_("time"), N_("operator"), N_("command"), N_("target"),
                                                         N_("detail")],
        [[r["at"], r["operator"], r["command"], r["target"], json.dumps(r["detail"], ensure_ascii=False)]
         for r in rows])), page=True)


@command(key_app, "export", help=N_("Copy the ID-number key to DEST (a new file, 0600), to keep apart from the "
                                    "backups (audited). Example: vip key export /mnt/safe/vip.key"))
def key_export(ctx: typer.Context,
               dest: str = typer.Argument(..., metavar="DEST", help=N_("Where to write the copy of the key."))) -> None:
    from vipcli import safekeeping

    s = session(ctx)
    data = safekeeping.export_key(s.conn, dest, s.now, s.operator)
    emit(s, data, lambda c: c.print(_("Key {key} copied to {dest}; keep it apart from the backups.").format(
        key=data["key_file"], dest=dest)))


@command(key_app, "rotate", help=N_("Re-encrypt every ID number with a new key (the old one is kept as KEY.1, KEY.2, "
                                    "...); asks first on a terminal. Example: vip key rotate"))
def key_rotate(ctx: typer.Context, yes: bool = YES, dry_run: bool = DRY_RUN) -> None:
    from vipcli import safekeeping, vault

    s = session(ctx)
    count = vault.stored_ids(s.conn)
    plan = _("Re-encrypt {count} ID numbers with a new key in {key} (the old one kept beside it as .old; backups made "
             "before need it).").format(count=count, key=vault.key_path(s.conn))
    if dry_run:
        emit(s, {"reencrypted": count, "key_file": str(vault.key_path(s.conn)), "dry_run": True},
             lambda c: c.print(_("Dry run, nothing changed: {plan}").format(plan=plan)))
        return
    ask(s, "key rotate", plan, yes)
    with progress_bar(s, N_("key rotate"), count) as advance:
        data = {**safekeeping.rotate_key(s.conn, s.now, s.operator, advance), "dry_run": False}
    emit(s, data, lambda c: c.print(_("New key in {key}; {count} ID numbers re-encrypted.").format(
        key=data["key_file"], count=data["reencrypted"])))
