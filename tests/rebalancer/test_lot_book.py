"""The lot book after a real rebalance on the local worlds: one lot per confirmed swap, dated
today, its basis the value given up (plus gas); one disposal per sell."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from rebalancer.chains.registry import Registry
from tests.rebalancer.test_execution import run_json, write_config

PRICES = {"BTC": 95000, "ETH": 3200, "AVAX": 25, "LINK": 15, "UNI": 8, "AAVE": 250, "USDC": 1}


@pytest.fixture
def cfg(evm_isolated: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DEMO_PASS", "demo")
    monkeypatch.setenv("ONEINCH_API_KEY", "test-key")
    return write_config(tmp_path)


def test_confirmed_swaps_make_lots_and_disposals(
    cfg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # NOTE: the days before and after the run: a run across midnight (UTC) dates its lots on
    # the day it made them
    before = datetime.now(UTC).date().isoformat()
    code, out = run_json(capsys, "run", "-c", str(cfg), "--execute", "--yes")
    assert code == 0 and out["trades"]
    swaps = [t for t in out["trades"] if t["status"] == "confirmed"]
    assert swaps
    code, book = run_json(capsys, "lots", "-c", str(cfg))
    assert code == 0
    bought = [x for x in book["lots"] if x["source"] == "trade"]
    assert len(bought) == len(swaps)
    today = {before, datetime.now(UTC).date().isoformat()}
    registry = Registry.load()
    by_trade = {x["trade_id"].partition(":")[2]: x for x in bought}
    for t in swaps:
        lot = by_trade[t["id"]]
        sell = registry.by_symbol(t["chain"], t["sell"])
        buy = registry.by_symbol(t["chain"], t["buy"])
        assert sell is not None and buy is not None
        assert lot["asset"] == buy.asset and lot["acquired"] in today
        assert Decimal(lot["amount"]) == Decimal(int(t["realised_out"])).scaleb(-buy.decimals)
        given_up = Decimal(int(t["amount_in"])).scaleb(-sell.decimals) * PRICES[sell.asset]
        assert abs(Decimal(lot["cost_basis_usd"]) - given_up) <= given_up * Decimal("0.02")
    # holdings no import covered are lots of unknown basis
    assert any(x["cost_basis_usd"] is None for x in book["lots"] if x["source"] == "import")
    code, tax = run_json(capsys, "tax", "-c", str(cfg))
    assert code == 0
    assert sorted(d["trade_id"].partition(":")[2] for d in tax["disposals"]) == sorted(
        t["id"] for t in swaps
    )
    for d in tax["disposals"]:
        assert d["disposed"] in today and d["tx"] and d["term"] == "short"
        assert d["unknown_basis"] is True and d["basis_usd"] is None and d["gain_usd"] is None
