"""Tax-loss harvesting candidates, coordinated with the plan.

A candidate is an asset whose lots held at a loss add up to at least
``tax.harvest_min_loss_usd``. Selling those lots realises the loss; buying a *different* asset
of the same class keeps the allocation (and avoids buying back the same asset). When the plan
already sells the asset, the loss comes for free by choosing the loss lots for that sale.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from rebalancer.planner.config import StrategyConfig
from rebalancer.planner.drift import Drift
from rebalancer.planner.model import Portfolio, Universe, from_base_units, tradable_tokens
from rebalancer.planner.plan import Plan
from rebalancer.planner.tax import HarvestCandidate, Lot, unrealised_losses


def harvest_candidates(
    portfolio: Portfolio,
    drift: Drift,
    lots: Sequence[Lot],
    strategy: StrategyConfig,
    universe: Universe,
    plan: Plan | None = None,
) -> list[HarvestCandidate]:
    """Assets with an unrealised loss over the threshold, largest loss first."""
    held: dict[str, Decimal] = {}
    chains_of: dict[str, set[str]] = {}
    for p in portfolio.positions:
        held[p.token.asset] = held.get(p.token.asset, Decimal(0)) + from_base_units(
            p.raw, p.token.decimals
        )
        chains_of.setdefault(p.token.asset, set()).add(p.chain)
    losses = unrealised_losses(lots, held, portfolio.prices)
    values = portfolio.value_by_asset()
    drift_of = {r.name: r.drift_pp for r in drift.rows if r.kind == "asset"}
    buyable = {
        chain: {t.asset for t in tradable_tokens(strategy, universe, chain)}
        for chain in universe.chains
    }
    planned: dict[str, Decimal] = {}
    for t in plan.trades if plan is not None else ():
        planned[t.sell.asset] = planned.get(t.sell.asset, Decimal(0)) + t.value_usd
    out = []
    for asset, (amount, loss, ids) in losses.items():
        if loss < strategy.tax.harvest_min_loss_usd:
            continue
        klass = universe.class_of(asset) or "?"
        chains = chains_of.get(asset, set())
        others = [
            a
            for a in universe.classes.get(klass, [])
            if a != asset and a in portfolio.prices and any(a in buyable[c] for c in chains)
        ]
        # most under its own target first, then the most held (liquid, already owned), by name
        others.sort(key=lambda a: (drift_of.get(a) or Decimal(0), -values.get(a, Decimal(0)), a))
        substitute = others[0] if others else None
        if substitute is None:
            note = (
                f"no other asset of class {klass} is priced and tradable where {asset} is held; "
                "another token of the same asset is usually the same security for tax"
            )
        else:
            note = f"sell the loss lots, buy {substitute} (same class {klass})"
        if planned.get(asset):
            note += (
                f"; the plan already sells {planned[asset]:.2f} USD of {asset}: with "
                "tax.method = specific that sale uses the loss lots first"
            )
        out.append(
            HarvestCandidate(
                asset=asset,
                klass=klass,
                amount=amount,
                value_usd=amount * portfolio.prices[asset],
                unrealised_loss_usd=loss,
                lot_ids=tuple(ids),
                substitute=substitute,
                note=note,
                planned_sell_usd=planned.get(asset, Decimal(0)),
            )
        )
    out.sort(key=lambda c: (-c.unrealised_loss_usd, c.asset))
    return out
