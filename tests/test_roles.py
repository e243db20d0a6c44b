"""Issue 18: roles that hold (every command against every role, on both engines), and the unmask record."""

import os
import sqlite3

import pytest

from conftest import as_login, open_db
from vipcli import roles

P = "13800138000"


def _leaf_commands():
    """Every leaf command of the real app, by its name as typed ("tier set")."""
    from vipcli.cli import COMMANDS, _module_group

    def walk(cmd, path):
        if hasattr(cmd, "list_commands"):
            for name in cmd.list_commands(None):
                yield from walk(cmd.get_command(None, name), path + [name])
        else:
            yield " ".join(path), cmd

    for name, module in COMMANDS.items():
        yield from walk(_module_group(module).get_command(None, name), [name])


LEAVES = dict(_leaf_commands())


def test_every_command_has_its_roles_and_no_role_names_a_command_that_is_gone():
    assert set(LEAVES) - set(roles.PERMISSIONS) == set(), "a command without roles (vipcli/roles.py PERMISSIONS)"
    assert set(roles.PERMISSIONS) - set(LEAVES) == set()
    for name, allowed in roles.PERMISSIONS.items():
        assert set(allowed) <= set(roles.ROLES), name


def test_the_issue_s_table_of_roles():
    """The jobs the issue names, each with the role it gives them."""
    may = {role: {name for name, allowed in roles.PERMISSIONS.items() if role in allowed} for role in roles.ROLES}
    assert {"purchase", "refund", "show", "search", "enroll", "apply", "applications"} <= may["clerk"]
    assert not {"card lost", "export", "approve", "tier set", "audit", "cancel"} & may["clerk"]
    assert {"card lost", "card found", "card replace", "card renew", "visit log", "export"} <= may["manager"]
    assert not {"approve", "reject", "tier set", "points adjust", "cancel", "rules load", "notify"} & may["manager"]
    assert {"approve", "reject", "tier set", "points adjust", "cancel", "rules load", "notify", "user add"} <= may["hq"]
    assert may["auditor"] == {"audit", "check", "info", "whoami"}
    assert {n for n, a in roles.PERMISSIONS.items() if a} <= may["hq"]


# --- every command as every role ----------------------------------------------------------------

ARGUMENTS = {"CARD/PHONE": P, "[CARD]": P, "CARD": P, "[CARD/PHONE]": P, "TEXT": "王", "RECEIPT": "R1",
             "FILE": "{dir}/none.csv", "DEST": "{dir}/out.bak", "SRC": "{dir}/none.bak", "TIER": "gold",
             "NAME": "nobody", "ROLE": "clerk", "ID": "1", "card-issued|birthday|renewal": "birthday",
             "purchases|members": "purchases"}
OPTIONS = {"--reason": "x", "--amount": "10", "--channel": "phone", "--out": "{dir}/out.csv", "--phone": "13900139000",
           "--points": "1", "--to": "postgresql://nobody@/none?host=/nonexistent", "--role": "clerk"}


# Commands that, given these, succeed for every role that may run them (the database's grants at work)
OVERRIDES = {"purchase": ["purchase", "{card}", "--amount", "10"], "redeem": ["redeem", "{card}", "--points", "1"],
             "update": ["update", P, "--email", "wang@example.cn"], "refund": ["refund", "R1", "--amount", "0.01"],
             # (what changes a card's state, on another member's card)
             "card lost": ["card", "lost", "{other}"], "card found": ["card", "found", "{other}"],
             "card replace": ["card", "replace", "{other}"], "card renew": ["card", "renew", "{other}", "--force"]}


def _argv(name: str, folder) -> list[str]:
    cmd = LEAVES[name]
    argv = name.split()
    for param in cmd.params:
        kind = type(param).__name__
        if kind.endswith("Argument"):
            argv.append(ARGUMENTS.get(param.metavar, param.metavar.split("|")[0]))
        elif kind.endswith("Option") and param.required:
            argv += [param.opts[0], OPTIONS[param.opts[0]]]
    if any("--dry-run" in getattr(p, "opts", ()) for p in cmd.params):
        argv.append("--dry-run")
    return [a.replace("{dir}", str(folder)) for a in argv]


def become(monkeypatch, engine: str, owner: str, name: str) -> None:
    """Work as user `name`: on a file the operator named, on PostgreSQL the login."""
    if engine == "sqlite":
        monkeypatch.setenv("VIPCLI_OPERATOR", name)
    else:
        monkeypatch.setenv("VIPCLI_DB", as_login(owner, name))


CHECKED = sorted(n for n, allowed in roles.PERMISSIONS.items() if allowed != roles.NO_DATABASE
                 and n not in ("init", "restore", "db copy", "key rotate", "key export", "user add"))


def test_each_role_against_each_command(vip, member, engine, isolated, monkeypatch):
    """Every command that reads a database, run by a user of each role: refused (exit 1, not_allowed,
    recorded) exactly where PERMISSIONS says, and never refused for its role where it allows it, by
    vipcli or (on PostgreSQL) by the database's grants."""
    card, other = member(), member(phone="13900139001")
    owner = os.environ["VIPCLI_DB"]
    for role in roles.ROLES:
        assert vip("user", "add", f"r_{role}", "--role", role).code == 0
    vip("purchase", card, "--amount", "100", "--receipt", "R1")
    refusals, succeeded = 0, {}
    for role in roles.ROLES:
        become(monkeypatch, engine, owner, f"r_{role}")
        for name in CHECKED:
            r = vip(*[a.replace("{card}", card).replace("{other}", other)
                      for a in OVERRIDES.get(name, _argv(name, isolated))])
            code = (r.data or {}).get("error", {}).get("code") if r.code else None
            if role in roles.PERMISSIONS[name]:
                assert code != "not_allowed", (role, name, r)
                assert r.code != 4 and "permission" not in r.stderr, (role, name, r)  # (the database's grants)
                succeeded[name] = succeeded.get(name, 0) + (r.code == 0)
            else:
                assert r.code == 1 and code == "not_allowed", (role, name, r)
                assert f"'{name}' needs role" in r.data["error"]["message"]
                refusals += 1
    become(monkeypatch, engine, owner, "tester")
    monkeypatch.setenv("VIPCLI_DB", owner)
    refused = vip("audit", "--command", "refused", "--limit", "1000")["entries"]
    assert len(refused) == refusals > 40
    assert {e["operator"] for e in refused} == {"r_clerk", "r_manager", "r_auditor"}
    assert succeeded["purchase"] == succeeded["redeem"] == succeeded["refund"] == succeeded["update"] == 3
    assert succeeded["check"] == 3 and succeeded["audit"] == 2 and succeeded["info"] == 4


def test_a_removed_user_is_refused_and_what_they_did_stays(vip, member, engine, monkeypatch):
    card = member()
    owner = os.environ["VIPCLI_DB"]
    vip("user", "add", "r_gone", "--role", "clerk")
    become(monkeypatch, engine, owner, "r_gone")
    assert vip("purchase", card, "--amount", "10").code == 0
    become(monkeypatch, engine, owner, "tester")
    assert vip("user", "remove", "r_gone")["removed"] is True
    assert vip("user", "remove", "r_gone").data["error"]["code"] == "unknown_user"
    become(monkeypatch, engine, owner, "r_gone")
    r = vip("purchase", card, "--amount", "10")
    assert r.code == 1 and r.data["error"]["code"] == "not_allowed"
    if engine == "postgresql":  # the login keeps no group: plain SQL is refused too
        import psycopg

        with psycopg.connect(as_login(owner, "r_gone")) as gone:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                gone.execute("SELECT COUNT(*) FROM customers")
    become(monkeypatch, engine, owner, "tester")
    assert [e["operator"] for e in vip("audit", "--command", "purchase")["entries"]] == ["r_gone"]


@pytest.mark.parametrize("name", ["key rotate", "key export", "restore", "db copy", "user add", "init"])
def test_the_commands_that_replace_or_hand_out_everything_need_hq(vip, member, engine, isolated, monkeypatch, name):
    member()
    owner = os.environ["VIPCLI_DB"]
    assert vip("user", "add", "r_manager", "--role", "manager").code == 0
    become(monkeypatch, engine, owner, "r_manager")
    r = vip(*_argv(name, isolated), *(["--yes"] if name in ("key rotate", "restore") else []))
    assert r.code == 1 and r.data["error"]["code"] == "not_allowed", r


# --- users -------------------------------------------------------------------------------------

def test_the_init_operator_is_hq_and_an_unknown_operator_is_refused_and_recorded(vip, engine, monkeypatch):
    assert vip("init").code == 0
    assert vip("whoami").data == {"name": "tester", "role": "hq", "store": None}
    assert [u["name"] for u in vip("user", "list")["users"]] == ["tester"]
    if engine == "sqlite":
        monkeypatch.setenv("VIPCLI_OPERATOR", "stranger")
        r = vip("search", "王")
        assert r.code == 1 and "'stranger' is not a vipcli user" in r.data["error"]["message"]
        monkeypatch.setenv("VIPCLI_OPERATOR", "tester")
        entry = vip("audit", "--command", "refused")["entries"][0]
        assert (entry["operator"], entry["target"], entry["detail"]) == ("stranger", "search", {"role": None})


def test_user_role_changes_are_recorded_and_the_last_hq_stays(vip, monkeypatch, engine):
    vip("init")
    assert vip("user", "add", "r_anna", "--role", "clerk", "--store", "SZ01")["store"] == "SZ01"
    assert vip("user", "add", "r_anna", "--role", "manager").data["error"]["code"] == "user_exists"
    assert vip("user", "add", "r_bob", "--role", "boss").code == 2
    assert vip("user", "role", "r_nobody", "hq").code == 1
    r = vip("user", "role", "r_anna", "manager")
    assert (r["from"], r["role"]) == ("clerk", "manager")
    last = vip("user", "role", "tester", "clerk")
    assert last.code == 1 and last.data["error"]["code"] == "last_hq"
    assert vip("user", "remove", "tester").data["error"]["code"] == "last_hq"
    assert [e["command"] for e in vip("audit", "--limit", "2")["entries"]] == ["user role", "user add"]


def test_a_store_s_clerk_records_at_that_store_only(vip, member, engine, monkeypatch):
    card = member()
    owner = os.environ["VIPCLI_DB"]
    vip("user", "add", "r_sz01", "--role", "clerk", "--store", "SZ01")
    become(monkeypatch, engine, owner, "r_sz01")
    assert vip("purchase", card, "--amount", "10")["receipt"] == "R20260615-SZ01-000001"  # (the user's store)
    r = vip("purchase", card, "--amount", "10", "--store", "GZ01")
    assert r.code == 1 and "works at store SZ01" in r.data["error"]["message"]


def test_a_store_s_manager_lists_and_exports_that_store_s_rows_only(vip, member, engine, isolated, monkeypatch):
    member(store="SZ01")
    member(phone="13900139001", store="GZ01")
    owner = os.environ["VIPCLI_DB"]
    vip("user", "add", "r_gz01", "--role", "manager", "--store", "GZ01")
    become(monkeypatch, engine, owner, "r_gz01")
    out = isolated / "members.csv"
    assert vip("export", "members", "--out", str(out))["rows"] == 1  # (GZ01's customer)
    assert "13900139001"[-4:] in out.read_text(encoding="utf-8-sig")
    assert vip("export", "members", "--out", str(out), "--store", "SZ01").data["error"]["code"] == "not_allowed"
    assert vip("visit", "due", "--store", "SZ01").data["error"]["code"] == "not_allowed"
    assert vip("search", "王")["total"] == 2  # (a customer of any store is served at the till)


def test_a_clerk_refunds_the_day_s_purchases_a_manager_any_day_s(vip, member, engine, monkeypatch):
    card = member()
    owner = os.environ["VIPCLI_DB"]
    old = vip("purchase", card, "--amount", "100", "--receipt", "OLD1", "--at", "2026-06-14T18:00")
    today = vip("purchase", card, "--amount", "100", "--receipt", "NEW1")
    assert old.code == today.code == 0
    vip("user", "add", "r_clerk", "--role", "clerk")
    vip("user", "add", "r_manager", "--role", "manager")
    become(monkeypatch, engine, owner, "r_clerk")
    assert vip("refund", "NEW1", "--amount", "10").code == 0
    r = vip("refund", "OLD1", "--amount", "10")
    assert r.code == 1 and "of 2026-06-14" in r.data["error"]["message"]
    become(monkeypatch, engine, owner, "r_manager")
    assert vip("refund", "OLD1", "--amount", "10").code == 0


# --- looking at personal data (借阅记录) ----------------------------------------------------------

def test_unmasking_needs_hq_or_a_manager_with_a_reason_and_each_look_is_recorded(vip, member, engine, isolated,
                                                                                 monkeypatch):
    member()
    owner = os.environ["VIPCLI_DB"]
    vip("user", "add", "r_clerk", "--role", "clerk")
    vip("user", "add", "r_manager", "--role", "manager")
    become(monkeypatch, engine, owner, "r_clerk")
    assert vip("show", P)["phone"] == "138****8000"
    r = vip("show", P, "--unmask", "--reason", "customer asked")
    assert r.code == 1 and r.data["error"]["code"] == "not_allowed"
    become(monkeypatch, engine, owner, "r_manager")
    r = vip("show", P, "--unmask")
    assert r.code == 1 and "--reason" in r.data["error"]["message"]
    assert vip("show", P, "--unmask", "--reason", "delivery address check")["phone"] == P
    out = isolated / "members.csv"
    assert vip("export", "members", "--out", str(out), "--unmask").code == 1
    assert not out.exists()
    assert vip("export", "members", "--out", str(out), "--unmask", "--reason", "mailing")["masked"] is False
    become(monkeypatch, engine, owner, "tester")
    assert vip("history", P, "--unmask").code == 0  # (hq: no reason asked)
    looks = vip("audit", "--command", "unmask")["entries"]
    assert [(e["operator"], e["detail"]["via"], e["detail"]["reason"]) for e in looks] == [
        ("tester", "history", None), ("r_manager", "export members", "mailing"),
        ("r_manager", "show", "delivery address check")]
    refused = vip("audit", "--command", "refused")["entries"]
    assert [e["target"] for e in refused] == ["export --unmask", "show --unmask", "show --unmask"]


# --- the database's own refusal (PostgreSQL) -----------------------------------------------------

@pytest.mark.postgresql_only
def test_an_auditor_s_login_reads_but_cannot_change_anything_through_plain_sql(vip, member):
    card = member()
    vip("purchase", card, "--amount", "100")
    assert vip("user", "add", "r_audit_sql", "--role", "auditor").code == 0
    with open_db(as_login(os.environ["VIPCLI_DB"], "r_audit_sql")) as auditor:
        assert auditor.execute("SELECT COUNT(*) FROM audit").fetchone()[0] > 0
        for statement in ("UPDATE purchases SET paid = 0", "INSERT INTO users VALUES ('x', 'hq', NULL, 'x', 'x')",
                          "DELETE FROM customers", "UPDATE point_lots SET remaining = 1000000"):
            with pytest.raises(sqlite3.Error, match="not allowed|permission denied"):
                auditor.execute(statement)
    assert vip("user", "role", "r_audit_sql", "clerk").code == 0
    with open_db(as_login(os.environ["VIPCLI_DB"], "r_audit_sql")) as clerk:  # the grant follows the role
        with pytest.raises(sqlite3.Error, match="not allowed|permission denied"):
            clerk.execute("SELECT * FROM audit")
        assert clerk.execute("SELECT COUNT(*) FROM purchases").fetchone()[0] == 1
