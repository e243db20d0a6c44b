"""Regenerate the bundled demo data (vipcli/data/*.csv) deterministically.

    python examples/make_demo_data.py
"""

import csv
import random
from datetime import datetime, timedelta
from pathlib import Path

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ["芳", "伟", "娜", "敏", "静", "丽", "强", "磊", "洋", "艳", "勇", "军", "杰", "娟", "涛", "明", "超", "秀英", "霞", "平"]
STORES = ["SZ01", "SZ02", "GZ01", "BJ01"]


def main() -> None:
    rng = random.Random(20261123)
    out = Path(__file__).resolve().parent.parent / "vipcli" / "data"
    out.mkdir(exist_ok=True)
    members = []
    for i in range(60):
        phone = f"139{i:08d}"
        complete = i % 7 != 3  # a few archives stay incomplete (registration window)
        members.append({
            "phone": phone,
            "name": rng.choice(SURNAMES) + rng.choice(GIVEN) if complete else "",
            "gender": rng.choice("FM") if complete else "",
            "birthday": f"{rng.randint(1960, 2002)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}" if complete else "",
            "store": rng.choice(STORES),
        })
    with open(out / "members.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(members[0]))
        writer.writeheader()
        writer.writerows(members)

    # Spend follows a Pareto law: a fifth of the customers bring most of the money (二八定律).
    weights = [rng.paretovariate(1.2) for _ in members]
    start = datetime(2025, 12, 1, 10, 0)
    rows = []
    for n in range(900):
        member = rng.choices(members, weights)[0]
        at = start + timedelta(minutes=rng.randint(0, 362 * 24 * 60 // 1))
        at = at.replace(hour=rng.randint(10, 21), second=0)
        regular = int(rng.lognormvariate(5.6, 0.9) * 100)
        promo = int(rng.lognormvariate(4.0, 0.8) * 100) if rng.random() < 0.25 else 0
        rows.append({
            "receipt": "",
            "phone": member["phone"],
            "store": member["store"] if rng.random() < 0.8 else rng.choice(STORES),
            "purchased_at": at.isoformat(timespec="minutes"),
            "amount": f"{regular // 100}.{regular % 100:02d}",
            "promo": f"{promo // 100}.{promo % 100:02d}",
        })
    rows.sort(key=lambda r: r["purchased_at"])
    for i, row in enumerate(rows, 1):
        row["receipt"] = f"D{row['purchased_at'][:10].replace('-', '')}-{i:04d}"
    with open(out / "purchases.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
