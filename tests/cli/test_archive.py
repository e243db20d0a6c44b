import json
import os

import pytest
from conftest import open_db, stored_bytes

P = "13800138000"
ID = "11010519491231002X"


def _audit(db, command):
    with open_db(db) as conn:
        return conn.execute("SELECT operator, target, detail FROM audit WHERE command = ?", (command,)).fetchall()


def test_enroll_creates_prospect_then_completes(vip):
    r = vip("enroll", "--phone", "+86 138-0013-8000")
    assert r.code == 0 and r["status"] == "prospect" and r["card_no"] is None and r["created"] is True
    r = vip("enroll", "--phone", P, "--name", "王芳", "--gender", "F", "--birthday", "1990-05-01")
    assert r["created"] is False and set(r["changed"]) == {"name", "gender", "birthday"}
    assert r["registered"] is True


def test_enroll_refuses_to_overwrite_a_recorded_value(vip):
    vip("enroll", "--phone", P, "--name", "王芳")
    r = vip("enroll", "--phone", P, "--name", "李娜")
    assert r.code == 1 and "vip update" in r["error"]["message"]


def test_grant_issues_card_and_is_audited(vip, isolated):
    r = vip("enroll", "--phone", P, "--name", "王芳", "--grant", "opening day", "--region", "020")
    assert r["card_no"].startswith("020") and r["status"] == "active" and r["tier"] == "vip"
    assert _audit(isolated / "vip.db", "enroll --grant")[0][0] == "tester"
    again = vip("enroll", "--phone", P, "--grant", "twice")
    assert again.code == 1 and again["error"]["code"] == "has_card"


def test_card_region_from_store_then_default(vip):
    assert vip("purchase", "--phone", P, "--amount", "1000", "--store", "GZ01")["card_no"].startswith("020")
    assert vip("purchase", "--phone", "13900139000", "--amount", "1000", "--store", "XX9")["card_no"].startswith("755")


def test_card_sequence_per_region_and_overflow(vip, tmp_path):
    from vipcli.rulefile import default_text
    tiny = tmp_path / "tiny.toml"
    tiny.write_text(default_text().replace("sequence_digits = 5", "sequence_digits = 1"), encoding="utf-8")
    assert vip("init", "--rules", str(tiny)).code == 0
    numbers = [vip("enroll", "--phone", f"1390013900{i}", "--grant", "t")["card_no"] for i in range(9)]
    assert [n[3] for n in numbers] == [str(i) for i in range(1, 10)]
    overflow = vip("enroll", "--phone", "13700137000", "--grant", "t")
    assert overflow.code == 1 and "used all 9 card numbers" in overflow["error"]["message"]
    assert vip("show", "13700137000").code == 1  # nothing written: the archive was rolled back too


def test_duplicate_phone_and_id_refused(vip):
    vip("enroll", "--phone", P, "--id-number", ID)
    vip("enroll", "--phone", "13900139000")
    assert vip("update", "13900139000", "--phone", P).code == 1
    r = vip("enroll", "--phone", "13700137000", "--id-number", ID.lower())
    assert r.code == 1 and r["error"]["code"] == "duplicate_id"


def test_bad_values_exit_2_and_write_nothing(vip, isolated):
    for args in (["--phone", "1234"], ["--phone", P, "--gender", "X"], ["--phone", P, "--birthday", "1990-02-30"],
                 ["--phone", P, "--birthday", "2030-01-01"], ["--phone", P, "--id-number", "110105194912310021"],
                 ["--phone", P, "--email", "nope"], ["--phone", P, "--name", "a\x07b"], ["--phone", P, "--name", "x" * 51],
                 ["--phone", P, "--store", "店"], ["--phone", P, "--at", "yesterday"]):
        r = vip("enroll", *args)
        assert r.code == 2, (args, r)
        assert len(r.stderr.strip().splitlines()) == 1 and r.stdout == ""  # (--json: the error object only)
    assert vip("search", "").data["results"] == []


def test_update_records_every_change(vip, member, isolated):
    card = member()
    r = vip("update", card, "--address", "深圳市南山区", "--pref", "size=M", "--email", "wf@example.com")
    assert set(r["changed"]) == {"address", "pref.size", "email"}
    assert vip("update", card, "--address", "深圳市南山区")["changed"] == []
    vip("update", P, "--phone", "13900139000", now="2026-06-16T09:00")
    history = vip("history", "13900139000")["changes"]
    phone_change = [c for c in history if c["field"] == "phone"][-1]
    assert phone_change["old"] == "138****8000" and phone_change["new"] == "139****9000"
    assert phone_change["operator"] == "tester" and phone_change["at"] == "2026-06-16T09:00:00"
    full = vip("history", "13900139000", "--unmask")["changes"]
    assert [c for c in full if c["field"] == "phone"][-1]["old"] == P
    assert _audit(isolated / "vip.db", "unmask")


def test_update_id_is_encrypted_and_masked(vip, member, isolated):
    card = member()
    vip("update", card, "--id-number", ID)
    shown = vip("show", card)
    assert shown["id_number"] == "110105********002X" and shown["phone"] == "138****8000"
    unmasked = vip("show", card, "--unmask")
    assert unmasked["id_number"] == ID and unmasked["phone"] == P
    assert json.loads(_audit(isolated / "vip.db", "unmask")[0][2])["via"] == "show"
    raw = stored_bytes(isolated)
    assert ID.encode() not in raw


def test_missing_key_fails_closed(vip, member, isolated, monkeypatch):
    card = member(id_number=ID)
    monkeypatch.setenv("VIPCLI_KEY_FILE", str(isolated / "other.key"))
    r = vip("show", card, "--unmask")
    assert r.code == 4 and "missing" in r["error"]["message"]
    r = vip("enroll", "--phone", "13900139000", "--id-number", "110105194912310029".replace("9", "9"))
    assert r.code in (2, 4)


def test_show_registration_days_left(vip):
    r = vip("purchase", "--phone", P, "--amount", "1000", now="2026-06-01T10:00")
    assert vip("show", P, now="2026-07-01T10:00")["registration_days_left"] == 0
    assert vip("show", P, now="2026-07-01T10:00")["status"] == "active"
    assert vip("show", P, now="2026-07-02T10:00")["status"] == "discount_only"
    late = vip("purchase", r["card_no"], "--amount", "100", now="2026-07-02T10:00")
    assert late["paid"] == "88.00" and late["points_earned"] == 0
    vip("update", P, "--name", "王芳", "--gender", "F", "--birthday", "1990-05-01", now="2026-07-03T10:00")
    back = vip("purchase", r["card_no"], "--amount", "100", now="2026-07-03T11:00")
    assert back["status"] == "active" and back["points_earned"] == 88


def test_search_filters(vip, member):
    member()
    vip("purchase", "--phone", "13900139000", "--amount", "10")
    assert len(vip("search", "").data["results"]) == 2
    assert [r["status"] for r in vip("search", "", "--status", "prospect").data["results"]] == ["prospect"]
    assert vip("search", "王")["results"][0]["name"] == "王芳"
    assert vip("search", "13800138000")["results"][0]["phone"] == "138****8000"
    assert vip("search", "", "--tier", "vip")["count"] == 1
    assert vip("search", "", "--tier", "platinum").code == 2
    assert vip("search", "", "--class", "E")["count"] == 2


def test_show_unknown(vip):
    assert vip("show", P).code == 1
    assert vip("show", "not-a-card").code == 2


def test_enroll_refuses_a_different_id_with_the_same_masked_form(vip, isolated):
    vip("enroll", "--phone", P, "--id-number", ID)
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    twins = [f"110105{year}0101002X" for year in range(1950, 2000)
             if "10X98765432"[sum(int(d) * w for d, w in zip(f"110105{year}0101002", weights)) % 11] == "X"]
    assert twins and all(t[:6] + t[-4:] == ID[:6] + ID[-4:] for t in twins)  # same masked form
    r = vip("enroll", "--phone", P, "--id-number", twins[0])
    assert r.code == 1 and r["error"]["code"] == "conflicting_field"
    assert vip("enroll", "--phone", P, "--id-number", ID)["changed"] == []


@pytest.mark.parametrize("filters", [[], ["--class", "E"], ["--status", "prospect"]])
def test_search_reports_the_true_count_and_pages(vip, isolated, filters):
    """'200 found' was printed for 640 matches; now the total, the page and the next offset."""
    from vipcli import db
    conn = db.connect(os.environ["VIPCLI_DB"])
    with db.transaction(conn):
        conn.executemany("INSERT INTO customers(phone, created_at) VALUES (?, '2026-01-01T10:00:00')",
                         [(f"1370000{i:04d}",) for i in range(205)])
    conn.close()
    first = vip("search", "", *filters)
    assert (first["total"], first["count"], first["offset"]) == (205, 200, 0)
    human = vip("search", "", *filters, json_output=False)
    assert "showing 1-200 of 205" in human.stdout and "More: --offset 200" in human.stdout
    rest = vip("search", "", *filters, "--offset", "200")
    assert rest["count"] == 5 and rest["results"][0]["customer_id"] == 201
    at_edge = vip("search", "", *filters, "--limit", "205")
    assert at_edge["count"] == 205 and "205 found" in vip("search", "", *filters, "--limit", "205",
                                                         json_output=False).stdout
    assert vip("search", "", *filters, "--limit", "0").code == 2
    assert vip("search", "", *filters, "--limit", "１０")["count"] == 10  # full-width digits


def test_a_masked_phone_cant_be_walked_out_digit_by_digit(vip, member):
    """Searching 139, 1395, 13957... and watching one customer appear recovered a masked phone."""
    card = member()
    for partial in ("13", "138", "1380013", "3800138000", "8000", "0013800"):  # (none is in 755000015)
        assert vip("search", partial)["total"] == 0, partial
    assert vip("search", "13800138000")["total"] == 1
    assert vip("search", "138 0013 8000")["total"] == 1
    assert vip("search", "王 8000")["total"] == 1 and vip("search", "王 8001")["total"] == 0
    assert vip("search", card[2:6])["total"] == 1  # part of a card number still finds it (cards are not masked)


def test_search_takes_percent_and_underscore_literally(vip, member):
    member()
    assert vip("search", "%")["total"] == 0 and vip("search", "_")["total"] == 0
    vip("update", "13800138000", "--name", "王_芳%")
    assert vip("search", "_芳%")["total"] == 1
