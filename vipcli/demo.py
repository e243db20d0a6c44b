"""`vip demo`: a throw-away database built from the bundled members and a year of purchases, fed
through the same functions the commands use (enroll, purchase, refund)."""

import csv
from datetime import datetime
from importlib import resources

from vipcli import archive, db, refunds, rulebook, sales
from vipcli.dates import parse_when
from vipcli.fields import normalize_phone
from vipcli.money import parse_yuan
from vipcli.overview import store_overview

# The demo's clock: fixed, so its output is the same whatever day it runs.
DEMO_NOW = datetime(2026, 11, 30, 20, 0)


def _rows(name: str):
    text = resources.files("vipcli").joinpath("data", name).read_text("utf-8")
    return list(csv.DictReader(text.splitlines()))


def build(path, operator: str = "demo") -> dict:
    conn = db.connect(path, create=True)
    rules = rulebook.current_rules(conn)
    members, purchases = _rows("members.csv"), _rows("purchases.csv")
    enrolled_at = datetime(2025, 11, 30, 9, 0)
    with db.transaction(conn):
        for row in members:
            raw = {k: (v or None) for k, v in row.items()}
            clean = archive.clean_profile(raw, enrolled_at.date())
            archive.enroll(conn, rules, None, clean, enrolled_at, operator)
    recorded = 0
    with db.transaction(conn):
        for row in purchases:
            sale = sales.Sale(
                regular=parse_yuan(row["amount"]), promo=parse_yuan(row["promo"]),
                phone=normalize_phone(row["phone"]), receipt=row["receipt"], store=row["store"],
                at=parse_when(row["purchased_at"]),
            )
            sales.validate_sale(sale, rules, DEMO_NOW)
            sales.record_purchase(conn, rules, sale, sale.at, operator)
            recorded += 1
        # A customer returns part of a large purchase: spend and points are reversed.
        biggest = conn.execute(
            "SELECT receipt, paid FROM purchases WHERE points_earned > 0 ORDER BY paid DESC LIMIT 1"
        ).fetchone()
        if biggest:
            refunds.refund(conn, rules, biggest["receipt"], biggest["paid"] // 4, DEMO_NOW, operator)
    overview = store_overview(conn, rules, DEMO_NOW)
    overview.update(members=len(members), purchases=recorded, db=str(path))
    conn.close()
    return overview
