"""What a clerk types in Chinese is taken (issue 16.6): amounts with ¥/元 and grouped thousands,
dates in the forms a Chinese store writes, gender 男/女, channels, card statuses and tier names
as the profile writes them; anything else is a one-line error naming the field, exit 2."""

import pytest

P = "13800138000"


def test_a_purchase_typed_the_chinese_way(vip, member):
    card = member()
    r = vip("purchase", card, "--amount", "¥1,000", "--promo", "50元", "--at", "2026年6月1日")
    assert r.code == 0 and (r["regular"], r["promo"], r["paid"]) == ("1000.00", "50.00", "930.00")
    assert vip("purchase", card, "--amount", "1,00").code == 2
    again = vip("purchase", card, "--amount", "１００", "--at", "2026/6/2 10:30")
    assert again.code == 0 and again["paid"] == "88.00"


@pytest.mark.parametrize("typed, code", [("电话", "phone"), ("上门", "visit"), ("短信", "sms"), ("邮件", "email"),
                                         ("信函", "letter"), ("Phone", "phone")])
def test_channels_in_chinese(vip, member, typed, code):
    member()
    assert vip("visit", "log", P, "--channel", typed)["channel"] == code


def test_an_unknown_channel_names_the_ones_taken(vip, member):
    member()
    r = vip("visit", "log", P, "--channel", "微信")
    assert r.code == 2 and "电话" in r.data["error"]["message"] and "phone" in r.data["error"]["message"]


def test_statuses_and_tiers_in_chinese(vip, member):
    card = member()
    vip("card", "lost", card)
    assert [c["card_no"] for c in vip("cards", "--status", "挂失")["cards"]] == [card]
    assert vip("cards", "--status", "有效")["cards"] == []
    assert vip("search", "--status", "挂失")["results"][0]["card_no"] == card
    assert vip("cards", "--status", "丢了").code == 2
    vip("card", "found", card)
    assert vip("tier", "set", card, "金卡", "--reason", "key account")["to"] == "gold"
    assert vip("search", "--tier", "金卡")["results"][0]["tier"] == "gold"
    assert vip("tier", "set", card, "钻石卡", "--reason", "x").code == 2


def test_gender_and_birthday_in_chinese(vip):
    r = vip("enroll", "--phone", P, "--name", "王芳", "--gender", "女", "--birthday", "1990年5月1日")
    assert r.code == 0
    shown = vip("show", P)
    assert (shown["gender"], shown["birthday"]) == ("F", "1990-05-01")


def test_a_sheet_with_chinese_headers(vip, isolated):
    """Issue 16.7: a manager's sheet headed 手机, 姓名, 生日... and a POS file headed 小票号, 手机, 时间,
    金额, 实付 are imported as their English-headed twins; an unknown header is refused up front,
    naming it and the Chinese names taken."""
    members = "手机,姓名,性别,生日,门店\n13800138000,王芳,女,1990年5月1日,SZ01\n"
    (isolated / "m.csv").write_bytes(members.encode("gb18030"))
    r = vip("import", "members", str(isolated / "m.csv"))
    assert r.code == 0 and r["inserted"] == 1
    assert (vip("show", "13800138000")["name"], vip("show", "13800138000")["birthday"]) == ("王芳", "1990-05-01")
    purchases = "小票号,手机,门店,消费时间,金额,特价金额,实付\nR1,13800138000,SZ01,2026/6/1 10:00,\"¥1,200\",,\nR2,13900000001,,2026-06-02,88,,80\n"
    (isolated / "p.csv").write_text(purchases, encoding="utf-8")
    r = vip("import", "purchases", str(isolated / "p.csv"))
    assert r.code == 0 and (r["inserted"], r["cards_issued"]) == (2, 1), r
    assert vip("show", "13800138000")["card_no"] is not None
    (isolated / "bad.csv").write_text("小票号,会员等级,时间,金额\nR9,金卡,2026-06-01,10\n", encoding="utf-8")
    r = vip("import", "purchases", str(isolated / "bad.csv"))
    assert r.code == 2 and "会员等级" in r.data["error"]["message"] and "小票号" in r.data["error"]["message"]
