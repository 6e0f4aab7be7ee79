"""The facts one plan works from, computed once: goals per row, gas, reserves, what is held.

The optimiser's problem, the naive plan, the exact evaluation and the explanations all read the
same context, so they can never disagree about what a wallet holds or what a swap costs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from rebalancer.core.types import Token
from rebalancer.planner.config import StrategyConfig, TradeLimits
from rebalancer.planner.drift import Drift
from rebalancer.planner.goals import row_goals
from rebalancer.planner.model import (
    Portfolio,
    Universe,
    reserve_raw,
    to_base_units,
    tradable_tokens,
)
from rebalancer.planner.tax import Lot, LotBook

Held = dict[tuple[str, str, str], int]
"""(chain, wallet, token id) -> base units."""


@dataclass
class PlanContext:
    """Per-plan facts shared by the naive plan, the optimiser and the exact evaluation."""

    portfolio: Portfolio
    strategy: StrategyConfig
    universe: Universe
    drift: Drift
    total: Decimal
    goals: dict[str, tuple[Decimal, Decimal]]
    """row key -> interval (percent) a row should end in: the band, or target +- tolerance."""
    solver_goals: dict[str, tuple[Decimal, Decimal]]
    gas_usd: dict[str, Decimal]
    gas_raw: dict[str, int]
    reserve: dict[str, int]
    tradable: dict[str, list[Token]]
    book: LotBook | None
    held: Held = field(default_factory=dict)
    """(chain, wallet, token id) -> base units before the plan (computed once): one key per
    position of ``portfolio``, in its order (``evaluate`` walks the two side by side)."""
    tokens: dict[str, Token] = field(default_factory=dict)
    limits: TradeLimits = field(default_factory=TradeLimits)
    """The policy's size limits (``max_trade_usd`` slices trades, ``max_run_usd`` caps the run)."""

    @property
    def min_trade_usd(self) -> Decimal:
        return self.strategy.min_trade_usd


def make_context(
    portfolio: Portfolio,
    strategy: StrategyConfig,
    universe: Universe,
    drift: Drift,
    lots: Sequence[Lot] | None,
    as_of: date,
    limits: TradeLimits | None = None,
) -> PlanContext:
    """Goals (``planner.goals``: hard intervals and the solver's aim), gas and reserves per
    chain in USD and base units, and the holdings by key."""
    total = portfolio.total
    goals = row_goals(drift, strategy)
    gas_usd: dict[str, Decimal] = {}
    gas_raw: dict[str, int] = {}
    reserve: dict[str, int] = {}
    tradable: dict[str, list[Token]] = {}
    for chain, info in universe.chains.items():
        cm = strategy.cost_model(chain)
        native_price = portfolio.prices.get(info.native_asset)
        gas_usd[chain] = cm.gas_usd(native_price)
        if cm.gas_per_swap_native is not None:
            gas_raw[chain] = to_base_units(cm.gas_per_swap_native, info.native_decimals, up=True)
        else:
            gas_raw[chain] = (
                to_base_units(gas_usd[chain] / native_price, info.native_decimals, up=True)
                if native_price
                else 0
            )
        reserve[chain] = reserve_raw(strategy, universe, chain)
        tradable[chain] = [
            t for t in tradable_tokens(strategy, universe, chain) if t.asset in portfolio.prices
        ]
    book = LotBook(list(lots), strategy.tax, as_of) if lots else None
    held: Held = {}
    tokens: dict[str, Token] = {}
    for p in portfolio.positions:
        tid = p.token.id
        held[(p.chain, p.wallet, tid)] = p.raw
        tokens[tid] = p.token
    return PlanContext(
        portfolio,
        strategy,
        universe,
        drift,
        total,
        goals.hard,
        goals.aim,
        gas_usd,
        gas_raw,
        reserve,
        tradable,
        book,
        held,
        tokens,
        limits or TradeLimits(),
    )


def native_raw(
    ctx: PlanContext, state: Mapping[tuple[str, str, str], int], chain: str, wallet: str
) -> int:
    """The wallet's native coin in base units in ``state``."""
    return state.get((chain, wallet, ctx.universe.native(chain).id), 0)


def is_locked(ctx: PlanContext, chain: str, native: int) -> bool:
    """A wallet that cannot pay one swap's gas above its reserve cannot trade at all."""
    if unpriced_gas(ctx, chain):
        return True
    return native - ctx.reserve[chain] < ctx.gas_raw[chain] or (native < ctx.reserve[chain])


def unpriced_gas(ctx: PlanContext, chain: str) -> bool:
    """Gas costs something on ``chain`` but its native coin has no price: no wallet there can
    trade (the part of ``is_locked`` that is the same for every wallet of the chain)."""
    native_price = ctx.portfolio.prices.get(ctx.universe.chains[chain].native_asset)
    return native_price is None and ctx.gas_usd[chain] > 0
