"""The policy as data: `Rules` (read from a profile by vipcli/rulefile.py), and the pure functions
that answer policy questions (does this qualify, which tier, which rate, how many points, when do
they expire, when is a card valid to). No I/O, no clock: times are passed in.

Every number lives in the profile, with a comment naming its source article; code holds none.
"""

from dataclasses import dataclass, field
from functools import cached_property
from datetime import date, datetime, timedelta
from decimal import Decimal

from vipcli.dates import months_after, months_before, start_of_next_year
from vipcli.errors import InvalidInput
from vipcli.money import apply_rate, format_fen
from vipcli.i18n import _

CHANNELS = ("phone", "visit", "sms", "email", "letter")
CHANNEL_NAMES = {"电话": "phone", "上门": "visit", "短信": "sms", "邮件": "email", "信函": "letter"}  # as a clerk types them
NO_EXPIRY = date(9999, 12, 31)  # the validity of a card whose profile has no renewal
MESSAGE_KINDS = ("card_issued", "birthday", "renewal")
# The archive's fields a profile may require before a card application is approved (review_requires).
ARCHIVE_FIELDS = ("gender", "name", "birthday", "phone", "id_number", "email", "address")
MESSAGE_FIELDS = ("name", "card_no", "valid_to", "discount", "store")


def channel_code(text: str) -> str:
    """A follow-up channel typed in English or Chinese (电话, 上门...) -> its code."""
    value = text.strip().lower() if isinstance(text, str) else ""
    value = CHANNEL_NAMES.get(value, value)
    if value not in CHANNELS:
        raise InvalidInput(_("channel: {text!r} must be one of {value} ({value2})").format(
                               text=text,
                               value=', '.join(CHANNELS),
                               value2=', '.join(CHANNEL_NAMES)), code="bad_channel")
    return value


@dataclass(frozen=True)
class Window:
    months: int
    amount: int


@dataclass(frozen=True)
class Tier:
    code: str
    name: str
    rate: Decimal
    single_purchase: int
    spend: int
    gifts_per_year: int = 0  # yearly gift allowance (the clinic's care packages)


@dataclass(frozen=True)
class Contact:
    """One way a class may be followed up: by `channel` at least every `months` months."""

    channel: str
    months: int


@dataclass(frozen=True)
class CustomerClass:
    code: str
    min_purchases: int
    min_spend: int
    contacts: tuple[Contact, ...]  # any one of them kept up satisfies the follow-up (第三章 第二条 "或")

    @property
    def channel(self) -> str:
        """The channel asked for first (what the follow-up list shows)."""
        return self.contacts[0].channel


@dataclass(frozen=True)
class Reward:
    code: str
    name: str
    points: int
    value: int


@dataclass(frozen=True)
class Rules:
    name: str
    description: str
    max_amount: int
    qualify_single: int | None  # None: no single purchase qualifies (the clinic: a card on registration)
    qualify_windows: tuple[Window, ...]
    count_promo: bool
    card_on_registration: bool  # a card once the registration fields are complete (the clinic, 003 2.1)
    registration_days: int | None  # None: no registration window (a card has full rights from issue)
    birthday_rate: Decimal
    birthday_requires_id_check: bool
    points_per_yuan: int
    expiry: str
    validity_months: int
    redeem_months: tuple[int, ...]
    usable_after_days: int
    region_digits: int
    sequence_digits: int
    check_digit: str
    default_region: str
    renewal_month: int | None  # None: cards do not expire, nothing to renew
    store_regions: dict
    hold_months: int
    upgrade_window_months: int
    review_window_months: int
    tiers: tuple[Tier, ...]
    class_window_months: int
    no_contact_months: int
    classes: tuple[CustomerClass, ...]
    rewards: tuple[Reward, ...]
    messages: dict = field(default_factory=dict)
    card_issue: str = "at_once"  # or "review": qualifying opens an application that hq approves (56饰, 003)
    review_requires: tuple[str, ...] = ()  # the archive's fields an application needs before approval
    gift_name: str | None = None
    gift_value: int = 0
    text: str = field(repr=False, default="")
    version: int = 0

    # --- qualification and tiers -------------------------------------------------------------

    def counted(self, paid: int, promo: int) -> int:
        """What a purchase's paid amount counts toward qualification: all of it, or without the promo
        goods where the profile says `count_promo = false` (56饰: 特价商品不累计)."""
        return paid if self.count_promo else max(paid - promo, 0)

    def may_qualify(self, counted: int, spend_bound: int) -> bool:
        """Whether a prospect's purchase counting `counted` could qualify when no window can hold
        more than `spend_bound`: False spares summing the windows; qualification_reason decides."""
        least = self._least_window
        return ((self.qualify_single is not None and counted >= self.qualify_single)
                or (least is not None and spend_bound >= least))

    @cached_property
    def _least_window(self) -> int | None:
        return min((w.amount for w in self.qualify_windows), default=None)

    def qualification_reason(self, single_paid: int, window_spend: dict[int, int]) -> str | None:
        """Why a prospect qualifies now (a rule name), or None. `window_spend` maps months -> paid."""
        if self.qualify_single is not None and single_paid >= self.qualify_single:
            return f"single purchase >= {format_fen(self.qualify_single)}"
        for window in self.qualify_windows:
            if window_spend.get(window.months, 0) >= window.amount:
                return f"{window.months}-month spend >= {format_fen(window.amount)}"
        return None

    def qualifying_months(self, reason: str) -> int | None:
        """The window's months when qualification_reason gave a window's spend, else None."""
        for window in self.qualify_windows:
            if reason.startswith(f"{window.months}-month spend >= "):
                return window.months
        return None

    def tier(self, code: str) -> Tier:
        """A tier by its code or its name as the profile writes it (gold, 金卡)."""
        for tier in self.tiers:
            if code in (tier.code, tier.name):
                return tier
        raise InvalidInput(_("tier: {code!r} is not a tier of these rules ({value})").format(
                               code=code, value=self.tier_codes()))

    def tier_codes(self) -> str:
        return ", ".join(t.code for t in self.tiers)

    @cached_property
    def _ranks(self) -> dict:
        return {t.code: i for i, t in enumerate(self.tiers)}

    def tier_rank(self, code: str) -> int:
        return self._ranks.get(code, 0)

    def tier_for(self, single_paid: int, spend: int) -> Tier:
        """Highest tier that one purchase or the window spend reaches (the base tier at least)."""
        reached = self.tiers[0]
        for tier in self.tiers[1:]:
            if single_paid >= tier.single_purchase or spend >= tier.spend:
                reached = tier
        return reached

    def may_rise(self, code: str, paid: int, spend_bound: int) -> bool:
        """Whether a purchase of `paid` could lift tier `code` when the upgrade window can hold no
        more than `spend_bound`: False spares summing the window; tier_for decides."""
        single, spend = self._above[code] if code in self._above else (0, 0)  # an unknown tier: ask
        return (single is not None and paid >= single) or (spend is not None and spend_bound >= spend)

    @cached_property
    def _above(self) -> dict:
        """tier -> (least single purchase, least spend) of the tiers above it (None: the top)."""
        return {t.code: (min([u.single_purchase for u in self.tiers[i + 1:]], default=None),
                         min([u.spend for u in self.tiers[i + 1:]], default=None))
                for i, t in enumerate(self.tiers)}

    def is_top_tier(self, code: str) -> bool:
        return code in self._ranks and self.next_tier(code) is None

    def next_tier(self, code: str) -> Tier | None:
        rank = self.tier_rank(code)
        return self.tiers[rank + 1] if rank + 1 < len(self.tiers) else None

    # --- money and points ----------------------------------------------------------------------

    def discount_rate(self, tier: str, status: str | None, birthday_today: bool,
                      id_checked: bool = False) -> Decimal | None:
        """第九条/第十四条: the rate regular goods are paid at by a card in `status`: its tier's or,
        on the birthday (with the ID checked where the profile asks for it), the birthday rate
        when that is lower. None: no discount (no card, or one expired, lost or ended)."""
        if status not in ("active", "discount_only"):
            return None
        rate = self.tier(tier).rate
        if status == "active" and birthday_today and (id_checked or not self.birthday_requires_id_check):
            rate = min(rate, self.birthday_rate)
        return rate

    @staticmethod
    def price(regular: int, promo: int, rate: Decimal | None) -> int:
        """What is paid: regular goods at `rate` (half-up to the fen), promo goods at list price."""
        return (regular if rate is None else apply_rate(regular, rate)) + promo

    def points_for(self, paid: int) -> int:
        """第十一条: points per whole yuan paid."""
        return max(paid, 0) // 100 * self.points_per_yuan

    def lot_expiry(self, earned_at: datetime) -> datetime:
        """When points earned at `earned_at` stop counting (the first instant they are gone)."""
        if self.expiry == "calendar_year":
            return start_of_next_year(earned_at)
        return months_after(earned_at, self.validity_months)

    def lot_usable_from(self, earned_at: datetime) -> datetime:
        """When points earned at `earned_at` can first be redeemed: at once, or from the start of
        the day `usable_after_days` later (counter, 003: 积分次日起可用)."""
        if not self.usable_after_days:
            return earned_at
        return datetime.combine(earned_at.date(), datetime.min.time()) + timedelta(days=self.usable_after_days)

    def card_valid_to(self, issued: date) -> date:
        """31 December of the issue year; a card issued in the renewal month runs a year longer. A
        profile without renewal (its seed sets no validity): the card does not expire."""
        if self.renewal_month is None:
            return NO_EXPIRY
        return self.validity_end(issued.year + (1 if issued.month == self.renewal_month else 0))

    @staticmethod
    def validity_end(year: int) -> date:
        """第十六条: a card is valid to the end of a year (a renewal adds one)."""
        return date(year, 12, 31)

    def in_renewal_window(self, valid_to: date, today: date) -> bool:
        """第十七条 每年12月为换卡月: a card is renewed in the renewal month of its last year."""
        return self.renewal_month is not None and (today.year, today.month) == (valid_to.year, self.renewal_month)

    def renewal_notice_due(self, valid_to: date, today: date) -> bool:
        """Whether a card valid to `valid_to` gets the renewal notice today (第十七条 每年12月为换卡月):
        from the first day of the month before the renewal month of its last year, to that month's
        end. Never for a card that does not expire."""
        if self.renewal_month is None or valid_to == NO_EXPIRY:
            return False
        opens = months_before(datetime(valid_to.year, self.renewal_month, 1), 1).date()
        closes = months_after(datetime(valid_to.year, self.renewal_month, 1), 1).date()
        return opens <= today < closes

    def region_for(self, store: str | None) -> str:
        if store and store in self.store_regions:
            return self.store_regions[store]
        return self.default_region

    def customer_class(self, purchases: int, spend: int) -> CustomerClass:
        """第二条–第六条: the first class (highest first) whose count or spend is reached."""
        for level in self.classes[:-1]:
            if (level.min_purchases and purchases >= level.min_purchases) or (
                level.min_spend and spend >= level.min_spend
            ):
                return level
        return self.classes[-1]

    def follow_up_due(self, level: CustomerClass, known_since: datetime,
                      last_by_channel: dict[str, datetime]) -> datetime:
        """When a customer of class `level` is next due a follow-up (回访): once every way the class
        may be contacted has run out (a phone call a month "or" a visit every two months, 第三章
        第二条), counted from the last contact by that channel or, if none, from when the archive was
        known; and in any case `no_contact_months` after the last contact of any kind."""
        lapses = max(months_after(last_by_channel.get(c.channel, known_since), c.months) for c in level.contacts)
        last_any = max(last_by_channel.values(), default=known_since)
        return min(lapses, months_after(last_any, self.no_contact_months))

    def reward(self, code: str) -> Reward:
        for reward in self.rewards:
            if reward.code == code:
                return reward
        codes = ", ".join(r.code for r in self.rewards)
        raise InvalidInput(_("reward: {code!r} is not in the catalog ({codes})").format(
                               code=code, codes=codes), code="bad_reward")
