"""The purchases import's engine: every rule of `vip purchase`, row after row, in memory.

The rules are the rules module's and the domain's (rules.discount_rate and price, counted,
may_qualify and qualification_reason, may_rise and tier_for, points_for, lot_usable_from and
lot_expiry, cards.status_until, archive.is_registered): the engine keeps their answers per
customer and per day, never works them out itself, and the state after an import equals the
state after feeding the rows one by one through `vip purchase` (tests/cli/test_import_oracle.py,
all six profiles).

- State. Each customer's card, tier and recent spend live in memory (io/purchase_state.py); a
  window is only summed when rules.may_qualify / may_rise say its bound could reach a threshold.
- Writes. The rows go to a writer (io/writer.py), in a second process for a large file, so that
  SQLite's work runs on the other core; one executemany per table, in BEGIN IMMEDIATE
  transactions of about two seconds (another terminal's write waits two seconds at worst). A
  first load defers one index to its end. What the engine does not model (a card carrying points
  debt, a lost card used by phone, a full card region) goes through `sales.record_purchase`
  itself, in the writer.
- Order. The rules need the rows in time order (io/timeorder.py): a file found out of order
  before the first commit is rolled back, nothing committed, and read again sorted (OutOfOrder).

Transactions commit one after the other, so an import killed at any point leaves whole
transactions; the receipts make a re-run skip what is there and complete the rest.
"""

import gc
import time
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from vipcli import applications, cards, sales
from vipcli.dates import is_birthday, iso
from vipcli.errors import DatabaseProblem, Refused, VipError
from vipcli.io.purchase_state import Customer, Customers, Day, Windows, add_event, kept, window_sum
from vipcli.rules import Rules
from vipcli.i18n import _

_fromisoformat = datetime.fromisoformat


@dataclass
class Report:
    rows: int = 0
    inserted: int = 0
    duplicates: int = 0
    rejected: int = 0
    cards_issued: int = 0
    upgrades: int = 0
    slow_path: int = 0  # rows applied by sales.record_purchase (points debt, a lost card, a full region)
    applications: int = 0  # opened, under review rules (vipcli/applications.py)


class PurchaseImport:
    def __init__(self, conn, rules: Rules, now: datetime, operator: str, writer,
                 tx_rows: int = 100_000, tx_seconds: float = 2.0, defer_index: bool = False,
                 before_commit=None):
        """conn: this process's connection, for reads (it sees committed data only); writer: a
        `writer.Writer` or `writer.WriterProcess`, which owns the write transactions;
        before_commit: called once, before the first commit (it may raise OutOfOrder)."""
        self.conn = conn
        self.before_commit = before_commit
        self.writer = writer
        self.defer_index = defer_index  # asked of the writer with the first transaction
        self.rules = rules
        self.now = now
        self.operator = operator
        self.tx_rows = tx_rows
        self.tx_seconds = tx_seconds
        self.report = Report()
        self.people = Customers(conn, rules)  # the buyers met, and how to find the others
        self.sequences: dict[str, int] = {}
        self.full_regions: set[str] = set()  # regions with no card number left (their rows go slow)
        self.open = False
        self.loaded = False
        # the (receipt, store) this transaction wrote (not yet visible to the chunk's look-up of
        # existing ones); one seen again is read back from the database
        self.in_tx: set[tuple] = set()
        self.tier_sets: dict[int, tuple] = {}  # customer id -> (tier, since), written before the commit
        self.days: dict[str, Day] = {}
        self.months = {w.months for w in rules.qualify_windows} | {rules.upgrade_window_months}
        self.review = rules.card_issue == "review"  # qualifying opens an application, not a card
        self.new_stores: dict[int, str | None] = {}  # under review rules: the store of each customer it made
        # rules.discount_rate's answers, by (tier, card status, birthday today)
        self.rates: dict[tuple, Decimal | None] = {}
        self.lot_texts: dict[datetime, str] = {}  # iso() of lot dates (see _text)
        self._new_pending()

    # --- state ----------------------------------------------------------------------------------

    def _load_maps(self):
        self.sequences.clear()
        self.people.reload()
        # the customers with an application waiting (under review rules: applications.on_qualifying)
        self.applied = applications.waiting(self.conn) if self.review else set()

    def _day(self, text: str) -> Day:
        day = self.days.get(text)
        if day is None:
            day = self.days[text] = Day(date.fromisoformat(text), self.months)
        return day

    # --- transactions and chunks ----------------------------------------------------------------

    def run(self, chunks, rejects, progress=None) -> Report:
        """chunks: (lines read, good rows, bad rows), as `parsed_chunks` makes them, in time order.
        rejects(number, values or None, reason): None for a row the file must be read again for."""
        # The rows make no reference cycles, and the collector's passes over a hundred thousand
        # customers' state would cost more than a fifth of the import: it is paused meanwhile.
        collecting = gc.isenabled()
        gc.disable()
        try:
            for lines, good, bad in chunks:
                self._chunk(good, bad, rejects)
                if progress:
                    progress(lines)
            if self.open:
                self._commit()
            self._forget()  # before the writer builds a deferred index: the two peaks never meet
            self.writer.close()
        except BaseException:
            self.open = False
            self.writer.abandon()  # the open transaction is rolled back
            raise
        finally:
            if collecting:
                gc.enable()
        return self.report

    def _forget(self) -> None:
        """Drop what the import kept in memory (its report stays)."""
        self.people.forget()
        for held in (self.in_tx, self.days):
            held.clear()

    def _begin(self) -> None:
        changed = self.writer.begin(self.defer_index)
        self.defer_index = False
        self.open = True
        self.tx_started = time.monotonic()
        self.tx_count = 0
        if changed or not self.loaded:
            self._load_maps()  # another process wrote between our transactions: forget what we knew
            self.loaded = True
        self._ids()
        # The greatest receipt committed: no other process commits while this transaction holds the
        # write lock (and this one's rows are in in_tx), so it is read once per transaction.
        self.greatest_receipt = self.conn.execute("SELECT MAX(receipt) FROM purchases").fetchone()[0]
        limit = 10 ** self.rules.sequence_digits  # (another process may have used the last numbers meanwhile)
        self.full_regions.update(region for region, last in self.conn.execute(
            "SELECT region, last FROM card_sequences WHERE last + 1 >= ?", (limit,)))
        if self.people.fresh is None:
            self.people.fresh = self.next_purchase == 1
        elif changed:
            self.people.fresh = False

    def _commit(self) -> None:
        if self.before_commit is not None:
            self.before_commit()  # an exception here: nothing was committed, the writer rolls back
            self.before_commit = None
        self._set_tiers()
        self.writer.commit()
        self.open = False

    def _new_pending(self) -> None:
        """Rows for the writer; a purchase's last three columns (rules version, operator, time
        recorded) are the same for the whole import and are added by the writer."""
        self.pending = {name: [] for name in ("customers", "cards", "purchases", "lots", "ledger", "tiers",
                                              "applications", "application_receipts")}
        self.purchases = self.pending["purchases"]

    def _chunk(self, rows, bad, rejects) -> None:
        if not self.open:
            self._begin_clean()
        report = self.report
        report.rows += len(rows) + len(bad)
        for number, values, reason in bad:
            report.rejected += 1
            rejects(number, values, reason)
        self.people.prefetch(rows)
        receipts = [row[1] for row in rows]
        self._apply(rows, self._existing(receipts), rejects)
        self._flush()
        self.tx_count += len(rows) + len(bad)
        if self.tx_count >= self.tx_rows or time.monotonic() - self.tx_started >= self.tx_seconds:
            self._commit()

    def _begin_clean(self) -> None:
        """A transaction after a commit: what the last one wrote, the look-up of a chunk finds."""
        self.in_tx.clear()
        self._begin()

    def _ids(self):
        """The next free id of each table (the writer holds the write lock: nobody else adds any)."""
        conn = self.conn
        (self.next_customer, self.next_purchase, self.next_lot, self.next_entry, self.next_change,
         self.next_application) = (
            conn.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()[0] + 1
            for table in ("customers", "purchases", "point_lots", "ledger", "tier_changes", "applications"))

    def _existing(self, receipts: list[str]) -> dict:
        """The recorded purchases among `receipts` (committed ones: this transaction's are in
        in_tx), by (receipt, store or ""): a receipt number is unique per store (sales.recorded)."""
        found = {}
        if not receipts:
            return found
        # A POS numbers its receipts in order: when every receipt of the chunk sorts after the
        # greatest one recorded (one step down the receipt index; SQLite compares text as Python
        # does), none is recorded, and the look-up of 2,500 receipts is spared.
        greatest = self.greatest_receipt
        if greatest is None or min(receipts) > greatest:
            return found
        for i in range(0, len(receipts), 900):
            chunk = receipts[i:i + 900]
            for row in self.conn.execute(
                f"SELECT receipt, customer_id, regular, promo, paid, paid_given, store, purchased_at "
                f"FROM purchases WHERE receipt IN ({','.join('?' * len(chunk))})", chunk):
                found[row[0], row[6] or ""] = tuple(row)[1:]
        return found

    # --- one row -------------------------------------------------------------------------------

    def _apply(self, rows: list, existing: dict, rejects) -> None:
        """Every rule, row after row: the common case inline (this loop is the import's hot path,
        hence the local names), the rare ones in the methods below."""
        rules, report, in_tx = self.rules, self.report, self.in_tx
        by_phone, known, days = self.people.by_phone.get, self.people.known, self.days.get
        counted_of, price, points_for = rules.counted, rules.price, rules.points_for
        may_qualify, may_rise = rules.may_qualify, rules.may_rise
        for row in rows:
            try:
                number, receipt, card_given, phone, store, stamp, moment, regular, promo, given = row
                cid = by_phone(int(phone)) if card_given is None else self._card_owner(card_given)
                key = (receipt, store or "")
                if ((existing and key in existing) or key in in_tx) and self._repeat(cid, row, key, existing):
                    continue  # the same purchase again (a different one raised)
                if cid is None:
                    state = self._new_prospect(phone, store, stamp)
                else:
                    state = (known[cid] if cid < len(known) else None) or self.people.get(cid, stamp)
                    if card_given is not None and state.card != card_given:
                        self._wrong_card(card_given)
                day = days(stamp[:10]) or self._day(stamp[:10])
                status = None
                if state.card is not None:
                    status = state.effective if day.ordinal <= state.until else self._status(state, day)
                    if status == "blocked" and card_given is None:
                        self._slow(row, state)  # a member known by phone earns while the card is lost
                        continue
                    if status in cards.REFUSES_PURCHASE:
                        raise VipError(_("card {card} is {status}; purchase refused").format(
                                           card=state.card, status=cards.status_label(status)))
                    if status == "active" and state.debt:
                        self._slow(row, state)
                        continue
                rate = None  # a given `paid` (POS data) is taken as is, as sales.price does
                if given is not None:
                    paid = given
                else:
                    if status is not None:
                        rate = self._rate(state, status, day)
                    paid = price(regular, promo, rate)
                if self.full_regions and state.card is None and not state.ended and self._region_full(store):
                    # No card number left to issue: the row goes the way of `vip purchase`, refused
                    # (rejected) if it qualifies, recorded if it does not; the other rows go on.
                    self._slow(row, state, refusable=True)
                    continue
                purchase_id = self.next_purchase
                self.next_purchase = purchase_id + 1
                seconds = day.base + moment
                counted = counted_of(paid, promo)
                add_event(state, seconds, paid, counted)
                card_no = state.card
                if card_no is None:
                    # (no window holds more than all the events kept: a bound that spares the sums)
                    if not state.ended and may_qualify(counted, kept(state, 2)):
                        card_no = self._qualify(state, store, stamp, paid, counted, seconds, day, purchase_id)
                        status = "active" if card_no else None
                elif may_rise(state.tier, paid, kept(state, 1)):
                    self._upgrade(state, paid, seconds, day, stamp)
                points = points_for(paid) if card_no is not None and status == "active" else 0
                self.purchases.append((purchase_id, receipt, state.id, card_no, store, stamp, regular, promo,
                                       paid, 0 if given is None else 1, None if rate is None else str(rate),
                                       points))
                in_tx.add(key)
                if points:
                    self._earn(card_no, purchase_id, points, stamp)
            except VipError as exc:
                if exc.code == "card_sequence_overflow" or isinstance(exc, DatabaseProblem):
                    raise  # not this row's fault: stop, the transaction rolls back
                report.rejected += 1
                rejects(row[0], None, exc.message)  # the file is read again for its cells

    def _card_owner(self, card_no: str) -> int:
        cid = self.people.holder(card_no)
        if cid is None:
            raise VipError(_("card {card_no} is not on record").format(card_no=card_no))
        return cid

    def _wrong_card(self, card_no: str) -> None:
        status = self.conn.execute("SELECT status FROM cards WHERE card_no = ?", (card_no,)).fetchone()
        raise VipError(_("card {card_no} is {value}; purchase refused").format(
                           card_no=card_no, value=status[0] if status else 'unknown'))

    def _repeat(self, cid, row: tuple, key: tuple, existing: dict) -> bool:
        """A receipt of this store maybe recorded already (`key`: receipt, store): True for the same
        purchase again (a duplicate), an error for a different one, False when it was not recorded
        after all."""
        _number, receipt, _card, _phone, _store, stamp, _moment, regular, promo, given = row
        earlier = existing.get(key) if existing else None
        if earlier is None:
            earlier = self._written(key)
            if earlier is None:
                return False  # (not recorded after all)
            existing[key] = earlier
        cid0, regular0, promo0, paid0, given0, _store0, when0 = earlier
        if not (cid0 == cid and regular0 == regular and promo0 == promo and given0 == (given is not None)
                and when0 == stamp and (given is None or paid0 == given)):
            raise VipError(_("receipt {receipt} is already recorded with different content").format(receipt=receipt))
        self.report.duplicates += 1
        return True

    def _status(self, state: Customer, day: Day) -> str:
        """The card's state on `day` (cards.status_until), kept until the last day it holds: rows
        come in time order, so it is asked again only once that day has passed."""
        state.effective, until = cards.status_until(
            {"status": state.status, "valid_to": state.valid_to, "registration_from": state.registration_from},
            state.registered, self.rules, day.date)
        state.until = until.toordinal()
        return state.effective

    def _text(self, moment: datetime) -> str:
        """iso(moment), kept for the moments that come back (a calendar year's expiry)."""
        text = self.lot_texts.get(moment)
        if text is None:
            if len(self.lot_texts) > 10_000:
                self.lot_texts.clear()
            text = self.lot_texts[moment] = iso(moment)
        return text

    def _rate(self, state: Customer, status: str, day: Day) -> Decimal | None:
        """rules.discount_rate for this buyer today (an import never checks an ID), its answers
        kept by (tier, status, birthday today)."""
        key = (state.tier, status, state.birthday is not None and is_birthday(state.birthday, day.date))
        if key not in self.rates:
            self.rates[key] = self.rules.discount_rate(*key)  # InvalidInput: a tier these rules lack
        return self.rates[key]

    def _qualify(self, state: Customer, store, stamp: str, paid: int, counted: int, seconds: int,
                 day: Day, purchase_id: int) -> str | None:
        """第四条/第五条: the card a prospect's purchase earns, if it meets a rule; under review rules
        none, but an application (as applications.on_qualifying opens it)."""
        if self.review and state.id in self.applied:
            return None  # (its application waits: nothing to open, no card to issue)
        rules = self.rules
        reason = rules.qualification_reason(counted, Windows(state, seconds, day))
        if reason is None:
            return None
        if self.review:
            self._open_application(state, store, stamp, purchase_id, reason)
            return None
        card_no = self._issue(state, store, day, stamp, reason)
        spend = self._upgrade_spend(state, seconds, day)
        self._set_tier(state, None, rules.tier_for(paid, spend).code, stamp, cards.issue_reason(reason))
        return card_no

    def _open_application(self, state: Customer, store, stamp: str, purchase_id: int, reason: str) -> None:
        """applications.on_qualifying, for the writer: a customer with an application waiting keeps it."""
        if state.id in self.applied:
            return
        self.applied.add(state.id)
        application = self.next_application
        self.next_application += 1
        if store is None:  # the customer's own store, as the till's path takes it
            store = self.new_stores.get(state.id) if state.id in self.new_stores else self.conn.execute(
                "SELECT store FROM customers WHERE id = ?", (state.id,)).fetchone()[0]
        self.pending["applications"].append((application, state.id, reason, purchase_id, store, stamp,
                                             self.operator))
        self.pending["application_receipts"].append(
            applications.receipts_of(self.rules, application, purchase_id, state.id, reason, _fromisoformat(stamp)))
        self.report.applications += 1

    def _upgrade(self, state: Customer, paid: int, seconds: int, day: Day, stamp: str) -> None:
        rules = self.rules
        spend = self._upgrade_spend(state, seconds, day)
        reached = rules.tier_for(paid, spend)
        if rules.tier_rank(reached.code) > rules.tier_rank(state.tier):
            self.report.upgrades += 1
            self._set_tier(state, state.tier, reached.code, stamp, sales.upgrade_reason(rules, paid, spend))

    def _earn(self, card_no: str, purchase_id: int, points: int, stamp: str) -> None:
        """A lot and its ledger entry (ledger.earn; a card with debt went the slow path)."""
        lot_id = self.next_lot
        self.next_lot = lot_id + 1
        at = _fromisoformat(stamp)
        usable, expiry = self.rules.lot_usable_from(at), self.rules.lot_expiry(at)
        self.pending["lots"].append((lot_id, card_no, purchase_id, points, stamp,
                                     stamp if usable == at else self._text(usable), self._text(expiry), points))
        self.pending["ledger"].append((self.next_entry, card_no, lot_id, "earn", points, stamp, self.operator,
                                       purchase_id, None))
        self.next_entry += 1

    def _written(self, key: tuple) -> tuple | None:
        """A receipt (and store) this transaction may have written, seen again (rare): commit, read it
        back."""
        self._flush()
        self._commit()
        self._begin()
        return self._existing([key[0]]).get(key)

    def _upgrade_spend(self, state: Customer, seconds: int, day: Day) -> int:
        months = self.rules.upgrade_window_months
        return window_sum(state, months, seconds - day.back[months], 1)

    def _new_prospect(self, phone: str, store, stamp: str) -> Customer:
        cid = self.next_customer
        self.next_customer = cid + 1
        state = self.people.new(cid, phone)
        self.pending["customers"].append((cid, phone, store, stamp))
        if self.review:
            self.new_stores[cid] = store  # (an application's store, when its row names none)
        return state

    def _last_sequence(self, region: str) -> int:
        if region not in self.sequences:
            row = self.conn.execute("SELECT last FROM card_sequences WHERE region = ?", (region,)).fetchone()
            self.sequences[region] = row[0] if row else 0
        return self.sequences[region]

    def _region_full(self, store) -> bool:
        """Whether the region a card for this store would come from has no number left (the row
        loop asks only once some region is full)."""
        return self.rules.region_for(store) in self.full_regions

    def _issue(self, state: Customer, store, day: Day, stamp: str, reason: str) -> str:
        rules = self.rules
        region = rules.region_for(store)
        sequence = self._last_sequence(region) + 1
        if sequence >= 10 ** rules.sequence_digits:
            raise Refused(_("region {region} has used all {value} card numbers; the import stopped (widen "
                            "card.sequence_digits)").format(
                              region=region, value=10 ** rules.sequence_digits - 1), code="card_sequence_overflow")
        self.sequences[region] = sequence
        if sequence + 1 >= 10 ** rules.sequence_digits:
            self.full_regions.add(region)  # that was the last number
        number = cards.make_number(rules, region, sequence)
        valid_to = iso(rules.card_valid_to(day.date))
        self.pending["cards"].append((number, state.id, region, sequence, stamp, valid_to,
                                      cards.qualified_reason(reason), stamp, stamp))
        state.card, state.status = number, "active"
        state.valid_to, state.registration_from = self.people.share(valid_to), self.people.share(stamp[:10])
        state.until = -1
        self.people.by_card[number] = state.id
        self.report.cards_issued += 1
        return number

    def _set_tier(self, state, old, new, stamp, reason):
        state.tier = new
        self.people.settle(state)
        self.tier_sets[state.id] = (new, stamp)
        self.pending["tiers"].append((self.next_change, state.id, old, new, stamp, reason, self.operator))
        self.next_change += 1

    def _slow(self, row: tuple, state: Customer, refusable: bool = False) -> None:
        """The exact path of `vip purchase`, for what the fast path does not model: the writer runs
        it inside the transaction, which then commits so that this process can read the outcome.
        `refusable`: a full card region refuses this row only (its rejection reason)."""
        _number, receipt, card_no, phone, store, stamp, _moment, regular, promo, given = row
        self._flush()
        self._set_tiers()  # sales.record_purchase reads the customer's tier
        try:
            self.writer.slow((receipt, card_no, phone, store, _fromisoformat(stamp), regular, promo, given))
        except VipError as exc:  # the row is rejected; the writer undid what it began
            if refusable and exc.code == "card_sequence_overflow":
                raise VipError(exc.message) from None  # (without the code that stops an import)
            raise
        self._commit()
        self.people.fresh = False  # the customer is read back from the database, purchases included
        self.people.keep(state.id, None)
        self.sequences.clear()
        self._begin()
        self.report.inserted += 1
        self.report.slow_path += 1

    def _set_tiers(self) -> None:
        """The customers' tiers set in this transaction: each customer's last, in id order (rows
        near one another in the table), once before the commit instead of once per change."""
        if self.tier_sets:
            self.writer.write({"tier_set": [(*self.tier_sets[cid], cid) for cid in sorted(self.tier_sets)]})
            self.tier_sets.clear()

    def _flush(self) -> None:
        """Hand what the rows so far produced to the writer, table by table in foreign-key order."""
        self.report.inserted += len(self.purchases)
        self.pending["sequences"] = list(self.sequences.items())
        self.writer.write(self.pending)
        self._new_pending()
