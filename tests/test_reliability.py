"""Backup and restore, key rotation, the audit trail, hostile input, and a mixed multi-process load."""

import json
import os
import random
import sqlite3
import subprocess
import sys
import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from conftest import open_db, stored_bytes

ID = "11010519491231002X"
P = "13800138000"


def test_backup_restore_round_trip(vip, member, isolated, monkeypatch, fresh_database):
    card = member(id_number=ID)
    vip("purchase", card, "--amount", "1000")
    copy = isolated / "copy.db"
    r = vip("backup", str(copy))
    assert r.code == 0 and r["counts"]["customers"] == 1
    assert oct(copy.stat().st_mode & 0o777) == "0o600"
    assert ID.encode() not in copy.read_bytes()
    vip("purchase", card, "--amount", "1000")
    refused = vip("restore", str(copy))
    assert refused.code == 1 and "--yes" in refused["error"]["message"]
    assert vip("restore", str(copy), "--yes").code == 0
    assert vip("points", card)["points_balance"] == 880 and vip("check")["ok"] is True
    assert vip("show", card, "--unmask")["id_number"] == ID
    monkeypatch.setenv("VIPCLI_DB", fresh_database("fresh"))
    assert vip("restore", str(copy)).code == 0  # an empty target needs no --yes
    assert vip("points", card)["points_balance"] == 880


def test_restore_checks_its_source(vip, member, isolated, engine):
    member()
    (isolated / "junk.db").write_bytes(b"junk" * 1000)
    assert vip("restore", str(isolated / "junk.db"), "--yes").code == 4
    assert vip("restore", str(isolated / "missing.db"), "--yes").code == 2
    other = sqlite3.connect(isolated / "other.db")
    other.execute("CREATE TABLE t (x)")
    other.close()
    assert vip("restore", str(isolated / "other.db"), "--yes").code == 4
    if engine == "sqlite":
        vip("backup", str(isolated / "b.db"))
        with sqlite3.connect(isolated / "b.db") as conn:
            conn.execute("PRAGMA user_version = 99")
    else:  # a dump made by a newer vipcli: refused before anything is replaced
        from vipcli import pg

        with open_db() as conn:
            conn.execute("INSERT INTO migrations VALUES (99, 'newer', '2030-01-01T00:00:00')")
            pg.dump(os.environ["VIPCLI_DB"], str(isolated / "b.db"))
            conn.execute("DELETE FROM migrations WHERE version = 99")
    r = vip("restore", str(isolated / "b.db"), "--yes")
    assert r.code == 4 and "newer" in r["error"]["message"]
    assert vip("check")["ok"] is True


def test_backup_during_a_write_storm_is_consistent(vip, member, isolated, monkeypatch, fresh_database):
    cards = [member(phone=f"1380013800{i}") for i in range(3)]
    env = {**os.environ}
    script = textwrap.dedent(f"""
        from typer.testing import CliRunner
        from vipcli.cli import app
        r = CliRunner()
        for i in range(60):
            r.invoke(app, ["purchase", {cards!r}[i % 3], "--amount", "10"])
            r.invoke(app, ["redeem", {cards!r}[i % 3], "--points", "3"])
    """)
    writers = [subprocess.Popen([sys.executable, "-c", script], env=env) for _ in range(2)]
    try:
        for n in range(3):
            assert vip("backup", str(isolated / f"b{n}.db")).code == 0
    finally:
        for w in writers:
            w.wait()
    for n in range(3):
        copy = fresh_database(f"b{n}")
        monkeypatch.setenv("VIPCLI_DB", copy)
        assert vip("restore", str(isolated / f"b{n}.db")).code == 0
        with open_db(copy) as conn:
            lots = dict(conn.execute("SELECT card_no, SUM(remaining) FROM point_lots GROUP BY card_no").fetchall())
            entries = dict(conn.execute("SELECT card_no, SUM(delta) FROM ledger GROUP BY card_no").fetchall())
            assert lots == entries
        assert vip("check", "--all", "--full")["ok"] is True


def test_key_rotation(vip, member, isolated, monkeypatch):
    card = member(id_number=ID)
    key = isolated / "vip.key"
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    r = vip("key", "rotate", "--yes")
    assert r["reencrypted"] == 1 and r["old_key"] == str(isolated / "vip.key.1")
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert oct((isolated / "vip.key.1").stat().st_mode & 0o777) == "0o600"
    assert vip("show", card, "--unmask")["id_number"] == ID
    assert vip("enroll", "--phone", "13900139000", "--id-number", ID).code == 1  # still unique by HMAC
    monkeypatch.setenv("VIPCLI_KEY_FILE", str(isolated / "vip.key.1"))
    wrong = vip("show", card, "--unmask")
    assert wrong.code == 4 and "not the key" in wrong["error"]["message"]


def test_every_retired_key_is_kept_and_a_restore_names_the_one_it_needs(vip, member, isolated):
    """Two rotations in a row left older backups undecryptable, and restore said nothing."""
    card = member(id_number=ID)
    assert vip("backup", str(isolated / "before.db")).code == 0
    vip("key", "rotate", "--yes")
    vip("key", "rotate", "--yes")
    assert (isolated / "vip.key.1").exists() and (isolated / "vip.key.2").exists()
    r = vip("restore", str(isolated / "before.db"), "--yes")
    assert r.code == 0 and r["key_needed"] == str(isolated / "vip.key.1")
    human = vip("restore", str(isolated / "before.db"), "--yes", json_output=False)
    assert "vip.key.1" in human.stdout
    (isolated / "vip.key").rename(isolated / "newest.key")
    (isolated / "vip.key.1").rename(isolated / "vip.key")
    assert vip("show", card, "--unmask")["id_number"] == ID


@pytest.mark.slow
def test_rotations_at_once_and_beside_enrolments_lose_no_key(vip, member, isolated):
    """Two rotations at once deleted the live key; a rotation racing an enrolment left an ID under
    the old key. Four rotations and four enrolments with ID numbers, all at once."""
    member(id_number=ID)
    env = {**os.environ}
    ids = ["11010519491231002X", "110105194912310038", "110105194912310046", "110105194912310054"]
    procs = [subprocess.Popen([sys.executable, "-m", "vipcli", "--json", "key", "rotate", "--yes"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    procs += [subprocess.Popen([sys.executable, "-m", "vipcli", "--json", "enroll", "--phone", f"1390013900{i}",
                                "--id-number", number], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True) for i, number in enumerate(ids[1:])]
    results = [(p.wait(), p.communicate()) for p in procs]
    for code, (_, err) in results:
        assert code == 0 or '"rotation_running"' in err, err
    assert (isolated / "vip.key").exists()
    r = vip("check")
    assert r["ok"] is True and r["checks"]["id_numbers"] == 0
    for i, number in enumerate(ids[1:]):
        assert vip("show", f"1390013900{i}", "--unmask")["id_number"] == number


@pytest.mark.sqlite_only  # (a file's companions: PostgreSQL has no file beside the key)
def test_the_key_lives_beside_the_database_and_backup_names_it(vip, member, isolated, monkeypatch):
    """Without VIPCLI_KEY_FILE, `vip.db` keeps its key in `vip.db.key` (0600): a folder copied to
    another machine still opens its ID numbers. `vip backup` says where the key is; `vip key export`
    copies it (audited) and never overwrites."""
    import shutil
    monkeypatch.delenv("VIPCLI_KEY_FILE")
    card = member(id_number=ID)
    key = isolated / "vip.db.key"
    assert oct(key.stat().st_mode & 0o777) == "0o600" and not (isolated / "vip.key").exists()
    human = vip("backup", str(isolated / "b.db"), json_output=False)
    assert human.code == 0 and f"ID numbers need the key {key}" in human.stdout and "apart" in human.stdout
    assert vip("backup", str(isolated / "c.db"))["key_file"] == str(key)
    r = vip("key", "export", str(isolated / "safe.key"))
    assert r.code == 0 and (isolated / "safe.key").read_bytes() == key.read_bytes()
    assert oct((isolated / "safe.key").stat().st_mode & 0o777) == "0o600"
    assert vip("audit", "--command", "key export")["count"] == 1
    again = vip("key", "export", str(isolated / "safe.key"))
    assert again.code == 2 and "already exists" in again["error"]["message"]
    moved = isolated / "elsewhere"
    moved.mkdir()
    shutil.copy(isolated / "b.db", moved / "vip.db")
    shutil.copy(key, moved / "vip.db.key")
    monkeypatch.setenv("VIPCLI_DB", str(moved / "vip.db"))
    assert vip("show", card, "--unmask")["id_number"] == ID


def test_a_database_without_id_numbers_has_no_key_to_export(vip, member, isolated, monkeypatch):
    monkeypatch.delenv("VIPCLI_KEY_FILE")
    member()
    assert vip("backup", str(isolated / "b.db"))["key_file"] is None
    assert vip("key", "export", str(isolated / "k")).code == 1 and not (isolated / "k").exists()


def test_interrupted_rotation_finishes_itself(vip, member, isolated):
    card = member(id_number=ID)
    from vipcli import db, vault
    conn = db.connect(os.environ["VIPCLI_DB"])
    import base64
    new_key = os.urandom(64)
    fresh = vault.Vault(new_key)
    old = vault.open_vault(conn, create=False)
    (isolated / "vip.key.new").write_bytes(base64.b64encode(new_key))
    (isolated / "vip.key.new").chmod(0o600)
    with db.transaction(conn):  # the rotation committed, then the process died before the rename
        row = conn.execute("SELECT id, id_enc FROM customers").fetchone()
        conn.execute("UPDATE customers SET id_enc = ?, id_hmac = ? WHERE id = ?",
                     (fresh.encrypt(old.decrypt(row["id_enc"])), fresh.lookup_hash(ID), row["id"]))
        db.set_meta(conn, "key_fingerprint", fresh.fingerprint())
    conn.close()
    assert vip("show", card, "--unmask")["id_number"] == ID
    assert not (isolated / "vip.key.new").exists()


def test_every_write_command_leaves_an_audit_row(vip, member, isolated):
    card = member(id_number=ID)
    out = isolated / "x.csv"
    (isolated / "m.csv").write_text("phone,name\n13700137000,张伟\n", encoding="utf-8")
    (isolated / "p.csv").write_text("receipt,phone,purchased_at,amount\nZ1,13700137000,2026-06-01,10\n", encoding="utf-8")
    bought = vip("purchase", card, "--amount", "100")
    steps = [
        ("init", None), ("enroll", ["enroll", "--phone", "13600136000"]),
        ("enroll --grant", None), ("purchase", None),
        ("refund", ["refund", bought["receipt"], "--amount", "1"]),
        ("update", ["update", card, "--email", "a@b.cn"]),
        ("tier set", ["tier", "set", card, "silver", "--reason", "x"]),
        ("tier review", ["tier", "review", "--yes"]),
        ("redeem", ["redeem", card, "--points", "10"]),
        ("points adjust", ["points", "adjust", card, "--points", "5", "--reason", "x"]),
        ("points expire", ["points", "expire", "--yes"]),
        ("card lost", ["card", "lost", card]), ("card found", ["card", "found", card]),
        ("card renew --force", ["card", "renew", card, "--force"]),
        ("visit log", ["visit", "log", card, "--channel", "phone"]),
        ("rules load", ["rules", "load", str(isolated.parent.parent / "unused")]),
        ("import members", ["import", "members", str(isolated / "m.csv")]),
        ("import purchases", ["import", "purchases", str(isolated / "p.csv")]),
        ("unmask", ["export", "members", "--out", str(out), "--unmask"]),
        ("notify (unmasked phones)", ["notify", "card-issued", "--out", str(isolated / "sms.csv"), "--since", "2026-01-01"]),
        ("backup", ["backup", str(isolated / "b.db")]),
        ("card replace", ["card", "replace", card]),
        ("key rotate", ["key", "rotate", "--yes"]),
    ]
    for name, args in steps:
        if args:
            if name == "rules load":
                from vipcli.rulefile import default_text
                (isolated / "r.toml").write_text(default_text(), encoding="utf-8")
                args = ["rules", "load", str(isolated / "r.toml")]
            assert vip(*args).code == 0, (name, vip(*args))
    new = vip("show", P)["card_no"]
    assert vip("cancel", "--yes", new, "--reason", "x", "--erase").code == 0
    commands = {e["command"] for e in vip("audit", "--limit", "1000")["entries"]}
    for name, _ in steps + [("cancel --erase", None)]:
        if name == "init":
            continue  # the database was created by the first command, with its rules
        assert name in commands, name
    mine = vip("audit", "--operator", "tester", "--command", "unmask")
    assert mine["count"] >= 1 and all(e["operator"] == "tester" for e in mine["entries"])


HOSTILE = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "-1", "1e9", "99999999999999999999", "0.001", "NaN", "inf", "'; DROP TABLE customers;--",
                     "1; DELETE FROM ledger", "\x00", "\u202e138", "１３８", "../../etc/passwd", "--json", "-x",
                     "2026-02-30", "9999-99-99", "x" * 5000, "🙂", "None", "null", "0x10", "+86"]),
)
TEMPLATES = [
    ["purchase", "--phone", "{}", "--amount", "10"], ["purchase", "--phone", "13800138000", "--amount", "{}"],
    ["purchase", "{}", "--amount", "10"], ["purchase", "--phone", "13800138000", "--amount", "1", "--at", "{}"],
    ["purchase", "--phone", "13800138000", "--amount", "1", "--paid", "{}"],
    ["purchase", "--phone", "13800138000", "--amount", "1", "--store", "{}"],
    ["enroll", "--phone", "{}"], ["enroll", "--phone", "13800138001", "--name", "{}"],
    ["enroll", "--phone", "13800138001", "--birthday", "{}"], ["enroll", "--phone", "13800138001", "--id-number", "{}"],
    ["enroll", "--phone", "13800138001", "--gender", "{}"], ["enroll", "--phone", "13800138001", "--email", "{}"],
    ["refund", "{}"], ["refund", "R1", "--amount", "{}"], ["redeem", "{}", "--points", "1"],
    ["redeem", "755000015", "--points", "{}"], ["redeem", "755000015", "--reward", "{}"],
    ["update", "{}", "--name", "x"], ["update", "755000015", "--address", "{}"], ["update", "755000015", "--pref", "{}"],
    ["tier", "set", "755000015", "{}", "--reason", "x"], ["tier", "set", "755000015", "gold", "--reason", "{}"],
    ["tier", "review", "--yes", "--as-of", "{}"], ["points", "expire", "--yes", "--as-of", "{}"], ["card", "lost", "{}"],
    ["card", "renew", "{}"], ["cancel", "--yes", "{}", "--reason", "x"], ["visit", "log", "755000015", "--channel", "{}"],
    ["import", "purchases", "{}"], ["export", "members", "--out", "{}"], ["rules", "load", "{}"],
    ["birthdays", "--within", "{}"], ["audit", "--limit", "{}"], ["backup", "{}"],
]
TRIED = {"n": 0}


def _fingerprint(db):
    """Every row of the tables a command writes. The new rows' own ids are left out: PostgreSQL does not
    give back the ids a killed transaction drew (SQLite does), and a gap is not a difference."""
    with open_db(db) as conn:
        tables = []
        for t in ("customers", "cards", "purchases", "ledger", "point_lots", "changes", "tier_changes"):
            rows = conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
            keys = rows[0].keys() if rows else []
            tables.append([tuple(v for k, v in zip(keys, row) if k not in ("rowid",) and
                                 not (k == "id" and t in ("ledger", "tier_changes", "changes"))) for row in rows])
        return tables


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(template=st.sampled_from(TEMPLATES), value=HOSTILE)
def test_hostile_arguments_never_crash_or_write(vip, member, isolated, template, value):
    db = isolated / "vip.db"  # (on PostgreSQL, open_db reads the test's database by this name)
    if vip("show", P).code != 0:
        member()
    before = _fingerprint(db)
    if "--out" in template or template[0] in ("backup",):
        value = str(isolated / "nope" / (value.replace("/", "_")[:50] or "x"))
    args = [a.replace("{}", value) for a in template]
    r = vip(*args)
    TRIED["n"] += 1
    assert "Traceback" not in r.stdout + r.stderr
    if r.code != 0:
        assert r.code in (1, 2, 4), r
        assert r.data is not None and set(r.data) == {"error"}, r
        assert len(r.stderr.strip().splitlines()) == 1 and r.stdout == "", r
        assert _fingerprint(db) == before, args


MIXED_WORKER = textwrap.dedent("""
    import json, random, sys
    from typer.testing import CliRunner
    from vipcli.cli import app
    seed, phones = int(sys.argv[1]), json.loads(sys.argv[2])
    rng = random.Random(seed)
    runner = CliRunner()
    receipts = []
    for i in range(30):
        phone = rng.choice(phones)
        op = rng.choice(["purchase", "purchase", "redeem", "refund", "replace"])
        if op == "purchase":
            args = ["purchase", "--phone", phone, "--amount", str(rng.randint(10, 300)), "--receipt", f"W{seed}-{i}"]
        elif op == "redeem":
            args = ["redeem", phone, "--points", str(rng.randint(1, 150))]
        elif op == "refund" and receipts:
            args = ["refund", rng.choice(receipts), "--amount", "1"]
        elif op == "replace":
            args = ["card", "replace", phone]
        else:
            continue
        r = runner.invoke(app, ["--json", *args])
        out = json.loads(r.stdout if r.exit_code == 0 else r.stderr)  # (an error is on stderr)
        if op == "purchase" and r.exit_code == 0:
            receipts.append(out["receipt"])
        print(json.dumps({"op": op, "phone": phone, "code": r.exit_code, "out": out, "err": r.stderr}), flush=True)
""")


@pytest.mark.slow
@pytest.mark.parametrize("writer", ["inline", "process"])  # process: writer and order pass of their own
def test_eight_processes_mixed_with_export_and_import(vip, member, isolated, writer):
    phones = [f"1380013800{i}" for i in range(4)]
    for phone in phones:
        member(phone=phone)
        vip("purchase", "--phone", phone, "--amount", "2000", "--paid", "500")  # 500 points each to start
    rows = "\n".join(f"I{i},1390000{i:04d},2026-06-{1 + i % 14:02d}T10:00,{100 + i}" for i in range(3000))
    (isolated / "p.csv").write_text("receipt,phone,purchased_at,amount\n" + rows + "\n", encoding="utf-8")
    env = {**os.environ, "VIPCLI_IMPORT_WRITER": writer}
    procs = [subprocess.Popen([sys.executable, "-c", MIXED_WORKER, str(seed), json.dumps(phones)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for seed in range(8)]
    side = [subprocess.Popen([sys.executable, "-m", "vipcli", "--json", *args], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
            for args in (["import", "purchases", str(isolated / "p.csv")],
                         ["export", "members", "--out", str(isolated / "m.xlsx")])]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        results += [json.loads(line) for line in out.splitlines()]
    outs = []
    for proc in side:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, (out, err)
        assert "locked" not in out + err
        outs.append(out)
    report = json.loads(outs[0])
    assert (report["inserted"], report["in_time_order"]) == (3000, False)  # the days go round: sorted
    assert len(results) > 150
    for r in results:
        assert "locked" not in json.dumps(r)
        assert r["code"] in (0, 1), r
        if r["code"] == 1:
            assert r["out"]["error"]["code"] in ("insufficient_points", "negative_balance", "already_refunded",
                                                 "refund_too_large"), r
    for phone in phones:
        expected = 500
        for r in results:
            if r["phone"] != phone or r["code"]:
                continue
            if r["op"] == "purchase":
                expected += r["out"]["points_earned"]
            elif r["op"] == "redeem":
                expected -= r["out"]["points_redeemed"]
        refunds = sum(r["out"]["points_reversed"] for r in results if r["op"] == "refund" and not r["code"]
                      and vip("show", phone)["customer_id"] == _owner(isolated, r["out"]["receipt"]))
        assert vip("points", phone)["points_balance"] == expected - refunds, phone
    assert vip("check")["ok"] is True
    assert vip("info")["counts"]["purchases"] >= 3000


def _owner(isolated, receipt):
    with open_db() as conn:
        return conn.execute("SELECT customer_id FROM purchases WHERE receipt = ?", (receipt,)).fetchone()[0]


@pytest.mark.slow
@pytest.mark.parametrize("command,now", [
    (["tier", "review", "--yes", "--as-of", "2028-06-15"], "2028-06-16T10:00:00"),
    (["points", "expire", "--yes", "--as-of", "2027-01-01"], "2027-01-02T10:00:00"),
    (["card", "renew", "--all", "--yes"], "2026-12-15T10:00:00"),
])
def test_long_writes_killed_at_random_finish_exactly_once(vip, isolated, monkeypatch, command, now, fresh_database):
    import signal
    import time
    rows = "\n".join(f"K{i},1390000{i:04d},2026-0{1 + i % 9}-1{i % 10}T10:00,{5000 + i % 7}" for i in range(3000))
    (isolated / "p.csv").write_text("receipt,phone,purchased_at,amount\n" + rows + "\n", encoding="utf-8")
    monkeypatch.setenv("VIPCLI_NOW", "2026-12-01T00:00:00")
    assert vip("import", "purchases", str(isolated / "p.csv")).code == 0
    assert vip("backup", str(isolated / "reference.backup")).code == 0  # a copy including what the WAL holds
    live, copy = os.environ["VIPCLI_DB"], fresh_database("reference")
    monkeypatch.setenv("VIPCLI_NOW", now)
    monkeypatch.setenv("VIPCLI_DB", copy)
    assert vip("restore", str(isolated / "reference.backup")).code == 0
    assert vip(*command).code == 0
    reference = _fingerprint(copy)
    monkeypatch.setenv("VIPCLI_DB", live)
    env = {**os.environ}
    rng = random.Random(3)
    for _ in range(5):
        proc = subprocess.Popen([sys.executable, "-m", "vipcli", *command], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert vip("check")["ok"] is True
    assert vip(*command).code == 0
    assert _fingerprint(isolated / "vip.db") == reference


# --- issue 19.1: one wrong path must not destroy the database, the key or the input ----------------

@pytest.mark.sqlite_only  # (a file's companions: PostgreSQL has no file beside the key)
@pytest.mark.parametrize("target", ["vip.db", "vip.db-wal", "vip.db-shm", "vip.key", "vip.key.1", "link-to-db"])
@pytest.mark.parametrize("command", [
    ["export", "members", "--format", "csv", "--out", "{}"],
    ["export", "report", "--format", "xlsx", "--out", "{}"],
    ["notify", "birthday", "--out", "{}"],
    ["backup", "{}"],
    ["key", "export", "{}"],
    ["import", "members", "m.csv", "--rejects", "{}"],
])
def test_no_output_can_be_the_database_or_its_key(vip, member, isolated, monkeypatch, target, command):
    monkeypatch.chdir(isolated)
    member(id_number=ID)
    vip("key", "rotate", "--yes")  # vip.key.1 exists too
    (isolated / "link-to-db").symlink_to(isolated / "vip.db")
    (isolated / "m.csv").write_text("phone,name\n123,坏\n", encoding="utf-8")
    before = {p.name: p.read_bytes() for p in isolated.iterdir() if p.is_file() and p.name.startswith("vip.")}
    r = vip(*[a.format(target) for a in command])
    assert r.code == 2 and r.data["error"]["code"] in ("protected_path", "bad_path"), r
    after = {p.name: p.read_bytes() for p in isolated.iterdir() if p.is_file() and p.name.startswith("vip.")}
    assert after.keys() == before.keys() and after["vip.key"] == before["vip.key"]
    assert vip("show", P, "--unmask")["id_number"] == ID and vip("check")["ok"] is True


def test_rejects_may_not_be_the_input_and_nothing_is_imported(vip, isolated):
    path = isolated / "m.csv"
    path.write_text("phone,name\n13700137000,张伟\n123,坏\n", encoding="utf-8")
    r = vip("import", "members", str(path), "--rejects", str(path))
    assert r.code == 2 and r.data["error"]["code"] == "protected_path"
    assert path.read_text(encoding="utf-8").startswith("phone,name") and vip("show", "13700137000").code == 1


@pytest.mark.parametrize("command,ok_kind", [
    (["backup", "{}"], "backup"),
    (["export", "members", "--format", "csv", "--out", "{}"], "export"),
    (["notify", "birthday", "--out", "{}"], "outbox"),
])
def test_an_existing_file_of_another_kind_needs_force(vip, member, isolated, command, ok_kind):
    """As root, `vip backup ../../etc/passwd` replaced the system's user database."""
    member()
    foreign = isolated / "passwd"
    foreign.write_text("root:x:0:0:root:/root:/bin/bash\n")
    r = vip(*[a.format(foreign) for a in command])
    assert r.code == 2 and r.data["error"]["code"] == "would_replace" and foreign.read_text().startswith("root:")
    assert vip(*[a.format(foreign) for a in command], "--force").code == 0
    assert vip(*[a.format(foreign) for a in command]).code == 0  # now it is its own kind: replaced again


# --- issue 19.3: stored text is text, never rich markup ---------------------------------------------

HUMAN_VIEWS = [["show", P], ["search", ""], ["history", P], ["birthdays", "--within", "366"], ["audit"],
               ["cards"], ["visit", "due"], ["class"], ["purchase", P, "--amount", "1", "--receipt", "{text}"]]


MARKUP = st.one_of(st.sampled_from(["[/x]", "[/]", "[link=https://evil.example]请点此核对会员信息[/link]", "[bold red]x",
                                    ":smile:", "\\[x]", "[[a]]"]),
                   st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30))


def test_stored_text_is_printed_as_it_is_in_every_human_view(vip, member, isolated, engine):
    """A name `[/x]` broke show, search, history and birthdays for everyone; a receipt `[/]` reported a
    recorded sale as failed; a `[link=...]` name was shown as a link."""
    card = member(birthday="1990-06-20")

    @settings(max_examples=40, deadline=None)
    @given(text=MARKUP)
    def views(text):
        with open_db() as conn:
            conn.execute("UPDATE customers SET name = ?, address = ?", (text, text))
            conn.execute("INSERT INTO audit(at, operator, command) VALUES ('2026-06-01T00:00:00', ?, 'note')",
                         (text,))  # (the audit only grows)
            conn.execute("INSERT INTO changes(customer_id, field, old, new, at, operator) VALUES (1, 'name', ?, ?, "
                         "'2026-06-01T00:00:00', ?)", (text, text, text))
        receipt = text.strip()[:40] if text.strip().isprintable() and text.strip() else "R-plain"
        for view in HUMAN_VIEWS:
            args = [card if a == P and view[0] == "purchase" else a.replace("{text}", receipt) for a in view]
            r = vip(*args, json_output=False)
            assert r.code == 0, (view, r)
            assert "internal error" not in r.stderr and "Traceback" not in r.stderr
            if view[0] in ("show", "search", "history") and text.strip().isprintable():
                assert text.strip() in r.stdout.replace("\n", ""), (view, r.stdout)
        if engine == "sqlite":  # (PostgreSQL holds the purchase's lots to it: a reuse is shown as a duplicate)
            with open_db() as conn:
                conn.execute("DELETE FROM purchases WHERE receipt = ?", (receipt,))  # (a later example may reuse it)

    views()


def test_a_key_file_others_can_read_or_a_garbage_one_is_refused(vip, member, isolated):
    card = member(id_number=ID)
    key = isolated / "vip.key"
    key.chmod(0o644)
    r = vip("show", card, "--unmask")
    assert r.code == 4 and r.data["error"]["code"] == "insecure_key" and "chmod 600" in r.data["error"]["message"]
    key.chmod(0o600)
    assert vip("show", card, "--unmask")["id_number"] == ID
    good = key.read_bytes()
    key.write_bytes(b"garbage")
    assert vip("show", card, "--unmask").data["error"]["code"] == "wrong_key"
    key.write_bytes(good)


@pytest.mark.parametrize("args,field", [
    (["purchase", "--phone", P, "--amount", "10", "--at", "0001-01-01"], "at"),
    (["tier", "review", "--yes", "--as-of", "0001-01-01T10:00"], "as-of"),
    (["class", "--as-of", "1899-12-31"], "as-of"),
    (["birthdays", "--within", "²"], "within"),
    (["purchase", "--phone", P, "--amount", "²"], "amount"),
    (["purchase", "--phone", P, "--amount", "𝟏𝟎"], "amount"),
    (["purchase", "--phone", "¹³⁸⁰⁰¹³⁸⁰⁰⁰", "--amount", "1"], "phone"),
    (["purchase", "--phone", P, "--amount", "9" * 5000], "amount"),
    (["import", "purchases", ""], "file"),
])
def test_hostile_values_are_one_short_line_exit_2(vip, args, field):
    """Seen as internal errors, or accepted ('²' as 2.00); a 5,000-digit number echoed whole."""
    r = vip(*args)
    assert r.code == 2 and r.data["error"]["message"].startswith(f"{field}: "), r
    assert len(r.data["error"]["message"]) < 200


def test_full_width_digits_are_still_numbers(vip):
    assert vip("purchase", "--phone", "１３８００１３８０００", "--amount", "１０．５０")["paid"] == "10.50"


# --- issue 19.6: personal data outside the protected places -------------------------------------------

def test_rejects_files_mask_phones_and_id_numbers(vip, isolated):
    path = isolated / "m.csv"
    path.write_text("phone,name,id_number,birthday\n13700137000,张伟,11010519491231002X,1990-13-01\n"
                    "13600136000,李,110105194912310038,bad\n", encoding="utf-8")
    assert vip("import", "members", str(path)).code == 3
    text = (isolated / "m.rejects.csv").read_text(encoding="utf-8-sig")
    assert "137****7000" in text and "110105********002X" in text
    for full in ("13700137000", "11010519491231002X", "13600136000", "110105194912310038"):
        assert full not in text


def test_a_refused_id_number_names_nobody_and_is_audited(vip, member, isolated):
    member(id_number=ID)
    r = vip("enroll", "--phone", "13900139000", "--name", "李", "--id-number", ID)
    message = r.data["error"]["message"]
    assert r.code == 1 and r.data["error"]["code"] == "duplicate_id" and "customer" not in message and "1" not in message
    assert vip("show", "13900139000").code == 1  # nothing written
    entries = vip("audit", "--command", "id number refused")["entries"]
    assert len(entries) == 1 and entries[0]["target"] == "139****9000"


def test_an_id_number_can_come_from_stdin_out_of_the_process_list(vip, isolated):
    from typer.testing import CliRunner

    from vipcli.cli import app
    r = CliRunner().invoke(app, ["--json", "enroll", "--phone", P, "--id-number", "-"], input=ID + "\n")
    assert r.exit_code == 0, r.stdout
    assert vip("show", P, "--unmask")["id_number"] == ID


# --- issue 19.5: erasure (PIPL art. 47) is complete ---------------------------------------------------

def test_a_prospect_can_be_erased_and_preference_names_go_too(vip, isolated):
    vip("purchase", "--phone", P, "--amount", "10")
    vip("update", P, "--name", "王芳", "--pref", "病史=高血压")
    r = vip("cancel", "--yes", P, "--reason", "本人要求", "--erase")
    assert r.code == 0 and r["erased"] is True and r["card_no"] is None and r["wiped_from_file"] is True
    data = stored_bytes(isolated)
    for value in ("王芳", "病史", "高血压", "13800138000"):
        assert value.encode() not in data, value
    assert vip("check")["ok"] is True


def test_a_restore_of_an_older_backup_erases_again_whoever_was_erased(vip, member, isolated):
    card = member()
    assert vip("backup", str(isolated / "old.db")).code == 0
    assert vip("cancel", "--yes", card, "--reason", "本人要求", "--erase").code == 0
    r = vip("restore", str(isolated / "old.db"), "--yes")
    assert r.code == 0 and r["erased_again"] == [1]
    shown = vip("show", card)
    assert shown["name"] is None and shown["phone"] is None and shown["status"] == "cancelled"
    assert "王芳".encode() not in stored_bytes(isolated)
    assert vip("check")["ok"] is True


def test_an_erase_beside_a_long_reader_says_the_old_values_are_still_in_the_log(vip, member, isolated,
                                                                               monkeypatch):
    card = member()
    monkeypatch.setenv("VIPCLI_BUSY_TIMEOUT", "0.3")
    from vipcli.db import begin_read

    with open_db() as reader:
        begin_read(reader)
        reader.execute("SELECT COUNT(*) FROM customers").fetchone()  # holds its snapshot
        try:
            r = vip("cancel", "--yes", card, "--reason", "x", "--erase")
            human = vip("cancel", "--yes", card, "--reason", "x", "--erase", json_output=False)
        finally:
            reader.execute("ROLLBACK")
    assert r.code == 0 and r["erased"] is True and r["wiped_from_file"] is False
    assert human.code == 0


def test_control_characters_in_names_and_paths_are_shown_escaped(vip, member, isolated):
    """File names and stored text with ESC sequences or U+202E were echoed raw to the terminal."""
    card = member()
    with open_db() as conn:
        conn.execute("UPDATE customers SET name = ?", ("王\x1b[2J芳\u202e",))
    shown = vip("show", card, json_output=False)
    assert "\x1b" not in shown.stdout and "\u202e" not in shown.stdout and "王\\x1b[2J芳\\u202e" in shown.stdout
    out = isolated / "a\x1b[31mred\u202eb.csv"
    wrote = vip("export", "members", "--out", str(out), json_output=False)
    assert wrote.code == 0 and "\x1b" not in wrote.stdout and "a\\x1b[31mred\\u202eb.csv" in wrote.stdout
    missing = vip("import", "members", str(isolated / "x\x1b[2Jy.csv"), json_output=False)
    assert missing.code == 2 and "\x1b" not in missing.stderr


def test_a_killed_runs_temporary_file_is_removed_by_the_next_and_said(vip, member, isolated):
    """A killed `vip backup` left .part files holding a copy of every customer."""
    import fcntl
    member()
    stale = isolated / ".b.db.abc123.part"
    stale.write_bytes(b"a copy of every customer")
    busy = isolated / ".b.db.def456.part"  # another run is still writing this one
    busy.write_bytes(b"in progress")
    holder = os.open(busy, os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        r = vip("backup", str(isolated / "b.db"))
    finally:
        os.close(holder)
    assert r.code == 0 and not stale.exists() and busy.exists()
    assert "removed 1 unfinished temporary file" in r.stderr and ".b.db.abc123.part" in r.stderr


# --- every command's every option and argument, walked with hostile values ------------------------------

def _every_slot():
    """(command path, its arguments and required options filled, the slot to put a hostile value in),
    for every leaf command of the real app and each argument and value-taking option it has."""
    from typer.main import get_command

    from vipcli.cli import app

    def walk(cmd, path):
        if hasattr(cmd, "list_commands"):  # (the root finds its commands lazily: asked by name)
            for name in cmd.list_commands(None):
                yield from walk(cmd.get_command(None, name), path + [name])
        else:
            yield path, cmd

    arguments = {"CARD/PHONE": "{card}", "[CARD]": "{card}", "CARD": "{card}", "[CARD/PHONE]": "{card}",
                 "TEXT": "王", "RECEIPT": "R1", "FILE": "{file}", "DEST": "{new}", "SRC": "{new}", "TIER": "gold",
                 "card-issued|birthday|renewal": "birthday", "NAME": "anna", "ROLE": "clerk", "ID": "1"}
    required = {"--reason": "x", "--amount": "10", "--channel": "phone", "--out": "{new}", "--phone": P,
                "--points": "1", "--to": "postgresql://nobody@/none?host=/nonexistent", "--role": "clerk"}
    slots = []
    for path, cmd in walk(get_command(app), []):
        if path[0] in ("demo", "init", "restore"):
            continue  # they make or replace a whole database: their own tests
        params = [p for p in cmd.params if type(p).__name__.endswith("Argument")]
        base = [arguments.get(p.metavar, p.metavar.split("|")[0]) for p in params]
        options = [p for p in cmd.params if type(p).__name__.endswith("Option") and not p.is_flag]
        filled = [x for p in options if p.required for x in (p.opts[0], required[p.opts[0]])]
        flags = ["--yes"] if any("--yes" in p.opts for p in cmd.params) else []
        for i, param in enumerate(params):
            hole = "{path}" if param.metavar in PATH_LIKE else "{value}"
            slots.append([*path, *base[:i], hole, *base[i + 1:], *filled, *flags])
        for option in options:
            rest = [x for p in options if p.required and p is not option for x in (p.opts[0], required[p.opts[0]])]
            hole = "{path}" if option.opts[0] in PATH_LIKE else "{value}"
            slots.append([*path, *base, *rest, option.opts[0], hole, *flags])
    return slots


PATH_LIKE = ("--out", "--rejects", "--keep", "--rules", "DEST", "SRC", "FILE")
EVERY_SLOT = _every_slot()


def test_the_walk_reaches_every_command():
    commands = {" ".join(s[:2]) if s[0] in ("card", "visit", "import", "points", "rules", "key", "tier") else s[0]
                for s in EVERY_SLOT}
    assert {"purchase", "refund", "redeem", "export", "notify", "import purchases", "key export", "tier set",
            "visit log", "points adjust", "search", "update"} <= commands
    assert len(EVERY_SLOT) > 80


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(slot=st.sampled_from(EVERY_SLOT), value=HOSTILE)
def test_every_option_of_every_command_takes_hostile_values_without_a_crash(vip, member, isolated, monkeypatch,
                                                                            slot, value):
    """A path slot gets the value as a file name inside a folder that does not exist (never a real
    path of this machine); any other slot gets it as it is, run from a folder of the test's own."""
    (isolated / "cwd").mkdir(exist_ok=True)
    monkeypatch.chdir(isolated / "cwd")
    db = isolated / "vip.db"
    if vip("show", P).code != 0:
        member()
        (isolated / "in.csv").write_text("phone,name\n13700137000,张伟\n", encoding="utf-8")
    card = vip("show", P)["card_no"]
    before = _fingerprint(db)
    path = str(isolated / "nope" / (value.replace("/", "_").replace("\x00", "_")[:50] or "x"))
    args = [a.replace("{value}", value).replace("{path}", path).replace("{card}", card)
            .replace("{file}", str(isolated / "in.csv")).replace("{new}", str(isolated / "out" / "new.csv"))
            for a in slot]
    r = vip(*args)
    assert "Traceback" not in r.stdout + r.stderr and "internal error" not in r.stdout + r.stderr, (args, r)
    assert r.code in (0, 1, 2, 3, 4), (args, r)
    if r.code not in (0, 3):
        assert r.data is not None and set(r.data) == {"error"}, (args, r)
        assert len(r.stderr.strip().splitlines()) == 1 and r.stdout == "", (args, r)
        assert _fingerprint(db) == before, args


def test_the_default_folder_is_the_one_typer_would_give(monkeypatch, tmp_path):
    """vipcli.places follows typer's get_app_dir without importing typer into the domain."""
    import typer

    from vipcli.places import app_dir

    for xdg in (None, str(tmp_path / "xdg")):
        if xdg:
            monkeypatch.setenv("XDG_CONFIG_HOME", xdg)
        else:
            monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
        assert str(app_dir()) == typer.get_app_dir("vipcli")


def test_typer_internals_read_by_fastparams_are_where_they_were():
    """cli/fastparams.py reaches into typer 0.29's private modules (pinned in pyproject.toml) to
    spare pydantic's coercion; should they move, this fails loudly instead of startup quietly
    slowing down by a tenth of a second."""
    import subprocess
    import sys

    from vipcli.cli import fastparams

    assert fastparams.RuntimeParam is not None and fastparams._TyperParameter is not None, (
        "typer._coercion.RuntimeParam or typer.core._TyperParameter moved: re-read typer, or drop fastparams")
    code = ("import sys; from vipcli.cli import main; sys.argv = ['vip', 'rules', 'profiles']\n"
            "try: main()\nexcept SystemExit: pass\nprint('pydantic' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False"


def test_every_command_is_in_the_table_and_found_by_loading_only_its_module():
    """vipcli.cli.COMMANDS names every command and group of every command module, and `vip NAME`
    imports that module alone."""
    import importlib
    import pkgutil
    import subprocess
    import sys

    import typer

    import vipcli.cli as cli

    defined = {}
    for info in pkgutil.iter_modules(cli.__path__):
        module = importlib.import_module(f"vipcli.cli.{info.name}")
        if isinstance(getattr(module, "cli", None), typer.Typer):
            defined.update({name: info.name for name in typer.main.get_group(module.cli).commands})
    assert defined == cli.COMMANDS
    code = ("import sys; from vipcli.cli import main; sys.argv = ['vip', 'purchase', '--help']\n"
            "try: main()\nexcept SystemExit: pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('vipcli.cli.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    commands = set(cli.COMMANDS.values())
    assert [m for m in eval(out.strip().splitlines()[-1]) if m.rsplit(".", 1)[1] in commands] == ["vipcli.cli.sales_cmd"]


def test_help_names_what_to_type(vip):
    """Issue 16.9, in part: no option or argument shows a type name such as <str>, none is doubly
    bracketed ([[CARD]]), and every command's help ends with an example."""
    from vipcli.cli import COMMANDS, _module_group

    def leaves(cmd, path):
        if hasattr(cmd, "list_commands"):
            for name in cmd.list_commands(None):
                yield from leaves(cmd.get_command(None, name), path + [name])
        else:
            yield path

    paths = [p for name in COMMANDS for p in leaves(_module_group(COMMANDS[name]).get_command(None, name), [name])]
    assert len(paths) > 40
    for path in paths:
        text = vip(*path, "--help", json_output=False).stdout
        assert "<str>" not in text and "[[" not in text, (path, text)
        assert "Example:" in text or "Example" in " ".join(text.split()), path
