"""The import's oracle: `vip import purchases` leaves the same tables as every row fed through
`vip purchase`, under every built-in profile and a variant that turns on what the built-ins leave
off (a birthday rate without an ID check, rolling expiry, points usable a few days later).

The rows run over nineteen months, so they cross a year end (calendar-year lots expire, cards of
the profiles with renewal expire), a registration window lapses for the prospects who qualify,
members buy on their birthday, promo goods and given `paid` amounts appear, single purchases and
window sums reach every tier, and a member whose card carries points debt (after a refund) buys
through the slow path. Change any one rule in `vipcli/rules.py` or a profile and the two sides
must still agree: this test is what tells the import and `vip purchase` apart.
"""

import random
from datetime import datetime, timedelta

import pytest

from test_import import TABLES, _one_by_one, dump, write_csv  # (tests/cli is on the path: no package)
from vipcli.rulefile import default_text, profile_names
from conftest import open_db

# The store's profile, with what no built-in profile turns on.
VARIANT = (default_text("store")
           .replace("birthday_requires_id_check = true", "birthday_requires_id_check = false")
           .replace('expiry = "calendar_year"', 'expiry = "rolling"')
           .replace("usable_after_days = 0", "usable_after_days = 3"))
PROFILES = [*profile_names(), "variant"]
BIRTHDAYS = ("1990-05-20", "1985-12-31", "1992-02-29")  # the seeded members' birthdays


def oracle_rows(seed: int, cards: list[str], count: int = 360) -> list[list[str]]:
    rng = random.Random(seed)
    at, rows = datetime(2025, 3, 1, 9, 0), []
    amounts = ["88.00", "320.50", "680.00", "999.99", "1000.00", "10.05", "2500", "5000", "10000", "20000.00",
               "120", "0.50"]
    birthdays = {datetime.fromisoformat(b).strftime("%m-%d") for b in BIRTHDAYS}
    for i in range(count):
        at += timedelta(minutes=rng.randint(30, 3000))
        card = rng.choice(cards) if cards and rng.random() < 0.25 else ""
        if at.strftime("%m-%d") in birthdays or rng.random() < 0.02:
            card = rng.choice(cards)  # a member on a birthday (the day, whoever's it is)
        phone = "" if card else f"1390000{rng.randint(0, 29):04d}"
        amount = rng.choice(amounts)
        promo = rng.choice(["", "", "", "45.60", "800.00"])
        paid = rng.choice(["", "", "", "", "", "77.70"]) if amount not in ("10.05", "0.50") else ""
        rows.append([f"T{i:05d}", card, phone, rng.choice(["SZ01", "GZ01", ""]),
                     at.isoformat(timespec="minutes"), amount, promo, paid])
    # Each birthday itself, bought on by its member (the 29 February one falls on 28 February
    # in 2025 and on 1 March in 2026 only if the profile says so: the rules decide, both sides)
    for n, (card, birthday) in enumerate(zip(cards, BIRTHDAYS)):
        day = birthday[5:]
        for year in (2025, 2026):
            try:
                when = datetime.fromisoformat(f"{year}-{day}T15:{n:02d}")
            except ValueError:
                continue
            if datetime(2025, 3, 1) < when < at:
                rows.append([f"B{year}{n}", card, "", "SZ01", when.isoformat(timespec="minutes"), "300.00", "",
                             ""])
    rows.sort(key=lambda r: r[4])
    return rows


def seed(vip, profile: str, path) -> list[str]:
    """Three registered members born on BIRTHDAYS; the last one's card carries points debt."""
    args = ["--rules", str(path)] if profile == "variant" else ["--profile", profile]
    assert vip("init", *args).code == 0
    numbers = []
    for n, birthday in enumerate(BIRTHDAYS):
        r = vip("enroll", "--phone", f"1380000000{n}", "--name", "王芳", "--gender", "F", "--birthday", birthday,
                "--grant", "seed", now="2025-01-05T10:00")
        assert r.code == 0, r
        numbers.append(r["card_no"])
    debtor = numbers[-1]
    first = vip("purchase", debtor, "--amount", "2000", "--paid", "1000", now="2025-01-06T10:00")
    assert first.code == 0, first
    # spent, then refunded: the card owes points (counter redeems in March only: before the rows)
    when = "2025-01-10T10:00" if profile != "counter" else "2025-03-01T00:10"
    assert vip("redeem", debtor, "--points", str(first["points_earned"] - 100), now=when).code == 0
    assert vip("refund", first["receipt"], now=when[:-1] + "5").code == 0
    return numbers


@pytest.mark.parametrize("writer", ["inline", "process"])
@pytest.mark.parametrize("profile", PROFILES)
def test_import_equals_one_by_one_under_every_profile(vip, isolated, monkeypatch, profile, writer):
    monkeypatch.setenv("VIPCLI_IMPORT_WRITER", writer)
    (isolated / "variant.toml").write_text(VARIANT, encoding="utf-8")
    one, bulk = isolated / "one.db", isolated / "bulk.db"
    numbers = []
    for db in (one, bulk):
        monkeypatch.setenv("VIPCLI_DB", str(db))
        monkeypatch.setenv("VIPCLI_NOW", "2025-01-05T09:00:00")
        numbers = seed(vip, profile, isolated / "variant.toml")
    monkeypatch.setenv("VIPCLI_NOW", "2026-11-01T00:00:00")
    rows = oracle_rows(seed=len(profile), cards=numbers)
    monkeypatch.setenv("VIPCLI_DB", str(one))
    _one_by_one(vip, rows)
    monkeypatch.setenv("VIPCLI_DB", str(bulk))
    write_csv(isolated / "p.csv", rows)
    result = vip("import", "purchases", str(isolated / "p.csv"))
    assert result.code == 0, result
    assert result["inserted"] == len(rows)
    a, b = dump(one), dump(bulk)
    seen = exercised(one)
    assert seen["upgrades"] > 0 or profile == "fashion"  # (fashion has one tier)
    assert seen["cards_issued"] > 0 or profile == "clinic" or (profile == "fashion" and seen["applications"] > 0)
    # (the clinic's cards come on registration; fashion's qualifying purchases open applications)
    if profile == "variant":
        assert "0.60" in seen["rates"].split(",") and seen["usable_later"] > 0 and seen["expiries"] > 100
    for table in TABLES:
        assert a[table] == b[table], table
    assert vip("check")["ok"] is True
    again = vip("import", "purchases", str(isolated / "p.csv"))
    assert again["inserted"] == 0 and again["duplicates"] == len(rows)
    assert dump(bulk) == b


def exercised(db) -> dict:
    """What the rows made happen on the one-by-one side: the test bites only where something did."""

    with open_db(db) as conn:
        one = lambda sql: conn.execute(sql).fetchone()[0]
        return {
            "cards_issued": one("SELECT COUNT(*) FROM cards WHERE reason LIKE 'qualified%'"),
            "applications": one("SELECT COUNT(*) FROM applications"),
            "upgrades": one("SELECT COUNT(*) FROM tier_changes WHERE reason LIKE 'upgrade%'"),
            "list_price_with_card": one("SELECT COUNT(*) FROM purchases WHERE card_no IS NOT NULL "
                                        "AND discount_rate IS NULL AND paid_given = 0"),
            "no_points_with_card": one("SELECT COUNT(*) FROM purchases WHERE card_no IS NOT NULL "
                                       "AND points_earned = 0 AND paid >= 100"),
            "rates": one("SELECT group_concat(DISTINCT discount_rate) FROM purchases"),
            "usable_later": one("SELECT COUNT(*) FROM point_lots WHERE usable_from > earned_at"),
            "expiries": one("SELECT COUNT(DISTINCT substr(expires_at, 1, 10)) FROM point_lots"),
        }
