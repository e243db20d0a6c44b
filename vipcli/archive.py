"""Customer archives (客户档案): create and complete them, change them with a change log (修改记录),
find, show and search them."""

import json
from datetime import date, datetime

from vipcli import cards, fields, ledger
from vipcli.dates import iso, months_before
from vipcli.auditlog import audit
from vipcli.errors import InvalidInput, NotFound, Refused
from vipcli.rules import Rules
from vipcli.i18n import _

PROFILE_FIELDS = ("phone", "name", "gender", "birthday", "id_number", "email", "address", "store")
REGISTRATION_FIELDS = ("name", "gender", "birthday", "phone")
_LIMITS = {"name": 50, "address": 200}


def clean_profile(raw: dict, today: date) -> dict:
    """Validate the profile fields given (None = not given) into stored form."""
    clean: dict = {}
    for key, value in raw.items():
        if value is None:
            continue
        if key == "phone":
            clean[key] = fields.normalize_phone(value)
        elif key == "gender":
            clean[key] = fields.parse_gender(value)
        elif key == "birthday":
            clean[key] = iso(fields.parse_birthday(value, today))
        elif key == "id_number":
            clean[key] = fields.check_id_number(value)
        elif key == "email":
            clean[key] = fields.check_email(value)
        elif key == "store":
            clean[key] = fields.check_store(value)
        elif key in _LIMITS:
            clean[key] = fields.clean_text(value, key, _LIMITS[key])
        else:
            raise InvalidInput(_("{key}: not a profile field").format(key=key))
    return clean


def parse_prefs(pairs: list[str] | None) -> dict:
    """'--pref size=M --pref 口味=清淡' -> {'size': 'M', '口味': '清淡'}; an empty value removes."""
    prefs = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep:
            raise InvalidInput(_("pref: {pair!r} must be KEY=VALUE").format(pair=pair), code="bad_pref")
        key = fields.clean_text(key, "pref key", 40)
        prefs[key] = fields.clean_text(value, f"pref {key}", 200) if value.strip() else None
    return prefs


def is_registered(customer) -> bool:
    return all(customer[f] for f in REGISTRATION_FIELDS)


def resolve(conn, rules: Rules, ref: str):
    """CARD/PHONE argument -> (customer row, card row or None). A phone means that customer and
    their current card; a card number means that card, whatever its state."""
    if fields.looks_like_phone(ref):
        phone = fields.normalize_phone(ref)
        customer = conn.execute("SELECT * FROM customers WHERE phone = ?", (phone,)).fetchone()
        if customer is None:
            raise NotFound(_("no customer with phone {value}").format(
                               value=fields.mask_phone(phone)), code="unknown_phone")
        return customer, cards.live_card(conn, customer["id"]) or cards.latest_card(conn, customer["id"])
    card = cards.get(conn, cards.parse_number(ref, rules))
    customer = conn.execute("SELECT * FROM customers WHERE id = ?", (card["customer_id"],)).fetchone()
    return customer, card


def _log_changes(conn, customer_id: int, old: dict, new: dict, at: datetime, operator: str) -> list[str]:
    changed = []
    for key, value in new.items():
        before = old.get(key)
        if before == value:
            continue
        conn.execute(
            "INSERT INTO changes(customer_id, field, old, new, at, operator) VALUES (?, ?, ?, ?, ?, ?)",
            (customer_id, key, before, value, iso(at), operator),
        )
        changed.append(key)
    return changed


def _store_values(conn, clean: dict, vault_for, customer_id: int | None) -> tuple[dict, dict]:
    """Column values to write, and the loggable (masked) form of each changed field."""
    columns, loggable = {}, {}
    for key, value in clean.items():
        if key == "id_number":
            vault = vault_for(create=True)
            digest = vault.lookup_hash(value)
            owner = conn.execute("SELECT id FROM customers WHERE id_hmac = ?", (digest,)).fetchone()
            if owner is not None and owner["id"] != customer_id:
                # Saying whose it is would confirm to anyone that a given ID is on file.
                raise Refused(_("id_number: this ID number can't be used here; ask the VIP desk"),
                              code="duplicate_id")
            columns.update(id_enc=vault.encrypt(value), id_hmac=digest, id_masked=fields.mask_id(value))
            loggable["id_number"] = fields.mask_id(value)
        else:
            if key == "phone":
                owner = conn.execute("SELECT id FROM customers WHERE phone = ?", (value,)).fetchone()
                if owner is not None and owner["id"] != customer_id:
                    raise Refused(_("phone {value} already belongs to customer {id}").format(
                                      value=fields.mask_phone(value), id=owner['id']), code="duplicate_phone")
            columns[key] = value
            loggable[key] = value
    return columns, loggable


def _current_loggable(customer) -> dict:
    values = {k: customer[k] for k in PROFILE_FIELDS if k != "id_number"}
    values["id_number"] = customer["id_masked"]
    return values


def customer(conn, customer_id: int):
    return conn.execute("SELECT * FROM customers WHERE id = ?", (customer_id,)).fetchone()


def customer_by_phone(conn, phone: str):
    return conn.execute("SELECT * FROM customers WHERE phone = ?", (phone,)).fetchone()


def create_prospect(conn, phone: str, at: datetime, store: str | None = None) -> int:
    """A buyer the store knows only by phone (准会员); created_at records it, the change log starts
    with the first change made to it."""
    return conn.execute(
        "INSERT INTO customers(phone, store, created_at) VALUES (?, ?, ?) RETURNING id", (phone, store, iso(at))
    ).fetchone()[0]


def enroll(conn, rules: Rules, vault_for, clean: dict, at: datetime, operator: str,
           grant: str | None = None, region: str | None = None) -> dict:
    """Create an archive, or complete an existing one (only empty fields; changing a recorded value
    is `vip update`'s job). The store of registration is the first one: another store's enrolment
    completes the archive and keeps it. `grant` issues a card without qualifying (audited)."""
    phone = clean["phone"]
    customer = conn.execute("SELECT * FROM customers WHERE phone = ?", (phone,)).fetchone()
    created = customer is None
    if created:
        customer_id = conn.execute(
            "INSERT INTO customers(phone, created_at) VALUES (?, ?) RETURNING id", (phone, iso(at))
        ).fetchone()[0]
        customer = conn.execute("SELECT * FROM customers WHERE id = ?", (customer_id,)).fetchone()
    old = _current_loggable(customer)
    if not created:
        if customer["store"] is not None and clean.get("store") not in (None, customer["store"]):
            clean = {k: v for k, v in clean.items() if k != "store"}
        for key, value in clean.items():
            if key == "id_number":
                if customer["id_hmac"] is not None and vault_for(create=False).lookup_hash(value) != customer["id_hmac"]:
                    raise Refused(_("customer {id} already has a different id_number; use `vip update` to change "
                                    "it").format(
                                      id=customer['id']), code="conflicting_field")
                continue  # two IDs can share a masked form: compared by their keyed hash above
            if old.get(key) not in (None, value):
                raise Refused(
                    _("customer {id} already has a different {key}; use `vip update` to change it").format(
                        id=customer['id'], key=key), code="conflicting_field")
    columns, loggable = _store_values(conn, clean, vault_for, customer["id"])
    _write_columns(conn, customer["id"], columns)
    changed = _log_changes(conn, customer["id"], {} if created else old, loggable, at, operator)
    _mark_registration(conn, customer["id"], at)
    card_no = None
    live = cards.live_card(conn, customer["id"])
    if grant:
        if live is not None:
            raise Refused(_("customer {id} already holds card {card_no}").format(
                              id=customer['id'], card_no=live['card_no']),
                          code="has_card")
        card_no = cards.issue(conn, rules, customer["id"], at, f"granted: {grant}", region,
                              clean.get("store"))
        set_tier(conn, customer["id"], None, rules.tiers[0].code, at, "card issued", operator)
        audit(conn, at, operator, "enroll --grant", card_no, customer_id=customer["id"], reason=grant)
    elif region:
        raise InvalidInput(_("region: only used when a card is issued (--grant)"), code="bad_usage")
    elif rules.card_on_registration and live is None and cards.latest_card(conn, customer["id"]) is None:
        # The clinic (003 2.1 会员注册): the completed registration form is what earns the card.
        registered = conn.execute("SELECT registered_at FROM customers WHERE id = ?", (customer["id"],)).fetchone()
        if registered[0] is not None:
            card_no = cards.issue(conn, rules, customer["id"], at, cards.qualified_reason("registration"), None,
                                  clean.get("store") or customer["store"])
            set_tier(conn, customer["id"], None, rules.tiers[0].code, at, cards.issue_reason("registration"), operator)
    audit(conn, at, operator, "enroll", str(customer["id"]), created=created, changed=changed)
    return {"customer_id": customer["id"], "created": created, "changed": changed,
            "card_issued": card_no is not None}


def _write_columns(conn, customer_id: int, columns: dict) -> None:
    if columns:
        sets = ", ".join(f"{k} = ?" for k in columns)
        conn.execute(f"UPDATE customers SET {sets} WHERE id = ?", (*columns.values(), customer_id))


def _mark_registration(conn, customer_id: int, at: datetime) -> None:
    """registered_at: the moment all registration fields are first present (第七条)."""
    conn.execute(
        "UPDATE customers SET registered_at = ? WHERE id = ? AND registered_at IS NULL "
        "AND name IS NOT NULL AND gender IS NOT NULL AND birthday IS NOT NULL AND phone IS NOT NULL",
        (iso(at), customer_id),
    )


def set_tier(conn, customer_id, old, new, at, reason, operator) -> None:
    conn.execute("UPDATE customers SET tier = ?, tier_since = ? WHERE id = ?", (new, iso(at), customer_id))
    conn.execute(
        "INSERT INTO tier_changes(customer_id, from_tier, to_tier, at, reason, operator) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (customer_id, old, new, iso(at), reason, operator),
    )


def update(conn, rules: Rules, vault_for, ref: str, clean: dict, prefs: dict, at: datetime,
           operator: str) -> list[str]:
    customer, _card = resolve(conn, rules, ref)
    if customer["erased_at"]:
        raise Refused(_("customer {id} was erased").format(id=customer['id']), code="erased")
    old = _current_loggable(customer)
    columns, loggable = _store_values(conn, clean, vault_for, customer["id"])
    _write_columns(conn, customer["id"], columns)
    changed = _log_changes(conn, customer["id"], old, loggable, at, operator)
    if prefs:
        current = json.loads(customer["prefs"])
        before = {f"pref.{k}": current.get(k) for k in prefs}
        for key, value in prefs.items():
            if value is None:
                current.pop(key, None)
            else:
                current[key] = value
        conn.execute("UPDATE customers SET prefs = ? WHERE id = ?",
                     (json.dumps(current, ensure_ascii=False, sort_keys=True), customer["id"]))
        changed += _log_changes(conn, customer["id"], before,
                                {f"pref.{k}": v for k, v in prefs.items()}, at, operator)
    _mark_registration(conn, customer["id"], at)
    if changed:  # (a preference's name can be personal: the audit, which an erasure keeps, says only "pref")
        audit(conn, at, operator, "update", str(customer["id"]),
              changed=sorted({"pref" if c.startswith("pref.") else c for c in changed}))
    return changed


def history(conn, rules: Rules, ref: str, unmask: bool) -> tuple[int, list[dict]]:
    customer, _card = resolve(conn, rules, ref)
    rows = conn.execute(
        "SELECT field, old, new, at, operator FROM changes WHERE customer_id = ? ORDER BY id",
        (customer["id"],),
    ).fetchall()
    out = []
    for row in rows:
        item = dict(row)
        if row["field"] == "phone" and not unmask:
            item["old"], item["new"] = fields.mask_phone(row["old"]), fields.mask_phone(row["new"])
        out.append(item)
    return customer["id"], out


def spend(conn, customer_id: int, since: datetime, until: datetime) -> tuple[int, int]:
    """(purchases, net paid) in (since, until]: every recorded purchase, whatever the card."""
    row = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(paid - refunded), 0) FROM purchases "
        "WHERE customer_id = ? AND purchased_at > ? AND purchased_at <= ?",
        (customer_id, iso(since), iso(until)),
    ).fetchone()
    return row[0], row[1]


def _status(rules: Rules, customer, card, now: datetime) -> str:
    return cards.effective_status(card, is_registered(customer), rules, now.date()) if card else "prospect"


def _class(conn, rules: Rules, customer, now: datetime) -> str:
    """The customer's A–E class over the class window before `now` (顾客分类)."""
    return rules.customer_class(*spend(conn, customer["id"], months_before(now, rules.class_window_months), now)).code


def summary(conn, rules: Rules, customer, card, now: datetime, unmask: bool) -> dict:
    """Everything `vip show` prints about one archive."""
    today = now.date()
    registered = is_registered(customer)
    status = _status(rules, customer, card, now)
    count, spent = spend(conn, customer["id"], months_before(now, rules.upgrade_window_months), now)
    customer_class = rules.customer_class(count, spent).code \
        if rules.class_window_months == rules.upgrade_window_months else _class(conn, rules, customer, now)
    id_number = customer["id_masked"]
    if unmask and customer["id_enc"] is not None:
        from vipcli.vault import open_vault

        id_number = open_vault(conn, create=False).decrypt(customer["id_enc"])
    recent = conn.execute(
        "SELECT receipt, purchased_at, store, regular, promo, paid, refunded, points_earned "
        "FROM purchases WHERE customer_id = ? ORDER BY purchased_at DESC, id DESC LIMIT 10",
        (customer["id"],),
    ).fetchall()
    return {
        "customer_id": customer["id"],
        "name": customer["name"],
        "phone": customer["phone"] if unmask else fields.mask_phone(customer["phone"]),
        "gender": customer["gender"],
        "birthday": customer["birthday"],
        "id_number": id_number,
        "email": customer["email"],
        "address": customer["address"],
        "store": customer["store"],
        "prefs": json.loads(customer["prefs"]),
        "created_at": customer["created_at"],
        "registered": registered,
        "registration_days_left": cards.registration_days_left(card, registered, rules, today)
        if card and status in ("active", "discount_only") else None,
        "card_no": card["card_no"] if card else None,
        "status": status,
        "valid_to": card["valid_to"] if card else None,
        "tier": customer["tier"] if card else None,
        "tier_since": customer["tier_since"] if card else None,
        "points_balance": ledger.balance(conn, card["card_no"], now) if card else 0,
        "spend_12m": spent,
        "purchases_12m": count,
        "class": customer_class,
        "recent_purchases": [dict(r) for r in recent],
    }


def search(conn, rules: Rules, text: str, now: datetime, tier=None, cls=None, store=None,
           status=None, limit: int = 200, offset: int = 0) -> tuple[int, list[dict]]:
    """(how many archives match, the page of them from `offset`, at most `limit`): archives whose name
    or card number contains TEXT (empty TEXT: all), filtered. A phone is found by the whole number, or
    by its last four digits beside part of the name: a masked phone can't be walked out digit by
    digit. A class or status filter is decided per archive (they follow from purchases and dates)."""
    where, params = _matching(text.strip())
    where = f"WHERE {where} AND (? IS NULL OR c.tier = ?) AND (? IS NULL OR c.store = ?)"
    params = (*params, tier, tier, store, store)
    if not cls and not status:
        total = conn.execute(f"SELECT COUNT(*) FROM customers c {where}", params).fetchone()[0]
        rows = conn.execute(f"SELECT c.* FROM customers c {where} ORDER BY c.id LIMIT ? OFFSET ?",
                            (*params, limit, offset)).fetchall()
        return total, [_found(conn, rules, row, now) for row in rows]
    total, page = 0, []
    for row in conn.execute(f"SELECT c.* FROM customers c {where} ORDER BY c.id", params).fetchall():
        card = _shown_card(conn, row["id"])
        if cls and _class(conn, rules, row, now) != cls:
            continue
        if status and _status(rules, row, card, now) != status:
            continue
        total += 1
        if offset < total <= offset + limit:
            page.append(_found(conn, rules, row, now, card))
    return total, page


def _like(text: str) -> str:
    """A LIKE pattern holding `text` anywhere, its own % and _ taken literally (ESCAPE '\\')."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _matching(text: str) -> tuple[str, tuple]:
    """The search's condition on customers c, and its parameters."""
    if not text:
        return "1 = 1", ()
    if fields.looks_like_phone(text):
        return "c.phone = ?", (fields.normalize_phone(text),)
    digits = "".join(ch for ch in text if ch.isascii() and ch.isdigit())
    name = "".join(ch for ch in text if not (ch.isascii() and ch.isdigit())).strip()
    if name and len(digits) == 4:  # 王 8000: a name and the phone's last four digits
        return "c.name LIKE ? ESCAPE '\\' AND c.phone LIKE ?", (_like(name), "%" + digits)
    condition, params = "c.name LIKE ? ESCAPE '\\'", [_like(text)]
    if digits and digits == text.replace(" ", "").replace("-", ""):  # part of a card number
        condition += " OR EXISTS (SELECT 1 FROM cards k WHERE k.customer_id = c.id AND k.card_no LIKE ?)"
        params.append(f"%{digits}%")
    return f"({condition})", tuple(params)


def _shown_card(conn, customer_id: int):
    return cards.live_card(conn, customer_id) or cards.latest_card(conn, customer_id)


def _found(conn, rules: Rules, row, now: datetime, card=None) -> dict:
    info = summary(conn, rules, row, card or _shown_card(conn, row["id"]), now, unmask=False)
    return {k: info[k] for k in ("customer_id", "name", "phone", "card_no", "status", "tier", "points_balance",
                                 "spend_12m", "class")}
