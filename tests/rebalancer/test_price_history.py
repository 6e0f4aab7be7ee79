"""Price history for the live triggers (issue 12): every refresh records its prices in the journal;
volatility and momentum read it (backfilled once from the oracles' past rounds) and say plainly
when it is too short, moving nothing."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from rebalancer.cli import main
from rebalancer.journal import Journal
from rebalancer.planner.history import closes, period_s
from tests.rebalancer.test_market_prices import local_config

TRIGGERS = """
[strategy.triggers.momentum]
lookback = 3
strength = 1
max_tilt_pct = 20

[strategy.triggers.volatility]
window = 3
reference_vol_pct = 1
max_multiplier = 2
"""
DAY = 86400


def test_closes_keep_the_last_point_of_each_period_and_skip_gaps() -> None:
    pts = [(10, Decimal(1)), (DAY - 1, Decimal(2)), (DAY + 5, Decimal(3)), (3 * DAY, Decimal(4))]
    assert closes(pts, DAY) == [Decimal(2), Decimal(3), Decimal(4)]
    assert period_s(365) == DAY and period_s(8760) == 3600


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONEINCH_API_KEY", "test-key")
    monkeypatch.setenv("JUPITER_API_KEY", "test-key")


def triggers(out: str) -> dict[str, str]:
    return {t["name"]: t["detail"] for t in json.loads(out)["triggers"]}


def test_empty_history_is_said_plainly_and_moves_nothing(
    evm_worlds: dict[str, Any], tmp_path: Path, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = local_config(tmp_path, TRIGGERS)
    assert main(["drift", "-c", str(cfg), "--json"]) == 0
    got = triggers(capsys.readouterr().out)
    assert got["momentum"].startswith("targets tilted: no tilt; history too short for")
    assert "ETH" in got["momentum"] and "(momentum needs 4 points)" in got["momentum"]
    assert got["volatility"].startswith("no band widened; history too short for")
    journal = Journal(tmp_path / "j.sqlite")
    try:
        points = journal.price_points()
        # this refresh's prices are recorded, and the feeds' past rounds were read once
        assert points["ETH"][-1][1] == Decimal(3200)
        assert journal.backfilled("ETH") and journal.backfilled("BTC")
        assert len(points["ETH"]) >= 5  # the local feeds' four past rounds and this refresh
    finally:
        journal.close()


def test_seeded_history_makes_the_triggers_fire_on_a_live_run(
    evm_worlds: dict[str, Any], tmp_path: Path, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = local_config(tmp_path, TRIGGERS)
    journal = Journal(tmp_path / "j.sqlite")
    now = int(time.time())
    try:
        # four daily closes: ETH fell from 4000 to today's 3200, the rest flat at today's price
        for asset, today in {
            "ETH": "3200", "BTC": "95000", "SOL": "180", "AVAX": "25", "LINK": "15",
            "UNI": "8", "JUP": "0.8", "BONK": "0.00002", "USDC": "1", "USDT": "1",
        }.items():  # fmt: skip
            for days_ago in (3, 2, 1):
                usd = Decimal(today)
                if asset == "ETH":
                    usd = Decimal(3200) + Decimal(800) * days_ago / 3
                journal.record_points(asset, [(now - days_ago * DAY, usd)], "live")
            journal.mark_backfilled(asset)
    finally:
        journal.close()
    assert main(["drift", "-c", str(cfg), "--json"]) == 0
    got = triggers(capsys.readouterr().out)
    assert "ETH -20.00%" in got["momentum"] and "too short" not in got["momentum"]
    assert got["volatility"].startswith("bands widened: ")
    assert "ETH x2" in got["volatility"]
