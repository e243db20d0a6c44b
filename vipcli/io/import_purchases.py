"""`vip import purchases`: POS purchase rows applied with every rule, fast.

The rules are the same as `vip purchase` (sales.price, rules.qualification_reason, rules.tier_for,
rules.points_for, cards.effective_status): the state after an import equals the state after feeding
the rows one by one through `vip purchase` (a test compares the databases table by table). What
makes it fast:

- Parsing. A chunk of rows whose cells are all in the canonical form a POS writes
  (`2026-05-01T10:00:00`, `880.50`, an 11-digit mobile, a known store) is checked column by column,
  in a few passes in C; any other chunk goes row by row, and a row not in that form through
  `parse_row`, the full validation, which also words the reason a bad row is rejected. Property
  tests hold all three to the same answers.
- State. Each customer's card, tier and recent spend live in memory (compact arrays of running
  totals, pruned to the longest window); a window is only worked out when the customer's total
  could reach a threshold.
- Writes. The rows go to a writer (io/writer.py), in a second process for a large file, so that
  SQLite's work runs on the other core; one executemany per table, in BEGIN IMMEDIATE transactions
  of about two seconds (another terminal's write waits two seconds at worst; each boundary makes
  the importer wait for the writer to catch up, so fewer cost less). A first load defers one index
  to its end. A rare case the fast path does not model (a card carrying points debt) goes through
  `sales.record_purchase` itself, in the writer.
- Order. The rules need the rows in time order. For a large file one pass checks that beside the
  import (io/timeorder.py), and the import asks for the answer before its first commit: a file out
  of order is then rolled back, nothing committed, and read again sorted (OutOfOrder).

Transactions commit one after the other, so an import killed at any point leaves whole
transactions; the receipts make a re-run skip what is there and complete the rest.
"""

import gc
import re
import time
from array import array
from bisect import bisect_left
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import islice, repeat
from operator import add, lt

from vipcli import cards, fields, sales
from vipcli.dates import is_birthday, iso, months_after, months_before, parse_when
from vipcli.db import audit
from vipcli.errors import DatabaseProblem, InvalidInput, Refused, VipError
from vipcli.io.readers import Block, CsvRows, record, width_problem
from vipcli.money import YUAN, format_fen, parse_yuan
from vipcli.rules import Rules

CHUNK_ROWS = 2500  # rows parsed, looked up and handed to the writer together
COLUMNS = ("receipt", "card_no", "phone", "store", "purchased_at", "amount", "promo", "paid")
REQUIRED = ("receipt", "purchased_at", "amount")
_fromisoformat = datetime.fromisoformat


@dataclass
class Report:
    rows: int = 0
    inserted: int = 0
    duplicates: int = 0
    rejected: int = 0
    cards_issued: int = 0
    upgrades: int = 0
    slow_path: int = 0  # rows applied by sales.record_purchase (a card with points debt)


class _Customer:
    """What the rules need to know about one buyer, kept between rows."""

    __slots__ = ("id", "card", "tier", "status", "valid_to", "registration_from", "registered",
                 "birthday", "events", "windows", "paid_sum", "counted_sum", "paid_base", "counted_base",
                 "ended", "debt", "until", "effective")
    stride = 3  # values per event

    def __init__(self, cid):
        self.id = cid
        self.card = None
        self.tier = None
        self.status = None
        self.valid_to = None
        self.registration_from = None
        self.registered = False
        self.birthday = None
        # flat triples: seconds (from EPOCH), then the running totals of paid (net) and of what
        # counts toward qualification, up to and including this purchase (pairs for a
        # _PaidCustomer); 32-bit while every value fits (_add_event), half the memory of 64
        self.events = array("i")  # None once no window will be asked of this customer again
        self.windows = None  # [months, index of the first event inside, ...] once a window is asked for
        self.paid_sum = self.counted_sum = 0  # the running totals after the last event
        self.paid_base = self.counted_base = 0  # the running totals before the first event kept
        self.ended = False
        self.debt = False
        self.effective = None  # the card's state (cards.effective_status) ...
        self.until = -1  # ... up to this day (an ordinal), when time changes it next


class _PaidCustomer(_Customer):
    """A customer whose qualification counts everything paid (promo goods too): what counts is
    what was paid, so the events are pairs (seconds, paid total), a third less memory."""

    __slots__ = ()
    stride = 2


class _Day:
    """What the rules need about one calendar day, worked out once per day of the file."""

    __slots__ = ("date", "ordinal", "base", "back", "expiry", "usable")

    def __init__(self, day: date, rules: Rules, months: set[int]):
        midnight = datetime.combine(day, datetime.min.time())
        self.date = day
        self.ordinal = day.toordinal()
        self.base = (self.ordinal - EPOCH) * 86400
        # seconds between a moment of this day and the same moment `m` calendar months before
        # (dateutil's month arithmetic: 31 August - 6 months = 28/29 February)
        self.back = {m: (day - months_before(midnight, m).date()).days * 86400 for m in months}
        if rules.expiry == "calendar_year":
            self.expiry = iso(rules.lot_expiry(midnight))  # the same for every moment of the day
        else:  # rolling: the same time of day, `validity_months` later; the time is appended per row
            self.expiry = months_after(midnight, rules.validity_months).date().isoformat()
        self.usable = (iso(midnight + timedelta(days=rules.usable_after_days))
                       if rules.usable_after_days else None)


EPOCH = date(2000, 1, 1).toordinal()  # seconds are counted from its start: 32 bits hold 1932-2068


def _seconds(stamp: str) -> int:
    """'2026-05-01T10:00:00' -> seconds since EPOCH (only compared, never shown)."""
    at = _fromisoformat(stamp)
    return (at.toordinal() - EPOCH) * 86400 + _moment(at)


def _moment(at: datetime) -> int:
    """Seconds into the day (the column pass works it out inline, for a whole chunk)."""
    return at.hour * 3600 + at.minute * 60 + at.second


def _fen(text: str) -> int | None:
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


def _canonical_stamps(texts) -> bool:
    """Every text is 'YYYY-MM-DDTHH:MM:SS' (so that text order is time order)."""
    return bool(texts) and _shaped(texts, "9999-99-99T99:99:99")


class OutOfOrder(Exception):
    """The file turned out not to be in time order, before anything was committed."""


def time_order(path: str, index: int, encoding: str | None) -> tuple[bool, int]:
    """A quick first pass over the purchased_at texts (column `index`; ISO text sorts as time), a
    block at a time: (in time order, rows)."""
    from vipcli.io.readers import column_values

    last, count, ordered = "", 0, True
    for block in column_values(path, index, encoding):
        count += len(block)
        if not ordered:
            continue  # counting only
        if not _canonical_stamps(block):
            block = [t for t in map(_sortable, block) if t]  # "": the row will be rejected
        if block and (block[0] < last or block != sorted(block)):
            ordered = False
        last = block[-1] if block else last
    return ordered, count


# An out-of-order file is sorted in runs of this many rows, each spooled to a temporary file, then
# merged: memory holds one run, not the file (1,000,000 rows sorted at once took 750 MB).
SORT_RUN_ROWS = 50_000


def sorted_rows(rows, index: int):
    """(number, cells) rows in time order (column `index`), the file's order among equal times;
    rows whose time can't be read first (they will be rejected). In bounded memory (SORT_RUN_ROWS)."""
    import heapq
    import pickle
    import tempfile

    def keyed(item):
        number, cells = item
        return _sortable(cells[index] if index < len(cells) else ""), number, cells

    runs = []
    rows = iter(rows)
    while run := sorted(map(keyed, islice(rows, SORT_RUN_ROWS))):
        if not runs and len(run) < SORT_RUN_ROWS:
            return [(number, cells) for _, number, cells in run]  # it fits in one run: no spooling
        spool = tempfile.TemporaryFile()
        for start in range(0, len(run), 1000):  # (the merge holds one block of each run)
            pickle.dump(run[start:start + 1000], spool, protocol=pickle.HIGHEST_PROTOCOL)
        spool.seek(0)
        runs.append(spool)
    return ((number, cells) for _, number, cells in heapq.merge(*map(_unspooled, runs)))


def _unspooled(spool):
    import pickle

    with spool:
        while True:
            try:
                yield from pickle.load(spool)
            except EOFError:
                return


def _sortable(text) -> str:
    """A purchased_at cell as sortable ISO text ("" when it is not a time)."""
    if isinstance(text, str) and len(text) == 19 and text[10] == "T":
        return text
    try:
        return parse_when(text).isoformat()
    except VipError:
        return ""


_NINES = str.maketrans("0123456789", "9999999999")  # an ASCII digit -> "9": a text's shape


def _shaped(texts, shape: str) -> bool:
    """Every text has `shape`, its 9s standing for ASCII digits ('9999-99-99'): a few passes in C,
    where a regular expression would take three times as long."""
    return set(map(len, texts)) == {len(shape)} and "".join(texts).translate(_NINES) == shape * len(texts)


def _mobiles(texts) -> bool:
    """Every text a mainland mobile number in normalize_phone's form (fields.MOBILE, 1[3-9] and 9
    more digits)."""
    if not _shaped(texts, "99999999999"):
        return False
    joined = "".join(texts)
    return set(joined[::11]) == {"1"} and set(joined[1::11]) <= _SECOND_DIGITS


_SECOND_DIGITS = set("3456789")


def _plain_receipts(texts) -> bool:
    """Every receipt 1-40 printable characters with no space at either end (what parse_row takes
    as it is; isprintable() rejects every whitespace but " "), checked on the texts joined."""
    joined = "\n".join(texts)
    return (joined.count("\n") == len(texts) - 1 and joined.replace("\n", "").isprintable()
            and "\n\n" not in joined and joined[:1] not in ("", "\n", " ") and joined[-1] not in "\n "
            and " \n" not in joined and "\n " not in joined and max(map(len, texts)) <= 40)


def _fen_column(texts: tuple, blank):
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
    return [_fen(text) if text else blank for text in texts]


def _plain_phone(text: str) -> bool:
    """The form normalize_phone returns unchanged."""
    return _MOBILE.fullmatch(text) is not None


def parse_row(values: dict, rules: Rules, now: datetime) -> sales.Sale:
    """One file row -> a validated Sale, with the checks of `vip purchase`; InvalidInput names the field."""
    receipt = values.get("receipt")
    if not receipt:
        raise InvalidInput("receipt: required in an import (a re-run must recognise the row)")
    card_text, phone_text = values.get("card_no"), values.get("phone")
    if not card_text and not phone_text:
        raise InvalidInput("card_no or phone: one is required")
    stamp = values.get("purchased_at")
    if not stamp:
        raise InvalidInput("purchased_at: required")
    amount = values.get("amount")
    if amount is None:
        raise InvalidInput("amount: required")
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
            rows = self._columns([number for number, _ in chunk], list(zip(*lines)), len(lines))
            if rows is not None:
                return rows, []
        return self._one_by_one(chunk)

    def parse_block(self, block) -> tuple[list, list]:
        """A `readers.Block` (rows as columns) -> (good, bad), as parse_chunk."""
        rows = self._columns(range(block.first, block.first + block.count), block.columns, block.count)
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

    def _columns(self, numbers, columns: list, count: int):
        """Rows given as columns (each row with the header's number of cells), all in the
        canonical form, or None: then `parse` decides row by row."""
        width, limit = self.width, self.rules.max_amount
        blank = ("",) * count
        receipt, card, phone, store, stamp, amount, promo, paid = (
            columns[i] if i < width else blank for i in self.at)
        if not _plain_receipts(receipt):
            return None
        has_card = card is not blank and any(card)
        if not ((phone is not blank and _mobiles(phone)) or _PHONES.fullmatch("\n".join(phone) + "\n")):
            return None
        if has_card:
            if "" in map(add, card, phone) or not all(map(self._card, set(card) - {""})):
                return None
        elif "" in phone:
            return None
        if not self._known_stores(set(store) - {""}):
            return None
        if not _canonical_stamps(stamp):
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
        regular = _fen_column(amount, None)
        promo = _fen_column(promo, 0) if promo is not blank else [0] * count
        paid = _fen_column(paid, None) if paid is not blank else [None] * count
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
        regular = _fen(cells[i_amount])
        if regular is None:
            return None
        promo = cells[i_promo]
        if promo:
            promo = _fen(promo)
            if promo is None:
                return None
        else:
            promo = 0
        paid = cells[i_paid]
        if paid:
            paid = _fen(paid)
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


class PurchaseImport:
    def __init__(self, conn, rules: Rules, now: datetime, operator: str, writer,
                 tx_rows: int = 100_000, tx_seconds: float = 2.0, defer_index: bool = False,
                 before_commit=None):
        """conn: this process's connection, for reads (it sees committed data only); writer: a
        `writer.Writer` or `writer.WriterProcess`, which owns the write transactions;
        before_commit: called once, before the first commit (it may raise OutOfOrder)."""
        self.conn = conn
        self.before_commit = before_commit
        self.writer = writer
        self.defer_index = defer_index  # asked of the writer with the first transaction
        self.rules = rules
        self.now = now
        self.operator = operator
        self.tx_rows = tx_rows
        self.tx_seconds = tx_seconds
        self.report = Report()
        self.customers: dict[int, _Customer] = {}
        self.by_phone: dict[str, int] = {}
        self.by_card: dict[str, int] = {}
        self.sequences: dict[str, int] = {}
        self.full_regions: set[str] = set()  # regions with no card number left (their rows go slow)
        self.horizon = max([w.months for w in rules.qualify_windows] + [rules.upgrade_window_months])
        self.recorded_at = iso(now)
        self.open = False
        self.loaded = False
        # No purchase was recorded before this import, and nobody else has written since: a
        # customer met for the first time has none (this import's are in memory), and the history
        # query is skipped; it would scan the table while a first load defers its index.
        self.fresh = None
        # hashes of the receipts written since the chunk's look-up of existing ones (maybe not yet
        # visible here); a hash seen again is checked against the database
        self.in_tx: set[int] = set()
        # ... but a chunk of ascending receipts that can't repeat any (`unseen`) is kept as its
        # first and last receipt: a nightly POS file keeps no hashes at all
        self.in_tx_ranges: list[tuple[str, str]] = []
        self.in_tx_greatest = None  # the greatest receipt of this transaction's chunks
        self.tier_sets: dict[int, tuple] = {}  # customer id -> (tier, since), written before the commit
        self.days: dict[str, _Day] = {}
        self.months = {w.months for w in rules.qualify_windows} | {rules.upgrade_window_months}
        # Bounds that spare working out a window: no window holds more than all the events kept.
        self.qualify_floor = min([w.amount for w in rules.qualify_windows], default=None)
        # the least single purchase that qualifies (none: a profile whose cards come otherwise)
        self.qualify_single = rules.qualify_single if rules.qualify_single is not None else float("inf")
        ranks = rules.tiers
        self.above = {t.code: (min([u.single_purchase for u in ranks[i + 1:]], default=None),
                               min([u.spend for u in ranks[i + 1:]], default=None))
                      for i, t in enumerate(ranks)}
        # rate -> (numerator, denominator, text): half-up rounding in integers (money.apply_rate)
        self.rates = {t.code: (*t.rate.as_integer_ratio(), str(t.rate)) for t in ranks}
        self.birthday_rate = (*rules.birthday_rate.as_integer_ratio(), str(rules.birthday_rate))
        self.birthday_applies = not rules.birthday_requires_id_check  # an import never checks an ID
        self.customer = _PaidCustomer if rules.count_promo else _Customer
        self._new_pending()

    # --- state ----------------------------------------------------------------------------------

    def _load_maps(self):
        self.customers.clear()
        self.sequences.clear()
        self.by_phone.clear()
        self.by_phone.update(self.conn.execute("SELECT phone, id FROM customers WHERE phone IS NOT NULL"))
        self.by_card.clear()
        self.by_card.update(self.conn.execute("SELECT card_no, customer_id FROM cards"))
        self.strangers = bool(self.by_phone or self.by_card)  # customers this import has not met

    def _day(self, text: str) -> _Day:
        day = self.days.get(text)
        if day is None:
            day = self.days[text] = _Day(date.fromisoformat(text), self.rules, self.months)
        return day

    def _state(self, cid: int, stamp: str) -> _Customer:
        """A customer this import has not met yet (the chunk's look-up missed it), read back."""
        state = self.customers.get(cid)
        if state is None:
            self._load([cid], _fromisoformat(stamp))
            state = self.customers[cid]
        return state

    def _prefetch(self, rows: list) -> None:
        """The customers a chunk names that this import has not met yet, read with a few queries
        for the whole chunk instead of four per customer."""
        if not self.strangers:
            return  # every customer there is was made by this import, and is in memory
        by_phone, by_card, known = self.by_phone, self.by_card, self.customers
        wanted = {cid for cid in (by_phone.get(row[3]) if row[2] is None else by_card.get(row[2])
                                  for row in rows) if cid is not None and cid not in known}
        if wanted:
            self._load(sorted(wanted), _fromisoformat(rows[0][5]))  # since the chunk's first (earliest) row

    def _load(self, ids: list[int], since: datetime) -> None:
        """Customers' state from the database: tier, registration and birthday; the latest live
        card (as cards.live_card), whether it carries debt, or whether a membership ended; and the
        purchases inside the longest window before `since`."""
        conn, live = self.conn, ",".join("?" * len(cards.LIVE))
        start = iso(months_before(since, self.horizon))
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            marks = ",".join("?" * len(part))
            states = {}
            for cid, tier, name, gender, birthday, phone in conn.execute(
                    f"SELECT id, tier, name, gender, birthday, phone FROM customers WHERE id IN ({marks})", part):
                state = states[cid] = self.customer(cid)
                state.tier = tier
                state.registered = bool(name and gender and birthday and phone)
                state.birthday = date.fromisoformat(birthday) if birthday else None
            for card in conn.execute(f"SELECT * FROM cards WHERE customer_id IN ({marks}) AND status IN ({live}) "
                                     "ORDER BY issued_at DESC", (*part, *cards.LIVE)):
                state = states[card["customer_id"]]
                if state.card is None:  # the latest live card
                    self._take_card(state, card)
            holders = {r[0] for r in conn.execute(
                f"SELECT DISTINCT customer_id FROM cards WHERE customer_id IN ({marks})", part)}
            numbers = [state.card for state in states.values() if state.card is not None]
            debts = {r[0] for r in conn.execute(
                f"SELECT DISTINCT card_no FROM point_lots WHERE remaining < 0 AND card_no IN "
                f"({','.join('?' * len(numbers))})", numbers)} if numbers else set()
            for cid, state in states.items():
                if state.card is not None:
                    state.debt = state.card in debts
                else:
                    state.ended = cid in holders
            if not self.fresh:  # else no purchase of theirs is recorded yet
                for cid, stamp, net, promo in conn.execute(
                        f"SELECT customer_id, purchased_at, paid - refunded, promo FROM purchases WHERE customer_id "
                        f"IN ({marks}) AND purchased_at > ? ORDER BY customer_id, purchased_at, id", (*part, start)):
                    self._add_event(states[cid], _seconds(stamp), net, self.rules.counted(net, promo))
            for cid, state in states.items():
                self._settle_events(state)
                self.customers[cid] = state

    def _settle_events(self, state: _Customer) -> None:
        """A customer no window will be asked of again (top tier: no upgrade left; membership
        ended: no card again) keeps no events: the heaviest buyers are those, so this is most
        of the import's memory. Tiers only rise during an import."""
        if state.ended or (state.card is not None and self.above.get(state.tier) == (None, None)):
            state.events = state.windows = None

    @staticmethod
    def _take_card(state: _Customer, card) -> None:
        state.card = card["card_no"]
        state.status = card["status"]
        state.valid_to = card["valid_to"]
        state.registration_from = card["registration_from"]

    @staticmethod
    def _window(state: _Customer, months: int, start: int, column: int) -> int:
        """Sum of `column` (1 paid, 2 counted) over the events after `start`: the running total
        now less the one before the window's first event. Rows come in time order, so a window's
        start only moves forward."""
        events, windows, stride = state.events, state.windows, state.stride
        if windows is None:
            windows = state.windows = []
        at = 0
        while at < len(windows) and windows[at] != months:
            at += 2
        if at == len(windows):
            windows += (months, 0)
        index, size = windows[at + 1], len(events)
        while index < size and events[index] <= start:
            index += stride
        windows[at + 1] = index
        offset = column if stride == 3 else 1  # counted is paid when there is no counted column
        if index:
            before = events[index - stride + offset]
        else:
            before = state.paid_base if column == 1 else state.counted_base
        total = (state.paid_sum if column == 1 else state.counted_sum) - before
        if size > 3000:  # drop what every window has left behind, rarely: O(1) per row
            first = min(windows[1::2])
            if first > size // 2:
                state.paid_base = events[first - stride + 1]
                state.counted_base = events[first - 1]  # the paid total itself when stride is 2
                del events[:first]
                windows[1::2] = [i - first for i in windows[1::2]]
        return total

    @staticmethod
    def _add_event(state: _Customer, seconds: int, paid: int, counted: int) -> None:
        state.paid_sum += paid
        state.counted_sum += counted
        events = state.events
        if events is None:
            return
        values = (seconds, state.paid_sum, state.counted_sum) if state.stride == 3 else (seconds, state.paid_sum)
        try:
            events.extend(values)
        except OverflowError:  # a value past 32 bits (a total over 21 million yuan): 64-bit from now on
            del events[len(events) - len(events) % state.stride:]  # (what the failed extend put in)
            state.events = events = array("q", events)
            events.extend(values)

    # --- transactions and chunks ----------------------------------------------------------------

    def run(self, chunks, rejects, progress=None) -> Report:
        """chunks: (lines read, good rows, bad rows), as `parsed_chunks` makes them, in time order.
        rejects(number, values or None, reason): None for a row the file must be read again for."""
        # The rows make no reference cycles, and the collector's passes over a hundred thousand
        # customers' state would cost more than a fifth of the import: it is paused meanwhile.
        collecting = gc.isenabled()
        gc.disable()
        try:
            for lines, good, bad in chunks:
                self._chunk(good, bad, rejects)
                if progress:
                    progress(lines)
            if self.open:
                self._commit()
            self._forget()  # before the writer builds a deferred index: the two peaks never meet
            self.writer.close()
        except BaseException:
            self.open = False
            self.writer.abandon()  # the open transaction is rolled back
            raise
        finally:
            if collecting:
                gc.enable()
        return self.report

    def _forget(self) -> None:
        """Drop what the import kept in memory (its report stays)."""
        for kept in (self.customers, self.by_phone, self.by_card, self.in_tx, self.days):
            kept.clear()

    def _begin(self) -> None:
        changed = self.writer.begin(self.defer_index)
        self.defer_index = False
        self.open = True
        self.tx_started = time.monotonic()
        self.tx_count = 0
        if changed or not self.loaded:
            self._load_maps()  # another process wrote between our transactions: forget what we knew
            self.loaded = True
        self._ids()
        limit = 10 ** self.rules.sequence_digits  # (another process may have used the last numbers meanwhile)
        self.full_regions.update(region for region, last in self.conn.execute(
            "SELECT region, last FROM card_sequences WHERE last + 1 >= ?", (limit,)))
        if self.fresh is None:
            self.fresh = self.next_purchase == 1
        elif changed:
            self.fresh = False

    def _commit(self) -> None:
        if self.before_commit is not None:
            self.before_commit()  # an exception here: nothing was committed, the writer rolls back
            self.before_commit = None
        self._set_tiers()
        self.writer.commit()
        self.open = False

    def _new_pending(self) -> None:
        """Rows for the writer; a purchase's last three columns (rules version, operator, time
        recorded) are the same for the whole import and are added by the writer."""
        self.pending = {name: [] for name in ("customers", "cards", "purchases", "lots", "ledger", "tiers")}
        self.purchases = self.pending["purchases"]

    def _chunk(self, rows, bad, rejects) -> None:
        if not self.open:
            self._begin_clean()
        report = self.report
        report.rows += len(rows) + len(bad)
        for number, values, reason in bad:
            report.rejected += 1
            rejects(number, values, reason)
        self._prefetch(rows)
        receipts = [row[1] for row in rows]
        existing = self._existing(receipts)
        # Receipts in ascending order, all after those recorded (the look-up found none) and those
        # this transaction wrote, can't repeat one: the rows are not checked one by one.
        unseen = (not existing and bool(receipts) and (self.in_tx_greatest is None or receipts[0] > self.in_tx_greatest)
                  and all(map(lt, receipts, islice(receipts, 1, None))))
        if not unseen and self._in_ranges(receipts):
            # A receipt may be one this transaction wrote as part of a range: commit, and the
            # look-up finds it.
            self._commit()
            self._begin_clean()
            existing = self._existing(receipts)
        self._apply(rows, existing, rejects, check=not unseen)
        if receipts:
            greatest = receipts[-1] if unseen else max(receipts)
            if self.in_tx_greatest is None or greatest > self.in_tx_greatest:
                self.in_tx_greatest = greatest
            if unseen:
                self.in_tx_ranges.append((receipts[0], receipts[-1]))
        self._flush()
        self.tx_count += len(rows) + len(bad)
        if self.tx_count >= self.tx_rows or time.monotonic() - self.tx_started >= self.tx_seconds:
            self._commit()

    def _begin_clean(self) -> None:
        """A transaction after a commit: what the last one wrote, the look-up of a chunk finds."""
        self.in_tx.clear()
        self.in_tx_ranges.clear()
        self.in_tx_greatest = None
        self._begin()

    def _in_ranges(self, receipts: list[str]) -> bool:
        """Whether a receipt lies inside one of the transaction's ranges of receipts."""
        if not self.in_tx_ranges:
            return False
        ordered = sorted(receipts)
        for low, high in self.in_tx_ranges:
            at = bisect_left(ordered, low)
            if at < len(ordered) and ordered[at] <= high:
                return True
        return False

    def _ids(self):
        """The next free id of each table (the writer holds the write lock: nobody else adds any)."""
        conn = self.conn
        self.next_customer, self.next_purchase, self.next_lot, self.next_entry, self.next_change = (
            conn.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()[0] + 1
            for table in ("customers", "purchases", "point_lots", "ledger", "tier_changes"))

    def _existing(self, receipts: list[str]) -> dict:
        """The recorded purchases among `receipts` (committed ones: this transaction's are in
        in_tx and in_tx_ranges), by receipt."""
        found = {}
        if not receipts:
            return found
        # A POS numbers its receipts in order: when every receipt of the chunk sorts after the
        # greatest one recorded (one step down the receipt index; SQLite compares text as Python
        # does), none is recorded, and the look-up of 2,500 receipts is spared.
        greatest = self.conn.execute("SELECT MAX(receipt) FROM purchases").fetchone()[0]
        if greatest is None or min(receipts) > greatest:
            return found
        for i in range(0, len(receipts), 900):
            chunk = receipts[i:i + 900]
            for row in self.conn.execute(
                f"SELECT receipt, customer_id, regular, promo, paid, paid_given, store, purchased_at "
                f"FROM purchases WHERE receipt IN ({','.join('?' * len(chunk))})", chunk):
                found[row[0]] = tuple(row)[1:]
        return found

    # --- one row -------------------------------------------------------------------------------

    def _apply(self, rows: list, existing: dict, rejects, check: bool = True) -> None:
        """Every rule, row after row: the common case inline (this loop is the import's hot path,
        hence the local names), the rare ones in the methods below. check: whether a row's receipt
        may be recorded or written already (else the caller knows none is)."""
        rules, report, in_tx = self.rules, self.report, self.in_tx
        by_phone, customers, days = self.by_phone.get, self.customers.get, self.days.get
        count_promo, qualify_single, floor = rules.count_promo, self.qualify_single, self.qualify_floor
        per_yuan, rates, above = rules.points_per_yuan, self.rates, self.above
        add_event = self._add_event
        for row in rows:
            try:
                number, receipt, card_given, phone, store, stamp, moment, regular, promo, given = row
                cid = by_phone(phone) if card_given is None else self._card_owner(card_given)
                if check and ((existing and receipt in existing) or hash(receipt) in in_tx) and self._repeat(
                        cid, row, existing):
                    continue  # the same purchase again (a different one raised)
                if cid is None:
                    state = self._new_prospect(phone, store, stamp)
                else:
                    state = customers(cid) or self._state(cid, stamp)
                    if card_given is not None and state.card != card_given:
                        self._wrong_card(card_given)
                day = days(stamp[:10]) or self._day(stamp[:10])
                status = None
                if state.card is not None:
                    status = state.effective if day.ordinal <= state.until else self._status(state, day)
                    if status == "blocked" and card_given is None:
                        self._slow(row, state)  # a member known by phone earns while the card is lost
                        continue
                    if status in ("blocked", "replaced", "cancelled"):
                        raise VipError(f"card {state.card} is {status}; purchase refused")
                    if status == "active" and state.debt:
                        self._slow(row, state)
                        continue

                # sales.price, in integers: the tier's rate (or the birthday rate, when lower) on
                # regular goods, half-up to the fen; promo goods at list price; a given `paid` as is.
                rate = None
                if given is not None:
                    paid = given
                elif status == "active" or status == "discount_only":
                    numerator, denominator, rate = rates.get(state.tier) or self._rate(state.tier)
                    if status == "active" and self.birthday_applies and state.birthday is not None:
                        numerator, denominator, rate = self._birthday(state, day, numerator, denominator, rate)
                    paid = (2 * regular * numerator + denominator) // (2 * denominator) + promo
                else:
                    paid = regular + promo
                if self.full_regions and state.card is None and not state.ended and self._region_full(store):
                    # No card number left to issue: the row goes the way of `vip purchase`, refused
                    # (rejected) if it qualifies, recorded if it does not; the other rows go on.
                    self._slow(row, state, refusable=True)
                    continue
                purchase_id = self.next_purchase
                self.next_purchase = purchase_id + 1
                seconds = day.base + moment
                counted = paid if count_promo else max(paid - promo, 0)
                add_event(state, seconds, paid, counted)
                card_no = state.card
                if card_no is None:
                    if not state.ended and (counted >= qualify_single or (
                            floor is not None and state.counted_sum - state.counted_base >= floor)):
                        card_no = self._qualify(state, store, stamp, paid, counted, seconds, day)
                        status = "active" if card_no else None
                else:
                    single, spend = above.get(state.tier) or (0, 0)
                    if (single is not None and paid >= single) or (
                            spend is not None and state.paid_sum - state.paid_base >= spend):
                        self._upgrade(state, paid, seconds, day, stamp)
                points = paid // 100 * per_yuan if card_no is not None and status == "active" else 0
                self.purchases.append((purchase_id, receipt, state.id, card_no, store, stamp, regular, promo,
                                       paid, 0 if given is None else 1, rate, points))
                if check:
                    in_tx.add(hash(receipt))
                if points:
                    self._earn(card_no, purchase_id, points, stamp, day)
            except VipError as exc:
                if exc.code == "card_sequence_overflow" or isinstance(exc, DatabaseProblem):
                    raise  # not this row's fault: stop, the transaction rolls back
                report.rejected += 1
                rejects(row[0], None, exc.message)  # the file is read again for its cells

    def _card_owner(self, card_no: str) -> int:
        cid = self.by_card.get(card_no)
        if cid is None:
            raise VipError(f"card {card_no} is not on record")
        return cid

    def _wrong_card(self, card_no: str) -> None:
        status = self.conn.execute("SELECT status FROM cards WHERE card_no = ?", (card_no,)).fetchone()
        raise VipError(f"card {card_no} is {status[0] if status else 'unknown'}; purchase refused")

    def _repeat(self, cid, row: tuple, existing: dict) -> bool:
        """A receipt maybe recorded already: True for the same purchase again (a duplicate), an
        error for a different one, False when it was not recorded after all."""
        _, receipt, _, _, store, stamp, _, regular, promo, given = row
        earlier = existing.get(receipt) if existing else None
        if earlier is None:
            earlier = self._written(receipt)
            if earlier is None:
                return False  # only its hash was among this transaction's
            existing[receipt] = earlier
        cid0, regular0, promo0, paid0, given0, store0, when0 = earlier
        if not (cid0 == cid and regular0 == regular and promo0 == promo and given0 == (given is not None)
                and store0 == store and when0 == stamp and (given is None or paid0 == given)):
            raise VipError(f"receipt {receipt} is already recorded with different content")
        self.report.duplicates += 1
        return True

    def _status(self, state: _Customer, day: _Day) -> str:
        """The card's state on `day` (cards.effective_status), and the last day it holds: time
        turns an active card discount_only after the registration window (when unregistered) and
        any card expired after its validity; a stored state holds for good. Rows come in time
        order, so it is worked out again only once that day has passed."""
        state.effective = effective = cards.effective_status(
            {"status": state.status, "valid_to": state.valid_to, "registration_from": state.registration_from},
            state.registered, self.rules, day.date)
        if effective in ("active", "discount_only"):
            until = date.fromisoformat(state.valid_to).toordinal()
            if effective == "active" and not state.registered and self.rules.registration_days is not None:
                window_ends = date.fromisoformat(state.registration_from[:10]).toordinal() + self.rules.registration_days
                until = min(until, window_ends)
        else:
            until = date.max.toordinal()
        state.until = until
        return effective

    def _birthday(self, state: _Customer, day: _Day, numerator: int, denominator: int, rate: str) -> tuple:
        """The birthday rate instead of the tier's, on the birthday, when it is lower."""
        b_numerator, b_denominator, _ = self.birthday_rate
        if is_birthday(state.birthday, day.date) and b_numerator * denominator < numerator * b_denominator:
            return self.birthday_rate
        return numerator, denominator, rate

    def _qualify(self, state: _Customer, store, stamp: str, paid: int, counted: int, seconds: int,
                 day: _Day) -> str | None:
        """第四条/第五条: the card a prospect's purchase earns, if it meets a rule."""
        rules = self.rules
        reason = rules.qualification_reason(counted, _Windows(self, state, seconds, day))
        if reason is None:
            return None
        card_no = self._issue(state, store, day, stamp, reason)
        spend = self._upgrade_spend(state, seconds, day)
        self._set_tier(state, None, rules.tier_for(paid, spend).code, stamp, f"card issued ({reason})")
        return card_no

    def _upgrade(self, state: _Customer, paid: int, seconds: int, day: _Day, stamp: str) -> None:
        rules = self.rules
        spend = self._upgrade_spend(state, seconds, day)
        reached = rules.tier_for(paid, spend)
        if rules.tier_rank(reached.code) > rules.tier_rank(state.tier):
            self.report.upgrades += 1
            self._set_tier(state, state.tier, reached.code, stamp,
                           f"upgrade: purchase {format_fen(paid)}, {rules.upgrade_window_months}-month "
                           f"spend {format_fen(spend)}")

    def _earn(self, card_no: str, purchase_id: int, points: int, stamp: str, day: _Day) -> None:
        """A lot and its ledger entry (ledger.earn; a card with debt went the slow path)."""
        lot_id = self.next_lot
        self.next_lot = lot_id + 1
        expiry = day.expiry if self.rules.expiry == "calendar_year" else day.expiry + stamp[10:]
        self.pending["lots"].append((lot_id, card_no, purchase_id, points, stamp, day.usable or stamp, expiry, points))
        self.pending["ledger"].append((self.next_entry, card_no, lot_id, "earn", points, stamp, self.operator,
                                       purchase_id, None))
        self.next_entry += 1

    def _written(self, receipt: str) -> tuple | None:
        """A receipt this transaction may have written, seen again (rare): commit, read it back."""
        self._flush()
        self._commit()
        self._begin()
        return self._existing([receipt]).get(receipt)

    def _rate(self, tier):
        rate = self.rules.tier(tier).rate  # InvalidInput for a tier these rules do not have
        return (*rate.as_integer_ratio(), str(rate))

    def _upgrade_spend(self, state: _Customer, seconds: int, day: _Day) -> int:
        months = self.rules.upgrade_window_months
        return self._window(state, months, seconds - day.back[months], 1)

    def _new_prospect(self, phone: str, store, stamp: str) -> _Customer:
        cid = self.next_customer
        self.next_customer = cid + 1
        state = self.customer(cid)
        self.customers[cid] = state
        self.by_phone[phone] = cid
        self.pending["customers"].append((cid, phone, store, stamp))
        return state

    def _last_sequence(self, region: str) -> int:
        if region not in self.sequences:
            row = self.conn.execute("SELECT last FROM card_sequences WHERE region = ?", (region,)).fetchone()
            self.sequences[region] = row[0] if row else 0
        return self.sequences[region]

    def _region_full(self, store) -> bool:
        """Whether the region a card for this store would come from has no number left (the row
        loop asks only once some region is full)."""
        return self.rules.region_for(store) in self.full_regions

    def _issue(self, state: _Customer, store, day: _Day, stamp: str, reason: str) -> str:
        rules = self.rules
        region = rules.region_for(store)
        sequence = self._last_sequence(region) + 1
        if sequence >= 10 ** rules.sequence_digits:
            raise Refused(f"region {region} has used all {10 ** rules.sequence_digits - 1} card numbers; "
                          "the import stopped (widen card.sequence_digits)", code="card_sequence_overflow")
        self.sequences[region] = sequence
        if sequence + 1 >= 10 ** rules.sequence_digits:
            self.full_regions.add(region)  # that was the last number
        number = cards.make_number(rules, region, sequence)
        valid_to = iso(rules.card_valid_to(day.date))
        self.pending["cards"].append((number, state.id, region, sequence, stamp, valid_to,
                                      f"qualified: {reason}", stamp, stamp))
        state.card, state.status, state.valid_to, state.registration_from = number, "active", valid_to, stamp
        state.until = -1
        self.by_card[number] = state.id
        self.report.cards_issued += 1
        return number

    def _set_tier(self, state, old, new, stamp, reason):
        state.tier = new
        self._settle_events(state)
        self.tier_sets[state.id] = (new, stamp)
        self.pending["tiers"].append((self.next_change, state.id, old, new, stamp, reason, self.operator))
        self.next_change += 1

    def _slow(self, row: tuple, state: _Customer, refusable: bool = False) -> None:
        """The exact path of `vip purchase`, for what the fast path does not model: the writer runs
        it inside the transaction, which then commits so that this process can read the outcome.
        `refusable`: a full card region refuses this row only (its rejection reason)."""
        _, receipt, card_no, phone, store, stamp, _, regular, promo, given = row
        self._flush()
        self._set_tiers()  # sales.record_purchase reads the customer's tier
        try:
            self.writer.slow((receipt, card_no, phone, store, _fromisoformat(stamp), regular, promo, given))
        except VipError as exc:  # the row is rejected; the writer undid what it began
            if refusable and exc.code == "card_sequence_overflow":
                raise VipError(exc.message) from None  # (without the code that stops an import)
            raise
        self._commit()
        self.fresh = False  # the customer is read back from the database, purchases included
        self.customers.pop(state.id, None)
        self.sequences.clear()
        self._begin()
        self.report.inserted += 1
        self.report.slow_path += 1

    def _set_tiers(self) -> None:
        """The customers' tiers set in this transaction: each customer's last, in id order (rows
        near one another in the table), once before the commit instead of once per change."""
        if self.tier_sets:
            self.writer.write({"tier_set": [(*self.tier_sets[cid], cid) for cid in sorted(self.tier_sets)]})
            self.tier_sets.clear()

    def _flush(self) -> None:
        """Hand what the rows so far produced to the writer, table by table in foreign-key order."""
        self.report.inserted += len(self.purchases)
        self.pending["sequences"] = list(self.sequences.items())
        self.writer.write(self.pending)
        self._new_pending()


class _Windows:
    """months -> counted spend, worked out only for the windows the rules actually ask about."""

    __slots__ = ("importer", "state", "seconds", "day")

    def __init__(self, importer, state, seconds, day):
        self.importer, self.state, self.seconds, self.day = importer, state, seconds, day

    def get(self, months: int, default: int = 0) -> int:
        return self.importer._window(self.state, months, self.seconds - self.day.back[months], 2)


def finish(conn, report: Report, path: str, now: datetime, operator: str) -> None:
    """One audit row for the whole import."""
    conn.execute("BEGIN IMMEDIATE")
    audit(conn, now, operator, "import purchases", path, inserted=report.inserted, duplicates=report.duplicates,
          rejected=report.rejected, cards_issued=report.cards_issued)
    conn.execute("COMMIT")
