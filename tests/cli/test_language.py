"""The language a person reads (issue 16): chosen by --lang, VIPCLI_LANG or the locale; Simplified
Chinese from the gettext catalog; machine contracts (JSON keys, codes, exit codes) unchanged."""

import re

import pytest
from typer.testing import CliRunner

from vipcli import i18n
from vipcli.cli import COMMANDS, JOBS, app
from vipcli.config import SETTINGS
from vipcli.rulefile import profile_names


@pytest.mark.parametrize("flag, environ, expected", [
    ("zh", {"VIPCLI_LANG": "en", "LANG": "en_US.UTF-8"}, "zh"),  # --lang first
    (None, {"VIPCLI_LANG": "zh", "LC_ALL": "en_US.UTF-8"}, "zh"),  # then VIPCLI_LANG
    (None, {"LC_ALL": "zh_CN.UTF-8", "LANG": "en_US.UTF-8"}, "zh"),  # then the locale, LC_ALL first
    (None, {"LC_ALL": "", "LC_MESSAGES": "zh_TW.UTF-8", "LANG": "en_US"}, "zh"),  # an empty one is not set
    (None, {"LANG": "zh_CN.GB18030"}, "zh"),
    (None, {"LC_ALL": "C", "LANG": "zh_CN.UTF-8"}, "en"),  # LC_ALL wins, and it is not Chinese
    (None, {"LANG": "en_GB.UTF-8"}, "en"),
    (None, {}, "en"),
    ("zh_CN.UTF-8", {}, "zh"),
    ("EN", {"LANG": "zh_CN.UTF-8"}, "en"),
])
def test_the_language_is_chosen_as_a_terminal_user_expects(flag, environ, expected):
    assert i18n.choose(flag, environ) == expected


def _run(*args, env=None):
    result = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_a_language_vipcli_does_not_have_is_a_usage_error(vip):
    code, out, err = _run("--lang", "fr", "info")
    assert code == 2 and out == "" and err.strip() == "error: lang: 'fr' is not a language of vipcli (zh, en)"
    code, out, err = _run("--json", "info", env={"VIPCLI_LANG": "klingon"})
    assert code == 2 and '"code": "bad_lang"' in err


def test_help_follows_the_language_from_flag_variable_or_locale():
    assert "Usage: vip" in _run("--help")[1]
    for args, env in ((("--lang", "zh", "--help"), None), (("--help",), {"VIPCLI_LANG": "zh"}),
                      (("--help",), {"VIPCLI_LANG": "", "LC_ALL": "zh_CN.UTF-8"}),
                      (("tier", "--help", "--lang", "zh"), None)):  # a global option after the command too
        code, out, _ = _run(*args, env=env)
        assert code == 0 and "用法：vip" in out and "选项" in out, (args, out)
    # and back: nothing of one run's language stays for the next one in the same process
    assert "Usage: vip" in _run("--help")[1]


def test_the_top_level_help_lists_every_command_once_under_its_job():
    listed = [name for _, names in JOBS for name in names]
    assert sorted(listed) == sorted(COMMANDS)
    out = _run("--lang", "zh", "--help")[1]
    for title in ("会员档案", "收银", "积分", "会员卡与等级", "客户关怀与回访", "报表与文件", "维护"):
        assert f"\n{title}:\n" in out


def test_usage_errors_follow_the_language():
    assert _run("--lang", "zh", "tier", "set", "755000018", "gold")[2].strip() == \
        "error: vip tier set: 缺少选项 '--reason'"
    assert _run("tier", "set", "755000018", "gold", "--reasn", "x")[2].strip() == \
        "error: vip tier set: no such option: --reasn (did you mean --reason?)"
    code, out, err = _run("--lang", "zh", "--json", "tier", "set", "755000018")
    assert code == 2 and out == "" and '"code": "usage"' in err and "缺少参数" in err  # the code stays English


def _paths(group=None, prefix=()):
    """Every command path of vip: ("purchase",), ("tier", "show"), ..."""
    from vipcli.cli import VipGroup, _module_group

    names = COMMANDS if group is None else group.commands
    for name in names:
        command = _module_group(COMMANDS[name]).get_command(None, name) if group is None else group.commands[name]
        yield (*prefix, name)
        if hasattr(command, "commands") and not isinstance(command, VipGroup):
            yield from _paths(command, (*prefix, name))


def _english_words(text: str) -> set[str]:
    """The English words a person reads in `text`: what is left once the examples (the rest of
    their paragraph after 示例：), options, metavars, codes, names and file names are taken out."""
    from vipcli.cards import STATUS_NAMES
    from vipcli.io.exports import EXPORTS
    from vipcli.rulefile import default_text, parse, profile_names
    from vipcli.roles import ROLES
    from vipcli.rules import CHANNEL_NAMES

    text = "\n\n".join(re.sub(r"示例：.*", "", paragraph, flags=re.S) for paragraph in text.split("\n\n"))
    text = re.sub(r"(?<![\w])--?[a-z][a-z-]*", " ", text)  # options
    text = re.sub(r"\S*[./]\S*|\{[a-z_]*\}|`[^`]*`", " ", text)  # file names, paths, placeholders, `vip rules`
    allowed = ({"vip", "vipcli", "zh", "en", "SQLite", "PostgreSQL", "TOML", "xlsx", "csv", "json", "jsonl", "utf-8",
                "utf-8-sig", "gb18030", "birthday", "card-issued", "renewal", "grant", "unmask", "text", "keys",
                "card_issue", "pending", "approved", "rejected"} | set(ROLES)
               | set(CHANNEL_NAMES.values()) | set(STATUS_NAMES.values()) | {"prospect", "cancelled"}
               | set(EXPORTS) | {"report"} | {name for path in _paths() for name in path}
               | {tier.code for name in profile_names() for tier in parse(default_text(name), 1).tiers})
    words = set(re.findall(r"[A-Za-z][A-Za-z0-9_'-]*", text))
    return {w for w in words if w not in allowed and not w.isupper()}  # (CARD, FILE, VIPCLI_DB: names)


def test_every_help_under_zh_is_chinese():
    """Every command's --help in Chinese: no English word a person reads (commands, options,
    metavars, codes and file names are not words to translate)."""
    untranslated = {}
    for path in _paths():
        code, out, _ = _run("--lang", "zh", *path, "--help")
        assert code == 0, path
        if words := _english_words(out):
            untranslated[" ".join(path)] = sorted(words)
    assert not untranslated, untranslated


def test_the_walk_sees_english_when_it_is_there():
    """(The check above is not blind: the English help is full of words it flags.)"""
    assert {"Record", "purchase"} - {"purchase"} <= _english_words(_run("purchase", "--help")[1])
    assert len(_english_words(_run("--help")[1])) > 50


def test_the_catalog_ships_in_the_package():
    mo = i18n.LOCALES / "zh_CN" / "LC_MESSAGES" / "vipcli.mo"
    assert mo.exists()
    import tomllib
    from pathlib import Path

    setup = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert "locale/*/LC_MESSAGES/*.mo" in setup["tool"]["setuptools"]["package-data"]["vipcli"]


def test_the_catalog_is_complete_and_compiled_from_the_code(tmp_path):
    """Every message the code marks is in the .po, translated, and the shipped .mo says the same
    (tools/catalog.sh was run after the last change of a message)."""
    import gettext
    import subprocess
    import sys
    from pathlib import Path

    from babel.messages.pofile import read_po

    root = Path(__file__).parents[2]
    pot = tmp_path / "vipcli.pot"
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", "extract", "-F", str(root / "babel.cfg"),
                    "-k", "N_", "--no-location", "-o", str(pot), "vipcli"], cwd=root, check=True,
                   capture_output=True)
    wanted = {m.id for m in read_po(pot.open("rb")) if m.id}
    po = read_po((i18n.LOCALES / "zh_CN" / "LC_MESSAGES" / "vipcli.po").open("rb"))
    have = {m.id: m.string for m in po if m.id}
    assert wanted - set(have) == set(), "messages missing from the .po: run tools/catalog.sh and translate"
    assert not [m for m in wanted if not have[m]], "messages without a translation"
    compiled = gettext.translation("vipcli", i18n.LOCALES, languages=["zh_CN"])
    assert all(compiled.gettext(m) == have[m] for m in wanted), "the .mo is older than the .po: tools/catalog.sh"


def test_every_option_and_argument_is_described_and_every_command_shows_an_example():
    from vipcli.cli import _module_group

    for path in _paths():
        command = _module_group(COMMANDS[path[0]]).get_command(None, path[0])
        for name in path[1:]:
            command = command.commands[name]
        assert all(param.help for param in command.params), path
        if not hasattr(command, "commands"):
            assert "Example: vip " in command.help, path


def test_the_human_output_of_the_daily_commands_is_chinese(vip, member, isolated):
    """A store's day under --lang zh, as people read it: no English word but codes, names and
    file names (a receipt, a store code and a card number carry digits, and are not words)."""
    card = member()
    vip("purchase", card, "--amount", "1200", "--receipt", "R1")
    vip("purchase", "--phone", "13900000001", "--amount", "300")
    vip("visit", "log", card, "--channel", "phone", "--note", "满意")
    runs = [
        ("purchase", card, "--amount", "100"), ("purchase", "--phone", "13900000002", "--amount", "50"),
        ("refund", "R1", "--amount", "100"), ("redeem", card, "--points", "10"), ("points", card),
        ("show", card), ("search", "王"), ("tier", "show", card), ("cards",), ("class",), ("class", "--list"),
        ("visit", "due"), ("birthdays", "--within", "30"), ("rewards",), ("info",), ("check",), ("history", card),
        ("card", "lost", card), ("card", "found", card), ("enroll", "--phone", "13900000003", "--name", "李四"),
        ("update", "13900000003", "--email", "li@example.com"), ("audit", "--limit", "5"),
        ("purchase", "7550", "--amount", "1"), ("redeem", card, "--points", "999999"),
        ("export", "members", "--out", str(isolated / "m.csv")), ("config", "show"),
    ]
    untranslated = {}
    for args in runs:
        result = vip("--lang", "zh", *args, json_output=False)
        text = re.sub(r"\S*\d\S*", " ", result.stdout + result.stderr)  # receipts, stores, cards, numbers
        text = re.sub(r"\{.*?\}", " ", text)  # the audit's details: JSON (codes), as recorded
        # (tester: the operator; the settings' own names and their environment variables are names)
        if words := _english_words(text) - {"error", "tester"} - set(SETTINGS) - set(profile_names()):
            untranslated[" ".join(args)] = sorted(words)
    assert not untranslated, untranslated


def test_chinese_aligns_in_a_table_by_its_width():
    """rich measures a CJK character as two columns: a table mixing Chinese and ASCII keeps its
    columns straight."""
    from rich.console import Console

    from vipcli.cli.helpformat import columns
    from vipcli.cli.output import table

    console = Console(width=80, record=True, force_terminal=False)
    console.print(table("表", ["name", "phone"], [["王芳", "139****0001"], ["Li", "139****0002"],
                                                  ["欧阳娜娜", "139****0003"]]))
    lines = [line for line in console.export_text().splitlines() if "139" in line]
    assert len({columns(line[:line.index("139")]) for line in lines}) == 1, lines


@pytest.mark.slow
def test_a_wheel_built_from_a_clean_checkout_carries_the_catalog(tmp_path):
    """The files git tracks, and nothing else, built into a wheel: the compiled catalog is in it."""
    import shutil
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    root = Path(__file__).parents[2]
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout
    source = tmp_path / "src"
    for name in filter(None, tracked.decode().split("\0")):
        if (root / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                    str(tmp_path / "dist"), str(source)], check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("vipcli-*.whl"))
    assert "vipcli/locale/zh_CN/LC_MESSAGES/vipcli.mo" in zipfile.ZipFile(wheel).namelist()


def test_exports_keep_their_keys_and_show_headings_to_people(vip, member, isolated):
    """CSV and JSON keep their keys whatever the language; a CSV gets Chinese headings only with
    --headers zh; a workbook (for people) has the headings of the language in use, the report too."""
    import csv

    from openpyxl import load_workbook

    card = member()
    vip("purchase", card, "--amount", "100")
    out = isolated / "p.csv"
    vip("--lang", "zh", "export", "purchases", "--out", str(out))
    assert next(csv.reader(out.open(encoding="utf-8-sig")))[:3] == ["receipt", "purchased_at", "store"]
    vip("--lang", "en", "export", "purchases", "--out", str(out), "--headers", "zh")  # (its own export: replaced)
    assert next(csv.reader(out.open(encoding="utf-8-sig")))[:3] == ["小票号", "消费时间", "门店"]
    assert vip("export", "purchases", "--out", str(out), "--headers", "cn").code == 2
    data = vip("--lang", "zh", "export", "purchases", "--format", "json", "--out", str(isolated / "p.json"))
    assert data["rows"] == 1 and '"receipt"' in (isolated / "p.json").read_text(encoding="utf-8")
    vip("--lang", "zh", "export", "members", "--out", str(isolated / "m.xlsx"))
    assert [c.value for c in load_workbook(isolated / "m.xlsx").active[1]][:3] == ["顾客编号", "姓名", "性别"]
    vip("export", "members", "--out", str(isolated / "m.xlsx"))
    assert [c.value for c in load_workbook(isolated / "m.xlsx").active[1]][:3] == ["customer_id", "name", "gender"]
    vip("--lang", "zh", "export", "report", "--out", str(isolated / "r.xlsx"))
    book = load_workbook(isolated / "r.xlsx")
    assert [c.value for c in book["发卡统计"][1]] == ["卡区", "发卡", "已换卡", "已注销"]
    assert book["汇总"]["A1"].value == "vipcli 报表"


def test_usage_lines_name_arguments_plainly():
    """A required argument by its name, an optional one in brackets; no type names, no braces."""
    for path in _paths():
        usage = _run(*path, "--help")[1].splitlines()[0]
        assert not re.search(r"[{}<>]|\[\[", usage), usage
    assert _run("tier", "set", "--help")[1].startswith("Usage: vip tier set [OPTIONS] CARD/PHONE TIER")
    assert _run("search", "--help")[1].startswith("Usage: vip search [OPTIONS] [TEXT]")
