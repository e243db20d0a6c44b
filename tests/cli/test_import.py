import csv
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta

import pytest
from conftest import open_db

TABLES = {
    "customers": "id", "cards": "card_no", "card_sequences": "region", "purchases": "id",
    "point_lots": "id", "ledger": "id", "tier_changes": "id", "changes": "id", "refunds": "id",
    "applications": "id", "application_receipts": "application_id, purchase_id",
}
HEADER = ["receipt", "card_no", "phone", "store", "purchased_at", "amount", "promo", "paid"]


def make_rows(seed=7, count=400, phones=25, cards=(), start=datetime(2025, 3, 1, 9, 0), gap=1800):
    rng = random.Random(seed)
    at = start
    rows = []
    for i in range(count):
        at += timedelta(minutes=rng.randint(30, gap))
        buyer_card = rng.choice(cards) if cards and rng.random() < 0.2 else ""
        phone = "" if buyer_card else f"1390000{rng.randint(0, phones - 1):04d}"
        amount = rng.choice(["88.00", "320.50", "999.99", "1000.00", "10.05", "2500", "5000", "120"])
        promo = rng.choice(["", "", "", "45.60"])
        paid = rng.choice(["", "", "", "", "77.70"]) if amount != "10.05" else ""
        rows.append([f"T{i:05d}", buyer_card, phone, rng.choice(["SZ01", "GZ01", ""]),
                     at.isoformat(timespec="minutes"), amount, promo, paid])
    return rows


def write_csv(path, rows, encoding="utf-8"):
    with open(path, "w", newline="", encoding=encoding) as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)


def dump(db):
    with open_db(db) as conn:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY {k}").fetchall() for t, k in TABLES.items()}


def _one_by_one(vip, rows):
    """Each row through `vip purchase`, with the same options as the file gives."""
    for r in rows:
        args = ["purchase"] + ([r[1]] if r[1] else ["--phone", r[2]]) + ["--amount", r[5], "--receipt", r[0],
                                                                         "--at", r[4]]
        for flag, value in (("--store", r[3]), ("--promo", r[6]), ("--paid", r[7])):
            if value:
                args += [flag, value]
        assert vip(*args).code == 0


@pytest.mark.parametrize("run", [50_000, 7])
@pytest.mark.parametrize("writer", ["inline", "process"])
def test_unsorted_file_is_applied_in_time_order(vip, isolated, monkeypatch, writer, run):
    """In process mode the order is checked beside the import, before its first commit: a file out
    of order is rolled back then and read again, sorted (its rejects counted once); sorted in one
    run, or in runs of 7 rows spooled to disk and merged."""
    from vipcli.io import timeorder
    monkeypatch.setattr(timeorder, "SORT_RUN_ROWS", run)
    monkeypatch.setenv("VIPCLI_IMPORT_WRITER", writer)
    monkeypatch.setenv("VIPCLI_IMPORT_BATCH", "7")  # the first commit comes after 7 rows
    rows = make_rows(seed=3, count=120, phones=6)
    rows[5][5] = "-5"  # one bad row
    write_csv(isolated / "sorted.csv", rows)
    shuffled = rows[:]
    random.Random(1).shuffle(shuffled)
    write_csv(isolated / "shuffled.csv", shuffled)
    monkeypatch.setenv("VIPCLI_DB", str(isolated / "a.db"))
    assert vip("init").code == 0
    assert vip("import", "purchases", str(isolated / "sorted.csv"))["in_time_order"] is True
    monkeypatch.setenv("VIPCLI_DB", str(isolated / "b.db"))
    assert vip("init").code == 0
    r = vip("import", "purchases", str(isolated / "shuffled.csv"))
    assert r["in_time_order"] is False and (r["rows"], r["inserted"], r["rejected"]) == (120, 119, 1)
    assert len(list(csv.DictReader(open(isolated / "shuffled.rejects.csv", encoding="utf-8-sig")))) == 1
    a, b = dump(isolated / "a.db"), dump(isolated / "b.db")
    assert a["ledger"] == b["ledger"] and a["cards"] == b["cards"] and a["tier_changes"] == b["tier_changes"]
    assert a["purchases"] == b["purchases"] and a["point_lots"] == b["point_lots"]


def test_bad_rows_go_to_rejects_with_exit_3(vip, isolated, member):
    card = member()
    rows = [
        ["G1", card, "", "SZ01", "2026-05-01T10:00", "100", "", ""],
        ["B1", "", "12345", "SZ01", "2026-05-01T10:00", "100", "", ""],
        ["B2", card[:-1] + str((int(card[-1]) + 1) % 10), "", "", "2026-05-01T10:00", "100", "", ""],
        ["B3", "", "13900139000", "", "not a date", "100", "", ""],
        ["B4", "", "13900139000", "", "2026-05-01T10:00", "-5", "", ""],
        ["", "", "13900139000", "", "2026-05-01T10:00", "5", "", ""],
        ["B6", _unissued_card(), "", "", "2026-05-01T10:00", "5", "", ""],
        ["G1", card, "", "SZ01", "2026-05-01T10:00", "101", "", ""],
        ["B8", "", "13900139000", "", "2030-01-01T10:00", "5", "", ""],
        ["B9", "", "13900139000", "", "2026-05-01T10:00", "100", "", "100.01"],
    ]
    write_csv(isolated / "p.csv", rows)
    r = vip("import", "purchases", str(isolated / "p.csv"))
    assert r.code == 3 and r["inserted"] == 1 and r["rejected"] == 9
    rejects = list(csv.DictReader(open(isolated / "p.rejects.csv", encoding="utf-8-sig")))
    assert [x["row"] for x in rejects] == ["3", "4", "5", "6", "7", "8", "9", "10", "11"]
    reasons = " | ".join(x["reason"] for x in rejects)
    for word in ("phone", "check digit", "purchased_at", "amount", "receipt", "not on record",
                 "different content", "future", "paid"):
        assert word in reasons, word
    assert rejects[0]["phone"] == "12345"
    # rows the rules refused (not the parser) are read again from the file for their values
    assert (rejects[5]["card_no"], rejects[5]["receipt"]) == (_unissued_card(), "B6")
    assert (rejects[6]["receipt"], rejects[6]["amount"], rejects[6]["store"]) == ("G1", "101", "SZ01")


def _unissued_card():
    from vipcli.cards import make_number
    from vipcli.rulefile import default_text, parse
    return make_number(parse(default_text()), "755", 99999)


@pytest.mark.parametrize("writer", ["inline", "process"])  # process: the writer booted early is stopped
def test_columns_checked_up_front(vip, isolated, monkeypatch, writer):
    monkeypatch.setenv("VIPCLI_IMPORT_WRITER", writer)
    (isolated / "x.csv").write_text("receipt,phone,purchased_at,amount,colour\nR1,13800138000,2026-01-01,1,red\n",
                                    encoding="utf-8")
    r = vip("import", "purchases", str(isolated / "x.csv"))
    assert r.code == 2 and "'colour'" in r["error"]["message"]
    (isolated / "y.csv").write_text("receipt,phone,amount\nR1,13800138000,1\n", encoding="utf-8")
    r = vip("import", "purchases", str(isolated / "y.csv"))
    assert r.code == 2 and "purchased_at" in r["error"]["message"]
    assert vip("import", "purchases", str(isolated / "missing.csv")).code == 2


@pytest.mark.parametrize("kind", ["purchases", "members"])
@pytest.mark.parametrize("before", [1, 3000])  # in the decoder's first block, or far past it
def test_a_file_in_another_encoding_than_asked_is_refused_before_writing(vip, isolated, kind, before):
    """GB18030 bytes after ASCII rows, read as UTF-8: one line naming --encoding, exit 2."""
    if kind == "purchases":
        header = "receipt,phone,store,purchased_at,amount\n"
        first = "".join(f"R{i},13800138000,SZ01,2026-01-01T10:00,1\n" for i in range(before))
        second = "收据2,13800138001,SZ01,2026-01-01T11:00,1\n"
    else:
        header = "phone,name\n"
        first = "".join(f"138{i:08d},A\n" for i in range(before))
        second = "13900139001,王芳\n"
    (isolated / "x.csv").write_bytes(header.encode() + first.encode() + second.encode("gb18030"))
    r = vip("import", kind, str(isolated / "x.csv"), "--encoding", "utf-8")
    assert r.code == 2 and "--encoding" in r["error"]["message"] and "\n" not in r["error"]["message"]
    assert vip("show", "13800138000").code == 1 and vip("show", "13800000000").code == 1  # nothing was written


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030"])
def test_members_in_every_encoding(vip, isolated, encoding):
    path = isolated / "m.csv"
    path.write_text("phone,name,gender,birthday,store,grant\n13800138000,王芳,女,1990-05-01,SZ01,老会员迁移\n"
                    "13900139000,李娜,F,1991-02-03,GZ01,\n", encoding=encoding)
    r = vip("import", "members", str(path))
    assert r.code == 0 and r["inserted"] == 2 and r["cards_issued"] == 1
    assert vip("show", "13800138000")["name"] == "王芳"
    again = vip("import", "members", str(path))
    assert again["inserted"] == 0 and again["duplicates"] == 2 and again["cards_issued"] == 0


@pytest.mark.parametrize("kind,header,bad", [
    ("members", "phone,name", "12345,坏行"),
    ("purchases", "receipt,phone,purchased_at,amount", "坏1,13800138000,2026-06-01,abc"),
])
@pytest.mark.parametrize("encoding,written", [("utf-8", "utf-8-sig"), ("utf-8-sig", "utf-8-sig"),
                                               ("gb18030", "gb18030")])
def test_rejects_are_written_for_excel_on_chinese_windows(vip, isolated, kind, header, bad, encoding, written):
    """A UTF-8 BOM (Excel shows UTF-8 without one as mojibake), or GB18030 when the input was."""
    path = isolated / "in.csv"
    path.write_text(f"{header}\n{bad}\n", encoding=encoding)
    assert vip("import", kind, str(path), "--rejects", str(isolated / "r.csv")).code == 3
    data = (isolated / "r.csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbf") == (written == "utf-8-sig")
    assert "坏" in data.decode(written)


def test_members_from_xlsx_with_bad_rows(vip, isolated):
    from openpyxl import Workbook
    book = Workbook()
    sheet = book.active
    sheet.append(["name", "phone", "birthday", "id_number"])
    sheet.append(["王芳", 13800138000, datetime(1990, 5, 1), "11010519491231002X"])
    sheet.append(["坏行", "123", None, None])
    book.save(isolated / "m.xlsx")
    r = vip("import", "members", str(isolated / "m.xlsx"))
    assert r.code == 3 and r["inserted"] == 1 and r["rejected"] == 1
    shown = vip("show", "13800138000")
    assert shown["birthday"] == "1990-05-01" and shown["id_number"] == "110105********002X"


def test_purchases_from_xlsx_numbers_without_float_noise(vip, isolated):
    from openpyxl import Workbook
    book = Workbook()
    sheet = book.active
    sheet.append(["receipt", "phone", "purchased_at", "amount", "promo"])
    sheet.append(["X1", "13800138000", datetime(2026, 5, 1, 10, 0), 999.99, 0.01])
    sheet.append(["X2", "13800138000", datetime(2026, 5, 2, 10, 0), 19.9, None])
    book.save(isolated / "p.xlsx")
    r = vip("import", "purchases", str(isolated / "p.xlsx"))
    assert r.code == 0 and r["inserted"] == 2 and r["cards_issued"] == 1
    assert vip("show", "13800138000")["spend_12m"] == "1017.51"  # 1000.00 qualifies; 19.90 at 0.88


def test_dry_run_writes_nothing(vip, isolated):
    write_csv(isolated / "p.csv", make_rows(count=20))
    r = vip("import", "purchases", str(isolated / "p.csv"), "--dry-run")
    assert r.code == 0 and r["inserted"] == 20
    assert vip("info")["counts"]["purchases"] == 0


@pytest.mark.slow
def _committed(db) -> int:
    try:
        with open_db(db) as conn:
            return conn.execute("SELECT count(*) FROM purchases").fetchone()[0]
    except sqlite3.OperationalError:
        return 0  # not created yet


def test_killed_import_resumes_to_the_same_state(vip, isolated, monkeypatch):
    rows = make_rows(seed=11, count=20000, phones=2000, gap=30)
    write_csv(isolated / "p.csv", rows)
    env = {**os.environ, "VIPCLI_NOW": "2026-11-01T00:00:00"}
    monkeypatch.setenv("VIPCLI_NOW", "2026-11-01T00:00:00")
    monkeypatch.setenv("VIPCLI_DB", str(isolated / "clean.db"))
    assert vip("init").code == 0
    assert vip("import", "purchases", str(isolated / "p.csv")).code == 0
    reference = dump(isolated / "clean.db")
    monkeypatch.setenv("VIPCLI_DB", str(isolated / "killed.db"))
    env["VIPCLI_DB"] = str(isolated / "killed.db")
    assert vip("init").code == 0
    env["VIPCLI_IMPORT_BATCH"] = "100"
    rng = random.Random(5)
    kills = 0
    for attempt in range(12):
        # Killed when a random number of further rows is committed: the main process alone (its
        # writer process finds the pipe closed), or both at once (a power cut, `kill -9` of the group).
        target = _committed(isolated / "killed.db") + rng.randint(300, 3000)
        proc = subprocess.Popen([sys.executable, "-m", "vipcli", "--json", "import", "purchases",
                                 str(isolated / "p.csv")], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        while proc.poll() is None and _committed(isolated / "killed.db") < target:
            time.sleep(0.005)
        if proc.poll() is None:
            if attempt % 2:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        time.sleep(0.2)  # an orphaned writer finishes rolling back
        assert vip("check")["ok"] is True
        if kills == 6:
            break
    assert kills >= 5
    assert vip("import", "purchases", str(isolated / "p.csv")).code == 0
    assert dump(isolated / "killed.db") == reference
    assert _has_index(isolated / "killed.db") and _has_index(isolated / "clean.db")


def _has_index(db) -> bool:
    with open_db(db) as conn:
        return conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'purchases_customer_time'").fetchone() is not None


def test_an_index_deferred_by_a_dead_import_is_rebuilt(vip, isolated, monkeypatch):
    """A first load builds purchases(customer_id, purchased_at) at its end; if it was killed, the
    next command rebuilds it, unless the import that deferred it is still running."""
    db = isolated / "d.db"
    monkeypatch.setenv("VIPCLI_DB", str(db))
    assert vip("init").code == 0
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    for owner, rebuilt in ((os.getpid(), False), (gone.pid, True)):
        with open_db(db) as conn:
            conn.execute("DROP INDEX IF EXISTS purchases_customer_time")
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('index_deferred_by', ?)", (str(owner),))
        assert vip("info").code == 0
        assert _has_index(db) is rebuilt


@pytest.mark.parametrize("writer", ["inline", "process"])
def test_a_receipt_twice_in_one_file(vip, isolated, monkeypatch, writer):
    """The second sight of a receipt in the same transaction: the same row is a duplicate, a
    different one is rejected, and what the first wrote stays."""
    monkeypatch.setenv("VIPCLI_IMPORT_WRITER", writer)
    rows = [["A1", "", "13900000001", "SZ01", "2026-05-01T10:00:00", "1200.00", "", ""],
            ["A2", "", "13900000002", "SZ01", "2026-05-01T10:05:00", "80.00", "", ""],
            ["A1", "", "13900000001", "SZ01", "2026-05-01T10:00:00", "1200.00", "", ""],
            ["A1", "", "13900000001", "SZ01", "2026-05-01T10:00:00", "1200.01", "", ""],
            ["A3", "", "13900000001", "SZ01", "2026-05-01T11:00:00", "100.00", "", ""]]
    write_csv(isolated / "p.csv", rows)
    r = vip("import", "purchases", str(isolated / "p.csv"))
    assert r.code == 3 and (r["inserted"], r["duplicates"], r["rejected"]) == (3, 1, 1)
    member = vip("show", "13900000001")
    # A1 brought the card and its 1200 points; A3 paid 88.00 at the member rate
    assert member["card_no"] and member["points_balance"] == 1200 + 88


@pytest.mark.parametrize("writer", ["inline", "process"])
def test_a_receipt_again_in_a_later_chunk_of_the_transaction(vip, isolated, monkeypatch, writer):
    """Chunks of two rows in one transaction, each chunk's receipts ascending: a receipt the
    transaction already wrote is still found (not yet visible to the look-up), as a duplicate or,
    with other content, a rejected row."""
    from vipcli.io import import_purchases as engine

    monkeypatch.setattr(engine, "CHUNK_ROWS", 2)
    monkeypatch.setenv("VIPCLI_IMPORT_WRITER", writer)
    at = "2026-05-01T10:00:00"  # one time: the file is in time order as it stands
    a1 = ["A1", "", "13900000001", "SZ01", at, "120.00", "", ""]
    rows = [a1, ["A2", "", "13900000002", "SZ01", at, "80.00", "", ""],
            a1, ["A3", "", "13900000003", "SZ01", at, "10.00", "", ""],
            ["A2", "", "13900000002", "SZ01", at, "80.01", "", ""],
            ["A4", "", "13900000004", "SZ01", at, "10.00", "", ""]]
    write_csv(isolated / "p.csv", rows)
    r = vip("import", "purchases", str(isolated / "p.csv"))
    assert r.code == 3 and (r["inserted"], r["duplicates"], r["rejected"]) == (4, 1, 1)
    reasons = [x["reason"] for x in csv.DictReader(open(isolated / "p.rejects.csv", encoding="utf-8-sig"))]
    assert reasons == ["receipt A2 is already recorded with different content"]


@pytest.mark.parametrize("writer", ["inline", "process"])
def test_a_lost_card_is_refused_on_every_row_but_its_owner_earns_by_phone(vip, isolated, member, monkeypatch,
                                                                          writer):
    """The card's state is worked out once a day per customer; each row is still checked. A row by
    phone is the member without the card (003 counter 二.2): priced and earning, as `vip purchase`."""
    monkeypatch.setenv("VIPCLI_IMPORT_WRITER", writer)
    card = member(phone="13800000009")
    assert vip("card", "lost", card).code == 0
    rows = [[f"L{i}", card, "", "SZ01", f"2026-05-01T10:0{i}:00", "100", "", ""] for i in range(3)]
    rows.append(["L9", "", "13800000009", "SZ01", "2026-05-01T11:00:00", "100", "", ""])
    rows.append(["L8", "", "13800000009", "SZ01", "2026-05-01T12:00:00", "100", "", ""])
    write_csv(isolated / "p.csv", rows)
    r = vip("import", "purchases", str(isolated / "p.csv"))
    assert r.code == 3 and r["rejected"] == 3 and r["inserted"] == 2
    reasons = [x["reason"] for x in csv.DictReader(open(isolated / "p.rejects.csv", encoding="utf-8-sig"))]
    assert all("blocked" in reason for reason in reasons), reasons
    assert vip("points", card)["points_balance"] == 176
    assert vip("check")["ok"] is True


@pytest.mark.parametrize("writer", ["inline", "process"])
def test_a_first_load_then_a_second_file_equal_one_by_one(vip, isolated, monkeypatch, writer):
    """Members enrolled with no purchases; a first load (the deferred index and no history to read
    back, forced here at 0 rows) then a second file over the same customers (their state read back
    for a whole chunk at once): the same tables as every row through `vip purchase`."""
    import vipcli.io.import_purchases as import_purchases

    monkeypatch.setattr(import_purchases, "FIRST_LOAD_BYTES", 0)
    monkeypatch.setenv("VIPCLI_IMPORT_WRITER", writer)
    monkeypatch.setenv("VIPCLI_NOW", "2026-11-01T00:00:00")
    rows = make_rows(seed=13, count=300, phones=20)
    members = sorted({r[2] for r in rows})[:6]
    for db in ("one.db", "bulk.db"):
        monkeypatch.setenv("VIPCLI_DB", str(isolated / db))
        assert vip("init").code == 0
        for i, phone in enumerate(members):
            args = ["enroll", "--phone", phone, "--name", "王芳", "--gender", "F", "--birthday", "1990-01-01",
                    "--at", "2025-01-05"]
            assert vip(*(args + (["--grant", "seed"] if i % 2 else []))).code == 0
    monkeypatch.setenv("VIPCLI_DB", str(isolated / "one.db"))
    _one_by_one(vip, rows)
    monkeypatch.setenv("VIPCLI_DB", str(isolated / "bulk.db"))
    write_csv(isolated / "first.csv", rows[:180])
    write_csv(isolated / "second.csv", rows[180:])
    assert vip("import", "purchases", str(isolated / "first.csv")).code == 0
    assert _has_index(isolated / "bulk.db")
    assert vip("import", "purchases", str(isolated / "second.csv")).code == 0
    assert dump(isolated / "one.db") == dump(isolated / "bulk.db")
    assert vip("check")["ok"] is True


def test_past_the_wal_limit_a_transaction_waits_for_the_checkpoint(vip, isolated, monkeypatch):
    """Checkpoints run beside the inserts, so the WAL would grow for the whole import; past
    WAL_LIMIT a transaction first asks for a checkpoint and waits for it (then the WAL restarts).
    Held by what the writer does, not by file sizes a busy machine makes vary."""
    from vipcli.io import writer

    monkeypatch.setenv("VIPCLI_IMPORT_WRITER", "inline")
    monkeypatch.setenv("VIPCLI_IMPORT_BATCH", "300")
    write_csv(isolated / "p.csv", make_rows(seed=5, count=6000, phones=800, gap=30))
    events = []
    begin, wait = writer.Writer.begin, writer._Checkpoints.wait

    def counted_begin(self, defer_index=False):
        events.append(("begin", self._wal_size()))
        return begin(self, defer_index)

    def counted_wait(self):
        wait(self)
        events.append(("waited", self.done >= self.asked))

    monkeypatch.setattr(writer.Writer, "begin", counted_begin)
    monkeypatch.setattr(writer._Checkpoints, "wait", counted_wait)
    for limit in (1 << 40, 0):
        monkeypatch.setattr(writer, "WAL_LIMIT", limit)
        monkeypatch.setenv("VIPCLI_DB", str(isolated / f"{limit}.db"))
        assert vip("init").code == 0
        events.clear()
        r = vip("import", "purchases", str(isolated / "p.csv"))
        assert r.code == 0 and r["inserted"] == 6000
        begins = [size for kind, size in events if kind == "begin"]
        waits = [done for kind, done in events if kind == "waited"]
        assert len(begins) >= 20  # 6,000 rows, 300 a transaction
        if limit:
            assert waits == []
        else:  # every transaction that found a WAL waited for a whole checkpoint of it first
            assert len(waits) == sum(1 for size in begins if size > 0) and all(waits)
            assert [kind for kind, _ in events][:2] in (["begin", "waited"], ["begin", "begin"])


@pytest.mark.parametrize("writer", ["inline", "process"])
@pytest.mark.parametrize("line,reason", [
    ("K03000,13800138000,SZ01,2026-05-01T10:00:00,1,200.00", "6 cells where the header has 5"),  # thousands separator
    ("K03000,13800138000,SZ01,2026-05-01T10:00:00", "4 cells where the header has 5"),
    ("K03000,13800138000,SZ01,2026-05-01T10:00:00,1200.00,", "6 cells where the header has 5"),
])
def test_a_row_with_more_or_fewer_cells_than_the_header_is_rejected(vip, isolated, monkeypatch, writer, line, reason):
    """`1,200.00` unquoted was stored as a 1.00 sale (the cells shifted), and the corrected file was
    then refused as 'already recorded with different content'."""
    monkeypatch.setenv("VIPCLI_IMPORT_WRITER", writer)
    good = [f"K{i:05d},1390013{i:04d},SZ01,2026-05-01T09:{i % 60:02d}:00,10.00" for i in range(3000)]
    path = isolated / "p.csv"
    # in the middle of a big file (the block and column fast paths) and in a small one (row by row)
    for rows in (good[:1500] + [line] + good[1500:], [line]):
        path.write_text("receipt,phone,store,purchased_at,amount\n" + "\n".join(rows) + "\n", encoding="utf-8")
        r = vip("import", "purchases", str(path), "--rejects", str(isolated / "r.csv"))
        assert r.code == 3 and r["rejected"] == 1
        assert reason in (isolated / "r.csv").read_text(encoding="utf-8-sig")
    assert vip("show", "13800138000").code == 1  # nothing recorded for the misfit row
    path.write_text("receipt,phone,store,purchased_at,amount\nK03000,13800138000,SZ01,2026-05-01T10:00:00,1200.00\n",
                    encoding="utf-8")
    fixed = vip("import", "purchases", str(path))
    assert fixed.code == 0 and fixed["inserted"] == 1
    dry = isolated / "d.csv"
    dry.write_text(f"receipt,phone,store,purchased_at,amount\n{line}\n", encoding="utf-8")
    assert vip("import", "purchases", str(dry), "--dry-run")["rejected"] == 1


def test_members_with_a_misfit_row_and_xlsx_padding(vip, isolated):
    from openpyxl import Workbook
    path = isolated / "m.csv"
    path.write_text("phone,name,birthday\n13800138000,王芳,1990-05-01\n13900139000,李,娜,1991-02-03\n"
                    "13700137000,张伟\n", encoding="utf-8")
    assert vip("import", "members", str(path), "--dry-run")["rejected"] == 2
    r = vip("import", "members", str(path))
    assert r.code == 3 and r["inserted"] == 1 and r["rejected"] == 2
    assert vip("show", "13900139000").code == 1
    book = Workbook()
    sheet = book.active
    sheet.append(["phone", "name"])
    sheet.append(["13600136000"])                       # short: the name is empty
    sheet.append(["13500135000", "赵六", None, None])    # empty cells past the header: nothing
    sheet.append(["13400134000", "钱七", None, "备注"])  # a value past the header: refused
    book.save(isolated / "m.xlsx")
    r = vip("import", "members", str(isolated / "m.xlsx"))
    assert (r["inserted"], r["rejected"]) == (2, 1)


@pytest.mark.slow
@pytest.mark.parametrize("writer", ["inline", "process"])
def test_ctrl_c_says_what_was_saved_and_the_same_command_completes(vip, isolated, monkeypatch, writer):
    """Ctrl-C printed nothing (exit 130) although 300,000 rows were committed: now one line says how
    many, that nothing is half-written and that running the command again completes it."""
    import signal
    import time
    rows = make_rows(seed=17, count=30000, phones=3000, gap=30)
    write_csv(isolated / "p.csv", rows)
    monkeypatch.setenv("VIPCLI_NOW", "2026-11-01T00:00:00")
    env = {**os.environ, "VIPCLI_IMPORT_BATCH": "500", "VIPCLI_IMPORT_WRITER": writer}
    proc = subprocess.Popen([sys.executable, "-m", "vipcli", "import", "purchases", str(isolated / "p.csv")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while proc.poll() is None and _committed(isolated / "vip.db") < 500:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    saved = _committed(isolated / "vip.db")
    assert proc.returncode == 130 and 0 < saved < 30000, (proc.returncode, err)
    assert err.count("\n") == 1 and f"interrupted: {saved:,} new purchases from" in err
    assert "nothing is half-written" in err and "Run the same command again" in err and out == ""
    assert vip("check")["ok"] is True
    again = vip("import", "purchases", str(isolated / "p.csv"))
    assert again["duplicates"] == saved and again["inserted"] + saved + again["rejected"] == 30000
    assert vip("check")["ok"] is True


def test_members_of_another_store_are_completed_and_keep_their_store(vip, isolated):
    """222 of 301 rows were rejected over a store mismatch, so names and birthdays were not filled."""
    assert vip("purchase", "--phone", "13800138000", "--amount", "10", "--store", "SZ01").code == 0
    path = isolated / "m.csv"
    path.write_text("phone,name,gender,birthday,store\n13800138000,王芳,F,1990-05-01,GZ01\n"
                    "13900139000,李娜,F,1991-02-03,GZ01\n", encoding="utf-8")
    human = vip("import", "members", str(path), json_output=False)
    assert human.code == 0 and "1 inserted, 1 updated, 0 already there, 0 rejected" in human.stdout
    shown = vip("show", "13800138000")
    assert (shown["name"], shown["birthday"], shown["store"], shown["registered"]) == ("王芳", "1990-05-01", "SZ01", True)
    assert vip("show", "13900139000")["store"] == "GZ01"
    again = vip("import", "members", str(path))
    assert (again["updated"], again["duplicates"], again["rejected"]) == (0, 2, 0)
    assert vip("enroll", "--phone", "13800138000", "--store", "BJ01", "--email", "w@example.com").code == 0
    assert vip("show", "13800138000")["store"] == "SZ01"


@pytest.mark.parametrize("writer", ["inline", "process"])
def test_a_cell_over_131072_characters_is_a_rejected_row(vip, isolated, monkeypatch, writer):
    """csv's field limit raised an internal error after rows were committed, and a re-run never
    finished; now the row is rejected with its reason (exit 3), the rest go in."""
    monkeypatch.setenv("VIPCLI_IMPORT_WRITER", writer)
    rows = [f"Q{i},1390000{i % 100:04d},2026-05-01T10:00:00,10" for i in range(3000)]
    rows.insert(1500, 'Y1,13900000001,"' + "2" * 140000 + '",10')
    (isolated / "p.csv").write_text("receipt,phone,purchased_at,amount\n" + "\n".join(rows) + "\n", encoding="utf-8")
    r = vip("import", "purchases", str(isolated / "p.csv"))
    assert r.code == 3 and (r["inserted"], r["rejected"]) == (3000, 1)
    reasons = [x["reason"] for x in csv.DictReader(open(isolated / "p.rejects.csv", encoding="utf-8-sig"))]
    assert reasons[0].startswith("purchased_at: ") and "(140,000 characters)" in reasons[0] and len(reasons[0]) < 200


def test_a_header_of_two_million_columns_is_named_in_one_short_line(vip, isolated):
    (isolated / "wide.csv").write_text(",".join(f"c{i}" for i in range(200000)) + "\n", encoding="utf-8")
    r = vip("import", "purchases", str(isolated / "wide.csv"))
    message = r.data["error"]["message"]
    assert r.code == 2 and "'c0', 'c1', 'c2', 'c3', 'c4' and 199,995 more" in message and len(message) < 400


@pytest.mark.parametrize("encoding,refused", [("shift_jis", True), ("big5", True), ("euc_jp", True),
                                              ("gb18030", False)])
def test_a_file_in_another_encoding_is_refused_not_turned_to_mojibake(vip, isolated, encoding, refused):
    """A Shift-JIS file (山田太郎) was imported with exit 0 as 嶳揷懢榊; Big5 (Taiwan) reads as rare
    characters, EUC-JP's kanji as common ones but its kana as kana, which a Chinese shop's file
    doesn't hold."""
    names = {"shift_jis": ["山田太郎", "鈴木花子", "佐藤一郎", "高橋美咲"], "gb18030": ["王芳", "张伟", "李娜", "刘洋"],
             "big5": ["陳美玲", "林志偉", "黃淑芬", "張家豪", "王小明", "李雅婷"],
             "euc_jp": ["山田たろう", "すずき花子", "さとう一郎", "たかはし美咲"]}[encoding]
    lines = "".join(f"1380013800{i},{name}\n" for i, name in enumerate(names))
    (isolated / "m.csv").write_bytes(("phone,name\n" + lines).encode(encoding))
    r = vip("import", "members", str(isolated / "m.csv"))
    if refused:
        assert r.code == 2 and r.data["error"]["code"] == "bad_encoding" and "--encoding" in r.data["error"]["message"]
        assert vip("show", "13800138000").code == 1
    else:
        assert r.code == 0 and vip("show", "13800138000")["name"] == "王芳"


@pytest.mark.parametrize("writer", ["inline", "process"])
def test_a_full_card_region_rejects_only_the_rows_that_need_a_card(vip, isolated, monkeypatch, writer):
    """Card-sequence overflow halfway stopped the whole file with exit 1 and no rejects."""
    from vipcli.rulefile import default_text
    monkeypatch.setenv("VIPCLI_IMPORT_WRITER", writer)
    rules = isolated / "small.toml"
    rules.write_text(default_text("store").replace("sequence_digits = 5", "sequence_digits = 1"), encoding="utf-8")
    (isolated / "vip.db").unlink(missing_ok=True)
    assert vip("init", "--rules", str(rules)).code == 0
    rows = [f"S{i:02d},1390000{i:04d},2026-05-01T10:{i:02d}:00,{1000 if i % 2 == 0 else 10}" for i in range(24)]
    (isolated / "p.csv").write_text("receipt,phone,purchased_at,amount\n" + "\n".join(rows) + "\n", encoding="utf-8")
    r = vip("import", "purchases", str(isolated / "p.csv"))
    assert r.code == 3 and (r["cards_issued"], r["inserted"], r["rejected"]) == (9, 21, 3)
    reasons = [x["reason"] for x in csv.DictReader(open(isolated / "p.rejects.csv", encoding="utf-8-sig"))]
    assert all("used all 9 card numbers" in reason for reason in reasons)
    assert vip("show", "13900000019")["status"] == "prospect"  # a row after the overflow went in
    assert vip("check")["ok"] is True


def test_rejects_come_back_in_row_order_with_their_values_after_a_sorted_import(vip, isolated):
    """Rejected rows are spooled (number and reason) and their values read again from the file: an
    out-of-order file, imported sorted, still gives its rejects in row order with every value."""
    rows = ["Z3,13900000003,2026-05-03T10:00:00,bad3", "Z1,13900000001,2026-05-01T10:00:00,bad1",
            "Z2,13900000002,2026-05-02T10:00:00,10", "Z0,13900000000,2026-04-30T10:00:00,bad0"]
    (isolated / "p.csv").write_text("receipt,phone,purchased_at,amount\n" + "\n".join(rows) + "\n", encoding="utf-8")
    r = vip("import", "purchases", str(isolated / "p.csv"))
    assert r.code == 3 and r["in_time_order"] is False and r["rejected"] == 3
    got = list(csv.DictReader(open(isolated / "p.rejects.csv", encoding="utf-8-sig")))
    assert [(x["row"], x["receipt"], x["amount"]) for x in got] == [("2", "Z3", "bad3"), ("3", "Z1", "bad1"),
                                                                   ("5", "Z0", "bad0")]
    assert all(x["reason"].startswith("amount: ") for x in got)


def test_an_xlsx_that_unpacks_to_a_huge_text_is_refused_before_it_is_read(vip, isolated, monkeypatch):
    """A 1.5 MB XLSX holding a 1.5 GB shared string took 3.1 GB, then MemoryError."""
    import zipfile

    from openpyxl import Workbook

    from vipcli.io import readers
    book = Workbook()
    book.active.append(["phone", "name"])
    book.active.append(["13800138000", "王芳"])
    book.save(isolated / "m.xlsx")
    with zipfile.ZipFile(isolated / "m.xlsx") as z:
        total = sum(p.file_size for p in z.infolist())
    monkeypatch.setattr(readers, "XLSX_TOTAL_LIMIT", total - 1)  # (a small stand-in for 1 GB)
    r = vip("import", "members", str(isolated / "m.xlsx"))
    assert r.code == 2 and r.data["error"]["code"] == "bad_file" and "save it as CSV" in r.data["error"]["message"]
    assert vip("show", "13800138000").code == 1
    monkeypatch.setattr(readers, "XLSX_TOTAL_LIMIT", total)
    assert vip("import", "members", str(isolated / "m.xlsx")).code == 0
    shared = isolated / "shared.xlsx"  # as Excel writes it: the text in xl/sharedStrings.xml
    with zipfile.ZipFile(isolated / "m.xlsx") as source, zipfile.ZipFile(shared, "w") as target:
        for part in source.infolist():
            target.writestr(part, source.read(part))
        target.writestr("xl/sharedStrings.xml", "<sst>" + "x" * 2000 + "</sst>")
    monkeypatch.setattr(readers, "XLSX_SHARED_STRINGS_LIMIT", 1000)
    assert vip("import", "members", str(shared)).data["error"]["code"] == "bad_file"
