"""Every everyday and nightly command at a store's size against its SQL floor (issue 20).

Builds databases of N purchases (members = N / 5, a year of POS rows imported with every rule),
then times each command as a whole process against the SQL that does the same work in the
`sqlite3` shell, alternating, median of `--runs`; prints command x size -> seconds, floor, ratio
and the command's peak RSS. Targets at 1,000,000 purchases: every list, report, export and nightly
job within 3 x its floor and under 150 MB; purchase, show and points flat across sizes.

    python benchmarks/scale.py                       # 10,000 and 100,000 purchases
    python benchmarks/scale.py --sizes 1000 10000 100000 1000000
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from import_purchases import generate
from measure import timed

NOW = "2026-11-02T00:00:00"
YEAR_END = "2027-01-01"

# name -> (vip arguments after --db DB, the floor's SQL for the sqlite3 shell)
COMMANDS = {
    "class --json": (["--json", "class"],
                     "SELECT c.id, COUNT(p.id), COALESCE(SUM(p.paid - p.refunded), 0) FROM customers c "
                     "LEFT JOIN purchases p ON p.customer_id = c.id AND p.purchased_at > '2025-11-02' "
                     "GROUP BY c.id;"),
    "visit due --json": (["--json", "visit", "due"],
                         "SELECT c.id, COUNT(p.id), COALESCE(SUM(p.paid - p.refunded), 0) FROM customers c "
                         "LEFT JOIN purchases p ON p.customer_id = c.id AND p.purchased_at > '2025-11-02' "
                         "GROUP BY c.id; SELECT customer_id, channel, MAX(at) FROM visits GROUP BY 1, 2;"),
    "export purchases csv (a month)": (["export", "purchases", "--format", "csv", "--since", "2026-06-01",
                                        "--until", "2026-07-01", "--out", "{out}.csv"],
                                       "SELECT p.*, c.phone FROM purchases p JOIN customers c ON c.id = p.customer_id "
                                       "WHERE p.purchased_at > '2026-06-01' AND p.purchased_at <= '2026-07-01T23:59:59' "
                                       "ORDER BY p.purchased_at, p.id;"),
    "export purchases csv (all)": (["export", "purchases", "--format", "csv", "--out", "{out}.csv"],
                                   "SELECT p.*, c.phone FROM purchases p JOIN customers c ON c.id = p.customer_id "
                                   "ORDER BY p.purchased_at, p.id;"),  # (the export writes the buyer's phone)
    "points expire --dry-run": (["--json", "points", "expire", "--as-of", "2026-11-01", "--dry-run"],
                                "SELECT card_no, SUM(remaining) FROM point_lots WHERE remaining > 0 AND "
                                "expires_at <= '2026-11-01T23:59:59' GROUP BY card_no;"),
    "export report": (["export", "report", "--out", "{out}.xlsx"],
                      "SELECT c.id, COUNT(p.id), COALESCE(SUM(p.paid - p.refunded), 0) FROM customers c "
                      "LEFT JOIN purchases p ON p.customer_id = c.id GROUP BY c.id; SELECT substr(purchased_at, 1, 7), "
                      "SUM(paid) FROM purchases GROUP BY 1; SELECT tier, COUNT(*) FROM customers GROUP BY 1;"),
    "check": (["--json", "check"], "SELECT COUNT(*), SUM(delta) FROM ledger; SELECT COUNT(*), SUM(paid) FROM purchases;"),
}
FLAT = {  # a single till's commands: time only, they must not grow with the database
    "show": ["--json", "show", "13900000001"],
    "points": ["--json", "points", "13900000001"],
}


def build(folder: Path, purchases: int, env: dict, vip: str) -> Path:
    db = folder / f"scale-{purchases}.db"
    if db.exists():
        return db
    data = folder / f"p{purchases}.csv"
    generate(data, purchases, max(purchases // 5, 1))
    subprocess.run([vip, "--db", str(db), "init"], env=env, check=True, capture_output=True)
    subprocess.run([vip, "--db", str(db), "--json", "import", "purchases", str(data)], env=env, check=True,
                   capture_output=True)
    data.unlink()
    return db


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", nargs="*", help="Only these commands (names as printed).")
    parser.add_argument("--keep", help="A folder to keep the databases in between runs.")
    args = parser.parse_args()
    sqlite = shutil.which("sqlite3")
    if sqlite is None:
        sys.exit("the sqlite3 shell is needed for the floors (apt install sqlite3)")
    folder = Path(args.keep or tempfile.mkdtemp())
    folder.mkdir(parents=True, exist_ok=True)
    vip = str(Path(sys.executable).parent / "vip")
    env = {**os.environ, "VIPCLI_NOW": NOW, "VIPCLI_OPERATOR": "bench", "VIPCLI_KEY_FILE": str(folder / "vip.key")}
    print(f"{'command':34} {'purchases':>10} {'vip s':>8} {'floor s':>8} {'ratio':>6} {'RSS MB':>7}")
    for size in args.sizes:
        db = build(folder, size, env, vip)
        for name, (argv, sql) in COMMANDS.items():
            if args.only and name not in args.only:
                continue
            ours, floor, peak = [], [], 0
            for _ in range(args.runs):
                line = [vip, "--db", str(db)] + [a.replace("{out}", str(folder / "out")) for a in argv]
                seconds, rss = timed(line, env)
                ours.append(seconds)
                peak = max(peak, rss)
                seconds, _ = timed([sqlite, "-csv", str(db), sql], env)  # (its output to /dev/null, as ours)
                floor.append(seconds)
            a, b = statistics.median(ours), statistics.median(floor)
            print(f"{name:34} {size:>10,} {a:8.2f} {b:8.3f} {a / b:6.1f} {peak / 1024:7.0f}", flush=True)
        for name, argv in FLAT.items():
            if args.only and name not in args.only:
                continue
            ours = [timed([vip, "--db", str(db)] + argv, env)[0] for _ in range(args.runs)]
            print(f"{name:34} {size:>10,} {statistics.median(ours):8.3f} {'':>8} {'':>6} {'':>7}", flush=True)
    if not args.keep:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
