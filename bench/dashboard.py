"""Benchmark: the dashboard on a year of journal (365 executing runs, 6 trades each).

Measures what one journal change costs the dashboard, against what ``rebalancer report``
itself does with the same journal in the same run (the baseline): reading the journal and
building the report, then drawing the SVG charts and rendering the page. The journal is
generated here (fixed seed), written through the journal's own methods.
The LAST line printed is one JSON object of the figures.
"""

from __future__ import annotations

import json
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rebalancer.chains.registry import Registry
from rebalancer.dashboard import page as dashboard_page
from rebalancer.dashboard.data import Dashboard, State, read_journal
from rebalancer.dashboard.page import document, draw, panels
from rebalancer.journal import Journal

SCRATCH = "/dev/shm" if Path("/dev/shm").is_dir() else None
"""Where the journal is built: its synchronous=FULL writes are slow on a shared disk."""
RUNS = 365
TRADES = 6
DAY = 86400.0
WALLET = "0x38933fB3600db971A459767D149B492e58e40b76"
CONFIG = f"""
journal = "journal.sqlite"
[chains.ethereum]
rpc = "http://127.0.0.1:1"
[[wallets]]
name = "main"
address = "{WALLET}"
chains = ["ethereum"]
[strategy]
targets = {{ BTC = 40, ETH = 30, ALTS = 20, STABLES = 10 }}
band_pp = 5
[prices]
BTC = 95000
ETH = 3200
LINK = 15
USDC = 1
"""
SYMBOLS = {"BTC": "WBTC", "ETH": "WETH", "LINK": "LINK", "USDC": "USDC"}


def tokens() -> dict[str, tuple[str, int]]:
    """asset -> (registry token id, decimals) on Ethereum."""
    registry = Registry.load()
    out = {}
    for asset, symbol in SYMBOLS.items():
        token = registry.by_symbol("ethereum", symbol)
        assert token is not None, symbol
        out[asset] = (token.id, token.decimals)
    return out


TOKENS = tokens()


def snapshot(prices: dict[str, Decimal], units: dict[str, Decimal]) -> dict[str, object]:
    rows = []
    for asset, (token, decimals) in TOKENS.items():
        rows.append(
            {
                "chain": "ethereum",
                "wallet": WALLET,
                "asset": asset,
                "symbol": asset,
                "token": token,
                "decimals": decimals,
                "raw": str(int(units[asset].scaleb(decimals))),
                "value_usd": str(units[asset] * prices[asset]),
            }
        )
    total = sum((units[a] * prices[a] for a in TOKENS), Decimal(0))
    return {
        "prices": {k: str(v) for k, v in prices.items()},
        "holdings": rows,
        "total_usd": str(total),
    }


def build(path: Path) -> int:
    rng = random.Random(7)
    prices = {"BTC": Decimal(95000), "ETH": Decimal(3200), "LINK": Decimal(15), "USDC": Decimal(1)}
    units = {
        "BTC": Decimal("0.4"),
        "ETH": Decimal(9),
        "LINK": Decimal(1300),
        "USDC": Decimal(10000),
    }
    journal = Journal(path)
    try:
        for _ in range(RUNS):
            for a in ("BTC", "ETH", "LINK"):
                prices[a] = (prices[a] * Decimal(str(1 + rng.gauss(0, 0.03)))).quantize(
                    Decimal("0.01")
                )
            plan = {"created_at": "2026-01-01T00:00:00+00:00", "trades": []}
            run = journal.start_run("execute", plan)
            journal.snapshot(run, "portfolio_before", snapshot(prices, units))
            for k in range(TRADES):
                sell, buy = rng.sample(list(TOKENS), 2)
                tid = f"t{k}"
                journal.add_trade(
                    run,
                    {
                        "id": tid,
                        "chain": "ethereum",
                        "wallet": WALLET,
                        "sell": TOKENS[sell][0],
                        "buy": TOKENS[buy][0],
                        "amount_in": 10 ** TOKENS[sell][1],
                        "min_out": 10 ** TOKENS[buy][1],
                    },
                )
                journal.update(run, tid, "confirmed", tx_hash=f"0x{run:030x}{k:034x}",
                               realised_out=10 ** TOKENS[buy][1])  # fmt: skip
            journal.snapshot(run, "portfolio_after", snapshot(prices, units))
            journal.finish_run(run, "ok", {})
    finally:
        journal.close()
    # spread the year out (the journal stamps everything with the current time)
    db = sqlite3.connect(path)
    with db:
        t0 = time.time() - RUNS * DAY
        db.execute(
            "UPDATE runs SET started_at = ? + (id - 1) * ?, finished_at = started_at + 60",
            (t0, DAY),
        )
        db.execute("UPDATE trades SET updated_at = ? + (run_id - 1) * ? + 30", (t0, DAY))
        db.execute(
            "UPDATE snapshots SET taken_at = ? + (run_id - 1) * ? + "
            "(CASE kind WHEN 'portfolio_before' THEN 0 ELSE 60 END)",
            (t0, DAY),
        )
    db.close()
    return RUNS * TRADES


T = TypeVar("T")


def best(fn: Callable[[], T], repeat: int = 3) -> tuple[float, T]:
    """The fastest of ``repeat`` calls, in ms, and its result."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t) * 1000)
    return min(times), out


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-", dir=SCRATCH) as tmp:
        cfg = Path(tmp) / "rebalancer.toml"
        cfg.write_text(CONFIG)
        trades = build(Path(tmp) / "journal.sqlite")
        dash = Dashboard(str(cfg), 60)
        args = (dash.journal_path, dash.config, dash.registry, dash.targets)
        report_ms, view = best(lambda: read_journal(*args))
        state = State(1, time.time(), str(cfg), journal=view, leaves=("BTC", "ETH"), band_pp=5.0)
        draw(state)  # matplotlib's first import and font cache are not the dashboard's

        def fresh() -> dict[str, bytes]:
            dashboard_page._drawn.clear()
            return draw(state)

        charts_ms, charts = best(fresh)
        same_ms, _ = best(lambda: draw(state))
        state = State(1, state.started_at, str(cfg), journal=view, charts=charts)
        page_ms, page = best(lambda: document(state, dash.registry, dash.config))
        panels_doc = json.dumps(panels(state, dash.registry, dash.config))
    change_ms = report_ms + charts_ms + page_ms
    trade_ms = report_ms + same_ms + page_ms
    print(f"journal: {RUNS} executing runs, {trades} trades, {2 * RUNS} snapshots")
    print(f"read the journal + build the report (what `report` does): {report_ms:.0f} ms")
    print(f"draw the SVG charts: {charts_ms:.0f} ms (charts whose data did not move: "
          f"{same_ms:.1f} ms); render the page: {page_ms:.0f} ms")  # fmt: skip
    print(f"a new snapshot costs the dashboard {change_ms:.0f} ms "
          f"({change_ms / report_ms:.1f}x the report alone); a trade changing state "
          f"{trade_ms:.0f} ms ({trade_ms / report_ms:.1f}x)")  # fmt: skip
    print(f"page {len(page) / 1024:.0f} KiB, /api/panels {len(panels_doc) / 1024:.0f} KiB")
    print(
        json.dumps(
            {
                "runs": RUNS,
                "trades": trades,
                "report_ms": round(report_ms, 1),
                "charts_ms": round(charts_ms, 1),
                "charts_unchanged_ms": round(same_ms, 2),
                "page_ms": round(page_ms, 1),
                "change_ms": round(change_ms, 1),
                "change_vs_report": round(change_ms / report_ms, 2),
                "trade_change_ms": round(trade_ms, 1),
                "trade_change_vs_report": round(trade_ms / report_ms, 2),
                "page_kib": round(len(page) / 1024, 1),
                "panels_kib": round(len(panels_doc) / 1024, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
