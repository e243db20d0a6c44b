"""Export benchmark: `vip export members --format xlsx` of N members (default 100,000) against openpyxl
write-only writing the same rows and columns with no styling (the peer reads them from vip's own CSV
export of the same data). Alternating A B A B, median of 3; also vip's peak RSS and the CSV export
time. Targets (shared/BENCHMARKS.md): ratio <= 1.15, peak RSS <= 100 MB, CSV < a tenth of XLSX.

    python benchmarks/export_members.py [--members 100000]
"""

import argparse
import os
import random
import statistics
import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

from measure import timed

PEER = '''
import csv, sys
from openpyxl import Workbook
book = Workbook(write_only=True)
sheet = book.create_sheet("members")
with open(sys.argv[1], encoding="utf-8-sig", newline="") as handle:
    for row in csv.reader(handle):
        sheet.append(row)
book.save(sys.argv[2])
'''

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ["芳", "伟", "娜", "敏", "静", "丽", "强", "磊", "洋", "艳", "秀英", "霞", "平"]


def build(db: Path, members: int) -> None:
    """Members, cards and a year of purchases written straight with SQL (the export is measured, not this)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from vipcli import db as vdb
    from vipcli.cards import make_number

    rng = random.Random(7)
    conn = vdb.connect(db, create=True)
    rules = vdb.current_rules(conn)
    start = datetime(2025, 12, 1)
    conn.execute("BEGIN")
    customers, cards, purchases = [], [], []
    for i in range(1, members + 1):
        created = (start + timedelta(minutes=i)).isoformat(timespec="seconds")
        name = rng.choice(SURNAMES) + rng.choice(GIVEN)
        customers.append((i, f"139{i:08d}", name, rng.choice("FM"), f"{rng.randint(1960, 2002)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
                          f"深圳市南山区科技园{i}号", ("SZ01", "SZ02", "GZ01")[i % 3], created, created,
                          "vip" if i % 5 else "silver", created))
        if i % 5 < 3:
            cards.append((make_number(rules, "755", i), i, "755", i, "active", created, "2026-12-31", "bench", created, created))
        for _ in range(2):
            purchases.append((f"E{len(purchases):08d}", i, (start + timedelta(minutes=rng.randint(0, 500000))).isoformat(
                timespec="seconds"), rng.randint(1000, 200000)))
    conn.executemany("INSERT INTO customers(id, phone, name, gender, birthday, address, store, created_at, "
                     "registered_at, tier, tier_since) VALUES (?,?,?,?,?,?,?,?,?,?,?)", customers)
    conn.executemany("INSERT INTO cards(card_no, customer_id, region, sequence, status, issued_at, valid_to, reason, "
                     "status_at, registration_from) VALUES (?,?,?,?,?,?,?,?,?,?)", cards)
    conn.executemany("INSERT INTO purchases(receipt, customer_id, purchased_at, regular, promo, paid, paid_given, "
                     "rules_version, operator, recorded_at) VALUES (?, ?, ?, ?, 0, ?4, 1, 1, 'bench', ?3)", purchases)
    conn.execute("COMMIT")
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    db = folder / "vip.db"
    build(db, args.members)
    env = {**os.environ, "VIPCLI_DB": str(db), "VIPCLI_NOW": "2026-11-30T20:00:00", "VIPCLI_OPERATOR": "bench",
           "VIPCLI_KEY_FILE": str(folder / "vip.key")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    vip = str(Path(sys.executable).with_name("vip"))
    peer = folder / "peer.py"
    peer.write_text(PEER, encoding="utf-8")
    csv_out = folder / "members.csv"
    timed([vip, "export", "members", "--format", "csv", "--out", str(csv_out)], env)  # the peer's input
    results = {"vip export members --format xlsx": [], "openpyxl write-only, no styling": [],
               "vip export members --format csv": []}
    rss = []
    for _ in range(args.runs):
        seconds, peak = timed([vip, "export", "members", "--format", "xlsx", "--out", str(folder / "m.xlsx")], env)
        results["vip export members --format xlsx"].append(seconds)
        rss.append(peak)
        seconds, _ = timed([sys.executable, str(peer), str(csv_out), str(folder / "peer.xlsx")], env)
        results["openpyxl write-only, no styling"].append(seconds)
        seconds, _ = timed([vip, "export", "members", "--format", "csv", "--out", str(folder / "m.csv")], env)
        results["vip export members --format csv"].append(seconds)
    medians = {k: statistics.median(v) for k, v in results.items()}
    base = medians["openpyxl write-only, no styling"]
    print(f"{args.members:,} members")
    print(f"{'tool':40} {'median s':>9} {'ratio':>6}")
    for name, value in medians.items():
        print(f"{name:40} {value:9.2f} {value / base:6.2f}")
    xlsx = medians["vip export members --format xlsx"]
    print(f"vip peak RSS (xlsx): {max(rss) / 1024:.0f} MB; csv/xlsx time: {medians['vip export members --format csv'] / xlsx:.2f}")
    print(f"RESULT export_members ratio={xlsx / base:.2f} rss_mb={max(rss) / 1024:.0f} "
          f"csv_share={medians['vip export members --format csv'] / xlsx:.2f}")


if __name__ == "__main__":
    main()
