"""Reading import files: CSV (UTF-8 with or without BOM, or GB18030, detected or chosen) and XLSX
(streamed with openpyxl's read-only mode). Columns are found by header name, in any order; unknown
or missing columns are refused before any row is read."""

import codecs
import csv
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import chain, islice, repeat
from datetime import date, datetime
from pathlib import Path

from vipcli.errors import InvalidInput, shown
from vipcli.i18n import _

ENCODINGS = ("utf-8", "utf-8-sig", "gb18030")

# A cell as long as this is read (and its row rejected by the checks of its column); csv's own
# limit, 131,072 characters, stopped the whole file. Longer still is an unreadable file.
CELL_LIMIT = 16 * 1024 * 1024
csv.field_size_limit(CELL_LIMIT)


def detect_encoding(path: Path) -> str:
    """UTF-8 (BOM or not) when the whole file decodes as UTF-8, else GB18030 (the superset of GBK
    that Chinese Excel and POS systems write), when it reads as plausible Chinese."""
    if not _decodes(path, "utf-8"):
        _plausibly_chinese(path)
        return "gb18030"
    with open(path, "rb") as handle:
        return "utf-8-sig" if handle.read(3) == codecs.BOM_UTF8 else "utf-8"


def _plausibly_chinese(path: Path, sample: int = 1 << 20) -> None:
    """Almost any bytes decode as GB18030: a Shift-JIS 山田太郎 reads as 嶳揷懢榊, and was imported so.
    Text a Chinese shop wrote keeps mostly to the 6,763 common characters of GB2312, and holds no
    Japanese kana (EUC-JP's kanji read as common Chinese characters, but its kana stay kana); when
    most of a file's (at least eight) characters fall outside them, or it holds four kana or more,
    it is refused, naming --encoding (which an unusual but real file can give to be read as GB18030
    all the same)."""
    with open(path, "rb") as handle:
        text = handle.read(sample).decode("gb18030", errors="replace")
    wide = [ch for ch in text if ord(ch) > 127]
    rare = kana = 0
    for ch in wide:
        try:
            ch.encode("gb2312")
        except UnicodeEncodeError:
            rare += 1
        if "\u3040" <= ch <= "\u30ff":
            kana += 1
    if (rare >= 8 and rare * 2 > len(wide)) or kana >= 4:
        raise InvalidInput(_("{path}: neither UTF-8 nor plausible GB18030 text (Shift-JIS, EUC-JP or Big5?); give "
                             "the file's encoding with --encoding, or save it as UTF-8").format(
                               path=path), code="bad_encoding")


def people_encoding(path: str, encoding: str | None) -> str:
    """The encoding of a CSV vipcli writes for people about an input file (its rejects): GB18030
    when the input was GB18030 (the manager's Chinese Excel reads it back as it wrote it), else
    UTF-8 with a BOM, which Excel on Chinese Windows needs to show UTF-8 as Chinese."""
    file = Path(path)
    if file.suffix.lower() in (".xlsx", ".xlsm") or not file.is_file():
        return "utf-8-sig"
    chosen = (encoding or detect_encoding(file)).lower()
    return "gb18030" if chosen == "gb18030" else "utf-8-sig"


def check_encoding(path: str, encoding: str) -> None:
    """An encoding the user chose: the whole file must read in it (checked before any row is
    written, so that a wrong choice writes nothing)."""
    if Path(path).suffix.lower() not in (".xlsx", ".xlsm") and Path(path).is_file() and not _decodes(path, encoding):
        raise InvalidInput(_("{path}: not {encoding} text; choose the file's encoding with --encoding ({value}) or "
                             "leave it out to detect it").format(
                               path=path, encoding=encoding, value=', '.join(ENCODINGS)), code="bad_encoding")


def _decodes(path, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)()
    with open(path, "rb") as handle:
        try:
            while chunk := handle.read(1 << 20):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


def open_rows(path: str, columns: tuple[str, ...], required: tuple[str, ...],
              encoding: str | None = None) -> tuple[list[str], Iterator[tuple[int, dict]]]:
    """(header, iterator of (row number, {column: text or None})), blank rows left out. Row numbers
    count the header as row 1, as a spreadsheet shows them."""
    names, rows = open_table(path, columns, required, encoding)

    def records():
        for number, cells in rows:
            values = record(names, cells)
            if values is not None:
                problem = width_problem(names, cells)
                yield number, (values if problem is None else Misfit(values, problem))

    return names, records()


# Column headers as a Chinese store's POS or Excel sheet writes them -> the column (issue 16.7).
HEADER_NAMES = {
    "小票号": "receipt", "单号": "receipt", "小票": "receipt", "卡号": "card_no", "会员卡号": "card_no",
    "手机": "phone", "手机号": "phone", "电话": "phone", "门店": "store", "时间": "purchased_at",
    "消费时间": "purchased_at", "金额": "amount", "特价金额": "promo", "实付": "paid", "实付金额": "paid",
    "姓名": "name", "性别": "gender", "生日": "birthday", "出生日期": "birthday", "身份证号": "id_number",
    "邮箱": "email", "地址": "address", "区号": "region", "发卡": "grant",
}


def open_table(path: str, columns: tuple[str, ...], required: tuple[str, ...],
               encoding: str | None = None) -> tuple[list[str], Iterator[tuple[int, list]]]:
    """(header, iterator of (row number, cells)): the cells as text (CSV as read, XLSX cells made
    text by `_text`, "" when empty), for a caller that validates them itself; `record` makes the usual dict."""
    file = Path(path)
    if not file.is_file():
        raise InvalidInput(_("file: {path} does not exist").format(path=path), code="bad_path")
    if encoding is not None and encoding.lower() not in ENCODINGS:
        raise InvalidInput(_("encoding: {encoding!r} must be one of {value}").format(
                               encoding=encoding, value=', '.join(ENCODINGS)), code="bad_encoding")
    is_xlsx = file.suffix.lower() in (".xlsx", ".xlsm")
    if is_xlsx:
        header, rows = _xlsx_rows(file)
    else:
        header, rows = _csv_rows(file, encoding.lower() if encoding else detect_encoding(file))
    names = [(h or "").strip().lower() for h in header]
    names = [HEADER_NAMES.get(n, n) if HEADER_NAMES.get(n) in columns else n for n in names]
    unknown = [n for n in names if n not in columns]
    if unknown:
        named = ", ".join(shown(u, 30) for u in unknown[:5]) + (f" and {len(unknown) - 5:,} more" if len(unknown) > 5 else "")
        chinese = {column: [n for n, c in HEADER_NAMES.items() if c == column] for column in columns}
        allowed = ", ".join(c + (f" ({'/'.join(chinese[c])})" if chinese[c] else "") for c in columns)
        raise InvalidInput(_("{path}: unknown column(s) {named} (allowed: {allowed})").format(
                               path=path, named=named, allowed=allowed), code="bad_columns")
    missing = [c for c in required if c not in names]
    if missing:
        raise InvalidInput(_("{path}: missing column(s) {value}").format(
                               path=path, value=', '.join(missing)), code="bad_columns")
    if len(set(names)) != len(names):
        raise InvalidInput(_("{path}: a column appears twice").format(path=path), code="bad_columns")
    if not is_xlsx:
        return names, rows

    width = len(names)

    def xlsx_cells():
        for number, values in rows:
            cells = [_text(v) or "" for v in values]
            # A sheet's rows come as wide as its widest: empty cells past the header are nothing,
            # a short row's missing cells are empty; a value past the header stays (refused).
            if len(cells) > width and not any(cells[width:]):
                del cells[width:]
            elif len(cells) < width:
                cells += [""] * (width - len(cells))
            yield number, cells

    return names, xlsx_cells()


def width_problem(names: list[str], cells: list) -> str | None:
    """Why a row whose number of cells is not the header's can't be imported: its values may have
    shifted (`K03000,13800138000,SZ01,2026-05-01T10:00:00,1,200.00` is amount 1 and a stray 200.00)."""
    if len(cells) == len(names):
        return None
    return (f"{len(cells)} cells where the header has {len(names)}: a value may hold an unquoted comma "
            "(write 1200.00, not 1,200.00, or quote the cell)")


class Misfit(dict):
    """A row's values (as far as its cells go) that can't be trusted: `reason` says why."""

    def __init__(self, values: dict, reason: str):
        super().__init__(values)
        self.reason = reason


def trusted(values: dict) -> dict:
    """The row's values, or InvalidInput with the reason when they can't be trusted (a Misfit)."""
    if isinstance(values, Misfit):
        raise InvalidInput(values.reason, code="bad_row")
    return values


def record(names: list[str], cells: list) -> dict | None:
    """One row's cells -> {column: stripped text or None}; None for a blank row. Cells past the
    header are left out, missing ones are None (`width_problem` says whether to trust the rest)."""
    values = [v.strip() or None if isinstance(v, str) else None for v in cells[:len(names)]]
    if not any(values):
        return None
    if len(values) < len(names):
        values += [None] * (len(names) - len(values))
    return dict(zip(names, values))


def _text(value) -> str | None:
    """A cell as text; numbers from XLSX without float noise, dates as ISO."""
    if value is None:
        return None
    if isinstance(value, str):
        value = value.strip()
        return value or None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, datetime):
        if value.hour == value.minute == value.second == 0:
            return value.date().isoformat()  # a date typed in Excel (a birthday, a day)
        return value.isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value) if not value.is_integer() else str(int(value))
    return str(value)


def _csv_rows(path: Path, encoding: str):
    handle = open(path, encoding=encoding, newline="")
    reader = csv.reader(handle)
    try:
        with _decoding(path, encoding):  # the decoder reads ahead: a bad byte in the first rows shows here
            header = next(reader)
    except StopIteration:
        handle.close()
        raise InvalidInput(_("{path}: the file is empty").format(path=path), code="bad_columns") from None
    except InvalidInput:  # not in the encoding
        handle.close()
        raise
    except csv.Error as exc:
        handle.close()
        raise InvalidInput(_("{path}: can't read the header ({exc})").format(
                               path=path, exc=exc), code="bad_file") from None
    if header and header[0].startswith("\ufeff"):
        header[0] = header[0][1:]
    return header, CsvRows(handle, path, encoding)


class CsvRows:
    """A CSV file's data rows, (row number, cells), read once: one at a time (iterating), or a
    block of lines at a time (`blocks`)."""

    def __init__(self, handle, path: Path, encoding: str):
        self.handle, self.path, self.encoding = handle, path, encoding

    def __iter__(self):
        with self.handle, _decoding(self.path, self.encoding):
            yield from _split_lines(self.handle, 2)

    def blocks(self, size: int, width: int):
        """Lists of up to `size` (row number, cells), or a `Block` for `size` lines (fewer at the end)
        that each hold `width` cells and no quote: cut into columns at once, in C, with no list per
        row. After the first quote, rows are read one at a time (csv.reader for a quoted line)."""
        handle, number = self.handle, 2
        with handle, _decoding(self.path, self.encoding):
            while lines := list(islice(handle, size)):
                text = "".join(lines)
                if '"' in text:
                    rows = _split_lines(chain(lines, handle), number)
                    while block := list(islice(rows, size)):
                        yield block
                    return
                count = len(lines)
                if set(map(str.count, lines, repeat(","))) != {width - 1}:  # a blank or short line
                    yield list(_split_lines(lines, number))
                else:
                    # (a lone CR ends a line too: newline="" reads it as one)
                    text = text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text
                    cells = text.replace("\n", ",").split(",")  # (the last line may have no line end)
                    end = count * width
                    yield Block(number, count, [cells[i:end:width] for i in range(width)])
                number += count


class Block:
    """`count` rows from row number `first`, as columns (lists of cell texts)."""

    __slots__ = ("first", "count", "columns")

    def __init__(self, first: int, count: int, columns: list[list[str]]):
        self.first, self.count, self.columns = first, count, columns

    def rows(self) -> list:
        return list(zip(range(self.first, self.first + self.count), map(list, zip(*self.columns))))


def _split_lines(lines, number: int):
    """(row number, cells) from CSV lines: a line without a quote is its fields split at the commas
    (what csv.reader would return, three times faster); a line with one goes to csv.reader, which
    may read on (from `lines`) for a quoted line break."""
    for line in lines:
        if '"' in line:
            yield number, next(csv.reader(chain((line,), lines)))
        else:
            yield number, line.rstrip("\r\n").split(",")
        number += 1


@contextmanager
def _decoding(path: Path, encoding: str):
    """A byte the encoding can't read, or CSV that can't be read (a cell over CELL_LIMIT), anywhere
    in the file: a one-line error naming the fix."""
    try:
        yield
    except UnicodeDecodeError as exc:
        raise InvalidInput(_("{path}: not {encoding} text ({reason}); choose the file's encoding with --encoding").format(
                               path=path, encoding=encoding, reason=exc.reason), code="bad_encoding") from None
    except csv.Error as exc:
        raise InvalidInput(_("{path}: not readable as CSV ({exc})").format(
                               path=path, exc=exc), code="bad_file") from None


# openpyxl holds a workbook's shared strings in memory, however it reads the rows: a 1.5 MB file can
# unpack a 1.5 GB string. Parts are checked (their uncompressed size, from the zip's directory)
# before anything is read.
XLSX_SHARED_STRINGS_LIMIT = 64 * 1024 * 1024
XLSX_TOTAL_LIMIT = 1024 * 1024 * 1024


def _check_xlsx_size(path: Path) -> None:
    import zipfile

    try:
        with zipfile.ZipFile(path) as book:
            parts = book.infolist()
    except (zipfile.BadZipFile, OSError):
        return  # openpyxl says what is wrong with it
    shared = sum(p.file_size for p in parts if p.filename.lower().endswith("sharedstrings.xml"))
    total = sum(p.file_size for p in parts)
    if shared > XLSX_SHARED_STRINGS_LIMIT or total > XLSX_TOTAL_LIMIT:
        raise InvalidInput(_("{path}: the workbook unpacks to {value:,.0f} MB ({value2:,.0f} MB of text), over "
                             "what an import reads ({value3:,} MB, {value4} MB of text); save it as CSV").format(
                               path=path,
                               value=total / 2 ** 20,
                               value2=shared / 2 ** 20,
                               value3=XLSX_TOTAL_LIMIT // 2 ** 20,
                               value4=XLSX_SHARED_STRINGS_LIMIT // 2 ** 20), code="bad_file")


def _xlsx_rows(path: Path):
    from openpyxl import load_workbook

    _check_xlsx_size(path)
    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many kinds for a bad file
        raise InvalidInput(_("{path}: not a readable XLSX file ({name})").format(
                               path=path, name=type(exc).__name__), code="bad_file") from None
    sheet = book.worksheets[0]
    iterator = sheet.iter_rows(values_only=True)
    try:
        header = [_text(v) or "" for v in next(iterator)]
        while header and not header[-1]:
            header.pop()  # the sheet's width, not the header's: a value further right made it wider
    except StopIteration:
        book.close()
        raise InvalidInput(_("{path}: the sheet is empty").format(path=path), code="bad_columns") from None

    def rows():
        try:
            for number, values in enumerate(iterator, start=2):
                yield number, values
        finally:
            book.close()

    return header, rows()


def column_values(path: str, index: int, encoding: str | None = None) -> Iterator[list[str]]:
    """The stripped text of one column, every data row, in blocks of up to 10,000 (a cheap pass,
    e.g. to check time order). A block of CSV lines without quotes is cut at the commas in C."""
    file = Path(path)
    if file.suffix.lower() in (".xlsx", ".xlsm"):
        _columns, rows = _xlsx_rows(file)
        texts = (_text(values[index] if index < len(values) else None) or "" for _, values in rows)
        while block := list(islice(texts, 10000)):
            yield block
        return
    encoding = encoding.lower() if encoding else detect_encoding(file)
    handle = open(file, encoding=encoding, newline="")
    with handle, _decoding(file, encoding):
        next(csv.reader(handle), None)  # the header
        while lines := list(islice(handle, 10000)):
            if '"' in "".join(lines):  # quoted fields (maybe over several lines): csv from here on
                texts = (v[index].strip() if index < len(v) else "" for v in csv.reader(chain(lines, handle)))
                while block := list(islice(texts, 10000)):
                    yield block
                return
            cut = index + 1
            yield [v[index].strip() if len(v) > cut or (len(v) == cut and v[index]) else ""
                   for v in (line.split(",", cut) for line in lines)]
