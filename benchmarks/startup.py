"""Startup benchmark: `vip --json purchase CARD --amount 100` and `vip --json show PHONE`, each a fresh
process, against a minimal Typer app that inserts one row with sqlite3 (the peer), alternating
A B A B, median of N runs each. Target (shared/BENCHMARKS.md): ratio <= 0.8.

    python benchmarks/startup.py [--runs 20]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PEER = '''
import sqlite3
import typer

app = typer.Typer()


@app.command()
def insert(amount: str):
    conn = sqlite3.connect({db!r})
    conn.execute("CREATE TABLE IF NOT EXISTS t (amount TEXT)")
    conn.execute("INSERT INTO t VALUES (?)", (amount,))
    conn.commit()


app()
'''


def timed(cmd, env) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{cmd} failed: {done.stderr.decode()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    vip = str(Path(sys.executable).with_name("vip"))
    folder = Path(tempfile.mkdtemp())
    env = {**os.environ, "VIPCLI_DB": str(folder / "vip.db"), "VIPCLI_KEY_FILE": str(folder / "vip.key"),
           "VIPCLI_OPERATOR": "bench"}
    env.pop("VIPCLI_NOW", None)
    # Byte-code caching as on a user's machine (some sandboxes set PYTHONDONTWRITEBYTECODE, which
    # would make every run recompile vipcli's modules but not the peer's one small file).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    phone = "13800138000"
    subprocess.run([vip, "init"], env=env, check=True, capture_output=True)
    out = subprocess.run([vip, "--json", "enroll", "--phone", phone, "--name", "王芳", "--gender", "F",
                          "--birthday", "1990-05-01", "--grant", "benchmark"], env=env, capture_output=True, text=True)
    card = out.stdout.split('"card_no": "')[1].split('"')[0]
    peer = folder / "peer.py"
    peer.write_text(PEER.format(db=str(folder / "peer.db")), encoding="utf-8")
    commands = {
        "vip purchase": [vip, "--json", "purchase", card, "--amount", "100"],
        "vip show": [vip, "--json", "show", phone],
        "peer (typer + sqlite3 insert)": [sys.executable, str(peer), "100"],
    }
    times = {name: [] for name in commands}
    for name, cmd in commands.items():  # warm the file cache
        timed(cmd, env)
    for _ in range(args.runs):
        for name, cmd in commands.items():
            times[name].append(timed(cmd, env))
    medians = {name: statistics.median(values) for name, values in times.items()}
    peer_median = medians["peer (typer + sqlite3 insert)"]
    print(f"{'command':32} {'median ms':>10} {'ratio':>7}")
    for name, value in medians.items():
        print(f"{name:32} {value * 1000:10.1f} {value / peer_median:7.2f}")
    ratio = max(medians["vip purchase"], medians["vip show"]) / peer_median
    print(f"RESULT startup ratio={ratio:.2f}")


if __name__ == "__main__":
    main()
