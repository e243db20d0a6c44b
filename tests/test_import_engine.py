"""The purchases import's shortcuts held to the canonical code they stand in for: the row and column
parsers to parse_row, the running-total windows to a plain sum, integer rounding to apply_rate, the
time-order column pass to csv.reader, the card state kept between days to effective_status."""

from datetime import datetime, timedelta

from hypothesis import example, given, settings
from hypothesis import strategies as st

from vipcli.cards import make_number
from vipcli.errors import VipError
from vipcli.io import purchase_rows as engine
from vipcli.io import purchase_state as state_
from vipcli.io import timeorder
from vipcli.io.readers import record
from vipcli.rulefile import default_text, parse

RULES = parse(default_text(), 1)
NOW = datetime(2026, 11, 1, 12, 0, 0)
NAMES = ["receipt", "card_no", "phone", "store", "purchased_at", "amount", "promo", "paid"]
KNOWN_CARD = make_number(RULES, "755", 1)  # a card on record

receipts = st.sampled_from(["R1", "R2", " R3", "R4 ", "", "x" * 41, "R\u3000", "B00000001", "收据1"])
cards = st.sampled_from(["", "", "", KNOWN_CARD, KNOWN_CARD[:3] + " " + KNOWN_CARD[3:], KNOWN_CARD[:-1] + "0", "abc"])
phones = st.sampled_from(["13900000001", "13900000002", "+86 139-0000-0003", "12345678901", "",
                          "１３９００００００１", "1390000000", " 13900000004"])
stores = st.sampled_from(["", "SZ01", "GZ01", " SZ01", "bad store", "X" * 21])
stamps = st.sampled_from(["2026-05-01T10:00:00", "2026-05-01T10:00", "2026-05-01", "2026-05-01 10:00:00",
                          "2026-13-01T10:00:00", "2026-05-01T25:00:00", "2030-01-01T00:00:00",
                          "2026-11-01T12:00:00", "2026-11-01T12:00:01", "2026-W18-5T10:00:00",
                          "2026-05-01T10:00:00+08:00", "2026-05-01T10:00:00.5", "not a date", ""])
amounts = st.sampled_from(["100", "100.5", "100.50", "0.00", "0", "1000000.00", "1000000.01", "-5",
                           "1,000", "１００", " 100", "100.", ".5", "1e3", "", "88.08", "000123.40"])
optional_amounts = st.sampled_from(["", "", "0.00", "45.60", "5", "x", "1000000.01", "99999.99"])


def row_cells():
    return st.lists(st.one_of(receipts), min_size=1, max_size=1).flatmap(lambda r: st.tuples(
        st.just(r[0]), cards, phones, stores, stamps, amounts, optional_amounts, optional_amounts)).map(list)


def _parser():
    return engine.RowParser(list(NAMES), RULES, NOW)


def _canonical(cells):
    values = record(NAMES, cells)
    if values is None:
        return None
    try:
        sale = engine.parse_row(values, RULES, NOW)
    except VipError as exc:
        return ("error", exc.message)
    return _values(sale)


def _values(sale):
    """What the parsers give for a row: the stamp as ISO text and the seconds into its day."""
    at = sale.at
    return (sale.receipt, sale.card_no, sale.phone, sale.store, at.isoformat(),
            at.hour * 3600 + at.minute * 60 + at.second, sale.regular, sale.promo, sale.paid)


def _found(good, bad):
    return {row[0]: row[1:] for row in good} | {n: ("error", reason) for n, _, reason in bad}


def _by_rows(parser, cells):
    try:
        return parser.parse(list(cells))
    except VipError as exc:
        return ("error", exc.message)


@settings(max_examples=200, deadline=None)
@given(st.lists(row_cells(), min_size=1, max_size=8), st.sets(st.sampled_from(["card_no", "phone", "store", "promo",
                                                                            "paid"]), max_size=4), st.booleans())
def test_files_without_some_columns(chunk, dropped, clean):
    """A file may leave out any column that is not required: both checks still agree with parse_row."""
    if clean:
        chunk = [[f"R{i}", "", f"139{i:08d}", "SZ01", f"2026-05-01T10:{i:02d}:00", "12.50", "1.00", ""]
                 for i in range(len(chunk))]
    if "card_no" in dropped and "phone" in dropped:
        dropped = dropped - {"phone"}
    names = [n for n in NAMES if n not in dropped]
    keep = [NAMES.index(n) for n in names]
    rows = [[cells[i] for i in keep] for cells in chunk]
    parser = engine.RowParser(names, RULES, NOW)
    parser.stores["SZ01"] = "SZ01"
    good, bad = parser.parse_chunk([(n, list(c)) for n, c in enumerate(rows, start=2)])
    got = _found(good, bad)
    expected = {}
    for n, cells in enumerate(rows, start=2):
        values = record(names, cells)
        if values is None:
            continue
        try:
            sale = engine.parse_row(values, RULES, NOW)
        except VipError as exc:
            expected[n] = ("error", exc.message)
            continue
        expected[n] = _values(sale)
    assert got == expected
    if clean and "phone" not in dropped:  # the column check takes such a chunk whole
        assert parser.canonical_columns(range(2, 2 + len(rows)), list(zip(*rows)), len(rows)) is not None


@settings(max_examples=400, deadline=None)
@given(row_cells())
def test_row_shortcut_gives_what_parse_row_gives(cells):
    parser = _parser()
    parser.stores.update({"SZ01": "SZ01", " SZ01": "SZ01"})
    assert _by_rows(parser, cells) == _canonical(cells)


@settings(max_examples=200, deadline=None)
@given(st.lists(row_cells(), min_size=1, max_size=12), st.booleans())
def test_column_check_gives_what_rows_give(chunk, clean):
    if clean:  # a chunk in the canonical form, the case the column check exists for
        chunk = [[f"R{i}", "", f"139{i:08d}", "SZ01", f"2026-05-01T10:{i:02d}", f"{i + 1}.50", "0.00", ""]
                 for i in range(len(chunk))]
    parser = _parser()
    parser.stores["SZ01"] = "SZ01"
    good, bad = parser.parse_chunk([(n, list(c)) for n, c in enumerate(chunk, start=2)])
    got = _found(good, bad)
    expected = {n: _canonical(c) for n, c in enumerate(chunk, start=2)}
    assert got == {n: v for n, v in expected.items() if v is not None}
    if clean:  # the column check takes such a chunk whole
        assert parser.canonical_columns(range(2, 2 + len(chunk)), list(zip(*chunk)), len(chunk)) is not None


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3 * 86400), st.sampled_from([0, 1, 10 ** 6, 10 ** 8]), st.booleans()),
                min_size=1, max_size=4000), st.sampled_from([1, 6, 12]),
       st.sampled_from([state_.Customer, state_.PaidCustomer]), st.sampled_from([0, 2 ** 31 - 10 ** 6, -2 ** 40]))
@example([(3600, 10 ** 8, True)] * 100, 1, state_.PaidCustomer, 0)  # the total outgrows 32 bits
@example([(3600, 10 ** 8, True)] * 100, 1, state_.Customer, 0)
@example([(86400, 1, True)] * 40, 12, state_.Customer, 2 ** 31 - 10 * 86400)  # so does the time
def test_windows_equal_a_plain_sum_also_after_pruning(steps, months, kind, start):
    """Events in time order; after each, the window of `months` (a day per month here) ending at
    that event, as running totals (with old events dropped past 3,000) and as a plain sum; for a
    customer whose qualification counts all that is paid (pairs) and one whose does not (triples);
    with totals and times that outgrow 32 bits on the way."""
    state = kind(1)
    seen = []
    moment = start
    for gap, paid, ask in steps:
        moment += gap
        counted = paid if kind.stride == 2 else paid // 2
        state_.add_event(state, moment, paid, counted)
        seen.append((moment, paid, counted))
        if ask or len(seen) % 500 == 0:
            start = moment - months * 86400
            assert state_.window_sum(state, months, start, 1) == sum(p for t, p, _ in seen if t > start)
            assert state_.window_sum(state, months, start, 2) == sum(c for t, _, c in seen if t > start)
    assert len(state.events) <= max(3 * len(steps), 3000 * 2)


@given(st.dictionaries(st.integers(13000000000, 19999999999), st.integers(1, 2 ** 40), max_size=60),
       st.dictionaries(st.integers(13000000000, 19999999999), st.integers(1, 2 ** 40), max_size=10),
       st.lists(st.integers(13000000000, 19999999999), max_size=20))
def test_the_phone_book_answers_as_a_dict(recorded, added, asked):
    """The database's phones (sorted arrays, bisected) and this import's (a dict) answer every phone,
    recorded, added or unknown, as one dict would."""
    book, expected = state_.PhoneBook(), {**recorded, **added}
    book.read(sorted(recorded.items()))
    for phone, cid in added.items():
        book[phone] = cid
    for phone in [*recorded, *added, *asked]:
        assert book.get(phone) == expected.get(phone)
    assert bool(book) == bool(expected)
    book.clear()
    assert not book and book.get(next(iter(recorded), 13000000000)) is None


def test_a_day_holds_the_window_starts_of_months_before():
    """31 August - 6 months = 28/29 February: the window start of each day comes from months_before."""
    day = state_.Day(datetime(2026, 8, 31).date(), {6, 12})
    assert day.back[6] == (datetime(2026, 8, 31) - datetime(2026, 2, 28)).days * 86400
    start = datetime(2026, 8, 31, 10, 0) - timedelta(seconds=day.back[6])
    assert start == datetime(2026, 2, 28, 10, 0)


def _writer_db(tmp_path):
    from vipcli import db
    from vipcli import rulebook

    path = tmp_path / "w.db"
    conn = db.connect(path, create=True)
    rules = rulebook.current_rules(conn)
    conn.close()
    return path, rules


def test_a_stopped_writer_process_is_a_database_problem(tmp_path):
    import pytest

    from vipcli.errors import DatabaseProblem
    from vipcli.io.writer import WriterProcess

    path, rules = _writer_db(tmp_path)
    writer = WriterProcess(path, rules, NOW, "test")
    assert writer.begin() is False
    writer.proc.kill()
    writer.proc.wait()
    with pytest.raises(DatabaseProblem, match="writer process stopped"):
        writer.write({"customers": [(1, "13900000001", None, "2026-05-01T10:00:00")]})
        writer.begin()
    writer.abandon()


def test_a_failed_write_rolls_back_and_comes_back_at_the_next_answer(tmp_path):
    """Both writers: an SQLite failure in a write (here a duplicate id) is raised, translated, at
    the next call that waits for an answer; nothing of that transaction stays."""
    import sqlite3

    import pytest

    from vipcli.errors import DatabaseProblem
    from vipcli.io.writer import Writer, WriterProcess

    path, rules = _writer_db(tmp_path)
    row = (1, "13900000001", None, "2026-05-01T10:00:00")
    for kind in (Writer, WriterProcess):
        writer = kind(path, rules, NOW, "test")
        writer.begin()
        with pytest.raises(DatabaseProblem, match="UNIQUE"):
            writer.write({"customers": [row, row]})
            writer.commit()
            writer.close()
        writer.abandon()
        with sqlite3.connect(path) as conn:
            assert conn.execute("SELECT count(*) FROM customers").fetchone()[0] == 0


def test_the_writer_stores_none_as_null(tmp_path):
    """A missing value (store, card, rate) is stored as NULL, not as text."""
    import sqlite3

    from vipcli.io.writer import Writer

    path, rules = _writer_db(tmp_path)
    writer = Writer(path, rules, NOW, "test")
    writer.begin()
    writer.write({"customers": [(1, "13900000001", None, "2026-05-01T10:00:00")]})
    writer.commit()
    writer.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT typeof(store), typeof(phone) FROM customers").fetchone() == ("null", "text")
        assert conn.execute("SELECT ? IS NULL", (None,)).fetchone() == (1,)


fields = st.sampled_from(["", "a", "2026-05-01T10:00:00", " x ", "\u3000y", "收据", "a,b", 'say "hi"', "two\nlines",
                          "12.50", "\t", "\x1c"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.lists(fields, min_size=0, max_size=5), st.just([])), min_size=0, max_size=30),
       st.integers(0, 4), st.sampled_from(["utf-8", "utf-8-sig", "gb18030"]), st.sampled_from(["\n", "\r\n", "\r"]),
       st.sampled_from(["\n", "\r\n", "\r"]), st.booleans())
def test_column_values_read_what_csv_reads(tmp_path_factory, rows, index, encoding, newline, first_newline, plain):
    """The column pass (lines cut at the commas, csv from a quote on) gives what csv.reader gives
    row by row (stripped), whatever the quotes, line ends (mixed too), blank or short rows and
    encoding."""
    import csv
    import io

    from vipcli.io import readers

    if plain:  # no quoted field: the case the line-splitting path exists for
        rows = [[f.replace(",", "").replace('"', "").replace("\n", "") for f in row] for row in rows]
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator=first_newline).writerow(["h0", "h1", "h2", "h3", "h4"])
    csv.writer(buffer, lineterminator=newline).writerows(rows)
    path = tmp_path_factory.mktemp("cv") / "f.csv"
    path.write_bytes(buffer.getvalue().encode(encoding))
    with open(path, encoding=encoding, newline="") as handle:
        expected = [v[index].strip() if index < len(v) else "" for v in list(csv.reader(handle))[1:]]
    assert [value for part in readers.column_values(str(path), index, encoding) for value in part] == expected


near_digits = "0123456789１٣.:-T\n "


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(st.from_regex(r"[0-9]{1,16}\.[0-9]{2}", fullmatch=True),
                          st.from_regex(r"[0-9\n.١]{1,4}\.[0-9١]{2}", fullmatch=True),
                          st.sampled_from(["1.2.34", "١٢.٣٤", "1\n2.00", "12.00\n", "00.00", "1234567890123456.00",
                                           "123456789012345.00", ".00", "+1.00", "1_0.00", "13900000001",
                                           "1390000000１", "2026-05-01T10:00:00", "R1", " R3", "R4 ", "", "x" * 41,
                                           "x" * 40, "R\u3000", "收据1", "a\nb", "\t"]),
                          st.from_regex(r"[0-9]{11}", fullmatch=True),
                          st.from_regex(r"1[2-9][0-9]{8,10}", fullmatch=True),
                          st.from_regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2})?", fullmatch=True),
                          st.text(alphabet=near_digits, max_size=20)), min_size=1, max_size=6))
@example([".00"])
@example(["1.2.34", "5.00"])
@example(["1\n2.00", "5.00"])
@example(["1.23\n4.56", "7.00"])  # two amounts' shapes in one cell
@example(["١٢.٣٤"])
@example(["1234567890123456.00"])
@example(["13900000001", "23900000001"])
@example(["12900000001"])
@example(["R1", ""])
@example(["", "R1"])
@example(["R1 ", "R2"])
@example(["R1", " R2"])
def test_column_shapes_check_what_the_patterns_check(texts):
    """The column checks done with str.translate and slices (amounts, mobiles, ISO times) answer
    what the regular expressions of the row path answer, line breaks and non-ASCII digits included."""
    import re

    from vipcli.fields import MOBILE
    from vipcli.money import YUAN

    def fen_by_pattern(blank):
        if not re.fullmatch(rf"(?:(?:{YUAN})?\n)*", "\n".join(texts) + "\n"):
            return None
        return [engine.plain_fen(text) if text else blank for text in texts]

    assert engine.fen_column(texts, None) == fen_by_pattern(None)
    assert engine.fen_column(texts, 0) == fen_by_pattern(0)
    assert engine.mobiles(texts) == bool(re.fullmatch(f"(?:{MOBILE}\n)*", "\n".join(texts) + "\n"))
    assert engine.plain_receipts(texts) == ("" not in texts and max(map(len, texts)) <= 40
                                             and all(t.isprintable() and t.strip() == t for t in texts))
    iso = r"(?:[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\n)*"
    assert engine.shaped(texts, "9999-99-99T99:99:99") == bool(re.fullmatch(iso, "\n".join(texts) + "\n"))


purchase_cells = st.sampled_from(["", "R1", "R2", " R3", "13900000001", "1390000000", "SZ01", "sz 1", "12.50", "0.5",
                                  "2026-05-01T10:00:00", "2026-05-01T10:00", "2026-02-30T10:00:00", "收据", "a,b",
                                  'say "hi"', "two\nlines"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.lists(purchase_cells, min_size=6, max_size=6),
                          st.lists(purchase_cells, min_size=0, max_size=7)), min_size=0, max_size=25),
       st.integers(1, 8), st.sampled_from(["utf-8", "gb18030"]), st.sampled_from(["\n", "\r\n", "\r"]),
       st.booleans(), st.booleans(), st.booleans())
def test_blocks_read_what_rows_read(tmp_path_factory, rows, size, encoding, newline, plain, last_line_end, clean):
    """A CSV file taken a block of lines at a time (readers.CsvRows.blocks: columns cut in C for a
    regular block) gives the same (row number, cells) as taken row by row, whatever the quotes, line
    ends, blank, short or long rows; and the import parses a block as it parses the same rows."""
    import csv
    import io

    from vipcli.io import readers
    from vipcli.io.readers import Block

    names = ["receipt", "phone", "store", "purchased_at", "amount", "promo"]
    if clean:  # valid rows (the column check takes their blocks whole), some blank, short or quoted
        rows = [[f"R{i}", f"139{i:08d}", "SZ01", f"2026-05-01T10:{i:02d}:00", f"{i + 1}.50", ""] if len(row) == 6 else row
                for i, row in enumerate(rows)]
    if plain:  # no quoted field: most blocks are regular
        rows = [[f.replace(",", "").replace('"', "").replace("\n", "") for f in row] for row in rows]
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator=newline).writerows([names, *rows])
    text = buffer.getvalue()
    if not last_line_end:
        text = text[:-len(newline)] if rows else text
    path = tmp_path_factory.mktemp("bl") / "f.csv"
    path.write_bytes(text.encode(encoding))
    source = (str(path), engine.COLUMNS, engine.REQUIRED, encoding)
    expected = list(readers.open_table(*source)[1])
    parser = engine.RowParser(names, RULES, NOW)
    got, parsed, expected_parsed = [], [], []
    for block in readers.open_table(*source)[1].blocks(size, len(names)):
        chunk = [(n, list(c)) for n, c in (block.rows() if isinstance(block, Block) else block)]
        assert 0 < len(chunk) <= size
        got += chunk
        expected_parsed.append(engine.RowParser(names, RULES, NOW).parse_chunk([(n, list(c)) for n, c in chunk]))
        parsed.append(parser.parse_block(block) if isinstance(block, Block) else parser.parse_chunk(block))
    assert got == expected
    assert parsed == expected_parsed
    if clean and plain and rows and all(len(row) == 6 for row in rows):
        assert sum(len(good) for good, _ in parsed) == len(rows)


@settings(max_examples=1000, deadline=None)
@given(st.sampled_from(["active", "active", "blocked", "replaced", "cancelled", "expired"]), st.integers(0, 60),
       st.integers(0, 90), st.booleans(), st.integers(0, 100), st.integers(0, 100))
def test_a_card_state_holds_until_the_day_status_until_says(stored, registered_after, valid_for, registered, asked,
                                                            later):
    """cards.status_until: the state it gives holds, as effective_status says, every day up to the
    last day it gives (the import keeps it that long); the day after, it has changed."""
    from vipcli.cards import effective_status, status_until

    start = datetime(2026, 1, 1).date()
    card = {"status": stored, "registration_from": (start + timedelta(days=registered_after)).isoformat() + "T10:00:00",
            "valid_to": (start + timedelta(days=valid_for)).isoformat()}
    today = start + timedelta(days=asked)
    status, until = status_until(card, registered, RULES, today)
    assert status == effective_status(card, registered, RULES, today)
    if until.year < 9999:
        assert effective_status(card, registered, RULES, min(today + timedelta(days=later), until)) == status
        assert effective_status(card, registered, RULES, until + timedelta(days=1)) != status


@settings(max_examples=200, deadline=None)
@given(stamps=st.lists(st.sampled_from(["2026-05-01T10:00:00", "2026-05-01T09:00:00", "2026-04-30T23:59:59",
                                        "bad", "2026-5-1", ""]), max_size=60),
       run=st.integers(min_value=1, max_value=8))
def test_sorting_in_spooled_runs_equals_sorting_at_once(stamps, run):
    rows = [(i + 2, [f"R{i}", stamp]) for i, stamp in enumerate(stamps)]
    whole = timeorder.sorted_rows(list(rows), 1)
    saved = timeorder.SORT_RUN_ROWS
    timeorder.SORT_RUN_ROWS = run
    try:
        in_runs = list(timeorder.sorted_rows(iter(rows), 1))
    finally:
        timeorder.SORT_RUN_ROWS = saved
    assert in_runs == list(whole)
