"""import members / purchases."""

import os
import sys
import time
from contextlib import contextmanager

import typer

from vipcli.cli import command, session, subgroup
from vipcli.db import count_after, last_id
from vipcli.cli.output import emit

import_app = subgroup("import", "Bulk import of members or purchases from CSV or XLSX.")


class _Rejects:
    """Collects rejected rows: row number, reason and the original values (None: read them again
    from the file, which the purchases import does for a row its rules refused)."""

    def __init__(self, encoding: str, source: tuple):
        import tempfile
        from array import array

        # (row number, reason), spooled to a temporary file: the values are read again from the input
        # at the end (a million bad rows held 750 MB; now a few bytes a row in memory).
        self.numbers, self.offsets = array("q"), array("q")
        self.spool = tempfile.TemporaryFile(mode="w+b")
        self.encoding = encoding  # readers.people_encoding: the input's GB18030, else UTF-8 with a BOM
        self.source = source  # open_rows' arguments, to read the file again

    @property
    def rows(self) -> bool:
        return len(self.numbers) > 0

    def __call__(self, number, values, reason):
        self.numbers.append(number)
        self.offsets.append(self.spool.tell())
        self.spool.write(" ".join(str(reason).split()).encode("utf-8") + b"\n")

    def _reasons(self):
        """(number, reason) in row order."""
        numbers, offsets, spool = self.numbers, self.offsets, self.spool
        order = range(len(numbers))
        if any(a > b for a, b in zip(numbers, numbers[1:])):
            order = sorted(order, key=numbers.__getitem__)  # (an out-of-order file was imported sorted)
        for i in order:
            spool.seek(offsets[i])
            yield numbers[i], spool.readline().decode("utf-8").rstrip("\n")

    def write(self, path: str, columns) -> None:
        import csv

        from vipcli.io.files import atomic_output, csv_headed, neutralize

        header = ["row", "reason", *columns]
        with atomic_output(path, encoding=self.encoding, own=csv_headed(REJECTS_HEADER, prefix=True)) as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            for number, reason, values in self._with_values():
                writer.writerow([number, reason, *[neutralize(_masked(c, values.get(c) or "")) for c in columns]])

    def _with_values(self):
        """(number, reason, values) in row order, the values read again from the file, one row at a
        time (a rejected row is never blank, so reading the records finds every one)."""
        from vipcli.io.readers import open_rows

        records = iter(open_rows(*self.source)[1])
        current = (0, {})
        for number, reason in self._reasons():
            while current[0] < number:
                current = next(records, (float("inf"), {}))
            yield number, reason, current[1] if current[0] == number else {}


def _masked(column: str, value: str) -> str:
    """A rejects file goes round the office: phones and ID numbers in it are masked as in every
    other output (the row number finds the full value in the input file)."""
    from vipcli.fields import looks_like_phone, mask_id, mask_phone, normalize_phone

    if column == "phone" and looks_like_phone(value):
        return mask_phone(normalize_phone(value))
    if column == "id_number" and value:
        return mask_id(value) if len(value.strip()) == 18 else "*" * len(value)
    return value


@contextmanager
def _progress(s, label: str, path: str):
    """Yields an advance(rows) callback drawing a rich progress bar (rows, rows/s, ETA) on a terminal,
    or None: nothing under cron (no TTY) or --json."""
    if s.json or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]} rows/s"),
                   TimeRemainingColumn(), transient=True, console=Console(stderr=True))
    task = bar.add_task(label, total=_count_rows(path), rate="")
    started, done = time.perf_counter(), [0]

    def advance(rows: int) -> None:
        done[0] += rows
        bar.update(task, advance=rows, rate=f"{int(done[0] / max(time.perf_counter() - started, 1e-6)):,}")

    def reset() -> None:  # the rows are read again (sorted)
        done[0] = 0
        bar.reset(task, rate="")

    advance.reset = reset

    with bar:
        yield advance


def _count_rows(path: str) -> int | None:
    if path.lower().endswith((".xlsx", ".xlsm")):
        return None
    with open(path, "rb") as handle:
        return max(sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b"")) - 1, 0)


def _finish(s, kind: str, path: str, rejects_path: str | None, report: dict, rejects: _Rejects, columns,
            started: float) -> None:
    from vipcli.errors import RowsRejected

    elapsed = time.perf_counter() - started
    target = rejects_path or _default_rejects(path)
    if rejects.rows:
        rejects.write(target, columns)
    data = {**report, "seconds": round(elapsed, 3),
            "rows_per_second": int(report["rows"] / elapsed) if elapsed > 0 else None,
            "rejects_file": target if rejects.rows else None}

    def human(c):
        counts = ", ".join(f"{report[key]} {label}" for key, label in _COUNTS if key in report)
        c.print(f"{kind}: {report['rows']} rows in {elapsed:.1f} s ({data['rows_per_second']} rows/s): {counts}"
                + (f" -> {target}" if rejects.rows else "") + ".")

    emit(s, data, human, out=target if rejects.rows else None)
    if rejects.rows:
        raise typer.Exit(RowsRejected.exit_code)


# Every count an import reports, as a person reads it (the JSON has the same keys).
_COUNTS = (("inserted", "inserted"), ("updated", "updated"), ("duplicates", "already there"),
           ("rejected", "rejected"), ("cards_issued", "cards issued"), ("upgrades", "tier upgrades"))


REJECTS_HEADER = ["row", "reason"]  # then the file's columns


def _check_rejects(path: str, rejects_path: str | None) -> None:
    """Refuse, before any row is imported, a rejects file that could not be written or must not be:
    the input itself, the database, the key, or a file that is not an earlier rejects file."""
    from pathlib import Path

    from vipcli.errors import InvalidInput, shown
    from vipcli.io.files import csv_headed, protect, refuse_protected

    if not path.strip() or not Path(path).is_file():
        raise InvalidInput(f"file: {shown(path)} does not exist (or is not a file)", code="bad_path")
    protect(path, "the file being imported")
    if rejects_path == "-":
        return
    target = Path(rejects_path or _default_rejects(path))
    if not target.parent.is_dir():
        raise InvalidInput(f"rejects: folder {target.parent} does not exist", code="bad_path")
    refuse_protected(str(target))
    if target.is_file() and target.stat().st_size and not csv_headed(REJECTS_HEADER, prefix=True)(target):
        raise InvalidInput(f"rejects: {target} exists and is not a rejects file; give another name with --rejects",
                           code="would_replace")


def _default_rejects(path: str) -> str:
    from pathlib import Path

    p = Path(path)
    return str(p.with_name(p.stem + ".rejects.csv"))


@command(import_app, "purchases")
def import_purchases(
    ctx: typer.Context,
    path: str = typer.Argument(..., metavar="FILE"),
    rejects_path: str = typer.Option(None, "--rejects", help="Where bad rows go (default FILE.rejects.csv)."),
    encoding: str = typer.Option(None, "--encoding", help="utf-8, utf-8-sig or gb18030 (default: detected)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and report; write nothing."),
) -> None:
    """Import POS purchases with every rule applied, in time order. Example: vip import purchases pos.csv"""
    s = session(ctx)
    started = time.perf_counter()
    processes = not dry_run and os.path.isfile(path) and _in_processes(path)
    spare = None
    if processes:  # the writer process boots while this one reads the rules and the file's header
        from vipcli.io.writer import WriterProcess

        spare = WriterProcess()
    try:
        _import_purchases(s, path, rejects_path, encoding, dry_run, processes, spare, started)
    except BaseException:
        if spare is not None:
            spare.abandon()  # (nothing when it was started and used: the import closed it)
        raise


def _import_purchases(s, path, rejects_path, encoding, dry_run, processes, spare, started) -> None:
    from vipcli.io import import_purchases as engine
    from vipcli.io.readers import open_table, people_encoding

    rules = s.rules()
    _check_rejects(path, rejects_path)
    if encoding is None and not path.lower().endswith((".xlsx", ".xlsm")) and os.path.isfile(path):
        from vipcli.io.readers import detect_encoding

        encoding = detect_encoding(path)  # once, for every pass
    source = (path, engine.COLUMNS, engine.REQUIRED, encoding)
    rejects = _Rejects(people_encoding(path, encoding), source)
    columns, rows = open_table(*source)
    stamps = columns.index("purchased_at")
    if dry_run:
        in_order, _ = engine.time_order(path, stamps, encoding)
        if not in_order:
            rows = engine.sorted_rows(rows, stamps)
        report = _dry_run(s, engine.RowParser(columns, rules, s.now), rows, rejects)
        report["in_time_order"] = in_order
        _finish(s, "dry run", path, rejects_path, report, rejects, columns, started)
        return
    from vipcli.io import timeorder

    batch = int(os.environ.get("VIPCLI_IMPORT_BATCH", "100000"))
    parser = engine.RowParser(columns, rules, s.now)
    held = last_id(s.conn, "purchases")
    plan = _Plan(s, rules, processes, batch, held == 0 and os.path.getsize(path) >= FIRST_LOAD_BYTES, spare)
    # A large file's time-order pass runs in a process of its own, beside the import, which asks for
    # the answer before its first commit; a small file's runs first.
    order = (timeorder.Pending if plan.processes else timeorder.Known)(path, stamps, encoding)
    with _saying_what_was_saved(s, "purchases", held, path):
        try:
            in_order = None if plan.processes else order()[0]
            with _progress(s, "purchases", path) as advance:
                try:
                    result = plan.run(rows if in_order is not False else engine.sorted_rows(rows, stamps), parser,
                                      rejects, advance, order if in_order is None else None)
                except engine.OutOfOrder:  # before any commit: nothing was written; again, sorted
                    if advance:
                        advance.reset()
                    rejects = _Rejects(rejects.encoding, source)
                    result = plan.run(engine.sorted_rows(open_table(*source)[1], stamps), parser, rejects, advance)
            in_order = order()[0]
        finally:
            order.abandon()
    engine.finish(s.conn, result, path, s.now, s.operator)
    report = {"rows": result.rows, "inserted": result.inserted, "duplicates": result.duplicates,
              "rejected": result.rejected, "cards_issued": result.cards_issued, "upgrades": result.upgrades,
              "in_time_order": in_order}
    _finish(s, "import purchases", path, rejects_path, report, rejects, columns, started)


# A first load (no purchases yet) of a file this large or larger (about 10,000 rows) builds one
# index at its end.
FIRST_LOAD_BYTES = 512 * 1024


def _in_processes(path: str) -> bool:
    """A large file (1 MB, about 15,000 rows, or more) is written by a second process and checked
    for time order by a third, so that two cores work; a small one is done in this process, where
    starting processes would cost more than they save. VIPCLI_IMPORT_WRITER=process|inline chooses."""
    choice = os.environ.get("VIPCLI_IMPORT_WRITER", "")
    if choice in ("process", "inline"):
        return choice == "process"
    return os.path.getsize(path) >= 1 << 20


class _Plan:
    """How the rows of a purchases file are applied; `run` may be called a second time, with the
    rows sorted, when the first try found the file out of time order before its first commit."""

    def __init__(self, s, rules, processes: bool, batch: int, first_load: bool, spare=None):
        self.s, self.rules, self.processes, self.batch, self.first_load = s, rules, processes, batch, first_load
        self.spare = spare  # a writer process started early, not told the database yet

    def run(self, rows, parser, rejects, advance, order=None):
        from vipcli.io import import_purchases as engine
        from vipcli.io.writer import Writer, WriterProcess

        s = self.s
        if self.spare is not None:
            writer, self.spare = self.spare, None
            writer.start(s.db_path, self.rules, s.now, s.operator)
        else:
            writer = (WriterProcess if self.processes else Writer)(s.db_path, self.rules, s.now, s.operator)

        def in_order() -> None:
            if not order()[0]:
                raise engine.OutOfOrder()

        try:
            importer = engine.PurchaseImport(s.conn, self.rules, s.now, s.operator, writer, tx_rows=self.batch,
                                             defer_index=self.first_load, before_commit=order and in_order)
        except BaseException:
            writer.abandon()
            raise
        chunks = engine.parsed_chunks(rows, parser, min(self.batch, engine.CHUNK_ROWS))
        return importer.run(chunks, rejects, advance)  # closes the writer


@contextmanager
def _saying_what_was_saved(s, table: str, held: int, path: str):
    """Ctrl-C during an import: say how many rows its committed transactions saved, that nothing is
    half-written, and that the same command completes it (what is saved counts as duplicates)."""
    from vipcli.errors import Interrupted

    try:
        yield
    except KeyboardInterrupt:
        saved = count_after(s.conn, table, held)
        raise Interrupted(
            f"interrupted: {saved:,} new {table} from {path} were saved in whole transactions; the one under "
            "way was rolled back, nothing is half-written. Run the same command again to complete the import "
            "(what was saved counts as already there)") from None


def _dry_run(s, parser, rows, rejects) -> dict:
    from vipcli import sales
    from vipcli.errors import VipError
    from vipcli.io.readers import record

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
        receipt = row[0]
        if receipt in seen or sales.is_recorded(s.conn, receipt):
            report["duplicates"] += 1
        else:
            seen.add(receipt)
            report["inserted"] += 1
    return report


@command(import_app, "members")
def import_members(
    ctx: typer.Context,
    path: str = typer.Argument(..., metavar="FILE"),
    rejects_path: str = typer.Option(None, "--rejects", help="Where bad rows go (default FILE.rejects.csv)."),
    encoding: str = typer.Option(None, "--encoding", help="utf-8, utf-8-sig or gb18030 (default: detected)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and report; write nothing."),
) -> None:
    """Import customer archives (create or complete; --grant column issues cards). Example: vip import members members.xlsx"""
    from vipcli import archive
    from vipcli.errors import VipError
    from vipcli.fields import normalize_phone
    from vipcli.io import import_members as engine
    from vipcli.io.readers import check_encoding, open_rows, people_encoding, trusted

    s = session(ctx)
    rules = s.rules()
    started = time.perf_counter()
    _check_rejects(path, rejects_path)
    columns, records = open_rows(path, engine.COLUMNS, engine.REQUIRED, encoding)
    if encoding is not None:  # (a detected one is read through already)
        check_encoding(path, encoding.lower())
    rejects = _Rejects(people_encoding(path, encoding), (path, engine.COLUMNS, engine.REQUIRED, encoding))
    if dry_run:
        report = {"rows": 0, "inserted": 0, "duplicates": 0, "rejected": 0}
        for number, values in records:
            report["rows"] += 1
            try:
                trusted(values)
                archive.clean_profile({k: values.get(k) for k in archive.PROFILE_FIELDS}, s.now.date())
                if not values.get("phone"):
                    raise VipError("phone: required")
                exists = archive.customer_by_phone(s.conn, normalize_phone(values["phone"])) is not None
                report["duplicates" if exists else "inserted"] += 1
            except VipError as exc:
                report["rejected"] += 1
                rejects(number, values, exc.message)
        _finish(s, "dry run", path, rejects_path, report, rejects, columns, started)
        return
    held = last_id(s.conn, "customers")
    with _saying_what_was_saved(s, "customers", held, path), _progress(s, "members", path) as advance:
        result = engine.import_members(s.conn, rules, s.vault_for, records, rejects, s.now, s.operator,
                                       progress=advance)
    report = {"rows": result.rows, "inserted": result.inserted, "updated": result.updated,
              "duplicates": result.duplicates, "rejected": result.rejected, "cards_issued": result.cards_issued}
    _finish(s, "import members", path, rejects_path, report, rejects, columns, started)
