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


def test_example_store_profile_is_the_builtin_one():
    assert filecmp.cmp(EXAMPLES / "rules" / "store.toml", ROOT / "vipcli" / "profiles" / "store.toml", shallow=False)


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
