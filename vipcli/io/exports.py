"""`vip export`: members, purchases, ledger, cards, visits as XLSX, CSV, JSON or JSON Lines.

Columns and their order are stable (cron scripts depend on them; README lists them); rows come in
a deterministic order. Phone and ID numbers are masked unless unmask (audited by the caller).
Files are written to a temporary file beside the target and renamed into place.
"""

import csv
import json
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from vipcli import cards
from vipcli.dates import iso, months_before
from vipcli.errors import InvalidInput
from vipcli.fields import mask_phone
from vipcli.io.files import (SUSPECT_FIRST, atomic_output, csv_headed, is_formula_like, json_file, neutralize,
                             xlsx_file)
from vipcli.money import format_fen
from vipcli.rules import Rules
from vipcli.i18n import N_, _, translator

FORMATS = ("xlsx", "csv", "json", "jsonl")


@dataclass(frozen=True)
class Column:
    key: str  # the CSV and JSON key, never translated; also the message of its heading for people
    kind: str = "text"  # text, int, money, date, datetime, bool
    width: int | None = None

    def heading(self, translate=_) -> str:
        """The column's heading for people: its key in English, its name in Chinese (消费时间)."""
        return translate(self.key)


HEADINGS = ("keys", "zh")  # CSV: the keys (for scripts), or Chinese headings with --headers zh


@dataclass(frozen=True)
class Export:
    name: str
    sheet: str
    columns: tuple[Column, ...]


EXPORTS = {
    "members": Export("members", "会员档案", (
        Column(N_("customer_id"), "int"), Column(N_("name")), Column(N_("gender")), Column(N_("birthday"), "date"),
        Column(N_("phone")), Column(N_("id_number")), Column(N_("email")), Column(N_("address"), width=30), Column(N_("store")),
        Column(N_("created_at"), "datetime"), Column(N_("registered"), "bool"), Column(N_("card_no")), Column(N_("status")),
        Column(N_("valid_to"), "date"), Column(N_("tier")), Column(N_("tier_since"), "datetime"),
        Column(N_("points_balance"), "int"), Column(N_("purchases_12m"), "int"), Column(N_("spend_12m"), "money"),
        Column(N_("class")))),
    "purchases": Export("purchases", "消费记录", (
        Column(N_("receipt")), Column(N_("purchased_at"), "datetime"), Column(N_("store")), Column(N_("customer_id"), "int"),
        Column(N_("card_no")), Column(N_("phone")), Column(N_("regular"), "money"), Column(N_("promo"), "money"),
        Column(N_("paid"), "money"), Column(N_("refunded"), "money"), Column(N_("discount_rate")),
        Column(N_("points_earned"), "int"), Column(N_("rules_version"), "int"), Column(N_("operator")))),
    "ledger": Export("ledger", "积分流水", (
        Column(N_("entry_id"), "int"), Column(N_("at"), "datetime"), Column(N_("card_no")), Column(N_("kind")),
        Column(N_("points"), "int"), Column(N_("lot_id"), "int"), Column(N_("lot_expires_at"), "datetime"),
        Column(N_("receipt")), Column(N_("reason"), width=30), Column(N_("operator")))),
    "cards": Export("cards", "VIP卡跟踪表", (
        Column(N_("card_no")), Column(N_("region")), Column(N_("customer_id"), "int"), Column(N_("holder")), Column(N_("phone")),
        Column(N_("issued_at"), "datetime"), Column(N_("valid_to"), "date"), Column(N_("status")), Column(N_("renewals"), "int"),
        Column(N_("replaced_by")), Column(N_("reason"), width=30))),
    "visits": Export("visits", "回访记录", (
        Column(N_("visit_id"), "int"), Column(N_("at"), "datetime"), Column(N_("customer_id"), "int"), Column(N_("card_no")),
        Column(N_("name")), Column(N_("phone")), Column(N_("channel")), Column(N_("note"), width=40), Column(N_("operator")))),
    "classes": Export("classes", "客户归类", (
        Column(N_("customer_id"), "int"), Column(N_("name")), Column(N_("phone")), Column(N_("store")), Column(N_("card_no")),
        Column(N_("class")), Column(N_("purchases"), "int"), Column(N_("spend"), "money"))),
    "due": Export("due", "回访名单", (
        Column(N_("class")), Column(N_("customer_id"), "int"), Column(N_("name")), Column(N_("phone")), Column(N_("store")),
        Column(N_("card_no")), Column(N_("channel")), Column(N_("last_contact"), "datetime"), Column(N_("due_since"), "datetime"),
        Column(N_("purchases"), "int"), Column(N_("spend"), "money"))),
}


@dataclass
class Filters:
    since: datetime | None = None
    until: datetime | None = None
    store: str | None = None
    tier: str | None = None
    status: str | None = None

    def __post_init__(self):
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise InvalidInput(_("until: {value} is not after since {value2} (--until is exclusive: one day is "
                                 "--since D --until D+1)").format(
                                   value=iso(self.until), value2=iso(self.since)), code="bad_range")


def _range(column: str, f: Filters, params: list) -> str:
    sql = ""
    if f.since is not None:
        sql += f" AND {column} >= ?"
        params.append(iso(f.since))
    if f.until is not None:
        sql += f" AND {column} < ?"  # --until is exclusive: a day's export is --since D --until D+1
        params.append(iso(f.until))
    return sql


def rows(conn, rules: Rules, kind: str, f: Filters, now: datetime, unmask: bool, vault=None):
    """The export's rows as dicts keyed by column, in a deterministic order."""
    phone = (lambda p: p) if unmask else mask_phone
    return {"members": _members, "purchases": _purchases, "ledger": _ledger, "cards": _cards,
            "visits": _visits, "classes": _classes, "due": _due}[kind](conn, rules, f, now, phone, unmask, vault)


def _classes(conn, rules, f, now, phone, unmask, vault):
    """The A–E list as of now (`vip class`), to work from in a spreadsheet."""
    from vipcli import care

    return care.classify(conn, rules, now, f.store, unmask=unmask)


def _due(conn, rules, f, now, phone, unmask, vault):
    """Who is due for a follow-up now (`vip visit due`)."""
    from vipcli import care

    return care.due(conn, rules, now, f.store, unmask=unmask)[1]


def _members(conn, rules, f, now, phone, unmask, vault):
    params: list = []
    spend_since = iso(months_before(now, rules.upgrade_window_months))
    class_since = iso(months_before(now, rules.class_window_months))
    sql = (
        "SELECT c.id, c.name, c.gender, c.birthday, c.phone, c.id_masked, c.id_enc, c.email, c.address, c.store, "
        "c.created_at, c.tier, c.tier_since, k.card_no, k.status, k.valid_to, k.registration_from, "
        "COALESCE(b.balance, 0), COALESCE(s.n, 0), COALESCE(s.spend, 0), COALESCE(y.n, 0), COALESCE(y.spend, 0) "
        "FROM customers c "
        "LEFT JOIN cards k ON k.card_no = (SELECT card_no FROM cards x WHERE x.customer_id = c.id ORDER BY "
        "x.status IN ('active','discount_only','blocked','expired') DESC, x.issued_at DESC LIMIT 1) "
        "LEFT JOIN (SELECT card_no, SUM(remaining) AS balance FROM point_lots WHERE remaining < 0 OR expires_at > ? "
        "GROUP BY card_no) b ON b.card_no = k.card_no "
        "LEFT JOIN (SELECT customer_id, COUNT(*) AS n, SUM(paid - refunded) AS spend FROM purchases "
        "WHERE purchased_at > ? AND purchased_at <= ? GROUP BY customer_id) s ON s.customer_id = c.id "
        "LEFT JOIN (SELECT customer_id, COUNT(*) AS n, SUM(paid - refunded) AS spend FROM purchases "
        "WHERE purchased_at > ? AND purchased_at <= ? GROUP BY customer_id) y ON y.customer_id = c.id "
        "WHERE 1 = 1"
    )
    params += [iso(now), spend_since, iso(now), class_since, iso(now)]
    sql += _range("c.created_at", f, params)
    if f.store:
        sql += " AND c.store = ?"
        params.append(f.store)
    if f.tier:
        sql += " AND c.tier = ? AND k.status IN ('active','discount_only','blocked','expired')"
        params.append(f.tier)
    today = now.date()
    states: dict = {}  # most cards share their state inputs: work each combination out once
    cursor = conn.cursor()
    cursor.row_factory = None  # plain tuples: a hundred thousand rows read by position, not by name
    for (cid, name, gender, birthday, phone_no, id_masked, id_enc, email, address, store, created_at, tier,
         tier_since, card_no, card_status, valid_to, registration_from, balance, n12, spend12, class_n,
         class_spend) in cursor.execute(sql + " ORDER BY c.id", params):
        registered = bool(name and gender and birthday and phone_no)
        status = "prospect"
        if card_no:
            key = (card_status, valid_to, registered, None if registered else registration_from)
            status = states.get(key)
            if status is None:
                status = states[key] = cards.effective_status(
                    {"status": card_status, "valid_to": valid_to, "registration_from": registration_from},
                    registered, rules, today)
        if f.status and status != f.status:
            continue
        id_number = vault.decrypt(id_enc) if unmask and id_enc is not None else id_masked
        yield {
            "customer_id": cid, "name": name, "gender": gender, "birthday": birthday, "phone": phone(phone_no),
            "id_number": id_number, "email": email, "address": address, "store": store, "created_at": created_at,
            "registered": registered, "card_no": card_no, "status": status, "valid_to": valid_to,
            "tier": tier if card_no else None, "tier_since": tier_since if card_no else None,
            "points_balance": balance, "purchases_12m": n12, "spend_12m": spend12,
            "class": rules.customer_class(class_n, class_spend).code,
        }


def _purchases(conn, rules, f, now, phone, unmask, vault):
    params: list = []
    keys = [c.key for c in EXPORTS["purchases"].columns]  # the purchase's own columns, and the buyer's phone
    sql = (f"SELECT {', '.join('c.phone' if key == 'phone' else 'p.' + key for key in keys)} "
           "FROM purchases p JOIN customers c ON c.id = p.customer_id WHERE 1 = 1"
           + _range("p.purchased_at", f, params))
    if f.store:
        sql += " AND p.store = ?"
        params.append(f.store)
    return InColumnOrder(_phones_masked(conn, sql + " ORDER BY p.purchased_at, p.id", params, keys.index("phone"),
                                        phone))


def counted(records, advance, every: int = 1000):
    """The same records, `advance(n)` told every `every` of them as they are written (a progress
    bar); as they are when there is no bar."""
    if advance is None:
        return records

    def telling(rows):
        n = 0
        for n, row in enumerate(rows, 1):
            yield row
            if n % every == 0:
                advance(every)
        advance(n % every)

    return InColumnOrder(telling(records.rows)) if isinstance(records, InColumnOrder) else telling(records)


class InColumnOrder:
    """Records as lists in the export's column order (a million purchases: no dict per row); the
    writers take them as they are (CSV) or as dicts."""

    def __init__(self, rows):
        self.rows = rows

    def __iter__(self):
        return iter(self.rows)


def _phones_masked(conn, sql: str, params: list, at_phone: int, phone):
    cursor = conn.cursor()
    cursor.row_factory = None  # tuples, made lists in C: in the columns' order, changed in place
    for row in map(list, cursor.execute(sql, params)):
        row[at_phone] = phone(row[at_phone])
        yield row


def _as_dicts(export: Export, records):
    """Records as dicts keyed by column, whichever way they come."""
    if isinstance(records, InColumnOrder):
        keys = [c.key for c in export.columns]
        return (dict(zip(keys, row)) for row in records)
    return records


def _ledger(conn, rules, f, now, phone, unmask, vault):
    params: list = []
    sql = ("SELECT l.*, p.expires_at, u.receipt FROM ledger l JOIN point_lots p ON p.id = l.lot_id "
           "LEFT JOIN purchases u ON u.id = l.purchase_id WHERE 1 = 1" + _range("l.at", f, params))
    for r in conn.execute(sql + " ORDER BY l.id", params):
        yield {"entry_id": r["id"], "at": r["at"], "card_no": r["card_no"], "kind": r["kind"], "points": r["delta"],
               "lot_id": r["lot_id"], "lot_expires_at": r["expires_at"], "receipt": r["receipt"],
               "reason": r["reason"], "operator": r["operator"]}


def _cards(conn, rules, f, now, phone, unmask, vault):
    for r in cards.tracking_table(conn, rules, now.date(), f.status, unmask=unmask):
        if f.since and r["issued_at"] < iso(f.since) or f.until and r["issued_at"] >= iso(f.until):
            continue
        yield {**r, "region": r["card_no"][:rules.region_digits]}


def _visits(conn, rules, f, now, phone, unmask, vault):
    params: list = []
    sql = ("SELECT v.*, c.name, c.phone, (SELECT card_no FROM cards k WHERE k.customer_id = v.customer_id "
           "ORDER BY k.issued_at DESC LIMIT 1) AS card_no FROM visits v JOIN customers c ON c.id = v.customer_id "
           "WHERE 1 = 1" + _range("v.at", f, params))
    for r in conn.execute(sql + " ORDER BY v.at, v.id", params):
        yield {"visit_id": r["id"], "at": r["at"], "customer_id": r["customer_id"], "card_no": r["card_no"],
               "name": r["name"], "phone": phone(r["phone"]), "channel": r["channel"], "note": r["note"],
               "operator": r["operator"]}


# --- writers ----------------------------------------------------------------------------------------


def _any_csv_export(path) -> bool:
    """A CSV file vipcli exported (of any kind): one that starts with an export's header, its keys or
    its Chinese headings."""
    zh = translator("zh")
    return any(csv_headed(header)(path) for e in EXPORTS.values()
               for header in ([c.key for c in e.columns], [c.heading(zh) for c in e.columns]))


def write(path: str, fmt: str, export: Export, records, force: bool = False, headings: str = "keys") -> int:
    """Write the records in `fmt` atomically; returns the number of rows. An existing file is
    replaced only when it is an earlier export of this kind and format, or with `force`. A CSV's
    header is the keys, or with `headings` "zh" the Chinese headings; a workbook's is the headings
    in the language in use; JSON has keys."""
    if fmt == "xlsx":
        return write_xlsx(path, export, _as_dicts(export, records), force)
    count = 0
    if fmt == "csv":
        # UTF-8 with a BOM: Excel opens Chinese text correctly; Python reads it with utf-8-sig.
        keys = [c.key for c in export.columns]
        with atomic_output(path, encoding="utf-8-sig", own=_any_csv_export, force=force) as handle:
            writer = csv.writer(handle)
            zh = translator("zh")
            writer.writerow(keys if headings == "keys" else [c.heading(zh) for c in export.columns])
            # How a cell of each kind is written: money as yuan, a bool as true/false, text neutralised
            # where a spreadsheet would run it as a formula; numbers and dates as they are, None as an
            # empty cell. Kinds looked up once, not per cell (an export writes millions of cells); a
            # text cell goes to neutralize only when its first character needs a second look, and the
            # commonest amount, none, is formatted once.
            kinds = [c.kind for c in export.columns]
            amounts = [i for i, kind in enumerate(kinds) if kind == "money"]
            flags = [i for i, kind in enumerate(kinds) if kind == "bool"]
            texts = [i for i, kind in enumerate(kinds) if kind == "text"]
            zero = format_fen(0)
            rows = records if isinstance(records, InColumnOrder) else ([r[key] for key in keys] for r in records)
            for row in rows:
                for i in amounts:
                    value = row[i]
                    if value is not None:
                        row[i] = format_fen(value) if value else zero
                for i in flags:
                    if row[i] is not None:
                        row[i] = "true" if row[i] else "false"
                for i in texts:
                    value = row[i]
                    if value and (type(value) is not str or value[0] in SUSPECT_FIRST):
                        row[i] = neutralize(value)
                writer.writerow(row)  # (csv writes None as an empty cell)
                count += 1
        return count
    with atomic_output(path, own=json_file, force=force) as handle:
        if fmt == "json":
            handle.write('{"export": %s, "columns": %s, "rows": [' % (
                json.dumps(export.name), json.dumps([c.key for c in export.columns])))
        for record in _as_dicts(export, records):
            line = json.dumps({c.key: _json_value(c, record[c.key]) for c in export.columns}, ensure_ascii=False)
            if fmt == "json":
                handle.write(("," if count else "") + "\n" + line)
            else:
                handle.write(line + "\n")
            count += 1
        if fmt == "json":
            handle.write("\n]}\n")
    return count


def _json_value(column: Column, value):
    if value is not None and column.kind == "money":
        return format_fen(value)
    return value


def _display_width(text: str) -> int:
    """Characters as a spreadsheet shows them: CJK characters take two columns."""
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


MONEY_FORMAT = '"¥"#,##0.00'
DATE_FORMAT = "yyyy-mm-dd"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"


def write_xlsx(path: str, export: Export, records, force: bool = False) -> int:
    """Streaming (write-only) workbook: bold frozen header, auto-filter, widths that fit Chinese text,
    real dates and money formats. One styled template cell per column is reused for every row, so
    styling costs no more per row than plain values."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import Cell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    book = Workbook(write_only=True)
    sheet = book.create_sheet(export.sheet)
    columns = export.columns
    for i, column in enumerate(columns, 1):
        width = column.width or max(_display_width(column.heading()) + 2, {"datetime": 20, "date": 12,
                                                                             "money": 14}.get(column.kind, 12))
        sheet.column_dimensions[get_column_letter(i)].width = width
    sheet.freeze_panes = "A2"
    header = []
    for column in columns:
        cell = WriteOnlyCell(sheet, value=column.heading())
        cell.font = Font(bold=True)
        header.append(cell)
    sheet.append(header)
    formats = {"money": MONEY_FORMAT, "date": DATE_FORMAT, "datetime": DATETIME_FORMAT}
    plan = []  # per column: key, styled template cell (or None), converter (or None)
    for column in columns:
        template = None
        if column.kind in formats:
            template = WriteOnlyCell(sheet)
            template.number_format = formats[column.kind]
        plan.append((column.key, template, _xlsx_converter(column)))
    _without_exceptions(sheet, WriteOnlyCell, Cell)
    count = 0
    for record in records:
        row = []
        for key, template, convert in plan:
            value = record[key]
            if value is None:
                row.append(None)
            elif template is not None:
                template.value = convert(value)
                row.append(template)
            elif value.__class__ is str and is_formula_like(value):
                cell = WriteOnlyCell(sheet, value=value)
                cell.data_type = "s"  # text, never a formula
                row.append(cell)
            else:
                row.append(value)
        sheet.append(row)
        count += 1
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{count + 1}"
    with atomic_output(path, mode=None, own=xlsx_file, force=force) as temp:
        book.save(temp)
    return count


def _without_exceptions(sheet, new_cell, cell_type) -> None:
    """openpyxl's write-only append learns that a value is a ready cell by catching the ValueError of
    assigning it as a value: one exception per styled cell, a sixth of the time of a members export.
    This is the same generator with an isinstance test instead. Where openpyxl's internals differ,
    nothing is replaced."""
    original = getattr(sheet, "_values_to_row", None)
    if original is None or getattr(original, "__name__", "") != "_values_to_row":
        return

    def values_to_row(values, row_idx):
        cell = new_cell(sheet)
        for col_idx, value in enumerate(values, 1):
            if value is None:
                continue
            if isinstance(value, cell_type):
                current = value
            else:
                cell.value = value
                current = cell
            current.column = col_idx
            current.row = row_idx
            yield current
            if current is cell and cell.has_style:
                cell = new_cell(sheet)

    sheet._values_to_row = values_to_row


_EPOCH = datetime(1899, 12, 30)  # day 0 of Excel's (1900) date system


def _xlsx_converter(column: Column):
    """Values as the cell stores them. Dates are Excel serial numbers under a date format (what a
    date is in XLSX); giving the number directly skips openpyxl's slower datetime path."""
    if column.kind == "money":
        return lambda fen: Decimal(fen).scaleb(-2)  # exact: 88050 -> Decimal('880.50'), never a float
    if column.kind == "date":
        return lambda text: date.fromisoformat(text).toordinal() - _EPOCH.toordinal()
    if column.kind == "datetime":
        def serial(text):
            moment = datetime.fromisoformat(text)
            return (moment.toordinal() - _EPOCH.toordinal()) + (
                moment.hour * 3600 + moment.minute * 60 + moment.second) / 86400
        return serial
    return None  # written as it is
