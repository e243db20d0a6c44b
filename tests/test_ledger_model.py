"""Hypothesis drives earn / redeem / refund / expire / replay through the real CLI and compares the
card's balance with a plain model of lots after every step; `vip check` must stay clean."""

from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from typer.testing import CliRunner

from vipcli.cli import app

PHONE = "13800138000"


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.runner = CliRunner()
        self.lots = []        # model: dicts receipt, earned, remaining, year, expired, reversed, refund_delta, paid, refunded
        self.now = datetime(2026, 1, 5, 10, 0)
        self.receipts = 0

    def vip(self, *args):
        import json
        import os

        os.environ["VIPCLI_NOW"] = self.now.isoformat()
        result = self.runner.invoke(app, ["--json", *map(str, args)], catch_exceptions=False)
        return result.exit_code, json.loads(result.stdout if result.exit_code == 0 else result.stderr)

    @initialize()
    def setup(self):
        import os
        import tempfile

        folder = tempfile.mkdtemp()
        os.environ["VIPCLI_DB"] = os.path.join(folder, "vip.db")
        os.environ["VIPCLI_KEY_FILE"] = os.path.join(folder, "vip.key")
        assert self.vip("init")[0] == 0
        code, out = self.vip("enroll", "--phone", PHONE, "--name", "王芳", "--gender", "F",
                             "--birthday", "1990-05-01", "--grant", "model")
        assert code == 0
        self.card = out["card_no"]

    # --- the model -------------------------------------------------------------------------------

    def balance(self):
        return sum(l["remaining"] for l in self.lots if l["remaining"] < 0 or l["year"] == self.now.year)

    def settle(self):
        sources = sorted((l for l in self.lots if l["remaining"] > 0 and l["year"] == self.now.year),
                         key=lambda l: l["id"])
        for debt in [l for l in self.lots if l["remaining"] < 0]:
            for source in sources:
                amount = min(-debt["remaining"], source["remaining"])
                source["remaining"] -= amount
                debt["remaining"] += amount

    # --- rules -----------------------------------------------------------------------------------

    def tick(self, minutes):
        self.now += timedelta(minutes=minutes)

    @rule(paid_yuan=st.integers(1, 3000), minutes=st.integers(1, 60 * 24 * 20))
    def earn(self, paid_yuan, minutes):
        self.tick(minutes)
        self.receipts += 1
        receipt = f"M{self.receipts}"
        code, out = self.vip("purchase", self.card, "--amount", "5000", "--paid", paid_yuan,
                             "--receipt", receipt)
        assert code == 0
        points = paid_yuan
        assert out["points_earned"] == points
        self.lots.append(dict(id=len(self.lots), receipt=receipt, earned=points, remaining=points,
                              year=self.now.year, expired=0, reversed=0, refund_delta=0,
                              paid=paid_yuan * 100, refunded=0))
        self.settle()

    @rule(n=st.integers(1, 4000))
    def redeem(self, n):
        code, out = self.vip("redeem", self.card, "--points", n)
        spendable = sum(l["remaining"] for l in self.lots if l["remaining"] > 0 and l["year"] == self.now.year)
        if self.balance() < 0 or n > spendable:
            assert code == 1, out
            return
        assert code == 0, out
        for lot in sorted(self.lots, key=lambda l: l["id"]):
            if lot["remaining"] > 0 and lot["year"] == self.now.year and n:
                take = min(lot["remaining"], n)
                lot["remaining"] -= take
                n -= take

    @precondition(lambda self: any(l["refunded"] < l["paid"] for l in self.lots))
    @rule(data=st.data())
    def refund(self, data):
        lot = data.draw(st.sampled_from([l for l in self.lots if l["refunded"] < l["paid"]]))
        left = lot["paid"] - lot["refunded"]
        amount = data.draw(st.integers(1, left))
        code, out = self.vip("refund", lot["receipt"], "--amount", f"{amount // 100}.{amount % 100:02d}")
        assert code == 0, out
        if amount == left:
            points = lot["earned"] - lot["reversed"]
        else:
            points = left // 100 - (left - amount) // 100
        assert out["points_reversed"] == points
        lot["refunded"] += amount
        total = lot["reversed"] + points
        delta = (total - min(lot["expired"], total)) - lot["refund_delta"]
        lot["reversed"] = total
        if delta > 0:
            lot["remaining"] -= delta
            lot["refund_delta"] += delta
        self.settle()

    @rule()
    def new_year_and_expire(self):
        import os
        import sqlite3

        self.now = datetime(self.now.year + 1, 1, 1, 0, 30)
        with sqlite3.connect(os.environ["VIPCLI_DB"]) as conn:  # renewed in December (card renew)
            conn.execute("UPDATE cards SET valid_to = ?", (f"{self.now.year}-12-31",))
        code, out = self.vip("points", "expire", "--yes")
        assert code == 0
        expected = 0
        for lot in self.lots:
            if lot["year"] < self.now.year and lot["remaining"] > 0:
                expected += lot["remaining"]
                lot["expired"] += lot["remaining"]
                lot["remaining"] = 0
        assert out["expired_points"] == expected
        assert self.vip("points", "expire", "--yes")[1]["expired_points"] == 0

    @rule()
    def replace_card(self):
        """A lost card replaced: points (and debt) move to the new number; the model does not change."""
        code, out = self.vip("card", "replace", self.card)
        assert code == 0, out
        self.card = out["new_card_no"]

    @precondition(lambda self: self.lots)
    @rule()
    def replay_last_receipt(self):
        lot = self.lots[-1]
        code, out = self.vip("purchase", self.card, "--amount", "5000", "--paid",
                             f"{lot['paid'] // 100}", "--receipt", lot["receipt"])
        assert code == 0 and out["duplicate"] is True

    @invariant()
    def balance_matches_model_and_check_is_clean(self):
        if not hasattr(self, "card"):
            return
        code, out = self.vip("points", self.card)
        assert out["points_balance"] == self.balance()
        code, out = self.vip("check")
        assert code == 0 and out["ok"], out["problems"]


LedgerMachine.TestCase.settings = settings(
    max_examples=20, stateful_step_count=12, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.fixture(autouse=True)
def _keep_env(monkeypatch):
    for name in ("VIPCLI_NOW", "VIPCLI_DB", "VIPCLI_KEY_FILE"):
        monkeypatch.setenv(name, "unused")


TestLedgerModel = LedgerMachine.TestCase
