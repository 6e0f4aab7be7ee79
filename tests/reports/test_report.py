"""``rebalancer report`` on a journal built here: runs, trades, snapshots, hand-checked figures.

The story: run 1 holds 100,000 USD and sells 0.2 BTC for LINK (499 LINK arrive, 499.5 were
expected); 1,000 USDC are deposited; ten days later BTC is 55,000 and SOL 110 and run 2 trades
nothing (its one trade is refused).
"""

from __future__ import annotations

import json
import re
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from rebalancer.chains.registry import Registry
from rebalancer.cli import main
from rebalancer.documents.journal import NewTrade, PortfolioSnapshot, RunSummary, SnapshotKind
from rebalancer.documents.plan import PlanFile
from rebalancer.documents.status import RunMode, RunStatus, TradeStatus
from rebalancer.journal import Journal
from tests.reports.conftest import DEFAULT_STRATEGY, config_text

T0 = 1_700_000_000.0
DAY = 86400.0
BEFORE, AFTER = SnapshotKind.PORTFOLIO_BEFORE, SnapshotKind.PORTFOLIO_AFTER
DECIMALS = {"BTC": 8, "ETH": 18, "SOL": 9, "LINK": 18, "USDC": 6}


def _doc(amounts: dict[str, Decimal], prices: dict[str, Decimal]) -> PortfolioSnapshot:
    holdings = []
    total = Decimal(0)
    for asset, units in amounts.items():
        value = units * prices[asset]
        total += value
        holdings.append(
            {
                "chain": "ethereum",
                "wallet": "0xabc",
                "asset": asset,
                "symbol": asset,
                "token": f"test:{asset}",
                "decimals": DECIMALS[asset],
                "raw": str(int(units.scaleb(DECIMALS[asset]))),
                "value_usd": str(value),
            }
        )
    return PortfolioSnapshot.model_validate(
        {
            "prices": {k: str(v) for k, v in prices.items()},
            "holdings": holdings,
            "total_usd": str(total),
        }
    )


def _token(registry: Registry, symbol: str) -> dict[str, Any]:
    t = registry.by_symbol("ethereum", symbol)
    assert t is not None
    return {"symbol": t.symbol, "id": t.id, "asset": t.asset, "decimals": t.decimals}


def build_journal(path: Path) -> None:
    registry = Registry.load()
    wbtc, link = _token(registry, "WBTC"), _token(registry, "LINK")
    p1 = {k: Decimal(v) for k, v in {"BTC": 50000, "ETH": 2500, "SOL": 100, "LINK": 20}.items()}
    p1["USDC"] = Decimal(1)
    p2 = {**p1, "BTC": Decimal(55000), "SOL": Decimal(110)}
    before1 = {
        "BTC": Decimal(1),
        "ETH": Decimal(10),
        "SOL": Decimal(100),
        "LINK": Decimal(250),
        "USDC": Decimal(10000),
    }
    after1 = {**before1, "BTC": Decimal("0.8"), "LINK": Decimal(749)}
    before2 = {**after1, "USDC": Decimal(11000)}

    trade = {
        "id": "t1",
        "chain": "ethereum",
        "wallet": "0xabc",
        "sell": wbtc,
        "buy": link,
        "amount_in": "20000000",
        "expected_out": str(int(Decimal("499.5").scaleb(18))),
        "min_out": str(int(Decimal("497").scaleb(18))),
        "value_usd": "10000.00",
        "est_cost_usd": "16.50",
        "fee_usd": "10.00",
        "impact_usd": "0.50",
        "gas_usd": "6.00",
        "reason": "BTC over band",
    }
    refused = {**trade, "id": "t2", "amount_in": "1000000", "value_usd": "550.00"}

    def plan(*trades: dict[str, Any]) -> PlanFile:
        return PlanFile.of({"created_at": "2023-11-14T22:13:20+00:00", "trades": list(trades)}, "")

    def new(t: dict[str, Any]) -> NewTrade:
        keys = ("id", "chain", "wallet", "amount_in", "min_out")
        return NewTrade(**{k: t[k] for k in keys}, sell=wbtc["id"], buy=link["id"])

    none = RunSummary(trades=[])
    j = Journal(path)
    try:
        r1 = j.start_run(RunMode.EXECUTE, plan(trade))
        j.snapshot(r1, BEFORE, _doc(before1, p1))
        j.add_trade(r1, new(trade))
        j.update(r1, "t1", TradeStatus.CONFIRMED, tx_hash="0x01", realised_out=499 * 10**18)
        j.snapshot(r1, AFTER, _doc(after1, p1))
        j.finish_run(r1, RunStatus.OK, none)
        r2 = j.start_run(RunMode.EXECUTE, plan(refused))
        j.snapshot(r2, BEFORE, _doc(before2, p2))
        j.add_trade(r2, new(refused))
        j.update(r2, "t2", TradeStatus.REFUSED, error="policy")
        j.snapshot(r2, AFTER, _doc(before2, p2))
        j.finish_run(r2, RunStatus.PARTIAL, none)
        dry = j.start_run(RunMode.SIMULATE, plan())
        j.finish_run(dry, RunStatus.OK, none)
    finally:
        j.close()
    # spread the story over ten days (the journal stamps everything with the current time)
    db = sqlite3.connect(path)
    with db:
        for run, kind, at in (
            (r1, "portfolio_before", T0),
            (r1, "portfolio_after", T0 + 60),
            (r2, "portfolio_before", T0 + 10 * DAY),
            (r2, "portfolio_after", T0 + 10 * DAY + 60),
        ):
            db.execute(
                "UPDATE snapshots SET taken_at = ? WHERE run_id = ? AND kind = ?", (at, run, kind)
            )
        db.execute("UPDATE trades SET updated_at = ? WHERE run_id = ?", (T0 + 30, r1))
    db.close()


@pytest.fixture
def journal_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "rebalancer.toml"
    cfg.write_text(config_text(DEFAULT_STRATEGY, journal="j.sqlite"))
    build_journal(tmp_path / "j.sqlite")
    return cfg


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    assert main(["report", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_report_json_figures_by_hand(
    journal_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = _json(capsys, "-c", str(journal_config))
    assert set(doc) == {
        "journal",
        "as_of",
        "period",
        "value",
        "returns",
        "costs",
        "pnl",
        "allocation",
        "series",
    }
    assert doc["period"]["runs"] == 3 and doc["period"]["executed_runs"] == 2
    assert doc["period"]["snapshots"] == 4 and doc["period"]["points"] == 3
    v = doc["value"]
    assert v["start_usd"] == "100000.00" and v["end_usd"] == "105980.00"
    assert v["net_flows_usd"] == "1000.00"  # the USDC deposit is not a return
    assert v["buy_and_hold_usd"] == "106000.00"
    r = doc["returns"]
    # (99,980 / 100,000) * (104,980 / 99,980) - 1
    assert r["twr"] == pytest.approx(0.0498)
    assert r["periods"] == 2
    assert r["max_drawdown"] == pytest.approx(0.0002)
    assert r["volatility"] is not None and r["sharpe"] is not None
    assert r["risk_free"] == 0.0
    c = doc["costs"]
    assert c["trades"] == 1 and c["trades_by_state"] == {"confirmed": 1, "refused": 1}
    assert (c["fees_usd"], c["impact_usd"], c["gas_usd"]) == ("10.00", "0.50", "6.00")
    assert c["est_cost_usd"] == "16.50"
    assert c["slippage_vs_expected_usd"] == "10.00"  # 0.5 LINK short at 20 USD
    assert c["total_cost_usd"] == "26.50"
    assert c["traded_usd"] == "10000.00"
    assert c["turnover"] == pytest.approx(10000 / ((100000 + 99980 + 105980) / 3), abs=1e-6)
    p = doc["pnl"]
    assert p["basis"] == "average_cost"
    by = {a["asset"]: a for a in p["assets"]}
    assert by["BTC"]["unrealised_usd"] == "4000.00" and by["BTC"]["realised_usd"] == "0.00"
    assert by["LINK"]["cost_basis_usd"] == "15000.00" and by["LINK"]["unrealised_usd"] == "-20.00"
    assert by["SOL"]["unrealised_usd"] == "1000.00"
    assert by["USDC"]["cost_basis_usd"] == "11000.00"
    assert p["unrealised_usd"] == "4980.00" and p["realised_usd"] == "0.00"
    alloc = {a["name"]: a for a in doc["allocation"]}
    assert alloc["BTC"]["weight_pct"] == f"{Decimal(44000) / Decimal(105980) * 100:.2f}"
    assert alloc["BTC"]["target_pct"] == "40.00" and alloc["BTC"]["band_pp"] == "5.00"
    assert [s["run_id"] for s in doc["series"]] == [1, 1, 2]
    assert doc["series"][-1]["index_usd"] == "104980.00"


def test_report_with_lots(
    journal_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lots = tmp_path / "lots.csv"
    lots.write_text("date,asset,amount,cost_basis_usd\n2022-01-01,BTC,1,30000\n")
    doc = _json(capsys, "-c", str(journal_config), "--lots", str(lots), "--risk-free", "4")
    p = doc["pnl"]
    by = {a["asset"]: a for a in p["assets"]}
    assert p["basis"] == "lots"
    assert by["BTC"]["realised_usd"] == "4000.00"  # 10,000 for 0.2 BTC bought at 6,000
    assert by["BTC"]["unrealised_usd"] == "20000.00"  # 0.8 BTC at 55,000 on a 24,000 basis
    assert by["LINK"]["unrealised_usd"] == "-20.00"  # the new lot: 499 LINK for 10,000
    assert by["SOL"]["unrealised_usd"] == "0.00"  # no lot: left out
    assert p["realised_usd"] == "4000.00"
    assert doc["returns"]["risk_free"] == pytest.approx(0.04)


def test_report_text_html_and_png(
    journal_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    html = tmp_path / "report.html"
    pngs = tmp_path / "charts"
    code = main(["report", "-c", str(journal_config), "--html", str(html), "--png", str(pngs)])
    out = capsys.readouterr().out
    assert code == 0
    for text in ("time-weighted return", "4.98%", "Sharpe ratio", "P&L per asset", "26.50"):
        assert text in out
    page = html.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page)
    assert "http://" not in page and "https://" not in page
    assert page.count('<img src="data:image/png;base64,') == 3
    assert sorted(p.name for p in pngs.iterdir()) == ["allocation.png", "drift.png", "value.png"]
    _maybe_render(html, tmp_path)


def _maybe_render(html: Path, tmp_path: Path) -> None:
    """When a headless Chromium is installed, check the page renders offline (optional)."""
    import shutil
    import subprocess

    browser = next(
        (b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None
    )
    if browser is None:
        return
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            f"--screenshot={shot}",
            "--window-size=1200,3000",
            html.as_uri(),
        ],
        check=False,
        capture_output=True,
        timeout=60,
    )
    assert shot.exists() and shot.stat().st_size > 10_000


def test_report_without_a_journal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "rebalancer.toml"
    cfg.write_text(config_text(DEFAULT_STRATEGY, journal="none.sqlite"))
    assert main(["report", "-c", str(cfg)]) == 0
    assert "nothing to report" in capsys.readouterr().out
    assert not (tmp_path / "none.sqlite").exists()
    doc = _json(capsys, "-c", str(cfg))
    assert doc["period"]["runs"] == 0 and doc["returns"]["twr"] is None


def test_report_bad_inputs_exit_2(
    journal_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "-c", str(journal_config), "--risk-free", "x"]) == 2
    assert "--risk-free" in capsys.readouterr().err
    lots = tmp_path / "bad.csv"
    lots.write_text("date,asset,amount,cost_basis_usd\n2022-01-01,DOGE,1,3\n")
    assert main(["report", "-c", str(journal_config), "--lots", str(lots)]) == 2
    assert "bad.csv line 2" in capsys.readouterr().err
