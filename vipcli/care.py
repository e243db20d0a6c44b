"""Customer care: A–E classes (顾客分类), follow-ups (回访) and who is due, birthdays."""

from datetime import date, datetime, timedelta

from vipcli import archive, cards
from vipcli.dates import iso, is_birthday, months_before
from vipcli.auditlog import audit
from vipcli.errors import InvalidInput
from vipcli.rules import CHANNELS, Rules


def classify(conn, rules: Rules, as_of: datetime, store: str | None = None, cls: str | None = None,
             unmask: bool = False) -> list[dict]:
    """Every archive (not erased; of `store`, of class `cls` when given) with its class over the window
    before `as_of`, its name and phone (masked unless `unmask`) to work the list from."""
    from vipcli.fields import mask_phone

    since = iso(months_before(as_of, rules.class_window_months))
    rows = conn.execute(
        "SELECT c.id, c.name, c.phone, c.store, (SELECT card_no FROM cards k WHERE k.customer_id = c.id AND "
        "k.status IN ('active','discount_only','blocked','expired') ORDER BY k.issued_at DESC LIMIT 1) AS card_no, "
        "COUNT(p.id) AS purchases, COALESCE(SUM(p.paid - p.refunded), 0) AS spend "
        "FROM customers c LEFT JOIN purchases p ON p.customer_id = c.id AND p.purchased_at > ? "
        "AND p.purchased_at <= ? WHERE c.erased_at IS NULL AND (? IS NULL OR c.store = ?) GROUP BY c.id ORDER BY c.id",
        (since, iso(as_of), store, store),
    ).fetchall()
    out = []
    for r in rows:
        code = rules.customer_class(r["purchases"], r["spend"]).code
        if cls is None or code == cls:
            out.append({"customer_id": r["id"], "name": r["name"],
                        "phone": r["phone"] if unmask else mask_phone(r["phone"]), "store": r["store"],
                        "card_no": r["card_no"], "class": code, "purchases": r["purchases"], "spend": r["spend"]})
    return out


def log_visit(conn, rules: Rules, ref: str, channel: str, note: str | None, at: datetime, operator: str) -> dict:
    if channel not in CHANNELS:
        raise InvalidInput(f"channel: {channel!r} must be one of {', '.join(CHANNELS)}", code="bad_channel")
    customer, card = archive.resolve(conn, rules, ref)
    visit_id = conn.execute(
        "INSERT INTO visits(customer_id, channel, note, at, operator) VALUES (?, ?, ?, ?, ?)",
        (customer["id"], channel, note, iso(at), operator),
    ).lastrowid
    audit(conn, at, operator, "visit log", str(customer["id"]), channel=channel)
    return {"visit_id": visit_id, "customer_id": customer["id"], "card_no": card["card_no"] if card else None,
            "channel": channel, "at": iso(at)}


def due(conn, rules: Rules, as_of: datetime, store: str | None = None, cls: str | None = None,
        unmask: bool = False) -> list[dict]:
    """Who should be contacted (`Rules.follow_up_due`), with name and (masked) phone, most important
    class first."""
    levels = {c.code: c for c in rules.classes}
    contacts: dict[int, dict[str, datetime]] = {}
    for customer_id, channel, at in conn.execute(
            "SELECT customer_id, channel, MAX(at) FROM visits WHERE at <= ? GROUP BY customer_id, channel",
            (iso(as_of),)):
        contacts.setdefault(customer_id, {})[channel] = datetime.fromisoformat(at)
    created = dict(conn.execute("SELECT id, created_at FROM customers").fetchall())
    out = []
    for item in classify(conn, rules, as_of, store, cls, unmask):
        known = datetime.fromisoformat(created[item["customer_id"]])
        if known > as_of:
            continue
        last = contacts.get(item["customer_id"], {})
        due_at = rules.follow_up_due(levels[item["class"]], known, last)
        if due_at <= as_of:
            latest = max(last.values(), default=None)
            out.append({**item, "channel": levels[item["class"]].channel,
                        "last_contact": iso(latest) if latest else None, "due_since": iso(due_at)})
    order = {c.code: i for i, c in enumerate(rules.classes)}
    out.sort(key=lambda d: (order[d["class"]], d["due_since"], d["customer_id"]))
    return out


def birthdays(conn, rules: Rules, today: date, within_days: int) -> list[dict]:
    """Members with a current card whose birthday falls in the next `within_days` days (today included)."""
    from vipcli.fields import mask_phone

    rows = conn.execute(
        "SELECT c.*, k.card_no FROM customers c JOIN cards k ON k.customer_id = c.id "
        "AND k.status IN ('active','discount_only','blocked','expired') WHERE c.birthday IS NOT NULL "
        "AND c.erased_at IS NULL ORDER BY c.id"
    ).fetchall()
    out = []
    for row in rows:
        born = date.fromisoformat(row["birthday"])
        for offset in range(within_days + 1):
            day = today + timedelta(days=offset)
            if is_birthday(born, day):
                card = cards.get(conn, row["card_no"])
                out.append({"customer_id": row["id"], "card_no": row["card_no"], "name": row["name"],
                            "phone": mask_phone(row["phone"]), "birthday": row["birthday"], "date": iso(day),
                            "days": offset,
                            "status": cards.effective_status(card, archive.is_registered(row), rules, today)})
                break
    out.sort(key=lambda b: (b["days"], b["customer_id"]))
    return out
