"""Shared pieces of the report and backtest tests: generated prices, configs, journals.

Everything is generated here from fixed seeds: no network, no chain, no price API.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest

ADDRESS = "0x38933fB3600db971A459767D149B492e58e40b76"
SYMBOLS = ("BTC", "ETH", "SOL", "LINK", "USDC")


def config_text(strategy: str, journal: str = "journal.sqlite", prices: str = "") -> str:
    """A minimal valid config with one wallet; ``strategy`` is the [strategy] body."""
    return f"""
journal = "{journal}"

[chains.ethereum]
rpc = "http://127.0.0.1:1"

[[wallets]]
name = "main"
address = "{ADDRESS}"
chains = ["ethereum"]

[strategy]
{strategy}

[prices]
{prices or "BTC = 50000"}
"""


DEFAULT_STRATEGY = """targets = { BTC = 40, ETH = 30, ALTS = { SOL = 10, LINK = 10 }, STABLES = 10 }
band_pp = 5
min_trade_usd = 10
"""


def generated_prices(
    days: int, symbols: tuple[str, ...] = SYMBOLS, seed: int = 3, vol: float = 0.04
) -> dict[str, list[float]]:
    """Correlated random walks (USDC pinned at 1), rounded to 6 significant digits."""
    rng = np.random.default_rng(seed)
    common = rng.normal(0, vol, days)
    out: dict[str, list[float]] = {}
    for k, s in enumerate(symbols):
        if s in ("USDC", "USDT"):
            out[s] = [1.0] * days
            continue
        r = 0.0005 * (k - 1) + common + rng.normal(0, vol / 2, days)
        r[0] = 0.0
        path = (100.0 * (k + 1)) * np.exp(np.cumsum(r))
        out[s] = [float(f"{p:.6g}") for p in path]
    return out


def prices_csv(series: dict[str, list[float]], start: date = date(2023, 1, 1)) -> str:
    lines = ["date,symbol,price_usd"]
    days = len(next(iter(series.values())))
    for t in range(days):
        day = (start + timedelta(days=t)).isoformat()
        for s, values in series.items():
            lines.append(f"{day},{s},{values[t]}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    p = tmp_path / "rebalancer.toml"
    p.write_text(config_text(DEFAULT_STRATEGY))
    return p


@pytest.fixture
def prices_file(tmp_path: Path) -> Path:
    p = tmp_path / "prices.csv"
    p.write_text(prices_csv(generated_prices(240)))
    return p
