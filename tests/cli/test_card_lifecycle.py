import csv

import pytest
from conftest import open_db, stored_bytes

P = "13800138000"


def test_lost_card_cant_buy_or_redeem_replacement_can(vip, member):
    card = member()
    vip("purchase", card, "--amount", "6000")  # 5280 paid: silver
    assert vip("card", "lost", card)["status"] == "blocked"
    assert vip("purchase", card, "--amount", "10").code == 1
    assert vip("redeem", card, "--points", "10").code == 1
    r = vip("card", "replace", card)
    new = r["new_card_no"]
    assert r["status"] == "replaced" and new != card and new[:3] == card[:3] and r["points_moved"] == 5280
    assert vip("points", new)["points_balance"] == 5280
    assert vip("tier", "show", new)["tier"] == "silver"
    assert vip("redeem", new, "--points", "280")["points_balance"] == 5000
    bought = vip("purchase", new, "--amount", "100")
    assert bought["paid"] == "85.00" and bought["card_no"] == new
    old = vip("purchase", card, "--amount", "10")
    assert old.code == 1 and "replaced" in old["error"]["message"]
    assert vip("show", P)["card_no"] == new and vip("show", P)["spend_12m"] == "5365.00"
    assert vip("check")["ok"] is True


def test_a_member_without_the_lost_card_earns_by_phone(vip, member):
    """Counter rules 二.2 (临时丢失或忘记携带…提供姓名和电话…方可享受积分): by phone, a lost card's
    owner gets the card's discount and points, which move with the replacement; redeeming waits."""
    card = member()
    vip("purchase", card, "--amount", "6000")  # 5280 paid: silver
    vip("card", "lost", card)
    r = vip("purchase", "--phone", P, "--amount", "100")
    assert r.code == 0 and (r["paid"], r["discount_rate"], r["points_earned"]) == ("85.00", "0.85", 85)
    assert r["card_no"] == card and "reported lost" in r["note"]
    assert vip("purchase", card, "--amount", "100").code == 1  # the lost card itself stays refused
    assert vip("redeem", card, "--points", "10").code == 1
    new = vip("card", "replace", card)["new_card_no"]
    assert vip("points", new)["points_balance"] == 5365
    assert vip("check")["ok"] is True


def test_found_restores(vip, member):
    card = member()
    vip("card", "lost", card)
    assert vip("card", "found", card)["status"] == "active"
    assert vip("purchase", card, "--amount", "10").code == 0
    assert vip("card", "found", card).code == 1


def test_debt_moves_with_the_card(vip, member):
    card = member()
    first = vip("purchase", card, "--amount", "2000", "--paid", "1000")
    vip("redeem", card, "--points", "1000")
    vip("refund", first["receipt"])
    new = vip("card", "replace", card)["new_card_no"]
    assert vip("points", new)["points_balance"] == -1000
    assert vip("purchase", new, "--amount", "2000", "--paid", "1500")["points_balance"] == 500
    assert vip("check")["ok"] is True


@pytest.mark.parametrize("now,ok", [
    ("2026-11-30T23:59", False), ("2026-12-01T00:00", True), ("2026-12-31T23:59", True), ("2027-01-01T00:00", False),
])
def test_renewal_window_edges(vip, member, now, ok):
    card = member()
    r = vip("card", "renew", card, now=now)
    assert (r.code == 0) is ok, r
    if ok:
        assert r["valid_to"] == "2027-12-31"


def test_forced_renewal_outside_window_is_audited_and_revives_expired(vip, member, isolated):
    card = member()
    late = vip("purchase", card, "--amount", "100", now="2027-03-01T10:00")
    assert late["status"] == "expired" and late["points_earned"] == 0
    r = vip("card", "renew", card, "--force", now="2027-03-01T11:00")
    assert r["valid_to"] == "2027-12-31"
    assert vip("purchase", card, "--amount", "100", now="2027-03-01T12:00")["paid"] == "88.00"
    with open_db() as conn:
        assert conn.execute("SELECT operator FROM audit WHERE command = 'card renew --force'").fetchone()
    again = vip("card", "renew", card, now="2027-03-02T10:00")
    assert again.code == 1


@pytest.mark.parametrize("now,expected", [("2026-12-31T23:59:59", "active"), ("2027-01-01T00:00:00", "expired")])
def test_unrenewed_card_expires_on_the_first_of_january(vip, member, now, expected):
    card = member()
    assert vip("show", card, now=now)["status"] == expected


def test_renew_all_batch(vip, member):
    cards = [member(phone=f"1380013800{i}") for i in range(3)]
    vip("card", "lost", cards[2])
    assert vip("card", "renew", "--all", "--yes", now="2026-11-15").code == 2
    r = vip("card", "renew", "--all", "--yes", now="2026-12-02T09:00")
    assert r["renewed"] == 2 and {c["card_no"] for c in r["cards"]} == set(cards[:2])
    assert vip("card", "renew", "--all", "--yes", now="2026-12-02T10:00")["renewed"] == 0
    table = vip("cards")["cards"]
    assert [c["renewals"] for c in table] == [1, 1, 0]
    assert vip("cards", "--status", "blocked")["count"] == 1


def test_card_tracking_table_masks_holder(vip, member):
    card = member()
    new = vip("card", "replace", card)["new_card_no"]
    rows = vip("cards")["cards"]
    assert rows[0]["holder"] == "王*" and rows[0]["phone"] == "138****8000"
    assert rows[0]["replaced_by"] == new and rows[0]["status"] == "replaced"
    assert vip("cards", "--region", "020")["count"] == 0


@pytest.mark.parametrize("now,status", [
    ("2026-07-01T10:00", "active"),          # day 30 after 2026-06-01
    ("2026-06-30T10:00", "active"),          # day 29
    ("2026-07-02T10:00", "discount_only"),   # day 31
])
def test_registration_window_edges(vip, now, status):
    vip("purchase", "--phone", P, "--amount", "1000", now="2026-06-01T10:00")
    assert vip("show", P, now=now)["status"] == status


def test_discount_only_gets_no_birthday_rate(vip):
    card = vip("purchase", "--phone", P, "--amount", "1000", now="2026-01-01T10:00")["card_no"]
    vip("update", P, "--birthday", "1990-06-15", now="2026-02-01T10:00")
    r = vip("purchase", card, "--amount", "100", "--birthday-id-checked", now="2026-06-15T10:00")
    assert r["status"] == "discount_only" and r["discount_rate"] == "0.88" and r["points_earned"] == 0


def test_cancel_forfeits_points(vip, member, isolated):
    card = member()
    vip("purchase", card, "--amount", "1000")
    r = vip("cancel", "--yes", card, "--reason", "customer asked")
    assert r["status"] == "cancelled" and r["points_forfeited"] == 880
    assert vip("points", card)["points_balance"] == 0
    assert vip("purchase", card, "--amount", "10").code == 1
    phone_purchase = vip("purchase", "--phone", P, "--amount", "2000")
    assert phone_purchase["card_issued"] is False and "ended" in phone_purchase["note"]
    assert vip("cancel", "--yes", card, "--reason", "again").code == 1
    assert vip("check")["ok"] is True


def test_erase_leaves_no_personal_value_in_the_file(vip, member, isolated):
    card = member(id_number="11010519491231002X", email="wangfang@example.com", address="深圳市南山区科技园88号")
    vip("update", card, "--name", "王芳芳", "--phone", "13912345678", "--pref", "口味=清淡")
    vip("visit", "log", card, "--channel", "phone", "--note", "王芳芳说很满意")
    vip("purchase", card, "--amount", "1000")
    r = vip("cancel", "--yes", card, "--reason", "个人信息删除请求", "--erase", json_output=False)
    assert r.code == 0 and "can't be undone" in r.stdout
    data = stored_bytes(isolated)
    for value in ("王芳", "13800138000", "13912345678", "11010519491231002X", "wangfang@example.com",
                  "科技园88号", "1990-06-15", "清淡", "很满意"):
        assert value.encode() not in data, value
    shown = vip("show", card)
    assert shown["name"] is None and shown["phone"] is None and shown["status"] == "cancelled"
    assert vip("check")["ok"] is True
    assert vip("search", "", "--status", "cancelled")["count"] == 1


def test_notify_outbox(vip, member, isolated):
    member(birthday="1990-06-15", now="2026-06-10T10:00")
    member(phone="13900139000", birthday="1985-06-17", now="2026-06-10T10:00")
    out = isolated / "sms.csv"
    r = vip("notify", "birthday", "--out", str(out), "--within", "2")
    assert r["messages"] == 2
    assert out.read_bytes().startswith(b"\xef\xbb\xbf")  # the BOM Excel on Chinese Windows needs
    rows = list(csv.DictReader(out.open(encoding="utf-8-sig")))
    assert rows[0]["phone"] == P and "生日快乐" in rows[0]["message"] and "6折" in rows[0]["message"]
    assert vip("notify", "card-issued", "--out", str(out), "--since", "2026-06-01")["messages"] == 2
    assert "755 00001" in out.read_text(encoding="utf-8")
    assert vip("notify", "renewal", "--out", str(out))["messages"] == 0  # June: out of season
    assert vip("notify", "renewal", "--out", str(out), now="2026-11-01T09:00")["messages"] == 2
    with open_db() as conn:
        assert conn.execute("SELECT COUNT(*) FROM audit WHERE command LIKE 'notify%'").fetchone()[0] == 4
    assert vip("notify", "spam", "--out", str(out)).code == 2
    assert vip("notify", "birthday", "--out", str(isolated / "no" / "x.csv")).code == 2


@pytest.mark.parametrize("now,noticed", [
    ("2026-01-15T10:00", False),       # the January: every card got "每年12月为换卡月"
    ("2026-10-31T23:59:59", False),
    ("2026-11-01T00:00", True),        # from the month before the renewal month
    ("2026-12-31T23:59:59", True),
    ("2027-01-01T00:00", False),       # expired now: renewal notices are over
])
def test_renewal_notices_only_in_season(vip, member, isolated, now, noticed):
    member(now="2026-03-01T10:00")                        # valid to 2026-12-31
    member(phone="13900139000", now="2026-12-01T10:00")   # issued in December: valid to 2027-12-31
    r = vip("notify", "renewal", "--out", str(isolated / "sms.csv"), now=now)
    assert r["messages"] == (1 if noticed else 0)


def test_a_replacement_card_is_not_congratulated_as_a_new_member(vip, member, isolated):
    card = member(now="2026-06-01T10:00")
    vip("card", "lost", card)
    vip("card", "replace", card)
    assert vip("notify", "card-issued", "--out", str(isolated / "s.csv"), "--since", "2026-06-10")["messages"] == 0


def test_birthdays_within(vip, member):
    member(birthday="1990-06-20")
    assert vip("birthdays", "--within", "4")["count"] == 0
    r = vip("birthdays", "--within", "5")
    assert r["count"] == 1 and r["birthdays"][0]["days"] == 5 and r["birthdays"][0]["phone"] == "138****8000"


def test_refund_after_replacement_puts_the_debt_on_the_new_card(vip, member):
    card = member()
    first = vip("purchase", card, "--amount", "2000", "--paid", "1000")
    vip("redeem", card, "--points", "1000")          # the lot is spent: nothing moves on replacement
    new = vip("card", "replace", card)["new_card_no"]
    r = vip("refund", first["receipt"], "--amount", "100")
    assert r["points_reversed"] == 100 and r["card_no"] == new and r["points_balance"] == -100
    assert vip("points", new)["points_balance"] == -100
    assert vip("check")["ok"] is True


# --- commands that change much or destroy ask first ------------------------------------------------

@pytest.mark.parametrize("args,now", [
    (["cancel", "{card}", "--reason", "x", "--erase"], None),
    (["card", "renew", "--all"], "2026-12-15T10:00:00"),
    (["tier", "review", "--as-of", "2028-06-15"], "2028-06-16T10:00:00"),
    (["points", "expire", "--as-of", "2027-01-01"], "2027-01-02T10:00:00"),
    (["key", "rotate"], None),
])
def test_without_a_terminal_a_destructive_command_needs_yes_and_dry_run_changes_nothing(vip, member, isolated,
                                                                                        args, now):
    card = member(id_number="11010519491231002X")
    vip("purchase", card, "--amount", "6000")
    args = [a.format(card=card) for a in args]
    with open_db() as conn:
        before = conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0]
    refused = vip(*args, now=now)
    assert refused.code == 1 and refused.data["error"]["code"] == "needs_yes"
    assert "--yes" in refused.data["error"]["message"]
    dry = vip(*args, "--dry-run", now=now)
    assert dry.code == 0 and dry["dry_run"] is True
    human = vip(*args, "--dry-run", now=now, json_output=False)
    assert human.code == 0 and human.stdout.startswith("Dry run, nothing changed")
    with open_db() as conn:
        assert conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0] == before
    done = vip(*args, "--yes", now=now)
    assert done.code == 0 and done["dry_run"] is False
    assert vip("check")["ok"] is True


@pytest.mark.slow
@pytest.mark.parametrize("answer,cancelled", [("n", False), ("y", True)])
def test_on_a_terminal_cancel_shows_what_it_will_do_and_asks(vip, member, isolated, answer, cancelled):
    import os
    import pty
    import sys
    card = member()
    vip("purchase", card, "--amount", "100")
    pid, fd = pty.fork()
    if pid == 0:  # the child: vip on a terminal
        os.execvp(sys.executable, [sys.executable, "-m", "vipcli", "cancel", card, "--reason", "顾客要求"])
    seen = b""
    while b"Go ahead?" not in seen:
        chunk = os.read(fd, 4096)
        assert chunk, seen
        seen += chunk
    assert b"Cancel card " + card.encode() in seen and b"88 points forfeited" in seen
    os.write(fd, answer.encode() + b"\n")
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the terminal closed: the child is done
            break
        if not chunk:
            break
        seen += chunk
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == (0 if cancelled else 1), seen
    assert (vip("show", card)["status"] == "cancelled") is cancelled
