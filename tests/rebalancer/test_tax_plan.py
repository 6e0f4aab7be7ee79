"""The tax book inside the plan, on the local worlds: a tax-aware rebalance sells the lots the
book says (loss lots first with ``specific``), and a same-asset harvest swap (WBTC -> cbBTC)
realises a loss without changing the exposure, honouring the repurchase wait."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from rebalancer.cli import main
from rebalancer.journal import Journal
from tests.rebalancer.test_execution import run_json, write_config

ETH_LOTS = (
    "date,asset,amount,cost_basis_usd,id\n2024-01-10,ETH,5,5000,gain\n2026-10-01,ETH,3,12000,loss\n"
)
# all the BTC held (0.1 WBTC on Ethereum, 0.05 BTC.b on Avalanche), bought at 120,000
BTC_LOTS = "date,asset,amount,cost_basis_usd,id\n2026-01-05,BTC,0.15,18000,btc-loss\n"


def _cfg(tmp_path: Path, strategy: str, tax: str) -> Path:
    cfg = write_config(tmp_path)
    text = cfg.read_text().replace("band_pp = 5\n", strategy)
    cfg.write_text(text + f"\n[strategy.tax]\n{tax}\n")
    return cfg


@pytest.fixture
def env(evm_isolated: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("DEMO_PASS", "demo")
    monkeypatch.setenv("ONEINCH_API_KEY", "test-key")
    return evm_isolated


def _import(tmp_path: Path, cfg: Path, text: str) -> None:
    f = tmp_path / "lots.csv"
    f.write_text(text)
    assert main(["lots", "import", str(f), "-c", str(cfg)]) == 0


def _block_days(cfg: Path) -> dict[str, str]:
    j = Journal(cfg.parent / "journal.sqlite")
    try:
        rows = [t for t in j.trades() if t.state == "confirmed"]
    finally:
        j.close()
    assert rows and all(t.block_time is not None for t in rows)
    return {
        t.trade_id: datetime.fromtimestamp(float(t.block_time or 0), UTC).date().isoformat()
        for t in rows
    }


def test_tax_aware_rebalance_sells_the_books_loss_lots_first(
    env: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _cfg(tmp_path, "band_pp = 5\n", 'method = "specific"\naware = true')
    _import(tmp_path, cfg, ETH_LOTS)
    capsys.readouterr()
    code, out = run_json(capsys, "run", "-c", str(cfg), "--execute", "--yes")
    assert code == 0
    confirmed = {t["id"] for t in out["trades"] if t["status"] == "confirmed"}
    eth_sells = [
        t for t in out["plan"]["trades"] if t["sell"]["asset"] == "ETH" and t["id"] in confirmed
    ]
    assert eth_sells, "the plan sells some of the overweight ETH"
    # the plan itself read the book: its ETH sales use the loss lot first
    assert eth_sells[0]["realised"]["lots"][0]["id"] == "loss"
    code, tax = run_json(capsys, "tax", "-c", str(cfg))
    assert code == 0
    eth = [d for d in tax["disposals"] if d["asset"] == "ETH"]
    sold = sum((Decimal(d["amount"]) for d in eth), Decimal(0))
    planned = sum(
        (Decimal(int(t["amount_in"])).scaleb(-t["sell"]["decimals"]) for t in eth_sells),
        Decimal(0),
    )
    assert sold == planned
    # loss lot (3 ETH at 4,000) first, then the old gain lot (1,000 each)
    from_loss = [d for d in eth if d["lot_id"] == "loss"]
    assert from_loss and eth[0]["lot_id"] == "loss"
    assert sum((Decimal(d["amount"]) for d in from_loss), Decimal(0)) == min(sold, Decimal(3))
    unit = {"loss": Decimal(4000), "gain": Decimal(1000)}
    days = _block_days(cfg)
    for d in eth:
        assert d["lot_id"] in unit and not d["unknown_basis"]
        basis = (Decimal(d["amount"]) * unit[d["lot_id"]]).quantize(Decimal("0.01"))
        assert Decimal(d["basis_usd"]) == basis
        assert Decimal(d["gain_usd"]) == Decimal(d["proceeds_usd"]) - basis
        assert d["term"] == ("short" if d["lot_id"] == "loss" else "long")
        assert d["disposed"] == days[d["trade_id"].partition(":")[2]]
    # selling at 3,200 what cost 4,000: a loss of 800 per ETH from the loss lot
    loss_gain = sum((Decimal(d["gain_usd"]) for d in from_loss), Decimal(0))
    assert loss_gain < 0
    assert abs(loss_gain + 800 * min(sold, Decimal(3))) <= 800 * min(sold, Decimal(3)) * Decimal(
        "0.03"
    )


def test_harvest_swap_wbtc_to_cbbtc_keeps_exposure_and_waits(
    env: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tax = (
        'method = "specific"\naware = true\nharvest = true\n'
        "harvest_min_loss_usd = 100\nrepurchase_wait_days = 30"
    )
    # bands so wide that nothing triggers: the only trade is the harvest swap
    cfg = _cfg(tmp_path, "band_pp = 50\n", tax)
    _import(tmp_path, cfg, BTC_LOTS)
    capsys.readouterr()
    code, h = run_json(capsys, "harvest", "-c", str(cfg))
    assert code == 0
    (swap,) = [s for s in h["swaps"] if s["sell"] == "WBTC"]
    assert swap["buy"] == "cbBTC" and swap["chain"] == "ethereum" and swap["amount"] == "0.1"
    assert swap["worth_it"] and swap["in_plan"]
    assert Decimal(swap["loss_usd"]) == Decimal("2500.00")  # 0.1 BTC at 95,000 cost 12,000
    assert Decimal(swap["saving_usd"]) == Decimal("750.00")  # at the 30% short-term rate
    assert Decimal(swap["net_usd"]) == Decimal(swap["saving_usd"]) - Decimal(swap["cost_usd"])
    code, out = run_json(capsys, "run", "-c", str(cfg), "--execute", "--yes")
    assert code == 0
    by_sell = {t["sell"]: t for t in out["trades"]}
    assert sorted(by_sell) == ["BTC.b", "WBTC"]  # Avalanche's BTC.b -> WBTC.e too
    assert all(t["status"] == "confirmed" for t in out["trades"])
    t = by_sell["WBTC"]
    assert t["buy"] == "cbBTC"
    assert int(t["amount_in"]) == 10_000_000  # all 0.1 WBTC (8 decimals)
    # exposure unchanged: the BTC bought is the BTC sold, less the swap's costs
    got = Decimal(int(t["realised_out"])).scaleb(-8)
    assert Decimal("0.098") <= got <= Decimal("0.1")
    code, doc = run_json(capsys, "tax", "-c", str(cfg))
    by_trade = {d["trade_id"].partition(":")[2]: d for d in doc["disposals"]}
    assert sorted(by_trade) == sorted(x["id"] for x in out["trades"])
    d = by_trade[t["id"]]
    assert d["lot_id"] == "btc-loss" and d["term"] == "short" and d["amount"] == "0.1"
    assert Decimal(d["basis_usd"]) == Decimal("12000.00")
    assert Decimal(d["gain_usd"]) == Decimal(d["proceeds_usd"]) - Decimal("12000.00") < 0
    assert Decimal(doc["totals"]["short"]["gain_usd"]) == Decimal("-3750.00")
    code, book = run_json(capsys, "lots", "-c", str(cfg))
    new = {x["trade_id"].partition(":")[2]: x for x in book["lots"] if x["source"] == "trade"}
    assert new[t["id"]]["asset"] == "BTC" and Decimal(new[t["id"]]["amount"]) == got
    assert all(x["source"] == "trade" for x in book["lots"] if x["asset"] == "BTC")
    # BTC falls: the new cbBTC lot is at a loss, but WBTC was sold at a loss today, so the
    # swap back waits 30 days
    cfg.write_text(cfg.read_text().replace("BTC = 95000", "BTC = 80000"))
    code, h = run_json(capsys, "harvest", "-c", str(cfg))
    assert code == 0
    (back,) = [s for s in h["swaps"] if s["sell"] == "cbBTC"]
    assert not back["worth_it"] and not back["in_plan"]
    assert "repurchase wait: WBTC until" in back["note"]
    # without the rule the swap back would be made
    cfg.write_text(cfg.read_text().replace("repurchase_wait_days = 30", "repurchase_wait_days = 0"))
    code, h = run_json(capsys, "harvest", "-c", str(cfg))
    (back,) = [s for s in h["swaps"] if s["sell"] == "cbBTC"]
    assert back["buy"] == "WBTC" and back["worth_it"] and back["in_plan"]
