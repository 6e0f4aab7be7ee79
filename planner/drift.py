"""Drift per class and per asset across all chains, and which triggers fire.

BTC held as WBTC on Ethereum, BTC.b on Avalanche and cbBTC on Solana is one BTC row: drift is
about the whole portfolio, never one chain. Formulas of the triggers: ``planner.triggers``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from rebalancer.planner.config import StrategyConfig
from rebalancer.planner.model import HUNDRED, Portfolio, Row, Targets
from rebalancer.planner.triggers import (
    calendar,
    momentum_return,
    realised_vol,
    tilt,
    tilted_targets,
    vol_multiplier,
)


@dataclass(frozen=True, slots=True)
class DriftRow:
    """One class or asset: where it is, where it should be, and whether it is out of band."""

    name: str
    kind: str
    value_usd: Decimal
    weight_pct: Decimal
    target_pct: Decimal | None
    drift_pp: Decimal | None
    band_pp: Decimal | None
    triggered: bool

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}"


@dataclass(frozen=True, slots=True)
class TriggerResult:
    """One trigger's verdict with the numbers behind it."""

    name: str
    fired: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Drift:
    """The drift table, the effective targets and bands, and the overall decision."""

    total_usd: Decimal
    band_pp: Decimal
    rows: tuple[DriftRow, ...]
    triggers: tuple[TriggerResult, ...]
    triggered: bool
    targets: Targets
    bands: Mapping[str, Decimal]

    @property
    def max_drift_pp(self) -> Decimal:
        return max(
            (abs(r.drift_pp) for r in self.rows if r.drift_pp is not None), default=Decimal(0)
        )


def row_values(portfolio: Portfolio, rows: Sequence[Row]) -> dict[str, Decimal]:
    """USD value per row key (``kind:name``)."""
    by_asset = portfolio.value_by_asset()
    return {
        f"{r.kind}:{r.name}": sum((by_asset.get(a, Decimal(0)) for a in r.assets), Decimal(0))
        for r in rows
    }


def effective_targets(
    targets: Targets,
    strategy: StrategyConfig,
    portfolio: Portfolio,
    history: Mapping[str, Sequence[Decimal]],
) -> tuple[Targets, dict[str, Decimal], list[TriggerResult]]:
    """Targets after the momentum tilt and bands after volatility scaling, with their notes."""
    notes: list[TriggerResult] = []
    by_asset = portfolio.value_by_asset()

    def weighted(row: Row, per_asset: Mapping[str, Decimal]) -> Decimal | None:
        known = [a for a in sorted(row.assets) if a in per_asset]
        if not known:
            return None
        weights = [by_asset.get(a, Decimal(0)) for a in known]
        total = sum(weights, Decimal(0))
        if total <= 0:
            return sum((per_asset[a] for a in known), Decimal(0)) / len(known)
        return (
            sum((per_asset[a] * w for a, w in zip(known, weights, strict=True)), Decimal(0)) / total
        )

    momentum = strategy.triggers.momentum
    if momentum is not None:
        returns = {
            a: ret for a, h in history.items() if (ret := momentum_return(h, momentum)) is not None
        }
        leaves = {r.name: r for r in targets.leaves if r.target is not None and r.target > 0}
        tilts = {name: tilt(weighted(row, returns), momentum) for name, row in leaves.items()}
        new = tilted_targets({n: r.target or Decimal(0) for n, r in leaves.items()}, tilts)
        new_by_key = {f"{leaves[n].kind}:{n}": t for n, t in new.items()}
        rows: list[Row] = []
        for r in targets.rows:
            key = f"{r.kind}:{r.name}"
            if key in new_by_key:
                rows.append(Row(r.name, r.kind, r.assets, new_by_key[key], r.leaf))
            elif r.kind == "class" and not r.leaf and r.target is not None:
                parts = [
                    new_by_key.get(f"asset:{a}", x.target or Decimal(0))
                    for x in targets.rows
                    if x.kind == "asset" and x.leaf and (a := x.name) in r.assets
                ]
                rows.append(Row(r.name, r.kind, r.assets, sum(parts, Decimal(0)), r.leaf))
            else:
                rows.append(r)
        targets = Targets(tuple(rows), targets.asset_class)
        shown = ", ".join(f"{n} {t:+.2%}" for n, t in tilts.items() if t) or "no tilt"
        short = _too_short(targets, by_asset, set(returns))
        if short:
            shown += (
                f"; history too short for {', '.join(short)} (momentum needs "
                f"{momentum.lookback + 1} points): no tilt from them"
            )
        notes.append(TriggerResult("momentum", False, f"targets tilted: {shown}"))

    bands: dict[str, Decimal] = {}
    vol = strategy.triggers.volatility
    sigmas: dict[str, Decimal] = {}
    if vol is not None:
        sigmas = {a: sig for a, h in history.items() if (sig := realised_vol(h, vol)) is not None}
    widened = []
    for r in targets.rows:
        if r.target is None:
            continue
        band = strategy.band_for(r.target)
        if vol is not None:
            mult = vol_multiplier(weighted(r, sigmas), vol)
            if mult != 1:
                widened.append(f"{r.name} x{mult.normalize()}")
            band = band * mult
        bands[f"{r.kind}:{r.name}"] = band
    if vol is not None:
        detail = "bands widened: " + ", ".join(widened) if widened else "no band widened"
        short = _too_short(targets, by_asset, set(sigmas))
        if short:
            detail += (
                f"; history too short for {', '.join(short)} (volatility needs at least 3 "
                "points): their bands unchanged"
            )
        notes.append(TriggerResult("volatility", False, detail))
    return targets, bands, notes


def _too_short(targets: Targets, held: Mapping[str, Decimal], known: set[str]) -> list[str]:
    """The held target assets a history-based signal could not be computed for (said
    plainly: never a silent zero)."""
    wanted = {a for r in targets.rows if r.target is not None and r.target > 0 for a in r.assets}
    return sorted(a for a in wanted - known if held.get(a, Decimal(0)) > 0)


def compute_drift(
    portfolio: Portfolio,
    targets: Targets,
    strategy: StrategyConfig,
    *,
    now: datetime | None = None,
    last_rebalance: datetime | None = None,
    history: Mapping[str, Sequence[Decimal]] | None = None,
) -> Drift:
    """Drift rows and trigger decisions; ``now`` and ``history`` are inputs, never read here."""
    eff, bands, notes = effective_targets(targets, strategy, portfolio, history or {})
    rows = drift_rows(portfolio, eff, bands)
    out_of_band = [r for r in rows if r.triggered]
    results: list[TriggerResult] = []
    threshold = strategy.triggers.threshold and bool(out_of_band)
    if strategy.triggers.threshold:
        detail = (
            "out of band: " + ", ".join(f"{r.name} {r.drift_pp:+.2f}pp" for r in out_of_band)
            if out_of_band
            else "every row within its band"
        )
        results.append(TriggerResult("threshold", threshold, detail))
    cal = calendar(now, last_rebalance, strategy.triggers)
    results.append(TriggerResult("calendar", cal.due and not cal.blocked, cal.detail))
    results.extend(notes)
    fired = (threshold or cal.due) and not cal.blocked
    if cal.blocked and (threshold or cal.due):
        results.append(TriggerResult("calendar_min", False, "blocked: " + cal.detail))
    return Drift(
        total_usd=portfolio.total,
        band_pp=strategy.band_pp,
        rows=tuple(rows),
        triggers=tuple(results),
        triggered=fired,
        targets=eff,
        bands=bands,
    )


def drift_rows(
    portfolio: Portfolio, targets: Targets, bands: Mapping[str, Decimal]
) -> list[DriftRow]:
    """The drift table at the portfolio's own prices; asset rows with nothing held and no
    target are left out to keep the table short."""
    total = portfolio.total
    values = row_values(portfolio, targets.rows)
    out = []
    for r in targets.rows:
        key = f"{r.kind}:{r.name}"
        value = values[key]
        if r.kind == "asset" and value == 0 and not r.target:
            continue
        weight = value / total * HUNDRED if total > 0 else Decimal(0)
        drift = None if r.target is None else weight - r.target
        band = bands.get(key)
        triggered = drift is not None and band is not None and abs(drift) > band
        out.append(DriftRow(r.name, r.kind, value, weight, r.target, drift, band, triggered))
    return out
