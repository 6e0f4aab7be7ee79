"""Return and risk statistics, one definition each, shared by ``report`` and ``backtest``.

Floats are fine here: these are statistics about money, never amounts that are signed.

Definitions (``r_t`` are the period returns, ``n`` their count, ``P`` periods per year):

- Time-weighted return: ``TWR = prod(1 + r_t) - 1``. Deposits and withdrawals are removed
  before the returns are formed, so TWR measures the rules, not the timing of cash flows.
- Annualised return: ``(1 + TWR) ** (P / n) - 1``.
- Volatility: ``stdev(r, ddof=1) * sqrt(P)``.
- Risk-free rate: an annual rate ``rf`` (default 0: crypto has no agreed risk-free asset; pass
  e.g. 4 for a T-bill yield), turned into a per-period rate ``rf_p = (1 + rf) ** (1 / P) - 1``.
- Sharpe: ``mean(r - rf_p) / stdev(r, ddof=1) * sqrt(P)``.
- Sortino: ``mean(r - rf_p) / DD * sqrt(P)`` with the downside deviation
  ``DD = sqrt(mean(min(r - rf_p, 0) ** 2))`` over all ``n`` periods.
- Maximum drawdown: ``max_t (1 - I_t / max_{s<=t} I_s)`` of the growth index
  ``I = cumprod(1 + r)`` starting at 1.
- Annualisation: daily backtests use ``P = 365`` (crypto trades every day); journal reports
  use ``P = 365.25 days / mean period length``, since runs are irregular.

A statistic that needs more data than there is (a volatility from one return) is ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

DAYS_PER_YEAR = 365
"""Periods per year of a daily crypto price history: markets never close."""


@dataclass(frozen=True, slots=True)
class Stats:
    """The return and risk figures of one series of period returns."""

    periods: int
    periods_per_year: float
    risk_free: float
    total_return: float
    annualised_return: float | None
    volatility: float | None
    sharpe: float | None
    sortino: float | None
    max_drawdown: float

    def as_dict(self) -> dict[str, Any]:
        return {k: _round(v) for k, v in asdict(self).items()}


def _round(v: Any) -> Any:
    return round(v, 8) if isinstance(v, float) else v


def returns_from_values(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Simple period returns ``v[t] / v[t-1] - 1`` of a value series without cash flows."""
    v = np.asarray(values, dtype=float)
    if v.size < 2:
        return np.zeros(0)
    return v[1:] / v[:-1] - 1.0


def twr(returns: Sequence[float] | np.ndarray) -> float:
    """Time-weighted return: the chained growth of the period returns."""
    r = np.asarray(returns, dtype=float)
    return float(np.prod(1.0 + r) - 1.0) if r.size else 0.0


def annualised(total_return: float, periods: int, periods_per_year: float) -> float | None:
    """``(1 + total) ** (P / n) - 1``; None without periods or after a total loss."""
    if periods <= 0 or total_return <= -1:
        return None
    return float((1.0 + total_return) ** (periods_per_year / periods) - 1.0)


def per_period_rate(annual_rate: float, periods_per_year: float) -> float:
    """The per-period rate compounding to ``annual_rate`` over a year."""
    return float((1.0 + annual_rate) ** (1.0 / periods_per_year) - 1.0)


def volatility(returns: Sequence[float] | np.ndarray, periods_per_year: float) -> float | None:
    """Annualised sample standard deviation (ddof=1); None with fewer than 2 returns."""
    r = np.asarray(returns, dtype=float)
    if r.size < 2:
        return None
    return float(np.std(r, ddof=1) * math.sqrt(periods_per_year))


def sharpe(
    returns: Sequence[float] | np.ndarray, periods_per_year: float, risk_free: float = 0.0
) -> float | None:
    """Annualised Sharpe ratio; None with fewer than 2 returns or no variation."""
    r = np.asarray(returns, dtype=float)
    if r.size < 2:
        return None
    sd = float(np.std(r, ddof=1))
    if sd <= 1e-15:
        return None
    excess = r - per_period_rate(risk_free, periods_per_year)
    return float(np.mean(excess) / sd * math.sqrt(periods_per_year))


def sortino(
    returns: Sequence[float] | np.ndarray, periods_per_year: float, risk_free: float = 0.0
) -> float | None:
    """Annualised Sortino ratio; None without returns or without a period below the rate."""
    r = np.asarray(returns, dtype=float)
    if r.size < 1:
        return None
    excess = r - per_period_rate(risk_free, periods_per_year)
    downside = float(np.sqrt(np.mean(np.minimum(excess, 0.0) ** 2)))
    if downside <= 1e-15:
        return None
    return float(np.mean(excess) / downside * math.sqrt(periods_per_year))


def max_drawdown(index: Sequence[float] | np.ndarray) -> float:
    """The largest fall from a running peak, as a fraction of that peak (0 when never down)."""
    v = np.asarray(index, dtype=float)
    if v.size == 0:
        return 0.0
    peak = np.maximum.accumulate(v)
    return float(np.max(1.0 - v / peak))


def growth_index(returns: Sequence[float] | np.ndarray) -> np.ndarray:
    """``[1, (1+r1), (1+r1)(1+r2), ...]``: the value of 1 invested at the start."""
    r = np.asarray(returns, dtype=float)
    return np.concatenate(([1.0], np.cumprod(1.0 + r)))


def summarise(
    returns: Sequence[float] | np.ndarray, periods_per_year: float, risk_free: float = 0.0
) -> Stats:
    """Every statistic of one return series (see the module docstring for the formulas)."""
    r = np.asarray(returns, dtype=float)
    total = twr(r)
    return Stats(
        periods=int(r.size),
        periods_per_year=float(periods_per_year),
        risk_free=float(risk_free),
        total_return=total,
        annualised_return=annualised(total, int(r.size), periods_per_year),
        volatility=volatility(r, periods_per_year),
        sharpe=sharpe(r, periods_per_year, risk_free),
        sortino=sortino(r, periods_per_year, risk_free),
        max_drawdown=max_drawdown(growth_index(r)),
    )


def fmt_pct(v: float | None, places: int = 2) -> str:
    """A fraction as a percentage for tables; ``-`` when unknown."""
    return "-" if v is None else f"{v * 100:.{places}f}%"


def fmt_ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"
