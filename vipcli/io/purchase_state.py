"""What the purchases import keeps between rows: each customer's card, tier and running totals
(read back from the database for the customers it meets), and the calendar facts of each day of
the file. Memory is the import's limit at a million rows
(200,000 customers), hence compact arrays of running totals, pruned to the longest window, in
32-bit values while they fit (half the memory of 64; a test holds the windows to a plain sum)."""

from array import array
from bisect import bisect_left
from datetime import date, datetime

from vipcli import cards
from vipcli.archive import REGISTRATION_FIELDS, is_registered
from vipcli.dates import iso, months_before
from vipcli.rules import Rules

_fromisoformat = datetime.fromisoformat


class Customer:
    """What the rules need to know about one buyer, kept between rows."""

    __slots__ = ("id", "card", "tier", "status", "valid_to", "registration_from", "registered",
                 "birthday", "events", "windows", "paid_base", "counted_base", "ended", "debt", "until",
                 "effective")
    stride = 3  # values per event

    def __init__(self, cid):
        self.id = cid
        self.card = None
        self.tier = None
        self.status = None
        self.valid_to = None
        self.registration_from = None
        self.registered = False
        self.birthday = None
        # flat triples: seconds (from EPOCH), then the running totals of paid (net) and of what
        # counts toward qualification, up to and including this purchase (pairs for a
        # PaidCustomer); 32-bit while every value fits (add_event), half the memory of 64. The
        # totals now are the last event's (no int of their own: 11 MB at 180,000 customers).
        self.events = array("i")  # None once no window will be asked of this customer again
        self.windows = None  # [months, index of the first event inside, ...] once a window is asked for
        self.paid_base = self.counted_base = 0  # the running totals before the first event kept (now, if none is)
        self.ended = False
        self.debt = False
        self.effective = None  # the card's state (cards.effective_status) ...
        self.until = -1  # ... up to this day (an ordinal), when time changes it next


class PaidCustomer(Customer):
    """A customer whose qualification counts everything paid (promo goods too): what counts is
    what was paid, so the events are pairs (seconds, paid total), a third less memory."""

    __slots__ = ()
    stride = 2


class Day:
    """Calendar facts about one day of the file, worked out once per day."""

    __slots__ = ("date", "ordinal", "base", "back")

    def __init__(self, day: date, months: set[int]):
        midnight = datetime.combine(day, datetime.min.time())
        self.date = day
        self.ordinal = day.toordinal()
        self.base = (self.ordinal - EPOCH) * 86400
        # seconds between a moment of this day and the same moment `m` calendar months before
        # (months_before keeps the time of day: 31 August - 6 months = 28/29 February)
        self.back = {m: (day - months_before(midnight, m).date()).days * 86400 for m in months}


EPOCH = date(2000, 1, 1).toordinal()  # seconds are counted from its start: 32 bits hold 1932-2068


def seconds_of(stamp: str) -> int:
    """'2026-05-01T10:00:00' -> seconds since EPOCH (only compared, never shown)."""
    at = _fromisoformat(stamp)
    return (at.toordinal() - EPOCH) * 86400 + at.hour * 3600 + at.minute * 60 + at.second


def window_sum(state: Customer, months: int, start: int, column: int) -> int:
    """Sum of `column` (1 paid, 2 counted) over the events after `start`: the running total
    now less the one before the window's first event. Rows come in time order, so a window's
    start only moves forward."""
    events, windows, stride = state.events, state.windows, state.stride
    if windows is None:
        windows = state.windows = []
    at = 0
    while at < len(windows) and windows[at] != months:
        at += 2
    if at == len(windows):
        windows += (months, 0)
    index, size = windows[at + 1], len(events)
    while index < size and events[index] <= start:
        index += stride
    windows[at + 1] = index
    offset = column if stride == 3 else 1  # counted is paid when there is no counted column
    if index:
        before = events[index - stride + offset]
    else:
        before = state.paid_base if column == 1 else state.counted_base
    total = events[size - stride + offset] - before if size else 0
    if size > 3000:  # drop what every window has left behind, rarely: O(1) per row
        first = min(windows[1::2])
        if first > size // 2:
            state.paid_base = events[first - stride + 1]
            state.counted_base = events[first - 1]  # the paid total itself when stride is 2
            del events[:first]
            windows[1::2] = [i - first for i in windows[1::2]]
    return total


def kept(state: Customer, column: int) -> int:
    """The sum of `column` (1 paid, 2 counted) over every event kept: no window holds more. 0 for a
    customer who keeps none (no window will be asked of them)."""
    events = state.events
    if not events:
        return 0
    return events[-1 if column == 2 or state.stride == 2 else -2] - (state.paid_base if column == 1 else state.counted_base)


def add_event(state: Customer, seconds: int, paid: int, counted: int) -> None:
    events = state.events
    if events is None:
        return
    if state.stride == 3:
        values = ((seconds, events[-2] + paid, events[-1] + counted) if events
                  else (seconds, state.paid_base + paid, state.counted_base + counted))
    else:
        values = (seconds, (events[-1] if events else state.paid_base) + paid)
    try:
        events.extend(values)
    except OverflowError:  # a value past 32 bits (a total over 21 million yuan): 64-bit from now on
        del events[len(events) - len(events) % state.stride:]  # (what the failed extend put in)
        state.events = events = array("q", events)
        events.extend(values)


class PhoneBook:
    """phone -> customer id, the phone as a number (a mobile's 11 digits, never a leading 0). The
    database's customers in two arrays sorted by phone, found by bisection: 12 bytes a customer
    where a dict of ints takes about 100 (20 MB at 200,000 customers); the customers this import
    creates in a dict."""

    __slots__ = ("phones", "ids", "added")

    def __init__(self):
        self.phones, self.ids, self.added = array("q"), array("q"), {}

    def read(self, rows) -> None:
        """The database's phones and ids, in phone order (this import's are among them)."""
        self.clear()
        phones, ids = self.phones, self.ids
        for phone, cid in rows:
            phones.append(phone)
            ids.append(cid)

    def get(self, phone: int) -> int | None:
        cid = self.added.get(phone)
        if cid is None:
            phones = self.phones
            at = bisect_left(phones, phone)
            if at < len(phones) and phones[at] == phone:
                return self.ids[at]
        return cid

    def __setitem__(self, phone: int, cid: int) -> None:
        self.added[phone] = cid

    def __bool__(self) -> bool:
        return bool(self.phones or self.added)

    def clear(self) -> None:
        del self.phones[:], self.ids[:]
        self.added.clear()


class Customers:
    """The buyers an import has met (their state), and how to find the others: phone and card
    number -> customer id, read again whenever another process wrote between two transactions;
    a customer met for the first time is read back with the rest of the chunk's."""

    def __init__(self, conn, rules: Rules):
        self.conn, self.rules = conn, rules
        # the state of each customer met, at its id (ids are dense: a list takes a seventh of a dict's
        # memory at 200,000 customers); None for one not met, or forgotten
        self.known: list[Customer | None] = []
        self.by_phone = PhoneBook()
        self.by_card: dict[str, int] = {}  # the cards this import issued, and all once a row names a card
        self.cards_read = False
        self.strangers = False  # customers in the database that this import has not met
        # No purchase was recorded before this import, and nobody else has written since: a
        # customer met for the first time has none (this import's are in memory), and the history
        # query is skipped; it would scan the table while a first load defers its index.
        self.fresh = None
        self.horizon = max([w.months for w in rules.qualify_windows] + [rules.upgrade_window_months])
        self.make = PaidCustomer if rules.count_promo else Customer
        # One copy of each tier, status and date text for all the customers that hold it (a few
        # hundred texts instead of one each for 200,000 customers).
        self.texts: dict[str, str] = {}

    def share(self, text):
        return text if text is None else self.texts.setdefault(text, text)

    def reload(self) -> None:
        self.known.clear()
        self.by_phone.read(self.conn.execute(
            "SELECT CAST(phone AS BIGINT) AS number, id FROM customers WHERE phone IS NOT NULL ORDER BY number"))
        self.by_card.clear()
        self.cards_read = False
        self.strangers = bool(self.by_phone) or self.conn.execute("SELECT EXISTS (SELECT 1 FROM cards)").fetchone()[0]

    def holder(self, card_no: str) -> int | None:
        """Who holds this card number. Every number is read from the database when a row first names
        a card: a file of phones only never does (130,000 numbers in a dict are 13 MB)."""
        if not self.cards_read:
            self.by_card.update(self.conn.execute("SELECT card_no, customer_id FROM cards"))
            self.cards_read = True
        return self.by_card.get(card_no)

    def forget(self) -> None:
        for held in (self.known, self.by_phone, self.by_card):
            held.clear()

    def met(self, cid: int) -> Customer | None:
        known = self.known
        return known[cid] if cid < len(known) else None

    def keep(self, cid: int, state: Customer | None) -> None:
        known = self.known
        if cid >= len(known):
            known.extend([None] * (cid + 1 - len(known)))
        known[cid] = state

    def new(self, cid: int, phone: str) -> Customer:
        """A prospect this import creates."""
        state = self.make(cid)
        self.keep(cid, state)
        self.by_phone[int(phone)] = cid
        return state

    def get(self, cid: int, stamp: str) -> Customer:
        """A customer this import has not met yet (the chunk's look-up missed it), read back."""
        state = self.met(cid)
        if state is None:
            self.load([cid], _fromisoformat(stamp))
            state = self.met(cid)
        return state

    def prefetch(self, rows: list) -> None:
        """The customers a chunk names that this import has not met yet, read with a few queries
        for the whole chunk instead of four per customer."""
        if not self.strangers:
            return  # every customer there is was made by this import, and is in memory
        by_phone, holder, met = self.by_phone, self.holder, self.met
        wanted = {cid for cid in (by_phone.get(int(row[3])) if row[2] is None else holder(row[2])
                                  for row in rows) if cid is not None and met(cid) is None}
        if wanted:
            self.load(sorted(wanted), _fromisoformat(rows[0][5]))  # since the chunk's first (earliest) row

    def load(self, ids: list[int], since: datetime) -> None:
        """Customers' state from the database: tier, registration and birthday; the latest live
        card (as cards.live_card), whether it carries debt, or whether a membership ended; and the
        purchases inside the longest window before `since`."""
        conn, live = self.conn, ",".join("?" * len(cards.LIVE))
        start = iso(months_before(since, self.horizon))
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            marks = ",".join("?" * len(part))
            states = {}
            for row in conn.execute(
                    f"SELECT id, tier, {', '.join(REGISTRATION_FIELDS)} FROM customers WHERE id IN ({marks})", part):
                state = states[row["id"]] = self.make(row["id"])
                state.tier = self.share(row["tier"])
                state.registered = is_registered(row)
                state.birthday = date.fromisoformat(row["birthday"]) if row["birthday"] else None
            for card in conn.execute(f"SELECT * FROM cards WHERE customer_id IN ({marks}) AND status IN ({live}) "
                                     "ORDER BY issued_at DESC", (*part, *cards.LIVE)):
                state = states[card["customer_id"]]
                if state.card is None:  # the latest live card
                    self.take_card(state, card)
            holders = {r[0] for r in conn.execute(
                f"SELECT DISTINCT customer_id FROM cards WHERE customer_id IN ({marks})", part)}
            numbers = [state.card for state in states.values() if state.card is not None]
            debts = {r[0] for r in conn.execute(
                f"SELECT DISTINCT card_no FROM point_lots WHERE remaining < 0 AND card_no IN "
                f"({','.join('?' * len(numbers))})", numbers)} if numbers else set()
            for cid, state in states.items():
                if state.card is not None:
                    state.debt = state.card in debts
                else:
                    state.ended = cid in holders
            if not self.fresh:  # else no purchase of theirs is recorded yet
                for cid, stamp, net, promo in conn.execute(
                        f"SELECT customer_id, purchased_at, paid - refunded, promo FROM purchases WHERE customer_id "
                        f"IN ({marks}) AND purchased_at > ? ORDER BY customer_id, purchased_at, id", (*part, start)):
                    add_event(states[cid], seconds_of(stamp), net, self.rules.counted(net, promo))
            for cid, state in states.items():
                self.settle(state)
                self.keep(cid, state)

    def settle(self, state: Customer) -> None:
        """A customer no window will be asked of again (top tier: no upgrade left; membership
        ended: no card again) keeps no events: the heaviest buyers are those, so this is most
        of the import's memory. Tiers only rise during an import."""
        if state.ended or (state.card is not None and self.rules.is_top_tier(state.tier)):
            state.events = state.windows = None

    def take_card(self, state: Customer, card) -> None:
        state.card = card["card_no"]
        state.status = self.share(card["status"])
        state.valid_to = self.share(card["valid_to"])
        # (only the day counts: cards.registration_ends)
        state.registration_from = self.share((card["registration_from"] or "")[:10] or None)


class Windows:
    """months -> counted spend, worked out only for the windows the rules actually ask about."""

    __slots__ = ("state", "seconds", "day")

    def __init__(self, state, seconds, day):
        self.state, self.seconds, self.day = state, seconds, day

    def get(self, months: int, default: int = 0) -> int:
        return window_sum(self.state, months, self.seconds - self.day.back[months], 2)

