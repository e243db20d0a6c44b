"""Customer care: A–E classes (顾客分类), follow-ups (回访) and who is due, birthdays."""

from collections.abc import Iterator
from datetime import date, datetime, timedelta

from vipcli import archive, cards
from vipcli.dates import iso, is_birthday, months_before
from vipcli.auditlog import audit
from vipcli.rules import Rules, channel_code


def classify(conn, rules: Rules, as_of: datetime, store: str | None = None, cls: str | None = None,
             unmask: bool = False):
    """Every archive (not erased; of `store`, of class `cls` when given) with its class over the
    window before `as_of` (rules.customer_class), its name and phone (masked unless `unmask`) to
    work the list from: yielded as read, in customer order, so that 200,000 members take no more
    memory than one."""
    from vipcli.fields import mask_phone

    since = iso(months_before(as_of, rules.class_window_months))
    rows = conn.execute(
        "SELECT c.id, c.name, c.phone, c.store, c.created_at, (SELECT card_no FROM cards k WHERE k.customer_id = c.id "
        "AND k.status IN ('active','discount_only','blocked','expired') ORDER BY k.issued_at DESC LIMIT 1) AS card_no, "
        "COUNT(p.id) AS purchases, COALESCE(SUM(p.paid - p.refunded), 0) AS spend "
        "FROM customers c LEFT JOIN purchases p ON p.customer_id = c.id AND p.purchased_at > ? "
        "AND p.purchased_at <= ? WHERE c.erased_at IS NULL AND (? IS NULL OR c.store = ?) GROUP BY c.id ORDER BY c.id",
        (since, iso(as_of), store, store),
    )
    for r in rows:
        code = rules.customer_class(r["purchases"], r["spend"]).code
        if cls is None or code == cls:
            yield {"customer_id": r["id"], "name": r["name"], "phone": r["phone"] if unmask else mask_phone(r["phone"]),
                   "store": r["store"], "card_no": r["card_no"], "class": code, "purchases": r["purchases"],
                   "spend": r["spend"], "known_since": r["created_at"]}


def log_visit(conn, rules: Rules, ref: str, channel: str, note: str | None, at: datetime, operator: str) -> dict:
    channel = channel_code(channel)
    customer, card = archive.resolve(conn, rules, ref)
    visit_id = conn.execute(
        "INSERT INTO visits(customer_id, channel, note, at, operator) VALUES (?, ?, ?, ?, ?) RETURNING id",
        (customer["id"], channel, note, iso(at), operator),
    ).fetchone()[0]
    audit(conn, at, operator, "visit log", str(customer["id"]), channel=channel)
    return {"visit_id": visit_id, "customer_id": customer["id"], "card_no": card["card_no"] if card else None,
            "channel": channel, "at": iso(at)}


def due(conn, rules: Rules, as_of: datetime, store: str | None = None, cls: str | None = None,
        unmask: bool = False) -> tuple[int, Iterator[dict]]:
    """(how many, who) should be contacted (rules.follow_up_due), most important class first, the
    longest due first, with name and (masked) phone. In bounded memory: a first pass keeps a few
    numbers per customer due, and the names and phones are read back in that order, a batch at a
    time, as the rows are taken."""
    levels = {c.code: c for c in rules.classes}
    order = {c.code: i for i, c in enumerate(rules.classes)}
    contacts: dict[int, dict[str, datetime]] = {}
    for customer_id, channel, at in conn.execute(
            "SELECT customer_id, channel, MAX(at) FROM visits WHERE at <= ? GROUP BY customer_id, channel",
            (iso(as_of),)):
        contacts.setdefault(customer_id, {})[channel] = datetime.fromisoformat(at)
    found = []
    for item in classify(conn, rules, as_of, store, cls, unmask=True):
        known = datetime.fromisoformat(item["known_since"])
        if known > as_of:
            continue
        last = contacts.get(item["customer_id"], {})
        level = levels[item["class"]]
        due_at = rules.follow_up_due(level, known, last)
        if due_at <= as_of:
            latest = max(last.values(), default=None)
            found.append((order[level.code], iso(due_at), item["customer_id"], level.code, item["card_no"],
                          level.channel, iso(latest) if latest else None, item["purchases"], item["spend"]))
    found.sort()
    return len(found), _with_names(conn, found, unmask)


def _with_names(conn, found: list[tuple], unmask: bool):
    from vipcli.fields import mask_phone

    for start in range(0, len(found), 500):
        part = found[start:start + 500]
        people = {r[0]: r for r in conn.execute(
            f"SELECT id, name, phone, store FROM customers WHERE id IN ({','.join('?' * len(part))})",
            [f[2] for f in part])}
        for _, due_since, cid, code, card_no, channel, last_contact, purchases, spend in part:
            _, name, phone, store = people[cid]
            yield {"customer_id": cid, "name": name, "phone": phone if unmask else mask_phone(phone), "store": store,
                   "card_no": card_no, "class": code, "purchases": purchases, "spend": spend, "channel": channel,
                   "last_contact": last_contact, "due_since": due_since}


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
