"""Purchase file rows -> validated values, with the checks of `vip purchase` (parse_row), fast.

A chunk of rows whose cells are all in the canonical form a POS writes (`2026-05-01T10:00:00`,
`880.50`, an 11-digit mobile, a known store) is checked column by column, in a few passes in C;
any other chunk goes row by row, and a row not in that form through `parse_row`, the full
validation, which also words the reason a bad row is rejected. Property tests hold all three to
the same answers (tests/test_import_engine.py).
"""

import re
from datetime import datetime
from itertools import islice, repeat
from operator import add

from vipcli import cards, fields, sales
from vipcli.dates import iso, parse_when
from vipcli.errors import InvalidInput, VipError
from vipcli.io.readers import Block, CsvRows, record, width_problem
from vipcli.money import YUAN, parse_yuan
from vipcli.rules import Rules
from vipcli.i18n import _

CHUNK_ROWS = 2500  # rows parsed, looked up and handed to the writer together
COLUMNS = ("receipt", "card_no", "phone", "store", "purchased_at", "amount", "promo", "paid")
REQUIRED = ("receipt", "purchased_at", "amount")
_fromisoformat = datetime.fromisoformat


def _moment(at: datetime) -> int:
    """Seconds into the day (the column pass works it out inline, for a whole chunk)."""
    return at.hour * 3600 + at.minute * 60 + at.second


def plain_fen(text: str) -> int | None:
    """'880.50', '880.5', '880' -> fen, for plain ASCII amounts only (None: let parse_yuan decide)."""
    whole, dot, cents = text.partition(".")
    if not (whole.isdigit() and len(whole) <= 15 and text.isascii()):
        return None
    if not dot:
        return int(whole) * 100
    if len(cents) == 2 and cents.isdigit():
        return int(whole) * 100 + int(cents)
    if len(cents) == 1 and cents.isdigit():
        return int(whole) * 100 + int(cents) * 10
    return None


_MOBILE = re.compile(fields.MOBILE)
_PHONES = re.compile(rf"(?:(?:{fields.MOBILE})?\n)*")  # blank or a mobile in normalize_phone's form
_STAMPS = re.compile(r"(?:[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(?::[0-9]{2})?\n)*")
_AMOUNTS = re.compile(rf"(?:(?:{YUAN})?\n)*")  # parse_yuan's form, or blank


def canonical_stamps(texts) -> bool:
    """Every text is 'YYYY-MM-DDTHH:MM:SS' (so that text order is time order)."""
    return bool(texts) and shaped(texts, "9999-99-99T99:99:99")


_NINES = str.maketrans("0123456789", "9999999999")  # an ASCII digit -> "9": a text's shape


def shaped(texts, shape: str) -> bool:
    """Every text has `shape`, its 9s standing for ASCII digits ('9999-99-99'): a few passes in C,
    where a regular expression would take three times as long."""
    return set(map(len, texts)) == {len(shape)} and "".join(texts).translate(_NINES) == shape * len(texts)


def mobiles(texts) -> bool:
    """Every text a mainland mobile number in normalize_phone's form (fields.MOBILE, 1[3-9] and 9
    more digits)."""
    if not shaped(texts, "99999999999"):
        return False
    joined = "".join(texts)
    return set(joined[::11]) == {"1"} and set(joined[1::11]) <= _SECOND_DIGITS


_SECOND_DIGITS = set("3456789")


def plain_receipts(texts) -> bool:
    """Every receipt 1-40 printable characters with no space at either end (what parse_row takes
    as it is; isprintable() rejects every whitespace but " "), checked on the texts joined."""
    joined = "\n".join(texts)
    return (joined.count("\n") == len(texts) - 1 and joined.replace("\n", "").isprintable()
            and "\n\n" not in joined and joined[:1] not in ("", "\n", " ") and joined[-1] not in "\n "
            and " \n" not in joined and "\n " not in joined and max(map(len, texts)) <= 40)


def fen_column(texts: tuple, blank):
    """A column of amounts -> fen (`blank` for an empty cell), or None if one is not plain."""
    # The common case, every amount 1-15 ASCII digits, a point and two digits, checked in C: each
    # text's line end comes after ".99" (its digits made 9s), and all that is left is 9s.
    joined = "\n".join(texts) + "\n"
    shape = joined.translate(_NINES)
    if (shape.count(".99\n") == len(texts) and not shape.replace(".99\n", "").replace("9", "")
            and "\n.99" not in shape and shape[0] != "." and max(map(len, texts)) <= 18):
        return list(map(int, joined.replace(".", "").split("\n")[:-1]))
    if not _AMOUNTS.fullmatch(joined):
        return None
    return [plain_fen(text) if text else blank for text in texts]


def _plain_phone(text: str) -> bool:
    """The form normalize_phone returns unchanged."""
    return _MOBILE.fullmatch(text) is not None


def parse_row(values: dict, rules: Rules, now: datetime) -> sales.Sale:
    """One file row -> a validated Sale, with the checks of `vip purchase`; InvalidInput names the field."""
    receipt = values.get("receipt")
    if not receipt:
        raise InvalidInput(_("receipt: required in an import (a re-run must recognise the row)"))
    card_text, phone_text = values.get("card_no"), values.get("phone")
    if not card_text and not phone_text:
        raise InvalidInput(_("card_no or phone: one is required"))
    stamp = values.get("purchased_at")
    if not stamp:
        raise InvalidInput(_("purchased_at: required"))
    amount = values.get("amount")
    if amount is None:
        raise InvalidInput(_("amount: required"))
    sale = sales.Sale(
        regular=parse_yuan(amount, "amount"),
        promo=parse_yuan(values["promo"], "promo") if values.get("promo") else 0,
        paid=parse_yuan(values["paid"], "paid") if values.get("paid") else None,
        card_no=cards.parse_number(card_text, rules) if card_text else None,
        phone=fields.normalize_phone(phone_text) if phone_text and not card_text else None,
        receipt=receipt,
        store=fields.check_store(values["store"]) if values.get("store") else None,
        at=parse_when(stamp, "purchased_at"),
    )
    if card_text and phone_text:
        fields.normalize_phone(phone_text)  # still a valid number; the card decides the buyer
    sales.validate_sale(sale, rules, now)
    return sale


class RowParser:
    """File cells -> (receipt, card_no, phone, store, stamp, seconds of the day, regular, promo,
    paid), the values parse_row would give. Rows in the canonical form take a shortcut; the rest go
    through parse_row. It keeps nothing but caches of answers (stores, card numbers): it shares
    no state with the import."""

    def __init__(self, names: list[str], rules: Rules, now: datetime):
        self.names = names
        self.rules = rules
        self.now = now
        self.now_text = iso(now)
        self.width = len(names)
        absent = self.width  # index of the "" each row gets appended (a column the file lacks)
        self.at = tuple(names.index(c) if c in names else absent for c in COLUMNS)
        self.stores: dict[str, str] = {}  # a store's text -> check_store's answer
        self.cards: set[str] = set()  # texts cards.parse_number returned unchanged

    def parse(self, cells: list):
        """The row's values, or None for a blank row; VipError for a bad one (the reason to show)."""
        if len(cells) != self.width:
            if record(self.names, cells) is None:
                return None  # a blank line
            raise InvalidInput(width_problem(self.names, cells), code="bad_row")
        cells.append("")
        fast = self._shortcut(cells)
        if fast is not None:
            return fast
        values = record(self.names, cells)
        if values is None:
            return None
        sale = parse_row(values, self.rules, self.now)
        raw_store = cells[self.at[3]]
        if sale.store is not None and isinstance(raw_store, str) and len(self.stores) < 1000:
            self.stores[raw_store] = sale.store  # check_store's answer, for the next rows
        at = sale.at
        return (sale.receipt, sale.card_no, sale.phone, sale.store, at.isoformat(), _moment(at), sale.regular,
                sale.promo, sale.paid)

    def parse_chunk(self, chunk: list) -> tuple[list, list]:
        """[(number, cells)] -> (good, bad): good rows are (number, *values), bad ones (number,
        {column: text}, reason); blank rows left out. A chunk whose every column is in the
        canonical form is checked column by column (a few passes in C); any other goes row by row."""
        lines = [cells for _, cells in chunk]
        if lines and set(map(len, lines)) == {self.width}:
            rows = self.canonical_columns([number for number, _ in chunk], list(zip(*lines)), len(lines))
            if rows is not None:
                return rows, []
        return self._one_by_one(chunk)

    def parse_block(self, block) -> tuple[list, list]:
        """A `readers.Block` (rows as columns) -> (good, bad), as parse_chunk."""
        rows = self.canonical_columns(range(block.first, block.first + block.count), block.columns, block.count)
        if rows is not None:
            return rows, []
        return self._one_by_one(block.rows())

    def _one_by_one(self, chunk: list) -> tuple[list, list]:
        good, bad = [], []
        for number, cells in chunk:
            try:
                row = self.parse(cells)
            except VipError as exc:
                bad.append((number, record(self.names, cells) or {}, exc.message))
                continue
            if row is not None:
                good.append((number, *row))
        return good, bad

    def _card(self, text: str) -> bool:
        """A card number in the canonical form (parse_number returns it unchanged)."""
        if text in self.cards:
            return True
        try:
            if cards.parse_number(text, self.rules) != text:
                return False
        except VipError:
            return False
        if len(self.cards) < 1_000_000:
            self.cards.add(text)
        return True

    def canonical_columns(self, numbers, columns: list, count: int):
        """Rows given as columns (each row with the header's number of cells), all in the
        canonical form, or None: then `parse` decides row by row."""
        width, limit = self.width, self.rules.max_amount
        blank = ("",) * count
        receipt, card, phone, store, stamp, amount, promo, paid = (
            columns[i] if i < width else blank for i in self.at)
        if not plain_receipts(receipt):
            return None
        has_card = card is not blank and any(card)
        if not ((phone is not blank and mobiles(phone)) or _PHONES.fullmatch("\n".join(phone) + "\n")):
            return None
        if has_card:
            if "" in map(add, card, phone) or not all(map(self._card, set(card) - {""})):
                return None
        elif "" in phone:
            return None
        if not self._known_stores(set(store) - {""}):
            return None
        if not canonical_stamps(stamp):
            if not _STAMPS.fullmatch("\n".join(stamp) + "\n"):
                return None
            if min(map(len, stamp)) == 16:
                stamp = tuple(t + ":00" if len(t) == 16 else t for t in stamp)
        if max(stamp) > self.now_text:
            return None
        try:
            at = list(map(_fromisoformat, stamp))
        except ValueError:
            return None
        regular = fen_column(amount, None)
        promo = fen_column(promo, 0) if promo is not blank else [0] * count
        paid = fen_column(paid, None) if paid is not blank else [None] * count
        if regular is None or promo is None or paid is None or None in regular:
            return None
        if max(regular) > limit or max(promo) > limit or min(map(add, regular, promo)) <= 0:
            return None
        if any(paid):  # given paid amounts: not above the limit or the list price
            if any(p is not None and (p > limit or p > r + q) for p, r, q in zip(paid, regular, promo)):
                return None
        stores = list(map(self.stores.get, store))  # "" -> None
        if has_card:
            phone = tuple(None if c else p for c, p in zip(card, phone))
            card = tuple(c or None for c in card)
        else:
            card = repeat(None)
        moments = [a.hour * 3600 + a.minute * 60 + a.second for a in at]
        return list(zip(numbers, receipt, card, phone, stores, stamp, moments, regular, promo, paid))

    def _known_stores(self, texts: set) -> bool:
        """Every store text checked (check_store's answers kept), or False: some are not valid,
        or too many to keep; the rows then say which."""
        new = texts - self.stores.keys()
        if len(self.stores) + len(new) > 1000:
            return False
        try:
            self.stores.update({text: fields.check_store(text) for text in new})
        except VipError:
            return False
        return True

    def _shortcut(self, cells: list):
        """The canonical form only; None means "not sure": parse_row decides."""
        i_receipt, i_card, i_phone, i_store, i_stamp, i_amount, i_promo, i_paid = self.at
        receipt = cells[i_receipt]
        # isprintable() rejects every whitespace but " ", so only a space could need stripping
        if not receipt or len(receipt) > 40 or not receipt.isprintable() or receipt[0] == " " or receipt[-1] == " ":
            return None
        card, phone = cells[i_card], cells[i_phone]
        if card:
            if not self._card(card):
                return None
            if phone and not _plain_phone(phone):
                return None
            phone = None
        elif not phone or not _plain_phone(phone):
            return None
        else:
            card = None
        store = cells[i_store]
        if store:
            store = self.stores.get(store)
            if store is None:
                return None
        else:
            store = None
        stamp = cells[i_stamp]
        if len(stamp) == 16:
            stamp += ":00"
        if (len(stamp) != 19 or stamp[10] != "T" or stamp[4] != "-" or stamp[7] != "-" or stamp[13] != ":"
                or stamp[16] != ":" or not stamp.isascii() or stamp > self.now_text):
            return None
        try:
            at = _fromisoformat(stamp)
        except ValueError:
            return None
        regular = plain_fen(cells[i_amount])
        if regular is None:
            return None
        promo = cells[i_promo]
        if promo:
            promo = plain_fen(promo)
            if promo is None:
                return None
        else:
            promo = 0
        paid = cells[i_paid]
        if paid:
            paid = plain_fen(paid)
            if paid is None:
                return None
        else:
            paid = None
        limit = self.rules.max_amount
        if regular > limit or promo > limit or regular + promo <= 0:
            return None
        if paid is not None and (paid > limit or paid > regular + promo):
            return None
        return receipt, card, phone, store, stamp, _moment(at), regular, promo, paid


def parsed_chunks(rows, parser: RowParser, size: int):
    """(row number, cells) -> (lines read, good rows, bad rows) per `size` lines
    (RowParser.parse_chunk); a CSV file's rows are taken a block of lines at a time
    (readers.CsvRows.blocks)."""
    if isinstance(rows, CsvRows):
        for block in rows.blocks(size, parser.width):
            if isinstance(block, Block):
                yield (block.count, *parser.parse_block(block))
            else:
                yield (len(block), *parser.parse_chunk(block))
        return
    rows = iter(rows)
    while chunk := list(islice(rows, size)):
        yield (len(chunk), *parser.parse_chunk(chunk))

