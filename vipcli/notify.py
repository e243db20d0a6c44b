"""The SMS outbox (vip notify): one CSV row per message, texts from the rules' templates."""

import csv
import io
from datetime import date
from decimal import Decimal

from vipcli import care, cards
from vipcli.dates import iso
from vipcli.io.files import neutralize
from vipcli.rules import Rules


OUTBOX_HEADER = ["phone", "name", "card_no", "message"]


def discount_text(rate: Decimal) -> str:
    """0.60 -> '6折', 0.85 -> '8.5折' (Chinese discount notation)."""
    tenths = (rate * 10).normalize()
    return f"{tenths:f}折"


def recipients(conn, rules: Rules, kind: str, today: date, since: date | None, within_days: int) -> list[dict]:
    if kind == "card_issued":  # new members only: a replacement card is not a new membership
        rows = conn.execute(
            "SELECT c.name, c.phone, c.store, k.card_no, k.valid_to FROM cards k JOIN customers c "
            "ON c.id = k.customer_id WHERE k.issued_at >= ? AND k.status = 'active' AND c.phone IS NOT NULL "
            "AND k.reason NOT LIKE 'replaces %' ORDER BY k.issued_at, k.card_no", (iso(since or today),)).fetchall()
        return [dict(r) for r in rows]
    if kind == "birthday":
        out = []
        for b in care.birthdays(conn, rules, today, within_days):
            if b["status"] != "active":
                continue  # 第十四条 is a VIP right: discount-only and blocked cards get no birthday offer
            row = conn.execute("SELECT c.name, c.phone, c.store, k.card_no, k.valid_to FROM customers c "
                               "JOIN cards k ON k.customer_id = c.id WHERE k.card_no = ?", (b["card_no"],)).fetchone()
            out.append(dict(row))
        return out
    # Cards whose last year is this one or the next (a January renewal month is noticed in December).
    rows = conn.execute(
        "SELECT c.name, c.phone, c.store, k.card_no, k.valid_to FROM cards k JOIN customers c "
        "ON c.id = k.customer_id WHERE k.status = 'active' AND k.valid_to IN (?, ?) AND c.phone IS NOT NULL "
        "ORDER BY k.card_no", (iso(rules.validity_end(today.year)), iso(rules.validity_end(today.year + 1)))).fetchall()
    return [dict(r) for r in rows if rules.renewal_notice_due(date.fromisoformat(r["valid_to"]), today)]


def outbox_csv(rules: Rules, kind: str, people: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(OUTBOX_HEADER)
    template = rules.messages[kind]
    for person in people:
        text = template.format(name=person["name"] or "", card_no=cards.format_number(person["card_no"], rules),
                               valid_to=person["valid_to"], store=person["store"] or "",
                               discount=discount_text(rules.birthday_rate))
        writer.writerow([neutralize(v) for v in (person["phone"], person["name"] or "", person["card_no"], text)])
    return buffer.getvalue()
