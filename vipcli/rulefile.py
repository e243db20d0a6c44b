"""Reading a rules profile (TOML) into `Rules`: every key checked, the first problem raised naming
it (`rules.validate`'s message), the built-in profiles in vipcli/profiles/."""

import tomllib
from decimal import Decimal, InvalidOperation
from importlib import resources

from vipcli.errors import InvalidInput
from vipcli.money import parse_yuan
from vipcli.rules import (ARCHIVE_FIELDS, CHANNELS, MESSAGE_FIELDS, MESSAGE_KINDS, Contact, CustomerClass, Reward,
                          Rules, Tier, Window)
from vipcli.i18n import _



class RulesError(InvalidInput):
    code = "bad_rules"


def profile_names() -> list[str]:
    """The built-in profiles shipped in vipcli/profiles/."""
    folder = resources.files("vipcli.profiles")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def default_text(profile: str = "store") -> str:
    try:
        return resources.files("vipcli.profiles").joinpath(f"{profile}.toml").read_text("utf-8")
    except FileNotFoundError:
        raise InvalidInput(_("profile: no built-in profile named {profile!r}").format(profile=profile)) from None


def parse(text: str, version: int = 0) -> Rules:
    """Validate a profile's TOML text; the first problem is raised naming its key."""
    try:
        data = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(_("rules: not valid TOML ({exc})").format(exc=exc)) from None
    reader = _Reader(data)
    rules = reader.build()
    return _replace(rules, text=text, version=version)


def _replace(rules: Rules, **changes) -> Rules:
    from dataclasses import replace

    return replace(rules, **changes)


class _Reader:
    """Reads a profile, refusing unknown keys, wrong types and out-of-range values by key path."""

    def __init__(self, data: dict):
        self.data = data

    def build(self) -> Rules:
        d = self.data
        self._only(d, "", {"profile", "limits", "qualification", "registration", "discount",
                           "points", "card", "tiers", "classes", "rewards", "messages", "gifts"})
        profile = self._table(d, "profile", {"name", "description"})
        limits = self._table(d, "limits", {"max_amount"})
        qual = self._table(d, "qualification", {"single_purchase", "count_promo", "windows", "on_registration",
                                                  "card_issue", "review_requires"})
        reg = self._table(d, "registration", {"window_days"})
        disc = self._table(d, "discount", {"birthday_rate", "birthday_requires_id_check"})
        pts = self._table(d, "points", {"per_yuan", "expiry", "validity_months", "redeem_months",
                                        "usable_after_days"})
        card = self._table(d, "card", {"region_digits", "sequence_digits", "check_digit",
                                       "default_region", "renewal_month", "store_regions"})
        tiers = self._table(d, "tiers", {"hold_months", "upgrade_window_months",
                                         "review_window_months", "levels"})
        classes = self._table(d, "classes", {"window_months", "no_contact_months", "levels"})

        region_digits = self._int(card, "card.region_digits", 1, 6)
        sequence_digits = self._int(card, "card.sequence_digits", 1, 12)
        default_region = self._region(card, "card.default_region", region_digits)
        stores = card.get("store_regions", {})
        if not isinstance(stores, dict):
            raise RulesError(_("card.store_regions: must be a table of store = region"))
        store_regions = {
            str(k): self._region(stores, f"card.store_regions.{k}", region_digits) for k in stores
        }

        windows = tuple(
            Window(self._int(w, f"qualification.windows[{i}].months", 1, 120),
                   self._money(w, f"qualification.windows[{i}].amount"))
            for i, w in enumerate(self._array(qual, "qualification.windows", {"months", "amount"},
                                              required=False))
        )
        tier_levels = self._array(tiers, "tiers.levels",
                                  {"code", "name", "rate", "single_purchase", "spend", "gifts_per_year"})
        tier_list = tuple(
            Tier(self._code(t, f"tiers.levels[{i}].code"), self._str(t, f"tiers.levels[{i}].name"),
                 self._rate(t, f"tiers.levels[{i}].rate"),
                 self._money(t, f"tiers.levels[{i}].single_purchase"),
                 self._money(t, f"tiers.levels[{i}].spend"),
                 self._int(t, f"tiers.levels[{i}].gifts_per_year", 0, 365) if "gifts_per_year" in t else 0)
            for i, t in enumerate(tier_levels)
        )
        self._check_tiers(tier_list)
        class_levels = self._array(classes, "classes.levels",
                                   {"code", "min_purchases", "min_spend", "contacts", "interval_months", "channel"})
        class_list = tuple(
            CustomerClass(
                self._code(c, f"classes.levels[{i}].code"),
                self._int(c, f"classes.levels[{i}].min_purchases", 0, 100000),
                self._money(c, f"classes.levels[{i}].min_spend"),
                self._contacts(c, f"classes.levels[{i}]"),
            )
            for i, c in enumerate(class_levels)
        )
        self._check_descending(class_list, "classes.levels")
        rewards = tuple(
            Reward(self._code(r, f"rewards[{i}].code"), self._str(r, f"rewards[{i}].name"),
                   self._int(r, f"rewards[{i}].points", 1, 10**9), self._money(r, f"rewards[{i}].value"))
            for i, r in enumerate(self._array(d, "rewards", {"code", "name", "points", "value"},
                                              required=False))
        )
        if len({r.code for r in rewards}) != len(rewards):
            raise RulesError(_("rewards: reward codes must be unique"))
        redeem_months = pts.get("redeem_months", list(range(1, 13)))
        if (not isinstance(redeem_months, list) or not redeem_months
                or any(type(m) is not int or not 1 <= m <= 12 for m in redeem_months)):
            raise RulesError(_("points.redeem_months: must be a non-empty list of months 1-12"))
        return Rules(
            name=self._str(profile, "profile.name"),
            description=self._str(profile, "profile.description"),
            max_amount=self._money(limits, "limits.max_amount", positive=True),
            qualify_single=self._money(qual, "qualification.single_purchase", positive=True)
            if "single_purchase" in qual else None,
            qualify_windows=windows,
            count_promo=self._bool(qual, "qualification.count_promo"),
            card_on_registration=self._bool(qual, "qualification.on_registration")
            if "on_registration" in qual else False,
            registration_days=self._int(reg, "registration.window_days", 0, 3650) if "window_days" in reg else None,
            birthday_rate=self._rate(disc, "discount.birthday_rate"),
            birthday_requires_id_check=self._bool(disc, "discount.birthday_requires_id_check"),
            points_per_yuan=self._int(pts, "points.per_yuan", 0, 1000),
            expiry=self._choice(pts, "points.expiry", ("calendar_year", "rolling")),
            validity_months=self._int(pts, "points.validity_months", 1, 240),
            redeem_months=tuple(sorted(set(redeem_months))),
            usable_after_days=self._int(pts, "points.usable_after_days", 0, 365),
            region_digits=region_digits,
            sequence_digits=sequence_digits,
            check_digit=self._choice(card, "card.check_digit", ("luhn", "none")),
            default_region=default_region,
            renewal_month=self._int(card, "card.renewal_month", 1, 12) if "renewal_month" in card else None,
            store_regions=store_regions,
            hold_months=self._int(tiers, "tiers.hold_months", 0, 240),
            upgrade_window_months=self._int(tiers, "tiers.upgrade_window_months", 1, 240),
            review_window_months=self._int(tiers, "tiers.review_window_months", 1, 240),
            tiers=tier_list,
            class_window_months=self._int(classes, "classes.window_months", 1, 240),
            no_contact_months=self._int(classes, "classes.no_contact_months", 1, 240),
            classes=class_list,
            rewards=rewards,
            messages=self._messages(d),
            card_issue=self._choice(qual, "qualification.card_issue", ("at_once", "review"))
            if "card_issue" in qual else "at_once",
            review_requires=self._fields(qual, "qualification.review_requires"),
            **self._gifts(d, tier_list),
        )

    def _fields(self, table: dict, path: str) -> tuple[str, ...]:
        """A list of the archive's fields (an application's required ones)."""
        value = table.get(path.rpartition(".")[2], [])
        if not isinstance(value, list) or any(v not in ARCHIVE_FIELDS for v in value):
            raise RulesError(_("{path}: must be a list of {fields}").format(path=path,
                                                                            fields=", ".join(ARCHIVE_FIELDS)))
        return tuple(value)

    def _gifts(self, d: dict, tiers: tuple[Tier, ...]) -> dict:
        if "gifts" not in d:
            if any(t.gifts_per_year for t in tiers):
                raise RulesError(_("gifts: a tier has gifts_per_year but there is no [gifts] table (name, value)"))
            return {}
        table = self._table(d, "gifts", {"name", "value"})
        return {"gift_name": self._str(table, "gifts.name"), "gift_value": self._money(table, "gifts.value")}

    def _messages(self, d: dict) -> dict:
        import string

        table = self._table(d, "messages", set(MESSAGE_KINDS))
        out = {}
        for kind in MESSAGE_KINDS:
            text = self._str(table, f"messages.{kind}")
            try:
                names = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
            except ValueError:
                raise RulesError(_("messages.{kind}: unbalanced braces").format(kind=kind)) from None
            unknown = names - set(MESSAGE_FIELDS)
            if unknown:
                raise RulesError(_("messages.{kind}: unknown placeholder {{{value}}} (use {value2})").format(
                                     kind=kind,
                                     value=sorted(unknown)[0],
                                     value2=', '.join(('{' + f + '}' for f in MESSAGE_FIELDS))))
            out[kind] = text
        return out

    # checks of whole lists

    @staticmethod
    def _check_tiers(tiers: tuple[Tier, ...]) -> None:
        if len({t.code for t in tiers}) != len(tiers):
            raise RulesError(_("tiers.levels: tier codes must be unique"))
        if tiers[0].single_purchase != 0 or tiers[0].spend != 0:
            raise RulesError(_("tiers.levels[0]: the first (base) tier must have thresholds 0.00"))
        for i in range(1, len(tiers)):
            low, high = tiers[i - 1], tiers[i]
            if high.single_purchase <= low.single_purchase or high.spend <= low.spend:
                raise RulesError(
                    _("tiers.levels[{i}]: thresholds overlap tier {code!r} (each tier must need more than the one "
                      "before)").format(
                        i=i, code=low.code)
                )
            if high.rate > low.rate:
                raise RulesError(_("tiers.levels[{i}].rate: a higher tier may not have a worse rate").format(i=i))

    @staticmethod
    def _check_descending(levels: tuple[CustomerClass, ...], key: str) -> None:
        if len({c.code for c in levels}) != len(levels):
            raise RulesError(_("{key}: class codes must be unique").format(key=key))
        for i in range(1, len(levels)):
            if (levels[i].min_purchases > levels[i - 1].min_purchases
                    or levels[i].min_spend > levels[i - 1].min_spend):
                raise RulesError(_("{key}[{i}]: classes must go from the highest to the lowest").format(
                                     key=key, i=i))
        last = levels[-1]
        if last.min_purchases or last.min_spend:
            raise RulesError(_("{key}[{value}]: the last class must take everyone (0 and 0.00)").format(
                                 key=key, value=len(levels) - 1))

    # field readers

    @staticmethod
    def _only(table: dict, path: str, allowed: set[str]) -> None:
        for key in table:
            if key not in allowed:
                where = f"{path}.{key}" if path else key
                raise RulesError(_("{where}: unknown key").format(where=where))

    def _contacts(self, level: dict, path: str) -> tuple[Contact, ...]:
        """`contacts = [{channel, months}, ...]` (any one kept up is enough); rules stored before
        this form have one `channel` and `interval_months`, read as a single contact."""
        if "contacts" not in level:
            return (Contact(self._choice(level, f"{path}.channel", CHANNELS),
                            self._int(level, f"{path}.interval_months", 1, 120)),)
        if "channel" in level or "interval_months" in level:
            raise RulesError(_("{path}: give contacts, or channel and interval_months, not both").format(path=path))
        items = self._array(level, f"{path}.contacts", {"channel", "months"})
        contacts = tuple(Contact(self._choice(c, f"{path}.contacts[{j}].channel", CHANNELS),
                                 self._int(c, f"{path}.contacts[{j}].months", 1, 120))
                         for j, c in enumerate(items))
        if len({c.channel for c in contacts}) != len(contacts):
            raise RulesError(_("{path}.contacts: a channel appears twice").format(path=path))
        return contacts

    def _table(self, parent: dict, key: str, allowed: set[str]) -> dict:
        value = parent.get(key)
        if not isinstance(value, dict):
            raise RulesError(_("{key}: missing table [{key}]").format(key=key))
        self._only(value, key, allowed)
        return value

    def _array(self, parent: dict, path: str, allowed: set[str], required: bool = True) -> list:
        key = path.rsplit(".", 1)[-1]
        value = parent.get(key, None if required else [])
        if not isinstance(value, list) or (required and not value):
            raise RulesError(_("{path}: must be a non-empty array of tables [[{path}]]").format(path=path))
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                raise RulesError(_("{path}[{i}]: must be a table").format(path=path, i=i))
            self._only(item, f"{path}[{i}]", allowed)
        return value

    @staticmethod
    def _get(table: dict, path: str):
        key = path.rsplit(".", 1)[-1]
        if key not in table:
            raise RulesError(_("{path}: missing").format(path=path))
        return table[key]

    def _int(self, table: dict, path: str, low: int, high: int) -> int:
        value = self._get(table, path)
        if type(value) is not int:
            raise RulesError(_("{path}: must be an integer").format(path=path))
        if not low <= value <= high:
            raise RulesError(_("{path}: {value} is out of range {low}..{high}").format(
                                 path=path, value=value, low=low, high=high))
        return value

    def _bool(self, table: dict, path: str) -> bool:
        value = self._get(table, path)
        if type(value) is not bool:
            raise RulesError(_("{path}: must be true or false").format(path=path))
        return value

    def _str(self, table: dict, path: str) -> str:
        value = self._get(table, path)
        if not isinstance(value, str) or not value.strip():
            raise RulesError(_("{path}: must be a non-empty string").format(path=path))
        return value

    def _code(self, table: dict, path: str) -> str:
        value = self._str(table, path)
        if not value.replace("_", "").isalnum() or not value.isascii() or len(value) > 20:
            raise RulesError(_("{path}: {value!r} must be a short ASCII code (letters, digits, _)").format(
                                 path=path, value=value))
        return value

    def _choice(self, table: dict, path: str, choices: tuple[str, ...]) -> str:
        value = self._get(table, path)
        if value not in choices:
            raise RulesError(_("{path}: {value!r} must be one of {value2}").format(
                                 path=path, value=value, value2=', '.join(choices)))
        return value

    def _region(self, table: dict, path: str, digits: int) -> str:
        value = table.get(path.rsplit(".", 1)[-1])
        if not isinstance(value, str) or not value.isdigit() or len(value) != digits:
            raise RulesError(_("{path}: must be a string of {digits} digits").format(path=path, digits=digits))
        return value

    def _money(self, table: dict, path: str, positive: bool = False) -> int:
        value = self._get(table, path)
        if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
            raise RulesError(_("{path}: must be an amount in yuan, e.g. \"1000.00\"").format(path=path))
        try:
            fen = parse_yuan(str(value), path)
        except InvalidInput as exc:
            raise RulesError(str(exc)) from None
        if positive and fen <= 0:
            raise RulesError(_("{path}: must be more than 0").format(path=path))
        return fen

    def _rate(self, table: dict, path: str) -> Decimal:
        value = self._get(table, path)
        if isinstance(value, bool) or not isinstance(value, (str, Decimal, int)):
            raise RulesError(_("{path}: must be a rate such as \"0.88\"").format(path=path))
        try:
            rate = Decimal(str(value))
        except InvalidOperation:
            raise RulesError(_("{path}: {value!r} is not a rate such as \"0.88\"").format(
                                 path=path, value=value)) from None
        if not rate.is_finite() or not Decimal(0) < rate <= Decimal(1):
            raise RulesError(_("{path}: {value} must be more than 0 and at most 1").format(path=path, value=value))
        if rate.as_tuple().exponent < -4:
            raise RulesError(_("{path}: at most 4 decimals").format(path=path))
        return rate


def read_rules_file(path: str) -> str:
    """A profile file's text, refused early if it can't be read or isn't valid rules."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise InvalidInput(_("rules: no such file {path}").format(path=path), code="bad_rules") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(_("rules: can't read {path} ({exc})").format(
                               path=path, exc=exc), code="bad_rules") from None
    parse(text)
    return text


def with_default_region(text: str, region: str) -> str:
    """The profile text with card.default_region replaced (validated again by the caller)."""
    import re

    pattern = re.compile(r'^(default_region\s*=\s*)"[^"]*"', re.MULTILINE)
    if len(pattern.findall(text)) != 1:
        raise RulesError(_("card.default_region: can't set the region of this profile with --region"))
    changed = pattern.sub(lambda m: f'{m.group(1)}"{region}"', text)
    parse(changed)
    return changed
