"""Every file in examples/ works, and the bundled demo runs through the real code paths."""

import filecmp
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@pytest.mark.parametrize("profile", sorted((EXAMPLES / "rules").glob("*.toml")), ids=lambda p: p.name)
def test_example_rules_validate(vip, profile):
    r = vip("rules", "validate", str(profile))
    assert r.code == 0 and r["valid"] is True


def test_example_profiles_are_the_builtin_ones():
    """examples/rules holds a copy of every built-in profile, byte for byte (a starting point to edit)."""
    from vipcli.rulefile import profile_names

    assert sorted(p.stem for p in (EXAMPLES / "rules").glob("*.toml")) == profile_names()
    for name in profile_names():
        assert filecmp.cmp(EXAMPLES / "rules" / f"{name}.toml", ROOT / "vipcli" / "profiles" / f"{name}.toml",
                           shallow=False), name


def test_demo_data_generator_reproduces_the_bundled_files(tmp_path):
    before = {p.name: p.read_bytes() for p in (ROOT / "vipcli" / "data").glob("*.csv")}
    subprocess.run([sys.executable, str(EXAMPLES / "make_demo_data.py")], check=True)
    after = {p.name: p.read_bytes() for p in (ROOT / "vipcli" / "data").glob("*.csv")}
    assert before == after


def test_demo(vip, tmp_path, monkeypatch):
    r = vip("demo", "--keep", str(tmp_path / "demo.db"))
    assert r.code == 0
    assert r["members"] == 60 and r["purchases"] == 900
    assert sum(r["members_by_tier"].values()) > 0 and r["points_outstanding"] > 0
    assert r["top_customers"][0]["phone"].count("*") == 4
    human = vip("demo", json_output=False)
    assert human.code == 0 and "Members by tier" in human.stdout
    monkeypatch.setenv("VIPCLI_DB", str(tmp_path / "demo.db"))
    assert vip("check")["ok"] is True


def test_walkthrough_on_example_files(vip, tmp_path, monkeypatch):
    """The README's import walk-through: members (with bad rows), GB18030, purchases CSV and XLSX."""
    monkeypatch.setenv("VIPCLI_NOW", "2026-03-31T20:00:00")
    rejects = tmp_path / "rejects.csv"
    r = vip("import", "members", str(EXAMPLES / "members.csv"), "--rejects", str(rejects))
    assert r.code == 3 and r["inserted"] == 3 and r["rejected"] == 2 and r["cards_issued"] == 2
    assert vip("import", "members", str(EXAMPLES / "members-gb18030.csv")).data["duplicates"] == 3
    assert vip("import", "members", str(EXAMPLES / "members.xlsx"))["duplicates"] == 3
    r = vip("import", "purchases", str(EXAMPLES / "purchases.csv"), "--rejects", str(rejects))
    assert r.code == 3 and r["inserted"] == 5 and r["rejected"] == 3 and r["cards_issued"] == 1
    assert vip("import", "purchases", str(EXAMPLES / "purchases.xlsx"))["duplicates"] == 5
    assert vip("tier", "show", "13800138000")["tier"] == "silver"
    assert vip("check")["ok"] is True


def test_nightly_export_script(vip, tmp_path, monkeypatch):
    import os
    import shutil
    monkeypatch.setenv("VIPCLI_NOW", "2026-03-31T20:00:00")
    vip("import", "purchases", str(EXAMPLES / "purchases.csv"), "--rejects", str(tmp_path / "r.csv"))
    assert vip("user", "add", "cron", "--role", "manager").code == 0  # (the script's operator: README, Roles)
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "vip").exists() or not shutil.which("date"):
        pytest.skip("the vip console script is not installed beside this python")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", str(EXAMPLES / "nightly-export.sh"), str(tmp_path / "out")], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert len(names) == 2 and names[0].startswith("members-") and names[1].startswith("purchases-")
    assert done.stdout.strip() == "" or "Wrote" in done.stdout
