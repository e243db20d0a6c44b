"""`vip export report`: the store manager's workbook, with charts where a picture says it better.

Sheets: 汇总 (members by tier and status, points outstanding, new members this month), 客户分类
(A–E, 客户归类汇总表), 月度消费 (会员每月消费累积: monthly spend per store), 发卡统计 (cards issued per
region: 发卡明细表 totals), 等级消费 (each tier's share of spend), 二八定律 (the top fifth of customers'
share of spend).
"""

from datetime import datetime
from decimal import Decimal

from vipcli import care
from vipcli.dates import iso, months_before
from vipcli.io.files import atomic_output, xlsx_file
from vipcli.overview import store_overview
from vipcli.cards import status_label
from vipcli.i18n import _
from vipcli.rules import Rules

MONEY = '"¥"#,##0.00'


def _yuan(fen: int) -> Decimal:
    return Decimal(fen).scaleb(-2)


STEPS = 6  # the six sheets (`progress(1)` after each; after the last, once the file is written)


def build(conn, rules: Rules, now: datetime, year: int, path: str, force: bool = False, progress=None) -> dict:
    from openpyxl import Workbook
    from openpyxl.chart import BarChart, LineChart, PieChart, Reference
    from openpyxl.styles import Font

    book = Workbook()
    bold = Font(bold=True)

    def tick():
        if progress:
            progress(1)

    overview = store_overview(conn, rules, now, top=0)

    def sheet(title, header, rows, money_cols=(), widths=None):
        ws = book.create_sheet(title)
        ws.append(header)
        for cell in ws[1]:
            cell.font = bold
        for row in rows:
            ws.append(row)
        for col in money_cols:
            for cell in ws.iter_rows(min_row=2, min_col=col, max_col=col):
                cell[0].number_format = MONEY
        ws.freeze_panes = "A2"
        for i, width in enumerate(widths or [14] * len(header), 1):
            ws.column_dimensions[chr(64 + i)].width = width
        return ws

    # 汇总
    summary = book.active
    summary.title = "汇总"
    summary.append([_("vipcli report"), f"{year}", _("as of"), iso(now)])
    summary["A1"].font = bold
    month_start = iso(now.replace(day=1, hour=0, minute=0, second=0))
    new_members = conn.execute("SELECT COUNT(*) FROM cards WHERE issued_at >= ? AND issued_at <= ?",
                               (month_start, iso(now))).fetchone()[0]
    summary.append([])
    summary.append([_("points outstanding"), overview["points_outstanding"]])
    summary.append([_("new members this month"), new_members])
    summary.append([_("spend, {months} months").format(months=rules.upgrade_window_months), _yuan(overview["spend_12m"])])
    summary["B5"].number_format = MONEY
    summary.append([])
    tier_row = summary.max_row + 1
    summary.append([_("tier"), _("tier name"), _("members")])
    for cell in summary[tier_row]:
        cell.font = bold
    for tier in rules.tiers:
        summary.append([tier.code, tier.name, overview["members_by_tier"].get(tier.code, 0)])
    chart = BarChart()
    chart.title = _("Members by tier")
    chart.add_data(Reference(summary, min_col=3, min_row=tier_row, max_row=tier_row + len(rules.tiers)),
                   titles_from_data=True)
    chart.set_categories(Reference(summary, min_col=2, min_row=tier_row + 1, max_row=tier_row + len(rules.tiers)))
    summary.add_chart(chart, "F3")
    summary.append([])
    status_row = summary.max_row + 1
    summary.append([_("status"), _("customers")])
    for cell in summary[status_row]:
        cell.font = bold
    for status, count in sorted(overview["customers_by_status"].items()):
        summary.append([status_label(status), count])
    summary.column_dimensions["A"].width = 24
    summary.column_dimensions["B"].width = 16

    tick()
    # 客户分类
    tally = {c.code: [0, 0] for c in rules.classes}  # class -> customers, spend (one pass, as read)
    for row in care.classify(conn, rules, now):
        tally[row["class"]][0] += 1
        tally[row["class"]][1] += row["spend"]
    counts = [[code, n, _yuan(spend)] for code, (n, spend) in tally.items()]
    ws = sheet("客户分类", [_("class"), _("customers"), _("spend {months} months").format(
        months=rules.class_window_months)], counts, money_cols=(3,))
    chart = BarChart()
    chart.title = "客户归类汇总 (A–E)"
    chart.add_data(Reference(ws, min_col=2, min_row=1, max_row=len(counts) + 1), titles_from_data=True)
    chart.set_categories(Reference(ws, min_col=1, min_row=2, max_row=len(counts) + 1))
    ws.add_chart(chart, "E2")

    tick()
    # 月度消费: one column per store, one row per month of the year
    none = _("(no store)")
    stores = [r[0] or none for r in conn.execute(
        "SELECT DISTINCT store FROM purchases WHERE substr(purchased_at, 1, 4) = ? ORDER BY store", (str(year),))]
    totals = {(r[0], r[1] or none): r[2] for r in conn.execute(
        "SELECT substr(purchased_at, 1, 7), store, SUM(paid - refunded) FROM purchases "
        "WHERE substr(purchased_at, 1, 4) = ? GROUP BY 1, 2", (str(year),))}
    months = [f"{year}-{m:02d}" for m in range(1, 13)]
    rows = [[m, *[_yuan(totals.get((m, s), 0)) for s in stores]] for m in months]
    ws = sheet("月度消费", [_("month"), *stores], rows, money_cols=range(2, len(stores) + 2))
    if stores:
        chart = LineChart()
        chart.title = f"会员每月消费累积 {year}"
        chart.add_data(Reference(ws, min_col=2, max_col=len(stores) + 1, min_row=1, max_row=13), titles_from_data=True)
        chart.set_categories(Reference(ws, min_col=1, min_row=2, max_row=13))
        ws.add_chart(chart, f"{chr(66 + len(stores) + 1)}2")

    tick()
    # 发卡统计
    issued = conn.execute(
        "SELECT region, COUNT(*), COUNT(CASE WHEN status = 'replaced' THEN 1 END), "
        "COUNT(CASE WHEN status = 'cancelled' THEN 1 END) FROM cards "
        "GROUP BY region ORDER BY region").fetchall()
    ws = sheet("发卡统计", [_("region"), _("cards issued"), _("replaced"), _("cancelled")], [list(r) for r in issued])
    if issued:
        chart = BarChart()
        chart.title = _("Cards issued per region")
        chart.add_data(Reference(ws, min_col=2, min_row=1, max_row=len(issued) + 1), titles_from_data=True)
        chart.set_categories(Reference(ws, min_col=1, min_row=2, max_row=len(issued) + 1))
        ws.add_chart(chart, "F2")

    tick()
    # 等级消费: each tier's share of the 12-month spend (the SVIP question: what do the top cards bring?)
    since = iso(months_before(now, rules.upgrade_window_months))
    by_tier = dict(conn.execute(
        "SELECT c.tier, SUM(p.paid - p.refunded) FROM purchases p JOIN customers c ON c.id = p.customer_id "
        "WHERE p.purchased_at > ? AND p.purchased_at <= ? AND c.tier IS NOT NULL GROUP BY c.tier",
        (since, iso(now))).fetchall())
    total = sum(r[0] for r in conn.execute(
        "SELECT SUM(paid - refunded) FROM purchases WHERE purchased_at > ? AND purchased_at <= ?", (since, iso(now)))
        if r[0]) or 0
    tier_rows = [[t.code, t.name, _yuan(by_tier.get(t.code, 0)),
                  (Decimal(by_tier.get(t.code, 0)) / total).quantize(Decimal("0.0001")) if total else Decimal(0)]
                 for t in rules.tiers]
    ws = sheet("等级消费", [_("tier"), _("tier name"), _("spend {months} months").format(months=rules.upgrade_window_months),
                           _("share of all spend")], tier_rows, money_cols=(3,), widths=[12, 14, 18, 20])
    for row in ws.iter_rows(min_row=2, min_col=4, max_col=4):
        row[0].number_format = "0.0%"
    chart = BarChart()
    chart.title = _("Share of spend by tier")
    chart.add_data(Reference(ws, min_col=4, min_row=1, max_row=len(tier_rows) + 1), titles_from_data=True)
    chart.set_categories(Reference(ws, min_col=2, min_row=2, max_row=len(tier_rows) + 1))
    ws.add_chart(chart, "F2")

    tick()
    # 二八定律
    share = overview["top_fifth_share_permille"]
    top = Decimal(share).scaleb(-3)
    ws = sheet("二八定律", [_("group"), _("share of spend")], [[_("the top fifth of customers"), top],
                                                               [_("the other four fifths"), 1 - top]], widths=[24, 16])
    for row in ws.iter_rows(min_row=2, min_col=2, max_col=2):
        row[0].number_format = "0.0%"
    pie = PieChart()
    pie.title = _("二八定律: share of {months}-month spend").format(months=rules.upgrade_window_months)
    pie.add_data(Reference(ws, min_col=2, min_row=1, max_row=3), titles_from_data=True)
    pie.set_categories(Reference(ws, min_col=1, min_row=2, max_row=3))
    ws.add_chart(pie, "D2")

    with atomic_output(path, mode=None, own=xlsx_file, force=force) as temp:
        book.save(temp)
    tick()
    return {"sheets": book.sheetnames, "rows": sum(n for n, _spend in tally.values())}
