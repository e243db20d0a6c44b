"""`vip db copy --to URL`: a store's SQLite file into an empty chain database (PostgreSQL), whole.

Every table of the schema, in foreign-key order, with its own ids (the ledger's and the audit's
included, so that every entry keeps pointing where it did), through COPY, in one transaction under
the writers' lock: the copy is there whole or not at all. Then each identity goes on after the
greatest id copied, and `vip check` runs over every row of the copy. A target that holds any data is
refused: merging two live databases (two stores' customers, receipts and card numbers) is not
something a copy can decide.
"""

from datetime import datetime

from vipcli import auditlog, checks, db, pg, roles
from vipcli.errors import InvalidInput, Refused
from vipcli.i18n import _
from vipcli.rulebook import current_rules

# The tables a copy carries, parents first; what is left out is the target's own (its migrations, the
# check journal of the source's last checks, its users) or of the source's file (meta's import and check
# marks).
TABLES = ("rules", "customers", "card_sequences", "cards", "purchases", "refunds", "point_lots", "ledger",
          "tier_changes", "changes", "audit", "visits", "gifts", "requests", "applications", "application_receipts")
META_KEPT = ("key_fingerprint",)  # (what the copy must keep knowing: which key opens its ID numbers)
IDS = ("rules.version", "customers", "purchases", "refunds", "point_lots", "ledger", "tier_changes", "changes",
       "audit", "visits", "gifts", "applications")


def rows_to_copy(source) -> int:
    return sum(source.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] for table in TABLES)


def copy(source, url: str, now: datetime, progress=None) -> dict:
    """Copy `source` (a SQLite connection) into the empty database at `url`, as one snapshot of it
    (a till may go on writing the file meanwhile); progress(n) as rows go. The copy's audit records the
    chain's login that made it."""
    if db.engine(source) != "sqlite":
        raise InvalidInput(_("db copy: the database to copy is a store's SQLite file (--db FILE)"),
                           code="bad_source")
    if not pg.is_url(url):
        raise InvalidInput(_("db copy: --to must be a postgresql:// URL"), code="bad_target")
    from vipcli.config import refuse_password

    refuse_password(url, "--to")
    target = db.connect(url, create=True)
    try:
        with db.transaction(target):
            held = {t: n for t in ("rules", "customers", "purchases", "audit")
                    if (n := target.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0])}
            if held:
                raise Refused(_("db copy: {url} already holds data ({tables}); a copy goes into an empty database "
                                "only (merging two databases is out of scope)").format(
                                  url=pg.redacted(url), tables=", ".join(f"{t} {n}" for t, n in held.items())),
                              code="target_not_empty")
            copied = 0
            db.begin_read(source)
            try:
                for table in TABLES:
                    copied += _copy_table(source, target, table, progress)
                kept = {key: db.get_meta(source, key) for key in META_KEPT}
            finally:
                source.execute("COMMIT")
            for key, value in kept.items():
                if value is not None:
                    db.set_meta(target, key, value)
            pg.sync_identities(target, IDS)
            # (a file's users are names anyone may type; a chain's are logins: the login that copies is the
            # first hq user, and adds the others with vip user add)
            roles.first_user(target, pg.login(target), now)
            auditlog.audit(target, now, pg.login(target), "db copy", db.file_path(source), rows=copied)
        report = checks.run_all(target, current_rules(target), every_row=True, at=now)
    finally:
        target.close()
    return {"to": pg.redacted(url), "rows": copied, "check_ok": not any(report.problems.values()),
            "problems": [p for found in report.problems.values() for p in found]}


def _copy_table(source, target, table: str, progress) -> int:
    """One table's rows, in its key's order, by COPY; the columns both sides have (cards' rowid is
    the target's own)."""
    columns = [row[1] for row in source.execute(f"PRAGMA table_info({table})")]
    order = "rowid" if table == "cards" else "1"
    cursor = source.cursor()
    cursor.row_factory = None
    rows = cursor.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order}")
    written = 0
    import psycopg

    try:
        with target.raw.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as sink:
            while batch := rows.fetchmany(5000):
                for row in batch:
                    sink.write_row(row)
                written += len(batch)
                if progress:
                    progress(len(batch))
    except psycopg.Error as exc:
        raise pg.as_sqlite_error(exc) from None
    return written
