"""Import benchmark: `vip import purchases` of N rows (every rule applied: qualification, discounts,
points lots, tiers, ledger) against `sqlite-utils insert --csv --no-detect-types` of the same file
(no rules at all), alternating A B A B, median of 3 each, fresh database each run. Also reports
vip's peak RSS. Targets (shared/BENCHMARKS.md): ratio <= 0.6; peak RSS <= 150 MB at 1,000,000 rows.

The wall-time ratio flatters vip: it commits with synchronous=NORMAL (atomic transactions, a power
cut may lose the last ones, which a re-run puts back), about 16 syncs per 200,000 rows, while the
peer commits with SQLite's default, thousands of times; and vip works on two cores. So the script
also prints the CPU-time ratio (all processes, user + system) and the ratio to the floor, the
`sqlite3` shell's `.import` of the same file into a plain table.

    python benchmarks/import_purchases.py            # 200,000 rows across 100,000 customers
    python benchmarks/import_purchases.py --full     # 1,000,000 rows
    python benchmarks/import_purchases.py --full --customers 200000 --existing
        # into a database that already holds the year before: the same customers, their cards,
        # tiers and purchases, which the import reads back as it meets them
    python benchmarks/import_purchases.py --engine postgresql [--pg URL]
        # into a chain's PostgreSQL database (a fresh one per run) against `psql \copy` of the
        # same file into a plain table, and against the same vip import into SQLite, alternating;
        # target: PostgreSQL no slower than 1.5 x SQLite. Without --pg (or VIPCLI_TEST_PG), a
        # throwaway cluster is started (tools/pg_cluster.sh).
"""

import argparse
import contextlib
import csv
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

from measure import timed_cpu, timed_tree


def generate(path: Path, rows: int, customers: int, seed: int = 42, year: int = 2025, prefix: str = "B") -> None:
    """Deterministic POS export over one year from 1 November `year`, in time order, phones only
    (prospects become members)."""
    rng = random.Random(seed)
    start = datetime(year, 11, 1, 9, 0)
    step = timedelta(days=365) / rows
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["receipt", "phone", "store", "purchased_at", "amount", "promo"])
        for i in range(rows):
            at = start + step * i
            customer = int(customers * rng.random() ** 3)  # a fifth of the customers bring ~60% of rows
            fen = int(rng.lognormvariate(10.2, 1.0))
            promo = int(rng.lognormvariate(8.0, 0.8)) if rng.random() < 0.2 else 0
            writer.writerow([f"{prefix}{i:08d}", f"139{customer:08d}", ("SZ01", "SZ02", "GZ01", "BJ01")[customer % 4],
                             at.isoformat(timespec="seconds"), f"{fen // 100}.{fen % 100:02d}",
                             f"{promo // 100}.{promo % 100:02d}"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--full", action="store_true", help="1,000,000 rows")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--existing", action="store_true",
                        help="import into a database holding the year before (same customers)")
    parser.add_argument("--engine", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--profile", default="store",
                        help="the built-in rules profile (fashion: qualifying opens applications for review)")
    parser.add_argument("--pg", default=os.environ.get("VIPCLI_TEST_PG"),
                        help="a PostgreSQL server's URL (a maintenance database the script may CREATE DATABASE from)")
    args = parser.parse_args()
    rows = 1_000_000 if args.full else args.rows
    folder = Path(tempfile.mkdtemp())
    os.chmod(folder, 0o755)
    data = folder / "purchases.csv"
    generate(data, rows, args.customers)
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "VIPCLI_NOW": "2026-11-02T00:00:00", "VIPCLI_OPERATOR": "bench",
           "VIPCLI_KEY_FILE": str(folder / "vip.key")}
    if args.engine == "postgresql":
        with server(args.pg, folder) as url:
            postgresql(url, rows, args.runs, data, folder, bin_dir, env)
        return
    base = folder / "base.db"
    if args.existing:
        before = folder / "before.csv"
        generate(before, rows, args.customers, seed=7, year=2024, prefix="A")
        subprocess.run([str(bin_dir / "vip"), "--db", str(base), "init", "--profile", args.profile], env=env,
                       check=True, capture_output=True)
        subprocess.run([str(bin_dir / "vip"), "--db", str(base), "import", "purchases", str(before)], env=env,
                       check=True, capture_output=True)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    times = {"vip import purchases": [], "sqlite-utils insert --csv --no-detect-types": []}
    rss, rss_all, cpu = [], [], {"vip": [], "peer": [], "floor": []}
    floor_times = []
    sqlite = shutil.which("sqlite3")
    for i in range(args.runs):
        vip_db, peer_db = folder / f"vip{i}.db", folder / f"peer{i}.db"
        if args.existing:
            shutil.copy(base, vip_db)
        else:
            subprocess.run([str(bin_dir / "vip"), "--db", str(vip_db), "init", "--profile", args.profile], env=env,
                           check=True, capture_output=True)
        seconds, peak, together, used = timed_tree([str(bin_dir / "vip"), "--db", str(vip_db), "--json", "import",
                                                    "purchases", str(data)], env)
        cpu["vip"].append(used)
        times["vip import purchases"].append(seconds)
        rss.append(peak)
        rss_all.append(together)
        seconds, _, used = timed_cpu([str(bin_dir / "sqlite-utils"), "insert", str(peer_db), "purchases", str(data),
                                      "--csv", "--no-detect-types"], env)
        times["sqlite-utils insert --csv --no-detect-types"].append(seconds)
        cpu["peer"].append(used)
        if sqlite:
            floor_db = folder / f"floor{i}.db"
            seconds, _, used = timed_cpu([sqlite, str(floor_db), ".import --csv " + str(data) + " purchases"], env)
            floor_times.append(seconds)
            cpu["floor"].append(used)
        for db in folder.glob(f"*{i}.db*"):
            db.unlink()
    medians = {k: statistics.median(v) for k, v in times.items()}
    peer = medians["sqlite-utils insert --csv --no-detect-types"]
    print(f"{rows:,} rows, {args.customers:,} customers, profile {args.profile}"
          + (", into the year before" if args.existing else ""))
    print(f"{'tool':48} {'median s':>9} {'rows/s':>9} {'ratio':>6}")
    for name, value in medians.items():
        print(f"{name:48} {value:9.2f} {rows / value:9,.0f} {value / peer:6.2f}")
    pairs = list(zip(*times.values()))
    print("runs, in order (vip s / sqlite-utils s = ratio): "
          + ", ".join(f"{a:.2f} / {b:.2f} = {a / b:.2f}" for a, b in pairs))
    print(f"vip peak RSS: {max(rss) / 1024:.0f} MB (largest process), {max(rss_all) / 1024:.0f} MB (vip's processes "
          "together, sampled every 20 ms)")
    cpu_ratio = statistics.median(cpu["vip"]) / statistics.median(cpu["peer"])
    print(f"CPU seconds (all processes): vip {statistics.median(cpu['vip']):.2f}, sqlite-utils "
          f"{statistics.median(cpu['peer']):.2f}: ratio {cpu_ratio:.2f}")
    if floor_times:
        floor = statistics.median(floor_times)
        print(f"floor, sqlite3 .import of the same file: {floor:.2f} s ({statistics.median(cpu['floor']):.2f} s CPU); "
              f"vip / floor = {medians['vip import purchases'] / floor:.1f} wall, "
              f"{statistics.median(cpu['vip']) / statistics.median(cpu['floor']):.1f} CPU")
    print(f"RESULT import_purchases ratio={medians['vip import purchases'] / peer:.2f} rss_mb={max(rss) / 1024:.0f} "
          f"rss_all_mb={max(rss_all) / 1024:.0f} cpu_ratio={cpu_ratio:.2f}")


@contextlib.contextmanager
def server(url, folder: Path):
    """The server at `url`, or a throwaway cluster for this run (syncing its commits, as a chain's server
    does)."""
    if url:
        yield url
        return
    tool = Path(__file__).resolve().parent.parent / "tools" / "pg_cluster.sh"
    started = subprocess.run(["bash", str(tool), "start", str(folder / "pg")], capture_output=True, text=True,
                             check=True, env={**os.environ, "PG_DURABLE": "1"}).stdout.strip()
    try:
        yield started
    finally:
        subprocess.run(["bash", str(tool), "stop", str(folder / "pg")], check=False)


def database_url(server_url: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(server_url)._replace(path="/" + name))


def postgresql(server_url: str, rows: int, runs: int, data: Path, folder: Path, bin_dir: Path, env: dict) -> None:
    """vip's import into PostgreSQL, into SQLite, and psql's \\copy into a plain table, alternating."""
    psql = shutil.which("psql") or "/usr/lib/postgresql/15/bin/psql"

    def sql(statement: str, database: str = "postgres") -> None:
        subprocess.run([psql, "-q", "-v", "ON_ERROR_STOP=1", database_url(server_url, database), "-c", statement],
                       check=True, capture_output=True)

    vip = str(bin_dir / "vip")
    times = {"vip import purchases (PostgreSQL)": [], "vip import purchases (SQLite)": [],
             "psql \\copy into a plain table": []}
    cpu = []
    for i in range(runs):
        name = f"bench_import_{os.getpid()}_{i}"
        sql(f"DROP DATABASE IF EXISTS {name}")
        sql(f"CREATE DATABASE {name}")
        url = database_url(server_url, name)
        subprocess.run([vip, "--db", url, "init"], env=env, check=True, capture_output=True)
        seconds, _, used = timed_cpu([vip, "--db", url, "--json", "import", "purchases", str(data)], env)
        times["vip import purchases (PostgreSQL)"].append(seconds)
        cpu.append(used)
        lite = folder / f"lite{i}.db"
        subprocess.run([vip, "--db", str(lite), "init"], env=env, check=True, capture_output=True)
        seconds, _, _ = timed_cpu([vip, "--db", str(lite), "--json", "import", "purchases", str(data)], env)
        times["vip import purchases (SQLite)"].append(seconds)
        sql("CREATE TABLE plain (receipt text, phone text, store text, purchased_at text, amount text, promo text)",
            name)
        seconds, _, _ = timed_cpu([psql, "-q", url, "-c", f"\\copy plain FROM '{data}' WITH (FORMAT csv, HEADER)"],
                                  env)
        times["psql \\copy into a plain table"].append(seconds)
        sql(f"DROP DATABASE {name}")
        lite.unlink()
    medians = {k: statistics.median(v) for k, v in times.items()}
    pg, lite, floor = medians.values()
    print(f"{rows:,} rows into PostgreSQL ({runs} runs each, alternating)")
    print(f"{'tool':44} {'median s':>9} {'rows/s':>9}")
    for name, value in medians.items():
        print(f"{name:44} {value:9.2f} {rows / value:9,.0f}")
    print(f"vip on PostgreSQL / vip on SQLite = {pg / lite:.2f} (target <= 1.5); vip / psql \\copy = {pg / floor:.1f}; "
          f"vip's CPU (its processes) {statistics.median(cpu):.2f} s")
    print(f"RESULT import_purchases_postgresql pg_over_sqlite={pg / lite:.2f} over_copy={pg / floor:.1f} "
          f"rows_per_s={rows / pg:,.0f}")


if __name__ == "__main__":
    main()
