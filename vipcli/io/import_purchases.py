"""`vip import purchases`: POS purchase rows applied with every rule, fast.

The rules are the same as `vip purchase` (sales.price, rules.qualification_reason, rules.tier_for,
rules.points_for, cards.effective_status): the state after an import equals the state after feeding
the rows one by one through `vip purchase` (a test compares the databases table by table). What
makes it fast is where the state lives: each customer's card, tier and recent spend are kept in
memory (compact arrays, pruned to the longest window) and the rows of a batch are written with one
executemany per table, in one BEGIN IMMEDIATE transaction per batch. A rare case the fast path does
not model (a card carrying points debt) goes through `sales.record_purchase` itself.

Batches commit one after the other, so an import killed at any point leaves whole batches; the
receipts make a re-run skip what is there and complete the rest.
"""

import sqlite3
from array import array
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache

from vipcli import cards, fields, sales
from vipcli.dates import iso, months_before, parse_when
from vipcli.db import audit, translate
from vipcli.errors import InvalidInput, Refused, VipError
from vipcli.money import format_fen, parse_yuan
from vipcli.rules import Rules

COLUMNS = ("receipt", "card_no", "phone", "store", "purchased_at", "amount", "promo", "paid")
REQUIRED = ("receipt", "purchased_at", "amount")
_LIVE = cards.LIVE


@dataclass
class Report:
    rows: int = 0
    inserted: int = 0
    duplicates: int = 0
    rejected: int = 0
    cards_issued: int = 0
    upgrades: int = 0
    slow_path: int = 0


class _Customer:
    """What the rules need to know about one buyer, kept between rows."""

    __slots__ = ("id", "card", "tier", "status", "valid_to", "registration_from", "registered",
                 "birthday", "events", "windows", "ended", "debt", "day", "effective")

    def __init__(self, cid):
        self.id = cid
        self.card = None
        self.tier = None
        self.status = None
        self.valid_to = None
        self.registration_from = None
        self.registered = False
        self.birthday = None
        self.events = array("q")  # flat triples: seconds, paid (net), counted toward qualification
        # flat quadruples: months, index of the first event inside, paid inside, counted inside
        self.windows = array("q")
        self.ended = False
        self.debt = False
        self.day = None  # the date `effective` (the card's state that day) was worked out for
        self.effective = None


def _seconds(stamp: str) -> int:
    """'2026-05-01T10:00:00' -> seconds on a proleptic calendar (only compared, never shown)."""
    return _moment(datetime.fromisoformat(stamp))


def _moment(at: datetime) -> int:
    return at.toordinal() * 86400 + at.hour * 3600 + at.minute * 60 + at.second


@lru_cache(maxsize=8192)
def _days_back(day: date, months: int) -> int:
    """How many days lie between `day` and the same day `months` calendar months earlier (dateutil)."""
    return day.toordinal() - months_before(datetime.combine(day, datetime.min.time()), months).date().toordinal()


def _window_start(at: datetime, months: int) -> int:
    """Seconds of the moment `months` calendar months before `at`."""
    return _moment(at) - _days_back(at.date(), months) * 86400


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


class PurchaseImport:
    def __init__(self, conn, rules: Rules, now: datetime, operator: str, batch_size: int = 5000):
        self.conn = conn
        self.rules = rules
        self.now = now
        self.operator = operator
        self.batch_size = batch_size
        self.report = Report()
        self.customers: dict[int, _Customer] = {}
        self.by_phone: dict[str, int] = {}
        self.by_card: dict[str, int] = {}
        self.sequences: dict[str, int] = {}
        self.horizon = max([w.months for w in rules.qualify_windows] + [rules.upgrade_window_months])
        self.seen_version = None
        self.recorded_at = iso(now)
        self._expiries: dict[int, str] = {}
        # Foreign keys are checked by construction here (every id is taken from what this import or
        # the database holds) and by `vip check`; SQLite's per-row checks would cost a third of the
        # write time. A larger page cache keeps the indexes' random inserts off the disk.
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute("PRAGMA cache_size = -16384")
        # Each batch is still atomic (WAL); NORMAL only lets a power cut lose the last batches'
        # durability, and re-running the import (idempotent by receipt) puts them back.
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA wal_autocheckpoint = 20000")  # fewer, larger checkpoints
        self._load_maps()

    # --- state ----------------------------------------------------------------------------------

    def _load_maps(self):
        self.customers.clear()
        self.sequences.clear()
        self.by_phone = dict(self.conn.execute("SELECT phone, id FROM customers WHERE phone IS NOT NULL"))
        self.by_card = dict(self.conn.execute("SELECT card_no, customer_id FROM cards"))

    def _state(self, cid: int, since: datetime) -> _Customer:
        state = self.customers.get(cid)
        if state is not None:
            return state
        conn = self.conn
        state = _Customer(cid)
        row = conn.execute("SELECT * FROM customers WHERE id = ?", (cid,)).fetchone()
        state.tier = row["tier"]
        state.registered = bool(row["name"] and row["gender"] and row["birthday"] and row["phone"])
        state.birthday = date.fromisoformat(row["birthday"]) if row["birthday"] else None
        card = cards.live_card(conn, cid)
        if card is not None:
            self._take_card(state, card)
            state.debt = conn.execute("SELECT 1 FROM point_lots WHERE card_no = ? AND remaining < 0 LIMIT 1",
                                      (card["card_no"],)).fetchone() is not None
        else:
            state.ended = cards.latest_card(conn, cid) is not None
        start = iso(months_before(since, self.horizon))
        for stamp, net, promo in conn.execute(
            "SELECT purchased_at, paid - refunded, promo FROM purchases WHERE customer_id = ? "
            "AND purchased_at > ? ORDER BY purchased_at, id", (cid, start)):
            self._add_event(state, _seconds(stamp), net, self._counted(net, promo))
        self.customers[cid] = state
        return state

    @staticmethod
    def _take_card(state: _Customer, card) -> None:
        state.card = card["card_no"]
        state.status = card["status"]
        state.valid_to = card["valid_to"]
        state.registration_from = card["registration_from"]

    def _counted(self, paid: int, promo: int) -> int:
        return paid if self.rules.count_promo else max(paid - promo, 0)

    @staticmethod
    def _window(state: _Customer, months: int, start: int, column: int) -> int:
        """Sum of `column` (1 paid, 2 counted) over the events after `start`. Rows come in time
        order, so each window only slides forward: a running sum, not a rescan."""
        events, windows = state.events, state.windows
        at = 0
        while at < len(windows) and windows[at] != months:
            at += 4
        if at == len(windows):
            windows.extend((months, 0, sum(events[1::3]), sum(events[2::3])))
        index = windows[at + 1]
        while index < len(events) and events[index] <= start:
            windows[at + 2] -= events[index + 1]
            windows[at + 3] -= events[index + 2]
            index += 3
        windows[at + 1] = index
        return windows[at + 1 + column]

    @staticmethod
    def _add_event(state: _Customer, seconds: int, paid: int, counted: int) -> None:
        events, windows = state.events, state.windows
        events.extend((seconds, paid, counted))
        for at in range(0, len(windows), 4):
            windows[at + 2] += paid
            windows[at + 3] += counted
        if windows and len(events) > 3000:  # drop what every window has left behind
            first = min(windows[1::4])
            if first > len(events) // 2:  # rarely, so the copy costs O(1) per row
                del events[:first]
                for at in range(0, len(windows), 4):
                    windows[at + 1] -= first

    # --- a batch -------------------------------------------------------------------------------

    def run(self, rows, rejects, progress=None) -> Report:
        """rows: iterator of (row number, Sale or VipError, original values), in time order."""
        batch = []
        for item in rows:
            batch.append(item)
            if len(batch) >= self.batch_size:
                self._batch(batch, rejects)
                if progress:
                    progress(len(batch))
                batch = []
        if batch:
            self._batch(batch, rejects)
            if progress:
                progress(len(batch))
        return self.report

    def _batch(self, batch, rejects) -> None:
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise translate(exc) from None
        try:
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            if self.seen_version is not None and version != self.seen_version:
                self._load_maps()  # another process wrote between our batches: forget what we knew
            self._ids()
            self.pending = {name: [] for name in
                            ("customers", "cards", "purchases", "lots", "ledger", "tiers", "tier_set")}
            self.in_batch: dict[str, tuple] = {}
            existing = self._existing([s.receipt for _, s, _ in batch if isinstance(s, sales.Sale)])
            for number, sale, values in batch:
                self.report.rows += 1
                if isinstance(sale, VipError):
                    self._reject(rejects, number, values, sale.message)
                    continue
                try:
                    self._apply(sale, existing)
                except VipError as exc:
                    if exc.code == "card_sequence_overflow":
                        raise  # not this row's fault: stop, the batch rolls back
                    self._reject(rejects, number, values, exc.message)
            self._flush()
            conn.execute("COMMIT")
            self.seen_version = conn.execute("PRAGMA data_version").fetchone()[0]
        except BaseException:
            conn.execute("ROLLBACK")
            self._load_maps()
            raise

    def _reject(self, rejects, number, values, reason):
        self.report.rejected += 1
        rejects(number, values, reason)

    def _ids(self):
        conn = self.conn
        self.next_id = {
            table: (conn.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()[0] + 1)
            for table in ("customers", "purchases", "point_lots", "ledger", "tier_changes")
        }

    def _take_id(self, table: str) -> int:
        value = self.next_id[table]
        self.next_id[table] = value + 1
        return value

    def _existing(self, receipts: list[str]) -> dict:
        found = {}
        for i in range(0, len(receipts), 900):
            chunk = receipts[i:i + 900]
            for row in self.conn.execute(
                f"SELECT receipt, customer_id, regular, promo, paid, paid_given, store, purchased_at "
                f"FROM purchases WHERE receipt IN ({','.join('?' * len(chunk))})", chunk):
                found[row[0]] = tuple(row)[1:]
        return found

    # --- one row -------------------------------------------------------------------------------

    def _apply(self, sale: sales.Sale, existing: dict) -> None:
        rules, at = self.rules, sale.at
        stamp = at.isoformat()  # parse_when dropped microseconds: the same text as iso(at)
        if sale.card_no is not None:
            cid = self.by_card.get(sale.card_no)
            if cid is None:
                raise VipError(f"card {sale.card_no} is not on record")
        else:
            cid = self.by_phone.get(sale.phone)
        content = (cid, sale.regular, sale.promo, sale.paid, int(sale.paid is not None), sale.store, stamp)
        earlier = existing.get(sale.receipt) or self.in_batch.get(sale.receipt)
        if earlier is not None:
            cid0, regular, promo, paid, given, store, when = earlier
            if (cid0, regular, promo, given, store, when) == (cid, sale.regular, sale.promo, content[4],
                                                               sale.store, stamp) and (not given or paid == sale.paid):
                self.report.duplicates += 1
                return
            raise VipError(f"receipt {sale.receipt} is already recorded with different content")

        if cid is None:
            state = self._new_prospect(sale, stamp)
        else:
            state = self._state(cid, at)
            if sale.card_no is not None and state.card != sale.card_no:
                status = self.conn.execute("SELECT status FROM cards WHERE card_no = ?", (sale.card_no,)).fetchone()
                raise VipError(f"card {sale.card_no} is {status[0] if status else 'unknown'}; purchase refused")
        status = None
        if state.card is not None:
            day = at.date()
            if state.day != day:
                state.effective = cards.effective_status(
                    {"status": state.status, "valid_to": state.valid_to, "registration_from": state.registration_from},
                    state.registered, rules, day)
                state.day = day
            status = state.effective
            if status in ("blocked", "replaced", "cancelled"):
                raise VipError(f"card {state.card} is {status}; purchase refused")
            if status == "active" and state.debt:
                return self._slow(sale, state)

        paid, rate = sales.price(rules, sale, status, state.tier, state.birthday, at)
        purchase_id = self._take_id("purchases")
        seconds = _moment(at)
        counted = self._counted(paid, sale.promo)
        self._add_event(state, seconds, paid, counted)
        card_no = state.card
        if card_no is None and not state.ended:
            reason = rules.qualification_reason(counted, _Windows(self, state, at))
            if reason is not None:
                card_no = self._issue(state, sale, stamp, reason)
                status = "active"
                spend = self._window(state, rules.upgrade_window_months,
                                     _window_start(at, rules.upgrade_window_months), 1)
                self._set_tier(state, None, rules.tier_for(paid, spend).code, stamp, f"card issued ({reason})")
        elif card_no is not None:
            spend = self._window(state, rules.upgrade_window_months,
                                 _window_start(at, rules.upgrade_window_months), 1)
            reached = rules.tier_for(paid, spend)
            if rules.tier_rank(reached.code) > rules.tier_rank(state.tier):
                self.report.upgrades += 1
                self._set_tier(state, state.tier, reached.code, stamp,
                               f"upgrade: purchase {format_fen(paid)}, {rules.upgrade_window_months}-month "
                               f"spend {format_fen(spend)}")
        points = rules.points_for(paid) if card_no is not None and status == "active" else 0
        self.pending["purchases"].append((
            purchase_id, sale.receipt, state.id, card_no, sale.store, stamp, sale.regular, sale.promo, paid,
            int(sale.paid is not None), str(rate) if rate is not None else None, points, rules.version,
            self.operator, self.recorded_at))
        if points:
            lot_id = self._take_id("point_lots")
            usable = (iso(datetime.combine(at.date(), datetime.min.time()) + timedelta(days=rules.usable_after_days))
                      if rules.usable_after_days else stamp)
            self.pending["lots"].append((lot_id, card_no, purchase_id, points, stamp, usable,
                                         self._expiry(at), points))
            self.pending["ledger"].append((self._take_id("ledger"), card_no, lot_id, "earn", points, stamp,
                                           self.operator, purchase_id, None))
        self.in_batch[sale.receipt] = content if cid is not None else (state.id, *content[1:])
        self.report.inserted += 1

    def _expiry(self, at: datetime) -> str:
        """The lot expiry of points earned at `at` (one per year for calendar-year expiry)."""
        if self.rules.expiry == "calendar_year":
            key = at.year
            value = self._expiries.get(key)
            if value is None:
                value = self._expiries[key] = iso(self.rules.lot_expiry(at))
            return value
        return iso(self.rules.lot_expiry(at))

    def _new_prospect(self, sale: sales.Sale, stamp: str) -> _Customer:
        cid = self._take_id("customers")
        state = _Customer(cid)
        self.customers[cid] = state
        self.by_phone[sale.phone] = cid
        self.pending["customers"].append((cid, sale.phone, sale.store, stamp))
        return state

    def _issue(self, state: _Customer, sale: sales.Sale, stamp: str, reason: str) -> str:
        rules = self.rules
        region = rules.region_for(sale.store)
        if region not in self.sequences:
            row = self.conn.execute("SELECT last FROM card_sequences WHERE region = ?", (region,)).fetchone()
            self.sequences[region] = row[0] if row else 0
        sequence = self.sequences[region] + 1
        if sequence >= 10 ** rules.sequence_digits:
            raise Refused(f"region {region} has used all {10 ** rules.sequence_digits - 1} card numbers; "
                          "the import stopped (widen card.sequence_digits)", code="card_sequence_overflow")
        self.sequences[region] = sequence
        number = cards.make_number(rules, region, sequence)
        valid_to = iso(rules.card_valid_to(sale.at.date()))
        self.pending["cards"].append((number, state.id, region, sequence, stamp, valid_to,
                                      f"qualified: {reason}", stamp, stamp))
        state.card, state.status, state.valid_to, state.registration_from = number, "active", valid_to, stamp
        state.day = None
        self.by_card[number] = state.id
        self.report.cards_issued += 1
        return number

    def _set_tier(self, state, old, new, stamp, reason):
        state.tier = new
        self.pending["tier_set"].append((new, stamp, state.id))
        self.pending["tiers"].append((self._take_id("tier_changes"), state.id, old, new, stamp, reason, self.operator))

    def _slow(self, sale: sales.Sale, state: _Customer) -> None:
        """The exact path of `vip purchase`, for what the fast path does not model."""
        self._flush()
        sales.record_purchase(self.conn, self.rules, sale, self.now, self.operator)
        self.customers.pop(state.id, None)
        self.sequences.clear()
        self._ids()
        self.report.inserted += 1
        self.report.slow_path += 1

    def _flush(self) -> None:
        """Write what the rows so far produced, table by table in foreign-key order."""
        conn, pending = self.conn, self.pending
        conn.executemany("INSERT INTO customers(id, phone, store, created_at) VALUES (?, ?, ?, ?)",
                         pending["customers"])
        conn.executemany("INSERT INTO cards(card_no, customer_id, region, sequence, status, issued_at, valid_to, "
                         "reason, status_at, registration_from) VALUES (?, ?, ?, ?, 'active', ?, ?, ?, ?, ?)",
                         pending["cards"])
        conn.executemany(
            "INSERT INTO purchases(id, receipt, customer_id, card_no, store, purchased_at, regular, promo, paid, "
            "paid_given, discount_rate, points_earned, rules_version, operator, recorded_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", pending["purchases"])
        conn.executemany("INSERT INTO point_lots(id, card_no, purchase_id, points, earned_at, usable_from, "
                         "expires_at, remaining) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", pending["lots"])
        conn.executemany("INSERT INTO ledger(id, card_no, lot_id, kind, delta, at, operator, purchase_id, reason) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", pending["ledger"])
        conn.executemany("INSERT INTO tier_changes(id, customer_id, from_tier, to_tier, at, reason, operator) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?)", pending["tiers"])
        conn.executemany("UPDATE customers SET tier = ?, tier_since = ? WHERE id = ?", pending["tier_set"])
        conn.executemany("INSERT INTO card_sequences(region, last) VALUES (?, ?) "
                         "ON CONFLICT(region) DO UPDATE SET last = excluded.last", list(self.sequences.items()))
        for rows in pending.values():
            rows.clear()


class _Windows:
    """months -> counted spend, worked out only for the windows the rules actually ask about."""

    __slots__ = ("importer", "state", "at")

    def __init__(self, importer, state, at):
        self.importer, self.state, self.at = importer, state, at

    def get(self, months: int, default: int = 0) -> int:
        return self.importer._window(self.state, months, _window_start(self.at, months), 2)


def finish(conn, report: Report, path: str, now: datetime, operator: str) -> None:
    """One audit row for the whole import."""
    conn.execute("BEGIN IMMEDIATE")
    audit(conn, now, operator, "import purchases", path, inserted=report.inserted, duplicates=report.duplicates,
          rejected=report.rejected, cards_issued=report.cards_issued)
    conn.execute("COMMIT")
