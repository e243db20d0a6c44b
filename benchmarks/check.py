"""Check benchmark: `vip check` (every invariant: lots and balances, purchases against their entries
and refunds, tiers against their history, card numbers) on databases of N purchases (members =
purchases / 5, built by `vip import purchases`), against its floor: one `SELECT count(*), sum(...)`
over the ledger and one over the purchases, in the `sqlite3` shell (or, where the shell is not
installed, a Python process running the same two queries). Alternating A B A B, medians.
As the nightly cron job runs it: the year but its last days is imported and checked once; then, for
each run, a day's purchases (N / 365 rows) are imported and `vip check` reads what changed. The
first check, every row, is timed as `vip check --all`. Target (shared/BENCHMARKS.md): ratio <= 3,
and linear in the rows. `vip check --full` (SQLite's own integrity and foreign-key checks, which
read every page and index) is timed beside them, for the record.

    python benchmarks/check.py                       # 100,000 and 1,000,000 purchases
    python benchmarks/check.py --sizes 20000,200000
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

FLOOR_SQL = "SELECT count(*), sum(delta) FROM ledger; SELECT count(*), sum(paid) FROM purchases;"


def floor_command(db: Path) -> list[str]:
    if shutil.which("sqlite3"):
        return ["sqlite3", str(db), FLOOR_SQL]
    return [sys.executable, "-c", f"import sqlite3; c = sqlite3.connect({str(db)!r}); "
            f"[c.execute(q).fetchall() for q in {FLOOR_SQL!r}.split(';') if q.strip()]"]


def split_days(data: Path, per_day: int, days: int) -> list[Path]:
    """Cut the last `days` days of purchases off `data` into a file each (header repeated)."""
    lines = data.read_text(encoding="utf-8").splitlines(keepends=True)
    header, rows = lines[0], lines[1:]
    cut = len(rows) - per_day * days
    data.write_text(header + "".join(rows[:cut]), encoding="utf-8")
    files = []
    for n in range(days):
        day = data.with_name(f"{data.stem}-day{n}.csv")
        day.write_text(header + "".join(rows[cut + n * per_day:cut + (n + 1) * per_day]), encoding="utf-8")
        files.append(day)
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000", help="purchases per database, comma-separated")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]
    folder = Path(tempfile.mkdtemp())
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "VIPCLI_NOW": "2026-11-02T00:00:00", "VIPCLI_OPERATOR": "bench",
           "VIPCLI_KEY_FILE": str(folder / "vip.key")}
    vip = str(bin_dir / "vip")
    print(f"{'purchases':>10} {'floor s':>8} {'vip check s':>12} {'ratio':>6} {'--all s':>8} {'--full s':>9}"
          f"  (medians of {args.runs}; vip check after a day's import)")
    ratios = []
    for size in sizes:
        db, data = folder / f"{size}.db", folder / f"{size}.csv"
        generate(data, size, size // 5)
        days = split_days(data, size // 365, args.runs)
        run = [vip, "--db", str(db)]
        subprocess.run(run + ["init"], env=env, check=True, capture_output=True)
        subprocess.run(run + ["import", "purchases", str(data)], env=env, check=True, capture_output=True)
        every_row = timed(run + ["--json", "check", "--all"], env)[0]
        floor, check = [], []
        for day in days:
            subprocess.run(run + ["import", "purchases", str(day)], env=env, check=True, capture_output=True)
            floor.append(timed(floor_command(db), env)[0])
            check.append(timed(run + ["--json", "check"], env)[0])
        full = timed(run + ["--json", "check", "--full"], env)[0]
        f, c = statistics.median(floor), statistics.median(check)
        ratios.append(c / f)
        print(f"{size:>10,} {f:8.3f} {c:12.3f} {c / f:6.1f} {every_row:8.2f} {full:9.2f}")
    shutil.rmtree(folder)
    print(f"RESULT check ratio={ratios[-1]:.1f}")


if __name__ == "__main__":
    main()
