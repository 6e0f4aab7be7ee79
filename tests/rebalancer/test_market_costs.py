"""Costs from the chains (issue 12, item 4): the plan's gas per swap comes from the chain's own
fee market times the documented gas of a swap, valued at the oracle price of the native coin;
market depth is fitted from quotes at two sizes; typed values stay overrides; the plan says
which inputs were measured."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from rebalancer.cli import main
from tests.rebalancer.test_market_prices import local_config


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONEINCH_API_KEY", "test-key")
    monkeypatch.setenv("JUPITER_API_KEY", "test-key")


def test_plan_shows_measured_and_assumed_cost_inputs(
    evm_worlds: dict[str, Any], tmp_path: Path, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = local_config(tmp_path, '\n[strategy.costs.avalanche]\ngas_per_swap_usd = "0.5"\n')
    assert main(["plan", "-c", str(cfg), "--json"]) == 0
    inputs = json.loads(capsys.readouterr().out)["cost_inputs"]
    eth = inputs["ethereum"]
    assert eth["gas_price"]["source"].startswith("eth_feeHistory")
    assert eth["gas_price"]["unit"] == "gwei" and Decimal(eth["gas_price"]["value"]) > 0
    assert eth["gas_units_per_swap"] == {"value": 230000, "source": "assumed (SWAP_GAS default)"}
    native = Decimal(eth["gas_per_swap"]["native"])
    assert native == Decimal(eth["gas_price"]["value"]).scaleb(-9) * 230000
    assert Decimal(eth["gas_per_swap"]["usd"]) == (native * 3200).quantize(Decimal("0.0001"))
    assert inputs["solana"]["gas_price"]["source"].startswith("getRecentPrioritizationFees")
    assert inputs["avalanche"]["gas_per_swap"] == {"source": "configured"}
    assert inputs["avalanche"]["depth_usd"]["source"] == "configured"
    assert inputs["ethereum"]["depth_usd"]["source"] == "assumed (default)"
    # depth fitted from quotes at $1k and $10k: the local WETH/USDC pool holds $40M a side
    fitted = inputs["ethereum"]["depth_usd_by_asset"]["ETH"]
    assert fitted["source"] == "fitted from 1inch quotes of $1,000 and $10,000"
    assert 30_000_000 < Decimal(fitted["value"]) < 60_000_000
    assert inputs["solana"]["depth_usd_by_asset"]["BONK"]["source"].startswith(
        "fitted from jupiter"
    )
    assert main(["plan", "-c", str(cfg)]) == 0
    text = capsys.readouterr().out
    assert "cost inputs:" in text and "(measured: eth_feeHistory" in text


def test_landed_swaps_record_their_gas_and_later_plans_use_it(
    evm_isolated: dict[str, Any],
    tmp_path: Path,
    env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from rebalancer.journal import Journal
    from tests.rebalancer.test_execution import write_config

    monkeypatch.setenv("DEMO_PASS", "demo")
    cfg = write_config(tmp_path)
    assert main(["run", "-c", str(cfg), "--execute", "--yes", "--json"]) == 0
    landed = [
        t for t in json.loads(capsys.readouterr().out)["trades"] if t["status"] == "confirmed"
    ]
    assert landed
    journal = Journal(tmp_path / "journal.sqlite")
    try:
        chains = {t["chain"] for t in landed}
        gas = {c: journal.swap_gas(c, "1inch") for c in chains}
    finally:
        journal.close()
    assert all(60_000 < g < 400_000 for c in chains for g in gas[c]), gas
    assert main(["plan", "-c", str(cfg), "--json", "--force"]) == 0
    inputs = json.loads(capsys.readouterr().out)["cost_inputs"]
    chain = sorted(chains)[0]
    units = inputs[chain]["gas_units_per_swap"]
    assert units["source"].startswith(f"median of the last {len(gas[chain])} swaps recorded")
    assert units["value"] > 46_000
