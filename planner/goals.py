"""Where each targeted row should end after a rebalance: the planner's aim.

The plan (its optimiser, its naive plan and the exact evaluation) and the backtest's trade
step read these same intervals, so a replayed rule trades toward what the live tool would.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from rebalancer.planner.config import StrategyConfig
from rebalancer.planner.drift import Drift
from rebalancer.planner.model import HUNDRED

Interval = tuple[Decimal, Decimal]


@dataclass(frozen=True, slots=True)
class Goals:
    """Per targeted row key (``kind:name``), intervals in percent of the total."""

    hard: dict[str, Interval]
    """Where a row must end to count as fixed: its band (``band_edge``), or target +-
    ``target_tolerance_pp`` (``target``)."""
    aim: dict[str, Interval]
    """Where trades aim, inside ``hard``: ``edge_margin_pct`` of the band inside the edges for
    a row out of band; a row in band may stay where it is, but not within a hair of its edge."""


def row_goals(drift: Drift, strategy: StrategyConfig) -> Goals:
    """The intervals every targeted row of ``drift`` should end in under ``strategy``'s mode."""
    weights = {r.key: r.weight_pct for r in drift.rows}
    hard: dict[str, Interval] = {}
    aim: dict[str, Interval] = {}
    margin = 1 - strategy.edge_margin_pct / HUNDRED
    for row in drift.targets.targeted:
        key = f"{row.kind}:{row.name}"
        t = row.target or Decimal(0)
        if strategy.mode == "target":
            tol = strategy.target_tolerance_pp
            hard[key] = (t - tol, t + tol)
            aim[key] = (t - tol * margin, t + tol * margin)
            continue
        band = drift.bands[key]
        hard[key] = (t - band, t + band)
        inner = band * margin
        w = weights.get(key, Decimal(0))
        delta = min(Decimal("0.01"), band / 20)
        if abs(w - t) > band:
            aim[key] = (t - inner, t + inner)
        else:
            lo = max(min(t - inner, w), t - band + delta)
            hi = min(max(t + inner, w), t + band - delta)
            aim[key] = (lo, hi)
    return Goals(hard, aim)
