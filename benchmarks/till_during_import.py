"""Till benchmark: how long `vip purchase` takes at a till while a 1,000,000-row import runs on the
same database, against the same purchase with no import running. Tills buy one after another, each
a fresh process, from the import's start to its end (two tills at once by default). Prints p50/p99.
Target (shared/BENCHMARKS.md): p99 <= 2.5 s.

    python benchmarks/till_during_import.py                 # 1,000,000 rows
    python benchmarks/till_during_import.py --rows 200000
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from import_purchases import generate


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def till(vip: str, db: Path, card: str, env: dict, stop, seconds: list[float], failures: list[str]) -> None:
    while not stop():
        started = time.perf_counter()
        done = subprocess.run([vip, "--db", str(db), "--json", "purchase", card, "--amount", "10"], env=env,
                              capture_output=True, text=True)
        seconds.append(time.perf_counter() - started)
        if done.returncode != 0:
            failures.append(done.stdout.strip() or done.stderr.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--tills", type=int, default=2)
    parser.add_argument("--baseline", type=int, default=20, help="purchases timed with no import running")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    data, db = folder / "purchases.csv", folder / "vip.db"
    generate(data, args.rows, args.rows // 5)
    vip = str(Path(sys.executable).parent / "vip")
    env = {**os.environ, "VIPCLI_NOW": "2026-11-02T00:00:00", "VIPCLI_OPERATOR": "bench",
           "VIPCLI_KEY_FILE": str(folder / "vip.key")}
    subprocess.run([vip, "--db", str(db), "init"], env=env, check=True, capture_output=True)
    cards = []
    for i in range(args.tills):
        out = subprocess.run([vip, "--db", str(db), "--json", "enroll", "--phone", f"1370000{i:04d}", "--grant",
                              "bench"], env=env, check=True, capture_output=True, text=True).stdout
        cards.append(out.split('"card_no": "')[1].split('"')[0])
    alone, failures = [], []
    till(vip, db, cards[0], env, lambda: len(alone) >= args.baseline, alone, failures)

    busy: list[float] = []
    importing = subprocess.Popen([vip, "--db", str(db), "--json", "import", "purchases", str(data)], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started = time.perf_counter()
    threads = [threading.Thread(target=till, args=(vip, db, card, env, lambda: importing.poll() is not None,
                                                   busy, failures)) for card in cards]
    for thread in threads:
        thread.start()
    out, err = importing.communicate()
    import_seconds = time.perf_counter() - started
    for thread in threads:
        thread.join()
    shutil.rmtree(folder)
    if importing.returncode != 0:
        sys.exit(f"the import failed: {err or out}")
    print(f"{args.rows:,}-row import: {import_seconds:.1f} s; {len(busy)} till purchases during it "
          f"({args.tills} tills), {len(failures)} failed")
    print(f"{'':24} {'p50 s':>7} {'p99 s':>7} {'max s':>7}")
    for name, values in (("no import", alone), ("during the import", busy)):
        print(f"{name:24} {statistics.median(values):7.3f} {percentile(values, 0.99):7.3f} {max(values):7.3f}")
    for failure in failures[:3]:
        print("failed:", failure)
    print(f"RESULT till_during_import p99={percentile(busy, 0.99):.2f} p50={statistics.median(busy):.2f}")


if __name__ == "__main__":
    main()
