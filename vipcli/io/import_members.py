"""`vip import members`: archives from a CSV/XLSX file (the old Excel 客户档案卡), row by row through
`archive.enroll`, in batched transactions; a refused row rolls back alone (a savepoint)."""

from dataclasses import dataclass
from datetime import datetime

from vipcli import archive, cards
from vipcli.auditlog import audit
from vipcli.db import let_waiters_in, transaction
from vipcli.errors import VipError
from vipcli.fields import clean_text, normalize_phone
from vipcli.io.readers import check_encoding, open_rows, people_encoding, trusted
from vipcli.io.rejects import Outcome, Rejects

COLUMNS = ("phone", "name", "gender", "birthday", "id_number", "email", "address", "store", "region", "grant")
REQUIRED = ("phone",)


@dataclass
class MembersReport:
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    duplicates: int = 0
    rejected: int = 0
    cards_issued: int = 0


def import_members_file(conn, rules, vault_for, path: str, now: datetime, operator: str,
                        encoding: str | None = None, dry_run: bool = False, progress=None,
                        may_grant: bool = True) -> Outcome:
    """Import (or with dry_run, check) the members file at `path`: what `vip import members` does.
    `may_grant`: whether the `grant` column may issue cards (vipcli.roles.may_grant)."""
    columns, records = open_rows(path, COLUMNS, REQUIRED, encoding)
    if encoding is not None:  # (a detected one is read through already)
        check_encoding(path, encoding.lower())
    rejects = Rejects(people_encoding(path, encoding), (path, COLUMNS, REQUIRED, encoding))
    if dry_run:
        report = {"rows": 0, "inserted": 0, "duplicates": 0, "rejected": 0}
        for number, values in records:
            report["rows"] += 1
            try:
                clean, _, _ = cleaned(values, now, may_grant)
                report["duplicates" if archive.customer_by_phone(conn, clean["phone"]) else "inserted"] += 1
            except VipError as exc:
                report["rejected"] += 1
                rejects(number, values, exc.message)
        return Outcome(report, rejects, columns)
    result = import_members(conn, rules, vault_for, records, rejects, now, operator, progress=progress,
                            may_grant=may_grant)
    return Outcome({"rows": result.rows, "inserted": result.inserted, "updated": result.updated,
                    "duplicates": result.duplicates, "rejected": result.rejected,
                    "cards_issued": result.cards_issued}, rejects, columns)


def cleaned(values: dict, now: datetime, may_grant: bool = True) -> tuple[dict, str | None, str | None]:
    """A row's archive fields validated as `vip enroll` validates them, its grant reason and region."""
    trusted(values)
    clean = archive.clean_profile({k: values.get(k) for k in archive.PROFILE_FIELDS}, now.date())
    if "phone" not in clean:
        clean["phone"] = normalize_phone(values.get("phone") or "")  # required: refuses the empty one
    grant = clean_text(values["grant"], "grant", 200) if values.get("grant") else None
    if grant and not may_grant:
        from vipcli.roles import grant_needs_hq

        raise VipError(grant_needs_hq())
    return clean, grant, values.get("region")


def import_members(conn, rules, vault_for, rows, rejects, now: datetime, operator: str, batch_size: int = 500,
                   progress=None, may_grant: bool = True) -> MembersReport:
    report = MembersReport()
    batch = []

    def run(items):
        let_waiters_in(conn)  # a till waiting for the lock goes between two batches
        with transaction(conn):
            for number, values in items:
                report.rows += 1
                conn.execute("SAVEPOINT member_row")
                try:
                    _one(values)
                    conn.execute("RELEASE member_row")
                except VipError as exc:
                    conn.execute("ROLLBACK TO member_row")
                    conn.execute("RELEASE member_row")
                    report.rejected += 1
                    rejects(number, values, exc.message)
                    if exc.code == "duplicate_id":
                        audit(conn, now, operator, "id number refused", f"row {number}", reason="on another archive")
        if progress:
            progress(len(items))

    def _one(values):
        clean, grant, region = cleaned(values, now, may_grant)
        known = archive.customer_by_phone(conn, clean["phone"]) if grant else None
        if known is not None and cards.live_card(conn, known["id"]) is not None:
            grant = None  # re-run of a granted row: the card is there already
        result = archive.enroll(conn, rules, vault_for, clean, now, operator, grant, region if grant else None)
        if result["created"]:
            report.inserted += 1
        elif result["changed"] or result["card_issued"]:
            report.updated += 1
        else:
            report.duplicates += 1
        report.cards_issued += int(result["card_issued"])

    for item in rows:
        batch.append(item)
        if len(batch) >= batch_size:
            run(batch)
            batch = []
    if batch:
        run(batch)
    with transaction(conn):
        audit(conn, now, operator, "import members", None, inserted=report.inserted, updated=report.updated,
              rejected=report.rejected, cards_issued=report.cards_issued)
    return report
