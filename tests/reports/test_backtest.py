"""Backtests: deterministic, the planner decides when to trade, and the CLI's outputs."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rebalancer.chains.registry import Registry
from rebalancer.cli import main
from rebalancer.planner.config import StrategyConfig
from rebalancer.planner.model import resolve_targets
from rebalancer.reports import backtest as bt
from rebalancer.reports.prices_csv import PriceHistory
from tests.reports.conftest import config_text, generated_prices


def _history(series: dict[str, list[float]]) -> PriceHistory:
    symbols = tuple(series)
    days = len(series[symbols[0]])
    prices = np.array([series[s] for s in symbols], dtype=float).T
    dates = tuple(date(2023, 1, 1) + timedelta(days=t) for t in range(days))
    return PriceHistory(dates, symbols, prices)


def _setup(strategy: StrategyConfig, series: dict[str, list[float]]) -> tuple[Any, ...]:
    registry = Registry.load()
    targets = resolve_targets(strategy, registry)
    history = _history(series)
    book = bt.Book.build(targets, history.symbols)
    costs = bt.Costs.of(strategy, "ethereum", "ETH")
    return history, book, costs


STRATEGY = StrategyConfig.model_validate(
    {
        "targets": {"BTC": 40, "ETH": 30, "ALTS": {"SOL": 10, "LINK": 10}, "STABLES": 10},
        "band_pp": 5,
        "min_trade_usd": 10,
    }
)


def test_threshold_trades_exactly_when_the_band_is_crossed() -> None:
    """BTC grows 1% a day against a flat ETH, 50/50 with 5-point bands, back to target:
    BTC's weight g/(g+1) passes 55% once 1.01**t > 11/9, i.e. on day 21, then every 21 days."""
    strategy = STRATEGY.model_copy(
        update={
            "targets": {"BTC": Decimal(50), "ETH": Decimal(50)},
            "mode": "target",
            "costs": {},
        }
    )
    days = 90
    series = {"BTC": [100 * 1.01**t for t in range(days)], "ETH": [100.0] * days}
    history, book, costs = _setup(strategy, series)
    (rule,) = bt.make_rules(strategy, ["threshold"])
    res = bt.simulate(history, book, rule, costs, 10_000.0)
    assert [e.day for e in res.events] == [21, 42, 63, 84]
    assert all(e.trigger == "threshold" for e in res.events)
    btc = book.row_keys.index("class:BTC")
    # before each trade BTC was out of band; every other day it was inside
    trade_days = {e.day for e in res.events}
    for t in range(days):
        if t not in trade_days:
            assert abs(res.drift_pp[t, btc]) <= 5
    assert res.drift_pp[20, btc] <= 5 and res.drift_pp[21, btc] == pytest.approx(0, abs=1e-9)


def test_band_edge_stops_just_inside_the_band() -> None:
    strategy = STRATEGY.model_copy(
        update={"targets": {"BTC": Decimal(50), "ETH": Decimal(50)}, "mode": "band_edge"}
    )
    series = {"BTC": [100 * 1.01**t for t in range(40)], "ETH": [100.0] * 40}
    history, book, costs = _setup(strategy, series)
    res = bt.simulate(history, book, bt.make_rules(strategy, ["threshold"])[0], costs)
    first = res.events[0]
    btc = book.row_keys.index("class:BTC")
    assert first.day == 21
    # 10% of the 5-point band inside the edge: 54.5%
    assert res.drift_pp[21, btc] == pytest.approx(4.5, abs=1e-6)
    assert res.events[1].day == 24


def _every_day(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the float screen flag every day, so the planner is asked on every single day."""
    orig = bt._Replay._candidates

    def all_days(self: Any, w: Any, v: Any, t0: int, last: int) -> np.ndarray:
        orig(self, w, v, t0, last)
        trig = self.rule.strategy.triggers
        days = np.arange(t0, t0 + w.shape[0])
        fire = days - last >= float(trig.min_interval_days)
        return fire & (days % self.rule.check_every == 0)

    monkeypatch.setattr(bt._Replay, "_candidates", all_days)


@pytest.mark.parametrize("name", ["threshold", "calendar", "volatility"])
def test_screen_never_misses_a_day_the_planner_fires(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The vectorised screen only skips days: asking compute_drift on every day instead
    gives the very same rebalances."""
    series = generated_prices(150, seed=5, vol=0.05)
    history, book, costs = _setup(STRATEGY, series)
    (rule,) = bt.make_rules(STRATEGY, [name], band_pp=Decimal(3))
    fast = bt.simulate(history, book, rule, costs)
    _every_day(monkeypatch)
    slow = bt.simulate(history, book, rule, costs)
    assert [e.day for e in fast.events] == [e.day for e in slow.events]
    assert len(fast.events) > 2
    np.testing.assert_allclose(fast.values, slow.values, rtol=0, atol=1e-9)


def test_deterministic_and_costs_add_up() -> None:
    series = generated_prices(200, seed=11)
    history, book, costs = _setup(STRATEGY, series)
    rules = bt.make_rules(STRATEGY)
    a = [bt.simulate(history, book, r, costs) for r in rules]
    b = [bt.simulate(history, book, r, costs) for r in rules]
    for x, y in zip(a, b, strict=True):
        assert x.as_dict() == y.as_dict()
        assert np.array_equal(x.values, y.values)
    hold = a[-1]
    assert hold.rule.name == "buy-and-hold" and not hold.events and hold.cost_usd == 0
    for r in a[:-1]:
        assert r.events, r.rule.name
        for e in r.events:
            # 10 bps fee on the value sold, 6 USD gas per swap on Ethereum
            assert e.fee_usd == pytest.approx(e.traded_usd * 0.001)
            assert e.gas_usd == pytest.approx(6 * e.swaps)
            assert e.impact_usd > 0
    # the calendar rule rebalances every 30 days
    cal = a[1]
    assert [e.day for e in cal.events] == list(range(30, 200, 30))


def test_sweep_split_and_warning() -> None:
    series = generated_prices(240, seed=2)
    history, book, costs = _setup(STRATEGY, series)
    s = bt.sweep(history, book, STRATEGY, costs, bands=[Decimal(2), Decimal(5)], intervals=[1, 7])
    assert len(s.points) == 4
    assert s.split_date == history.dates[168]
    assert len(s.hold_in.values) == 168 and len(s.hold_out.values) == 72
    assert s.best in s.points and 1 <= s.best_out_rank <= 4
    assert "in-sample" in s.warning
    doc = bt.sweep_json(s)
    assert set(doc) == {
        "split_date",
        "in_sample_days",
        "out_sample_days",
        "best",
        "grid",
        "buy_and_hold",
        "warning",
    }


def test_cli_json_keys_and_determinism(
    config_file: Path, prices_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["backtest", "-c", str(config_file), "--prices", str(prices_file), "--json"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert main(argv) == 0
    assert capsys.readouterr().out == first
    doc = json.loads(first)
    assert {"prices", "start", "end", "days", "capital_usd", "chain", "strategies", "sweep"} <= set(
        doc
    )
    assert [s["name"] for s in doc["strategies"]] == [
        "threshold",
        "calendar",
        "volatility",
        "buy-and-hold",
    ]
    keys = {
        "final_usd",
        "total_return",
        "annualised_return",
        "volatility",
        "sharpe",
        "sortino",
        "max_drawdown",
        "turnover",
        "fees_usd",
        "gas_usd",
        "impact_usd",
        "cost_usd",
        "rebalances",
        "events",
    }
    for s in doc["strategies"]:
        assert keys <= set(s)
    assert doc["capital_usd"] == "100000" and doc["days"] == 240


def test_cli_strategy_capital_and_sweep_text(
    config_file: Path, prices_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "backtest",
            "-c",
            str(config_file),
            "--prices",
            str(prices_file),
            "--strategy",
            "threshold",
            "buy-and-hold",
            "--capital",
            "5000",
            "--sweep",
            "--bands",
            "2,5",
            "--intervals",
            "1,30",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "threshold" in out and "buy-and-hold" in out and "calendar" not in out.split("sweep")[0]
    assert "best in sample" in out and "warning:" in out


def test_cli_unknown_strategy_is_exit_2(
    config_file: Path, prices_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["backtest", "-c", str(config_file), "--prices", str(prices_file)]
    assert main([*argv, "--strategy", "momentum"]) == 2
    assert "--strategy 'momentum'" in capsys.readouterr().err
    assert main([*argv, "--capital", "-5"]) == 2
    assert "--capital" in capsys.readouterr().err


def test_html_is_self_contained(
    tmp_path: Path, config_file: Path, prices_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    html = tmp_path / "bt.html"
    pngs = tmp_path / "png"
    argv = ["backtest", "-c", str(config_file), "--prices", str(prices_file), "--sweep"]
    assert main([*argv, "--html", str(html), "--png", str(pngs), "--json"]) == 0
    json.loads(capsys.readouterr().out)  # --json keeps stdout pure JSON
    text = html.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text)
    assert "http://" not in text and "https://" not in text
    assert text.count('<img src="data:image/png;base64,') == 5
    assert sorted(p.name for p in pngs.iterdir()) == [
        "allocation.png",
        "drift.png",
        "sweep_in_sample.png",
        "sweep_out_sample.png",
        "value.png",
    ]
    assert (pngs / "value.png").read_bytes().startswith(b"\x89PNG")


def test_without_config_uses_the_default_strategy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    series = generated_prices(60, symbols=("BTC", "ETH", "SOL", "USDC"))
    from tests.reports.conftest import prices_csv

    Path("p.csv").write_text(prices_csv(series))
    assert main(["backtest", "--prices", "p.csv", "--strategy", "threshold"]) == 0
    out, err = capsys.readouterr()
    assert "default strategy" in err and "threshold" in out


def test_config_band_and_costs_are_used(
    tmp_path: Path, prices_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        config_text(
            """targets = { BTC = 40, ETH = 30, ALTS = { SOL = 10, LINK = 10 }, STABLES = 10 }
band_pp = 2
min_trade_usd = 10
[strategy.costs.ethereum]
gas_per_swap_usd = 0
fee_bps = 0
depth_usd = 1e15
"""
        )
    )
    argv = ["backtest", "-c", str(cfg), "--prices", str(prices_file), "--json"]
    assert main([*argv, "--strategy", "threshold"]) == 0
    doc = json.loads(capsys.readouterr().out)
    s = doc["strategies"][0]
    assert "bands 2 pp" in s["label"]
    assert s["rebalances"] > 0 and Decimal(s["cost_usd"]) == 0
