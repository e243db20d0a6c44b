"""`vip import purchases`: a POS file applied with every rule, as one call.

import_purchases_file reads the file (CSV or XLSX, its encoding detected once), checks its time
order, and hands the parsed rows (io/purchase_rows.py) to the engine (io/purchase_engine.py),
which a writer (io/writer.py) commits in transactions of about two seconds. A large file is
written by a second process and checked for time order by a third, so that two cores work; a
file found out of order before the first commit is read again sorted. A dry run validates every
row and counts what would be inserted, writing nothing.
"""

import os

from vipcli import sales
from vipcli.auditlog import audit
from vipcli.db import last_id, transaction
from vipcli.errors import VipError
from vipcli.io import timeorder
from vipcli.io.purchase_engine import PurchaseImport
from vipcli.io.purchase_rows import CHUNK_ROWS, COLUMNS, REQUIRED, RowParser, parsed_chunks
from vipcli.io.readers import detect_encoding, open_table, people_encoding, record
from vipcli.io.rejects import Outcome, Rejects

# A first load (no purchases yet) of a file this large or larger (about 10,000 rows) builds one
# index at its end.
FIRST_LOAD_BYTES = 512 * 1024


def in_processes(path: str) -> bool:
    """Whether a file is large enough (1 MB, about 15,000 rows) for a writer process: for a small
    one, starting processes would cost more than they save. VIPCLI_IMPORT_WRITER=process|inline
    chooses."""
    choice = os.environ.get("VIPCLI_IMPORT_WRITER", "")
    if choice in ("process", "inline"):
        return choice == "process"
    return os.path.getsize(path) >= 1 << 20


def import_purchases_file(conn, db_path, rules, path: str, now, operator: str, encoding: str | None = None,
                          dry_run: bool = False, progress=None, spare=None) -> Outcome:
    """Import (or with dry_run, check) the purchases file at `path`. progress(rows) is called as
    rows are read, progress.reset() if they are read again sorted; spare: a WriterProcess started
    early (it boots while the file's header is read), used when the file is large."""
    if encoding is None and not path.lower().endswith((".xlsx", ".xlsm")) and os.path.isfile(path):
        encoding = detect_encoding(path)  # once, for every pass
    source = (path, COLUMNS, REQUIRED, encoding)
    rejects = Rejects(people_encoding(path, encoding), source)
    columns, rows = open_table(*source)
    stamps = columns.index("purchased_at")
    parser = RowParser(columns, rules, now)
    if dry_run:
        in_order, _ = timeorder.time_order(path, stamps, encoding)
        report = _dry_run(conn, parser, rows if in_order else timeorder.sorted_rows(rows, stamps), rejects)
        return Outcome({**report, "in_time_order": in_order}, rejects, columns)

    batch = int(os.environ.get("VIPCLI_IMPORT_BATCH", "100000"))
    # (under review rules an application opened reads the customer's purchases through that index: it stays)
    first_load = (last_id(conn, "purchases") == 0 and os.path.getsize(path) >= FIRST_LOAD_BYTES
                  and rules.card_issue != "review")
    plan = _Plan(conn, db_path, rules, now, operator, spare is not None or in_processes(path), batch, first_load,
                 spare)
    # A large file's time-order pass runs in a process of its own, beside the import, which asks for
    # the answer before its first commit; a small file's runs first.
    order = (timeorder.Pending if plan.processes else timeorder.Known)(path, stamps, encoding)
    try:
        in_order = None if plan.processes else order()[0]
        try:
            result = plan.run(rows if in_order is not False else timeorder.sorted_rows(rows, stamps), parser,
                              rejects, progress, order if in_order is None else None)
        except timeorder.OutOfOrder:  # before any commit: nothing was written
            result = None  # (again, sorted, once out of this block: its traceback holds the first try's state)
        if result is None:
            if progress:
                progress.reset()
            rejects = Rejects(rejects.encoding, source)
            result = plan.run(timeorder.sorted_rows(open_table(*source)[1], stamps), parser, rejects, progress)
        in_order = order()[0]
    finally:
        order.abandon()
    with transaction(conn):  # one audit row for the whole import
        audit(conn, now, operator, "import purchases", path, inserted=result.inserted,
              duplicates=result.duplicates, rejected=result.rejected, cards_issued=result.cards_issued,
              applications=result.applications)
    report = {"rows": result.rows, "inserted": result.inserted, "duplicates": result.duplicates,
              "rejected": result.rejected, "cards_issued": result.cards_issued, "upgrades": result.upgrades,
              "applications": result.applications, "in_time_order": in_order}
    return Outcome(report, rejects, columns)


class _Plan:
    """How the rows of a purchases file are applied; `run` may be called a second time, with the
    rows sorted, when the first try found the file out of time order before its first commit."""

    def __init__(self, conn, db_path, rules, now, operator, processes: bool, batch: int, first_load: bool,
                 spare=None):
        self.conn, self.db_path, self.rules, self.now, self.operator = conn, db_path, rules, now, operator
        self.processes, self.batch, self.first_load = processes, batch, first_load
        self.spare = spare  # a writer process started early, not told the database yet

    def run(self, rows, parser, rejects, progress, order=None):
        from vipcli.io.writer import WriterProcess, writer_for

        if self.spare is not None:
            writer, self.spare = self.spare, None
            writer.start(self.db_path, self.rules, self.now, self.operator)
        else:
            writer = (WriterProcess if self.processes else writer_for)(self.db_path, self.rules, self.now,
                                                                       self.operator)

        def in_order() -> None:
            if not order()[0]:
                raise timeorder.OutOfOrder()

        try:
            importer = PurchaseImport(self.conn, self.rules, self.now, self.operator, writer, tx_rows=self.batch,
                                      defer_index=self.first_load, before_commit=order and in_order)
        except BaseException:
            writer.abandon()
            raise
        chunks = parsed_chunks(rows, parser, min(self.batch, CHUNK_ROWS))
        return importer.run(chunks, rejects, progress)  # closes the writer


def _dry_run(conn, parser, rows, rejects) -> dict:
    report = {"rows": 0, "inserted": 0, "duplicates": 0, "rejected": 0}
    seen = set()
    for number, cells in rows:
        try:
            row = parser.parse(cells)
        except VipError as exc:
            report["rows"] += 1
            report["rejected"] += 1
            rejects(number, record(parser.names, cells) or {}, exc.message)
            continue
        if row is None:
            continue
        report["rows"] += 1
        key = (row[0], row[3] or "")  # (receipt, store: a receipt is unique per store)
        if key in seen or sales.is_recorded(conn, *key):
            report["duplicates"] += 1
        else:
            seen.add(key)
            report["inserted"] += 1
    return report
