"""Backup and restore with SQLite's online backup API, and rotation of the ID-number key."""

import os
import sqlite3
from datetime import datetime
from pathlib import Path

from vipcli import auditlog, db
from vipcli.errors import DatabaseProblem, InvalidInput, Refused
from vipcli.migrations import SCHEMA_VERSION
from vipcli.i18n import _


def backup(conn, dest: str, now: datetime, operator: str, force: bool = False) -> dict:
    """A consistent copy while other processes write (the backup API copies a snapshot) into a
    temporary file, checked, then renamed into place (or streamed, for "-" or a device); 0600. An
    existing file is replaced only when it is a vipcli database (an older backup), or with `force`."""
    from vipcli.io.files import atomic_output

    if Path(dest).is_dir():
        raise InvalidInput(_("backup: {dest} is a folder; give a file name").format(dest=dest), code="bad_path")
    if db.engine(conn) == "postgresql":
        return _backup_postgresql(conn, dest, now, operator, force)
    with atomic_output(dest, mode=None, own=is_vipcli_database, force=force) as temp:
        copy = sqlite3.connect(temp)
        try:
            conn.backup(copy)
            copy.execute("PRAGMA journal_mode = DELETE")  # a backup is one self-contained file
            problems = [r[0] for r in copy.execute("PRAGMA integrity_check") if r[0] != "ok"]
            counts = {t: copy.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                      for t in ("customers", "cards", "purchases", "ledger")}
        finally:
            copy.close()
        if problems:
            raise DatabaseProblem(_("the backup copy failed its integrity check: {value}").format(
                                      value=problems[0]), code="corrupt")
        size = os.path.getsize(temp)
    return _backed_up(conn, dest, size, counts, now, operator)


def _backed_up(conn, dest: str, size: int, counts: dict, now: datetime, operator: str) -> dict:
    """A backup written: audited, and which key file its ID numbers need."""
    from vipcli import vault

    key_file = str(vault.key_path(conn)) if vault.has_key(conn) else None
    with db.transaction(conn):
        auditlog.audit(conn, now, operator, "backup", dest, bytes=size)
    return {"out": dest, "bytes": size, "counts": counts, "key_file": key_file}


def _backup_postgresql(conn, dest: str, now: datetime, operator: str, force: bool) -> dict:
    """pg_dump's custom format (a consistent snapshot), written as a file backup is: 0600, into place."""
    from vipcli import pg
    from vipcli.io.files import atomic_output

    with atomic_output(dest, mode=None, own=_is_backup, force=force) as temp:
        pg.dump(conn.url, temp)
        size = os.path.getsize(temp)
    return _backed_up(conn, dest, size, db.counts(conn), now, operator)


def _is_backup(path) -> bool:
    from vipcli import pg

    return is_vipcli_database(path) or pg.is_dump(path)


def export_key(conn, dest: str, now: datetime, operator: str) -> dict:
    """Copy the key file (checked against the database's fingerprint) to a new file, 0600, audited."""
    from vipcli import vault

    if not vault.has_key(conn):
        raise Refused(_("this database has no ID-number key yet (no ID number was ever stored)"), code="no_key")
    source = vault.key_path(conn)
    vault.open_vault(conn, create=False)  # the right key, or exit 4 before anything is copied
    target = Path(dest)
    if target.exists() or target.is_symlink():
        raise InvalidInput(_("key export: {dest} already exists; give a new file name").format(
                               dest=dest), code="bad_path")
    if not target.parent.is_dir():
        raise InvalidInput(_("key export: folder {parent} does not exist").format(
                               parent=target.parent), code="bad_path")
    fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(source.read_bytes())
        handle.flush()
        os.fsync(handle.fileno())
    with db.transaction(conn):
        auditlog.audit(conn, now, operator, "key export", str(target), key_file=str(source))
    return {"key_file": str(source), "out": str(target)}


def is_vipcli_database(path) -> bool:
    """A SQLite file holding vipcli's tables (a backup or a database), read-only."""
    with open(path, "rb") as handle:
        if handle.read(16) != b"SQLite format 3\x00":
            return False
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return False
    return {"customers", "cards", "purchases", "ledger", "rules"} <= tables


def check_source(src: str) -> int:
    """A restore source must be a readable vipcli database this version understands."""
    path = Path(src)
    if not path.is_file():
        raise InvalidInput(_("restore: {src} does not exist").format(src=src), code="bad_path")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            problems = [r[0] for r in conn.execute("PRAGMA integrity_check") if r[0] != "ok"]
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise DatabaseProblem(_("restore: {src} is not a database ({exc})").format(
                                  src=src, exc=exc), code="corrupt") from None
    if problems:
        raise DatabaseProblem(_("restore: {src} fails its integrity check: {value}").format(
                                  src=src, value=problems[0]), code="corrupt")
    if not {"customers", "cards", "purchases", "ledger", "rules"} <= tables:
        version = 0
    return _restorable(src, version)


def _restorable(src: str, version: int) -> int:
    """A backup of schema `version` (0: not vipcli's) is one this vipcli can restore."""
    if version < 1:
        raise DatabaseProblem(_("restore: {src} is not a vipcli database").format(src=src), code="corrupt")
    if version > SCHEMA_VERSION:
        raise DatabaseProblem(_("restore: {src} has schema {version}, newer than this vipcli ({schema_version})").format(
                                  src=src, version=version, schema_version=SCHEMA_VERSION),
                              code="newer_schema")
    return version


def restore(target, src: str, yes: bool) -> dict:
    """Replace the database's content with SRC's, through the backup API (one locked write, seen
    whole or not at all by other processes); then migrate SRC's schema forward if it is older. On
    PostgreSQL, SRC is a backup of a chain's database (pg_dump's custom format), put back by
    pg_restore in one transaction."""
    from vipcli import pg

    if pg.is_url(str(target)):
        return _restore_postgresql(target, src, yes)
    version = check_source(src)
    has_data = False
    if target.exists() and target.stat().st_size:
        probe = sqlite3.connect(target)
        try:
            has_data = probe.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'customers'").fetchone()[0] == 1
        except sqlite3.DatabaseError:
            has_data = True
        finally:
            probe.close()
    if has_data and not yes:
        raise Refused(_("{target} holds data; restoring replaces all of it (add --yes)").format(
                          target=target), code="needs_yes")
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
    try:
        live = db.connect_raw(target, create=True)
        try:
            source.backup(live)
        finally:
            live.close()
    finally:
        source.close()
    restored = db.connect(target)  # forward migrations, if the backup is older
    try:
        key_needed = _key_needed(restored)
    finally:
        restored.close()
    return {"db": str(target), "from": src, "source_schema": version, "schema_version": SCHEMA_VERSION,
            "key_needed": key_needed}


def _restore_postgresql(url: str, src: str, yes: bool) -> dict:
    from vipcli import pg

    if not Path(src).is_file():
        raise InvalidInput(_("restore: {src} does not exist").format(src=src), code="bad_path")
    if not pg.is_dump(src):
        raise DatabaseProblem(_("restore: {src} is not a backup of a chain's database (vip backup on PostgreSQL "
                                "writes pg_dump's custom format)").format(src=src), code="corrupt")
    version = _restorable(src, pg.dump_schema_version(src))
    live = db.connect(url, create=True)
    try:
        has_data = db.counts(live)["customers"] > 0
    finally:
        live.close()
    if has_data and not yes:
        raise Refused(_("{target} holds data; restoring replaces all of it (add --yes)").format(
                          target=pg.redacted(url)), code="needs_yes")
    pg.restore(url, src)
    restored = db.connect(url)  # forward migrations, if the backup is older
    try:
        key_needed = _key_needed(restored)
    finally:
        restored.close()
    return {"db": pg.redacted(url), "from": src, "source_schema": version, "schema_version": SCHEMA_VERSION,
            "key_needed": key_needed}


def _key_needed(conn) -> str | None:
    """After a restore: None when the key in force opens the restored ID numbers; else which key file
    does (a retired one), or that none here does."""
    from vipcli import vault

    fingerprint = db.get_meta(conn, "key_fingerprint")
    if fingerprint is None:
        return None
    path = vault.key_path(conn)
    found = vault.key_for(path, fingerprint)
    if found == path:
        return None
    return str(found) if found else f"a key with fingerprint {fingerprint} (none of {path} and its retired keys)"


def rotate_key(conn, now: datetime, operator: str, progress=None) -> dict:
    """Re-encrypt every ID number with a new key, one rotation at a time (KEY.lock). The write lock
    is taken before the rows are read, so an enrolment can't slip an ID in under the old key. The
    new key is written beside the old as KEY.new, the database re-encrypted in that transaction,
    then the old key is retired to the next KEY.N (kept: backups made before need it) and KEY.new
    becomes KEY. A crash between the two leaves KEY.new, which `open_vault` recognises and finishes.
    `progress(n)`: told every 1,000 ID numbers re-encrypted."""
    import base64

    from vipcli import vault as vault_mod

    path = vault_mod.key_path(conn)
    try:
        with vault_mod.rotation_lock(path, wait=False):
            vault_mod.open_vault(conn, create=True, rotating=True)  # a key to rotate from (made if none)
            key = os.urandom(64)
            fresh = vault_mod.Vault(key)
            pending = path.with_name(path.name + ".new")
            with db.transaction(conn):
                old = vault_mod.open_vault(conn, create=True, rotating=True)  # under both locks: the key in force
                pending.unlink(missing_ok=True)
                fd = os.open(pending, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(base64.b64encode(key))
                    handle.flush()
                    os.fsync(handle.fileno())
                rows = conn.execute("SELECT id, id_enc FROM customers WHERE id_enc IS NOT NULL").fetchall()
                for n, row in enumerate(rows, 1):
                    plain = old.decrypt(row["id_enc"])
                    conn.execute("UPDATE customers SET id_enc = ?, id_hmac = ? WHERE id = ?",
                                 (fresh.encrypt(plain), fresh.lookup_hash(plain), row["id"]))
                    if progress and n % 1000 == 0:
                        progress(1000)
                db.set_meta(conn, "key_fingerprint", fresh.fingerprint())
                auditlog.audit(conn, now, operator, "key rotate", str(path), reencrypted=len(rows))
            retired = vault_mod.retire(path)
            os.replace(pending, path)
    except BlockingIOError:
        raise Refused(_("another key rotation is running; try again when it has finished"),
                      code="rotation_running") from None
    return {"key_file": str(path), "reencrypted": len(rows), "old_key": str(retired)}
