"""Real processes on one database file: no double spend, no lost update, no raw "database is locked"."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow

WORKER = textwrap.dedent("""
    import json, sys
    from typer.testing import CliRunner
    from vipcli.cli import app
    runner = CliRunner()
    args, times = json.loads(sys.argv[1]), int(sys.argv[2])
    print("ready", flush=True)
    sys.stdin.readline()  # start together
    for _ in range(times):
        r = runner.invoke(app, ["--json", *args])
        print(json.dumps({"code": r.exit_code, "out": r.stdout.strip(), "err": r.stderr.strip()}), flush=True)
""")


def run_workers(jobs, env):
    procs = []
    for args, times in jobs:
        proc = subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(args), str(times)], env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        procs.append(proc)
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        results += [json.loads(line) for line in out.splitlines()]
    return results


def test_parallel_redemptions_never_double_spend(vip, member, isolated):
    card = member()
    vip("purchase", card, "--amount", "1000", "--paid", "600")  # 600 points
    env = {**os.environ, "VIPCLI_NOW": "2026-06-15T12:00:00"}
    results = run_workers([(["redeem", card, "--points", "10"], 25)] * 4, env)
    assert len(results) == 100
    ok = [r for r in results if r["code"] == 0]
    refused = [r for r in results if r["code"] != 0]
    assert len(ok) == 60
    for r in refused:
        assert r["code"] == 1 and json.loads(r["err"])["error"]["code"] == "insufficient_points", r
    assert all("locked" not in r["out"] + r["err"] for r in results)
    assert vip("points", card)["points_balance"] == 0
    assert vip("check")["ok"] is True


def test_parallel_purchases_lose_no_update(vip, member, isolated):
    cards = [member(phone=f"1380013800{i}") for i in range(2)]
    env = {**os.environ, "VIPCLI_NOW": "2026-06-15T12:00:00"}
    jobs = [(["purchase", cards[i % 2], "--amount", "100", "--paid", "10"], 20) for i in range(4)]
    jobs.append((["purchase", "--phone", "13900139000", "--amount", "60"], 40))
    results = run_workers(jobs, env)
    assert all(r["code"] == 0 for r in results), [r for r in results if r["code"]][:3]
    receipts = [json.loads(r["out"])["receipt"] for r in results]
    assert len(set(receipts)) == 120  # generated receipt numbers never collide
    for card in cards:
        assert vip("points", card)["points_balance"] == 40 * 10
    issued = [json.loads(r["out"]) for r in results if json.loads(r["out"])["card_issued"]]
    assert len(issued) == 1  # the 34th purchase of 60.00 reaches 2000.00 in 6 months, once
    assert vip("search", "", "--status", "active")["count"] == 3
    assert vip("check")["ok"] is True


def test_a_till_waiting_for_the_lock_goes_before_a_long_writers_next_transaction(vip, member, isolated, engine):
    """A writer that commits and begins again at once (an import) kept a till out for 7 s: SQLite has
    no queue. A till waiting for the lock says so (a shared lock on DATABASE-waiting), and the long
    writer lets it in before its next transaction (db.let_waiters_in). PostgreSQL queues its lock's
    waiters itself: the same holds there."""
    import fcntl
    import time

    from vipcli import db
    card = member()
    writer = db.connect(os.environ["VIPCLI_DB"])
    waiting = str(isolated / "vip.db") + "-waiting"

    def begin():
        writer.execute("BEGIN IMMEDIATE") if engine == "sqlite" else writer.begin_write()

    def till_waits() -> bool:
        if engine == "postgresql":
            return writer.execute("SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' "
                                  "AND NOT granted").fetchone()[0] > 0
        fd = os.open(waiting, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # (the till holds the shared lock while it waits)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # (closing releases the lock)

    for _ in range(3):
        before = writer.execute("SELECT COUNT(*) FROM purchases").fetchone()[0]
        begin()
        till = subprocess.Popen([sys.executable, "-m", "vipcli", "--json", "purchase", card, "--amount", "10"],
                                env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        while not till_waits():
            assert till.poll() is None, till.communicate()
            time.sleep(0.001)
        writer.execute("COMMIT")
        db.let_waiters_in(writer)
        begin()  # the till went first: its purchase is there
        assert writer.execute("SELECT COUNT(*) FROM purchases").fetchone()[0] == before + 1
        writer.execute("COMMIT")
        assert till.wait() == 0
    assert vip("check")["ok"] is True


def test_letting_waiters_in_with_nobody_waiting_returns_at_once(isolated):
    from vipcli import db
    conn = db.connect(os.environ["VIPCLI_DB"])
    db.let_waiters_in(conn)  # no waiting file yet
    with db.transaction(conn):
        pass  # makes the file
    db.let_waiters_in(conn)
    assert oct(os.stat(str(isolated / "vip.db") + "-waiting").st_mode & 0o777) == "0o600"


def test_the_same_redeem_request_from_two_tills_at_once_spends_once(vip, member, isolated):
    card = member()
    vip("purchase", card, "--amount", "1000")  # 880 points
    env = {**os.environ}
    results = run_workers([(["redeem", card, "--points", "500", "--request-id", "R-1"], 3)] * 2, env)
    assert all(r["code"] == 0 for r in results), results
    assert sum(not json.loads(r["out"])["duplicate"] for r in results) == 1
    assert vip("points", card)["points_balance"] == 380 and vip("check")["ok"] is True
