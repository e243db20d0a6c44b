"""Rejected rows of an import: each row's number and reason, spooled to disk, written at the end
beside the row's original values (read again from the input, masked), so that the office can fix
the rows and import the rejects file again."""

import tempfile
from array import array
from dataclasses import dataclass
from pathlib import Path

from vipcli.errors import InvalidInput, shown
from vipcli.fields import looks_like_phone, mask_id, mask_phone, normalize_phone
from vipcli.io.files import csv_headed, protect, refuse_protected
from vipcli.i18n import _


class Rejects:
    """Collects rejected rows: row number, reason and the original values (None: read them again
    from the file, which the purchases import does for a row its rules refused)."""

    def __init__(self, encoding: str, source: tuple):
        # (row number, reason), spooled to a temporary file: the values are read again from the input
        # at the end: a few bytes a row in memory, however many rows are bad.
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
    if column == "phone" and looks_like_phone(value):
        return mask_phone(normalize_phone(value))
    if column == "id_number" and value:
        return mask_id(value) if len(value.strip()) == 18 else "*" * len(value)
    return value


REJECTS_HEADER = ["row", "reason"]  # then the file's columns


def check_rejects(path: str, rejects_path: str | None) -> None:
    """Refuse, before any row is imported, a rejects file that could not be written or must not be:
    the input itself, the database, the key, or a file that is not an earlier rejects file."""
    if not path.strip() or not Path(path).is_file():
        raise InvalidInput(_("file: {value} does not exist (or is not a file)").format(
                               value=shown(path)), code="bad_path")
    protect(path, "the file being imported")
    if rejects_path == "-":
        return
    target = Path(rejects_path or default_rejects(path))
    if not target.parent.is_dir():
        raise InvalidInput(_("rejects: folder {parent} does not exist").format(
                               parent=target.parent), code="bad_path")
    refuse_protected(str(target))
    if target.is_file() and target.stat().st_size and not csv_headed(REJECTS_HEADER, prefix=True)(target):
        raise InvalidInput(_("rejects: {target} exists and is not a rejects file; give another name with --rejects").format(
                               target=target),
                           code="would_replace")


def default_rejects(path: str) -> str:
    p = Path(path)
    return str(p.with_name(p.stem + ".rejects.csv"))


@dataclass
class Outcome:
    """What an import file gave: its summary, its rejected rows, the columns it had."""

    report: dict  # rows, inserted, duplicates, rejected (and per import: updated, cards_issued, upgrades...)
    rejects: Rejects
    columns: list[str]
