"""Chain benchmark: 8 tills, each a store's, doing purchases (and a redemption every fourth sale) for
a fixed time against one database: PostgreSQL, then the same load on a SQLite file. Each sale is a
real `vip purchase` process, as a till runs it, so its latency is what a clerk waits for (Python's
start included). Reports purchases per second and the p50/p99 latency of one `vip purchase`.

    python benchmarks/chain.py                 # 60 s per engine, 8 tills
    python benchmarks/chain.py --seconds 20 --tills 8 [--pg URL]

The database first holds a year of 20,000 purchases over 2,000 customers (benchmarks/
import_purchases.py's generator). Without --pg (or VIPCLI_TEST_PG), a throwaway cluster is started.
"""

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from import_purchases import database_url, generate, server


def load(target: str, data: Path, vip: str, env: dict) -> None:
    subprocess.run([vip, "--db", target, "init"], env=env, check=True, capture_output=True)
    subprocess.run([vip, "--db", target, "import", "purchases", str(data)], env=env, check=True, capture_output=True)


def tills(target: str, n: int, seconds: float, customers: int, vip: str, env: dict) -> dict:
    """`n` threads, each a till of store S0n running `vip purchase` processes back to back."""
    latencies: list[list[float]] = [[] for _ in range(n)]
    failures = [0] * n
    redeems = [0] * n
    deadline = time.monotonic() + seconds

    def till(k: int) -> None:
        rng = random.Random(k)
        sales = 0
        while time.monotonic() < deadline:
            phone = f"139{int(customers * rng.random() ** 3):08d}"
            started = time.perf_counter()
            done = subprocess.run([vip, "--db", target, "--json", "purchase", "--phone", phone, "--amount",
                                   f"{rng.randint(20, 900)}.{rng.randint(0, 99):02d}", "--store", f"S{k:02d}"],
                                  env=env, capture_output=True)
            latencies[k].append(time.perf_counter() - started)
            failures[k] += done.returncode != 0
            sales += 1
            if sales % 4 == 0:
                done = subprocess.run([vip, "--db", target, "--json", "redeem", phone, "--points", "10"], env=env,
                                      capture_output=True)
                redeems[k] += done.returncode == 0

    threads = [threading.Thread(target=till, args=(k,)) for k in range(n)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    every = sorted(x for per in latencies for x in per)
    return {"purchases": len(every), "per_second": len(every) / elapsed, "p50": statistics.median(every),
            "p99": every[min(len(every) - 1, int(len(every) * 0.99))], "failed": sum(failures),
            "redeemed": sum(redeems)}


def lock_held(target: str, env: dict, n: int = 300) -> tuple[float, float]:
    """In one process, `n` purchases through the domain: the median time a purchase's write transaction
    takes and the part of it inside the writers' lock, in ms (the server's serial share, what one
    database carries at most, without Python's start)."""
    code = f"""
import os, statistics, time
os.environ.update({{"VIPCLI_NOW": "2026-11-02T13:00:00"}})
from vipcli import db, rulebook, sales
from vipcli.dates import now
conn = db.connect({target!r}); rules = rulebook.current_rules(conn); whole, held = [], []
for i in range({n}):
    started = time.perf_counter()
    with db.transaction(conn):
        locked = time.perf_counter()
        sales.record_purchase(conn, rules, sales.Sale(regular=10000 + i, promo=0, paid=None, card_no=None,
            phone=f"139{{i % 2000:08d}}", receipt=None, store="S99", at=None), now(), "bench")
        held.append(time.perf_counter() - locked)
    whole.append(time.perf_counter() - started)
print(statistics.median(whole) * 1000, statistics.median(held) * 1000)
"""
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    whole, held = map(float, out.split())
    return whole, held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--tills", type=int, default=8)
    parser.add_argument("--pg", default=os.environ.get("VIPCLI_TEST_PG"))
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    os.chmod(folder, 0o755)
    data = folder / "year.csv"
    customers = 2_000
    generate(data, 20_000, customers)
    vip = str(Path(sys.executable).parent / "vip")
    env = {**os.environ, "VIPCLI_NOW": "2026-11-02T12:00:00", "VIPCLI_OPERATOR": "bench",
           "VIPCLI_KEY_FILE": str(folder / "vip.key"), "VIPCLI_BUSY_TIMEOUT": "30"}
    results = {}
    with server(args.pg, folder) as server_url:
        name = f"bench_chain_{os.getpid()}"
        subprocess.run(["psql", "-q", database_url(server_url, "postgres"), "-c", f"CREATE DATABASE {name}"],
                       check=True, capture_output=True)
        url = database_url(server_url, name)
        load(url, data, vip, env)
        results["PostgreSQL"] = tills(url, args.tills, args.seconds, customers, vip, env)
        results["PostgreSQL"]["tx_ms"], results["PostgreSQL"]["held_ms"] = lock_held(url, env)
        check = subprocess.run([vip, "--db", url, "--json", "check", "--all"], env=env, capture_output=True, text=True)
        results["PostgreSQL"]["check"] = check.returncode == 0
        subprocess.run(["psql", "-q", database_url(server_url, "postgres"), "-c", f"DROP DATABASE {name}"],
                       check=False, capture_output=True)
    lite = str(folder / "chain.db")
    load(lite, data, vip, env)
    results["SQLite"] = tills(lite, args.tills, args.seconds, customers, vip, env)
    results["SQLite"]["tx_ms"], results["SQLite"]["held_ms"] = lock_held(lite, env)
    check = subprocess.run([vip, "--db", lite, "--json", "check", "--all"], env=env, capture_output=True, text=True)
    results["SQLite"]["check"] = check.returncode == 0
    print(f"{args.tills} tills, {args.seconds:.0f} s each engine, {os.cpu_count()} cores")
    print(f"{'engine':11} {'purchases':>9} {'per s':>7} {'p50 ms':>7} {'p99 ms':>7} {'failed':>6} {'redeemed':>8} "
          f"{'tx ms':>6} {'lock ms':>7} check")
    for engine, r in results.items():
        print(f"{engine:11} {r['purchases']:9,} {r['per_second']:7.1f} {r['p50'] * 1000:7.0f} {r['p99'] * 1000:7.0f} "
              f"{r['failed']:6} {r['redeemed']:8} {r['tx_ms']:6.2f} {r['held_ms']:7.2f} "
              f"{'clean' if r['check'] else 'PROBLEMS'}")
    print("tx ms / lock ms: one purchase's write transaction in a running process, and the part of it inside the "
          "writers' lock (the serial share: 1000 / lock ms purchases a second at most, plus a round trip per "
          "statement over a network)")
    pg, lite_r = results["PostgreSQL"], results["SQLite"]
    print(f"RESULT chain pg_per_s={pg['per_second']:.1f} pg_p50_ms={pg['p50'] * 1000:.0f} "
          f"pg_p99_ms={pg['p99'] * 1000:.0f} pg_lock_ms={pg['held_ms']:.2f} sqlite_per_s={lite_r['per_second']:.1f}")


if __name__ == "__main__":
    main()
