import csv
import json
import os
from datetime import datetime
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from vipcli.io.exports import EXPORTS
from vipcli.io.files import is_formula_like, neutralize
from conftest import open_db, write_lock_held

P = "13800138000"
HOSTILE = ["=1+1", "+1", "-1", "@SUM(A1)", "＝1", "＋1", "－1", "＠x", "\t=1", "\r=1", "\n=1", "  =1", "\tplain",
           "\u3000=1"]


@pytest.fixture
def shop(vip, member):
    card = member(id_number="11010519491231002X", address="深圳市南山区")
    vip("purchase", card, "--amount", "1000", "--store", "SZ01", "--at", "2026-03-01T10:00")
    vip("purchase", "--phone", "13900139000", "--amount", "99.99", "--store", "GZ01", "--at", "2026-04-01T10:00")
    vip("visit", "log", card, "--channel", "phone", "--note", "满意")
    return card


@pytest.mark.parametrize("kind", sorted(EXPORTS))
@pytest.mark.parametrize("fmt", ["csv", "xlsx", "json", "jsonl"])
def test_every_export_in_every_format(vip, shop, isolated, kind, fmt):
    out = isolated / f"{kind}.{fmt}"
    r = vip("export", kind, "--format", fmt, "--out", str(out))
    assert r.code == 0 and r["out"] == str(out) and r["rows"] >= 1
    keys = [c.key for c in EXPORTS[kind].columns]
    if fmt == "csv":
        rows = list(csv.reader(out.open(encoding="utf-8-sig")))
        assert rows[0] == keys and len(rows) == r["rows"] + 1
    elif fmt == "xlsx":
        sheet = load_workbook(out).active
        assert sheet.title == EXPORTS[kind].sheet
        assert [c.value for c in sheet[1]] == keys and sheet.max_row == r["rows"] + 1
    elif fmt == "json":
        data = json.loads(out.read_text(encoding="utf-8"))
        assert data["columns"] == keys and len(data["rows"]) == r["rows"]
    else:
        lines = out.read_text(encoding="utf-8").splitlines()
        assert len(lines) == r["rows"] and list(json.loads(lines[0])) == keys
    assert not list(isolated.glob("*.part"))


def test_members_masked_by_default_unmask_audited(vip, shop, isolated):
    out = isolated / "m.csv"
    vip("export", "members", "--out", str(out))
    text = out.read_text(encoding="utf-8-sig")
    assert P not in text and "138****8000" in text and "110105********002X" in text
    vip("export", "members", "--out", str(out), "--unmask")
    text = out.read_text(encoding="utf-8-sig")
    assert P in text and "11010519491231002X" in text
    with open_db() as conn:
        row = conn.execute("SELECT operator, detail FROM audit WHERE command = 'unmask'").fetchone()
    assert row[0] == "tester" and "export members" in row[1]


def test_member_columns_and_values(vip, shop, isolated):
    out = isolated / "m.json"
    vip("export", "members", "--out", str(out))
    first = json.loads(out.read_text(encoding="utf-8"))["rows"][0]
    assert first["card_no"] == shop and first["status"] == "active" and first["tier"] == "vip"
    assert first["spend_12m"] == "880.00" and first["points_balance"] == 880 and first["registered"] is True


def test_xlsx_craft(vip, shop, isolated):
    out = isolated / "p.xlsx"
    vip("export", "purchases", "--out", str(out))
    book = load_workbook(out)
    sheet = book["消费记录"]
    assert sheet.freeze_panes == "A2" and sheet.auto_filter.ref == "A1:N3"
    assert all(c.font.bold for c in sheet[1])
    paid = sheet.cell(row=2, column=9)
    assert paid.value == Decimal("880") or paid.value == 880 and "0.00" in paid.number_format
    assert "0.00" in paid.number_format and "¥" in paid.number_format
    when = sheet.cell(row=2, column=2)
    assert isinstance(when.value, datetime) and when.value == datetime(2026, 3, 1, 10, 0)
    assert sheet.column_dimensions["B"].width >= 19


def test_filters(vip, shop, isolated):
    out = isolated / "p.csv"
    assert vip("export", "purchases", "--out", str(out), "--since", "2026-03-15")["rows"] == 1
    assert vip("export", "purchases", "--out", str(out), "--until", "2026-03-01T10:00")["rows"] == 0
    assert vip("export", "purchases", "--out", str(out), "--store", "SZ01")["rows"] == 1
    assert vip("export", "members", "--out", str(out), "--status", "prospect")["rows"] == 1
    assert vip("export", "members", "--out", str(out), "--tier", "vip")["rows"] == 1
    assert vip("export", "members", "--out", str(out), "--tier", "nope").code == 2


@pytest.mark.parametrize("since,until,ok", [
    ("2026-03-02", "2026-03-01", False),                    # reversed
    ("2026-03-01T10:00", "2026-03-01T10:00", False),        # empty (until is exclusive)
    ("2026-03-01T10:00", "2026-03-01T10:00:01", True),      # one second
])
def test_a_reversed_range_is_an_error_not_an_empty_export(vip, shop, isolated, since, until, ok):
    out = isolated / "p.csv"
    r = vip("export", "purchases", "--out", str(out), "--since", since, "--until", until)
    if ok:
        assert r.code == 0 and r["rows"] == 1
    else:
        assert r.code == 2 and r.data["error"]["code"] == "bad_range" and not out.exists()


def test_bad_usage(vip, shop, isolated):
    assert vip("export", "secrets", "--out", str(isolated / "x.csv")).code == 2
    assert vip("export", "members", "--out", str(isolated / "x.txt")).code == 2
    assert vip("export", "members", "--out", str(isolated / "no" / "x.csv")).code == 2
    assert vip("export", "report", "--out", str(isolated / "r.csv")).code == 2


@pytest.mark.parametrize("text", HOSTILE)
def test_injection_neutralised_in_csv_and_xlsx(vip, member, isolated, text):
    card = member()
    with open_db() as conn:  # legacy data; the CLI refuses control characters
        conn.execute("UPDATE customers SET name = ?, address = ?", (text, text))
    vip("export", "members", "--out", str(isolated / "m.csv"))
    row = next(csv.DictReader((isolated / "m.csv").open(encoding="utf-8-sig", newline="")))
    assert row["name"] == "'" + text and row["address"] == "'" + text
    vip("export", "members", "--out", str(isolated / "m.xlsx"))
    sheet = load_workbook(isolated / "m.xlsx").active
    for cell in sheet[2]:
        assert cell.data_type != "f", cell.value
    name = sheet.cell(row=2, column=2)
    assert name.data_type == "s"
    assert name.value == text.replace("\r", "\n")  # XML keeps no bare CR: it reads back as LF
    del card


def test_formula_detection_unit():
    for text in HOSTILE[:-1]:
        assert is_formula_like(text), text
    assert is_formula_like("\u3000=1")
    for text in ("王芳", "a=b", "1-2", "", " x", "email@x.com"):
        assert not is_formula_like(text), text
    assert neutralize("=x") == "'=x" and neutralize(5) == 5


def test_the_first_characters_that_need_a_second_look_are_every_whitespace_and_formula_start():
    """SUSPECT_FIRST decides most cells alone (the CSV writer's fast path): it must hold every
    character str.isspace() accepts, and each formula start."""
    import sys

    from vipcli.io.files import FORMULA_STARTS, SUSPECT_FIRST

    spaces = {chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()}
    assert spaces | set(FORMULA_STARTS) == SUSPECT_FIRST
    for space in sorted(spaces):
        assert neutralize(space + "=1") == "'" + space + "=1"


def test_report_workbook_has_sheets_and_charts(vip, shop, isolated):
    out = isolated / "report.xlsx"
    r = vip("export", "report", "--out", str(out), "--year", "2026")
    assert r.code == 0
    book = load_workbook(out)
    assert book.sheetnames == ["汇总", "客户分类", "月度消费", "发卡统计", "等级消费", "二八定律"]
    charts = {name: len(book[name]._charts) for name in book.sheetnames}
    assert charts["汇总"] >= 1 and charts["月度消费"] >= 1
    monthly = book["月度消费"]
    assert [c.value for c in monthly[1]] == ["month", "GZ01", "SZ01"]
    assert monthly.cell(row=4, column=3).value == Decimal("880")  # March, SZ01


def test_export_replaces_atomically(vip, shop, isolated):
    out = isolated / "m.csv"
    out.write_text("old", encoding="utf-8")
    refused = vip("export", "members", "--out", str(out))  # not a file vipcli wrote: kept
    assert refused.code == 2 and refused.data["error"]["code"] == "would_replace" and out.read_text() == "old"
    assert vip("export", "members", "--out", str(out), "--force").code == 0
    assert out.read_text(encoding="utf-8-sig").startswith("customer_id")
    assert vip("export", "cards", "--out", str(out)).code == 0  # an earlier export (of any kind) is replaced
    assert oct(out.stat().st_mode & 0o777) == "0o600"


def test_cards_export_masks_unless_unmask(vip, shop, isolated):
    out = isolated / "c.csv"
    vip("export", "cards", "--out", str(out))
    assert "138****8000" in out.read_text(encoding="utf-8-sig")
    vip("export", "cards", "--out", str(out), "--unmask")
    assert P in out.read_text(encoding="utf-8-sig")


def _drain(fifo):
    """A reader for a FIFO (a writer's open blocks until one exists); returns a getter of what it read."""
    import threading
    got = {}
    thread = threading.Thread(target=lambda: got.update(data=open(fifo, "rb").read()), daemon=True)
    thread.start()

    def result():
        thread.join(timeout=60)  # only a broken writer (one that replaced the FIFO) gets near this
        return got.get("data", b"")
    return result


def test_out_dash_streams_to_stdout_and_the_summary_to_stderr(vip, shop, isolated, monkeypatch):
    monkeypatch.chdir(isolated)
    r = vip("export", "purchases", "--format", "csv", "--out", "-")
    assert r.code == 0 and not (isolated / "-").exists()
    assert r.stdout.startswith("\ufeffreceipt,") and r.stdout.count("\n") == 3
    assert json.loads(r.stderr)["rows"] == 2
    human = vip("export", "members", "--format", "jsonl", "--out", "-", json_output=False)
    assert [json.loads(line)["customer_id"] for line in human.stdout.splitlines()] == [1, 2]
    assert "Wrote 2 members rows to -" in human.stderr
    assert vip("export", "members", "--out", "-").code == 2  # no suffix to take the format from


def test_a_device_or_fifo_is_written_into_never_replaced(vip, shop, isolated):
    """`--out /dev/stdout` (a symlink to a non-regular file) was replaced by a regular file, as root."""
    import stat
    fifo = isolated / "pipe"
    os.mkfifo(fifo)
    link = isolated / "stdout-like"
    link.symlink_to(fifo)
    for target in (fifo, link):
        read = _drain(fifo)
        r = vip("export", "purchases", "--format", "csv", "--out", str(target))
        assert r.code == 0 and read().decode("utf-8-sig").startswith("receipt,")
        assert stat.S_ISFIFO(os.stat(fifo).st_mode) and link.is_symlink()
    read = _drain(fifo)
    assert vip("backup", str(link)).code == 0 and read().startswith((b"SQLite format 3\0", b"PGDMP"))
    assert not list(isolated.glob(".*.part"))


def test_a_symlink_to_a_file_keeps_the_link_and_replaces_the_file(vip, shop, isolated):
    real = isolated / "exports" / "today.csv"
    real.parent.mkdir()
    real.write_text("\ufeffreceipt,purchased_at,old", encoding="utf-8")  # not yet an export: --force
    link = isolated / "latest.csv"
    link.symlink_to(real)
    assert vip("export", "purchases", "--out", str(link), "--force").code == 0
    assert link.is_symlink() and real.read_text(encoding="utf-8-sig").startswith("receipt,")
    assert oct(real.stat().st_mode & 0o777) == "0o600"


def test_rejects_and_outbox_follow_the_same_rules(vip, shop, isolated, monkeypatch):
    monkeypatch.chdir(isolated)
    (isolated / "m.csv").write_text("phone,name\n12345,张伟\n", encoding="utf-8")
    r = vip("import", "members", "m.csv", "--rejects", "-")
    assert r.code == 3 and not (isolated / "-").exists() and r.stdout.startswith("\ufeffrow,reason,")
    assert json.loads(r.stderr)["rejected"] == 1
    fifo = isolated / "pipe"
    os.mkfifo(fifo)
    read = _drain(fifo)
    assert vip("notify", "birthday", "--out", str(fifo)).code == 0
    assert read().decode("utf-8").startswith("\ufeffphone,") and not fifo.is_file()


def test_an_unmasked_export_is_audited_before_anything_is_written(vip, shop, isolated, monkeypatch):
    """With the database busy, the file with every ID number stayed on disk and no audit row existed."""
    monkeypatch.setenv("VIPCLI_BUSY_TIMEOUT", "0.2")
    out = isolated / "full.csv"
    with write_lock_held():
        r = vip("export", "members", "--out", str(out), "--unmask")
    assert r.code == 4 and r.data["error"]["code"] == "busy"
    assert not out.exists() and not list(isolated.glob(".*.part"))
    assert vip("audit", "--command", "unmask")["count"] == 0
    assert vip("export", "members", "--out", str(out), "--unmask").code == 0
    entry = vip("audit", "--command", "unmask")["entries"][0]
    assert entry["target"] == str(out) and entry["detail"]["via"] == "export members"
    assert "13800138000" in out.read_text(encoding="utf-8-sig")
