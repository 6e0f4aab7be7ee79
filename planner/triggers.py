"""The formulas behind the triggers: calendar, volatility-scaled bands, momentum tilt.

Everything is a pure function of its arguments (the clock comes in as ``now``); float maths is
used only for volatility (logs and square roots) and rounded to a Decimal at once, so the same
history always gives the same band.

- Threshold: a row fires when ``|weight - target| > band`` (``planner.drift``), where
  ``band = min(band_pp, max(band_rel_pct% * target, band_floor_pp))`` (or ``band_pp``).
- Calendar: ``elapsed = now - last_rebalance`` in days. Blocked while
  ``elapsed < min_interval_days``; due once ``elapsed >= max_interval_days`` (or when there is
  no record of a rebalance and a maximum is set).
- Volatility: ``sigma = stdev(ln(p[t]/p[t-1]), last window returns) * sqrt(periods_per_year)``,
  ``band *= clamp(sigma / reference_vol, 1, max_multiplier)``.
- Momentum: ``r = p[-1] / p[-1-lookback] - 1``, ``tilt = clamp(strength * r, +-max_tilt)``,
  ``target *= 1 + tilt``, then targets are scaled to sum to 100.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from rebalancer.planner.config import MomentumTilt, Triggers, VolatilityBands

_Q = Decimal("0.000001")


@dataclass(frozen=True, slots=True)
class Calendar:
    """What the calendar says: blocked (too soon), due (too long), and why."""

    blocked: bool
    due: bool
    elapsed_days: Decimal | None
    detail: str


def calendar(now: datetime | None, last: datetime | None, cfg: Triggers) -> Calendar:
    """Apply the minimum and maximum interval since the last rebalance."""
    if last is None or now is None:
        due = cfg.max_interval_days is not None and now is not None
        detail = "no record of a previous rebalance"
        return Calendar(False, due, None, detail)
    elapsed = Decimal((now - last).total_seconds()) / Decimal(86400)
    elapsed = elapsed.quantize(Decimal("0.01"))
    blocked = elapsed < cfg.min_interval_days
    due = cfg.max_interval_days is not None and elapsed >= cfg.max_interval_days
    parts = [f"{elapsed} days since the last rebalance"]
    if blocked:
        parts.append(f"under min_interval_days = {cfg.min_interval_days}")
    if due:
        parts.append(f"at least max_interval_days = {cfg.max_interval_days}")
    return Calendar(blocked, due, elapsed, "; ".join(parts))


def realised_vol(history: Sequence[Decimal], cfg: VolatilityBands) -> Decimal | None:
    """Annualised realised volatility (a fraction) of the last ``window`` log returns."""
    prices = [float(p) for p in history[-(cfg.window + 1) :] if p > 0]
    if len(prices) < 3:
        return None
    returns = [math.log(b / a) for a, b in itertools.pairwise(prices)]
    sigma = statistics.stdev(returns) * math.sqrt(cfg.periods_per_year)
    return Decimal(repr(sigma)).quantize(_Q)


def vol_multiplier(sigma: Decimal | None, cfg: VolatilityBands) -> Decimal:
    """``clamp(sigma / reference, 1, max_multiplier)``; 1 without a volatility."""
    if sigma is None:
        return Decimal(1)
    ratio = sigma / (cfg.reference_vol_pct / 100)
    return min(max(ratio, Decimal(1)), cfg.max_multiplier).quantize(_Q)


def momentum_return(history: Sequence[Decimal], cfg: MomentumTilt) -> Decimal | None:
    """``p[-1] / p[-1-lookback] - 1``, or None when the history is too short."""
    if len(history) <= cfg.lookback or history[-1 - cfg.lookback] <= 0:
        return None
    return history[-1] / history[-1 - cfg.lookback] - 1


def tilt(ret: Decimal | None, cfg: MomentumTilt) -> Decimal:
    """The relative change of a target: ``clamp(strength * r, -max_tilt, +max_tilt)``."""
    if ret is None:
        return Decimal(0)
    cap = cfg.max_tilt_pct / 100
    return min(max(cfg.strength * ret, -cap), cap).quantize(_Q)


def tilted_targets(
    targets: Mapping[str, Decimal], tilts: Mapping[str, Decimal]
) -> dict[str, Decimal]:
    """Apply tilts to leaf targets and scale them back to a sum of 100."""
    raw = {k: t * (1 + tilts.get(k, Decimal(0))) for k, t in targets.items()}
    total = sum(raw.values(), Decimal(0))
    if total <= 0:
        return dict(targets)
    return {k: (v * 100 / total).quantize(_Q) for k, v in raw.items()}
