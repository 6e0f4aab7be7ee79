"""The optimiser's view of a plan's context: accounts, slots and band rows in float points of
the portfolio's total (well scaled for HiGHS); the exact numbers stay in the context."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from rebalancer.planner import optimise
from rebalancer.planner.context import PlanContext, is_locked, native_raw
from rebalancer.planner.model import HUNDRED, Row, from_base_units

_BPS = Decimal(10_000)
_ZERO = Decimal(0)


def build_problem(ctx: PlanContext) -> tuple[optimise.Problem, dict[tuple[str, str, str], int]]:
    """The optimiser's view of the context, in float points of the total."""
    pp = HUNDRED / ctx.total
    held = state = ctx.held
    # each position's value, as it would be computed here (at the portfolio's price)
    values = {
        (p.chain, p.wallet, p.token.id): p.value
        for p in ctx.portfolio.positions
        if p.price == ctx.portfolio.prices.get(p.token.asset)
    }
    accounts: list[optimise.Account] = []
    slots: list[optimise.Slot] = []
    index: dict[tuple[str, str, str], int] = {}
    min_usd = ctx.strategy.min_trade_usd
    prices = ctx.portfolio.prices
    for chain, wallet in ctx.portfolio.accounts:
        info = ctx.universe.chains[chain]
        native = ctx.universe.native(chain)
        native_price = prices.get(info.native_asset, Decimal(0))
        nat_raw = native_raw(ctx, state, chain, wallet)
        native_avail = from_base_units(nat_raw - ctx.reserve[chain], native.decimals) * native_price
        cm = ctx.strategy.cost_model(chain)
        a = len(accounts)
        acc = optimise.Account(
            chain=chain,
            wallet=wallet,
            fee=float(cm.fee_bps / _BPS),
            gas_pp=float(ctx.gas_usd[chain] * pp),
            native_asset=info.native_asset,
            native_slot=None,
            # NOTE: a hair below the exact budget: the solver's feasibility tolerance and the
            # rounding of gas up to whole base units must never spend the reserve
            native_avail_pp=float(native_avail * pp) * (1 - 1e-6) - 1e-6,
            locked=is_locked(ctx, chain, nat_raw),
        )
        accounts.append(acc)
        # NOTE: a dense portfolio has ~10^4 slots: one key and one product per slot (a
        # token's value and what it may sell are the same number unless it is the native; a
        # held token's value is its position's, a token not held is worth nothing), and one
        # positional Slot() call
        for token in ctx.tradable[chain]:
            slot_key = (chain, wallet, token.id)
            raw = held.get(slot_key, 0)
            if raw > 0:
                value = values.get(slot_key)
                if value is None:
                    value = from_base_units(raw, token.decimals) * prices[token.asset]
                value_pp = float(value * pp)
            else:
                value, value_pp = _ZERO, 0.0
            avail, avail_pp = value, value_pp
            if token.is_native:
                avail = max(native_avail - ctx.gas_usd[chain], Decimal(0))
                avail_pp = float(avail * pp)
                acc.native_slot = len(slots)
            index[slot_key] = len(slots)
            slots.append(
                optimise.Slot(
                    a,
                    token,
                    token.asset,
                    value_pp,
                    avail_pp,
                    raw > 0 and avail >= min_usd and avail > 0,
                    True,
                )
            )
    weights = {r.key: r.weight_pct for r in ctx.drift.rows}
    rows = []
    for row in ctx.drift.targets.targeted:
        key = f"{row.kind}:{row.name}"
        lo, hi = ctx.solver_goals[key]
        value = row_weight(ctx, row, weights)
        rows.append(
            optimise.ConRow(
                key=key,
                assets=row.assets,
                value_pp=float(value),
                lo=float(lo),
                hi=float(hi),
                target=float(row.target or 0),
                leaf=row.leaf,
            )
        )
    impact_cache: dict[tuple[str, str, str], float] = {}
    scale = float(ctx.total / HUNDRED)
    # NOTE: without pair depths k is 1/depth(sell) + 1/depth(buy): one float per asset, not
    # one Decimal division per pair (a dense portfolio asks for ~10^5 pairs)
    leg: dict[tuple[str, str], float] = {}
    by_pair = {c: bool(ctx.strategy.cost_model(c).depth_usd_by_pair) for c in ctx.gas_usd}

    def impact(account: int, sell_asset: str, buy_asset: str) -> float:
        chain = accounts[account].chain
        if not by_pair[chain]:
            out = 0.0
            for asset in (sell_asset, buy_asset):
                v = leg.get((chain, asset))
                if v is None:
                    depth = ctx.strategy.cost_model(chain).depth(asset)
                    v = leg[(chain, asset)] = float(1 / depth) * scale
                out += v
            return out
        key = (chain, sell_asset, buy_asset)
        if key not in impact_cache:
            k = ctx.strategy.cost_model(chain).impact_coefficient(sell_asset, buy_asset)
            impact_cache[key] = float(k) * scale
        return impact_cache[key]

    pool_index: dict[tuple[str, str], int] = {}
    pool_cache: dict[tuple[str, str, str], tuple[tuple[int, float], ...]] = {}

    def pools(account: int, sell_asset: str, buy_asset: str) -> tuple[tuple[int, float], ...]:
        chain = accounts[account].chain
        key = (chain, sell_asset, buy_asset)
        got = pool_cache.get(key)
        if got is None:
            got = pool_cache[key] = tuple(
                (pool_index.setdefault((chain, name), len(pool_index)), float(k) * scale)
                for name, k in ctx.strategy.cost_model(chain).pools(sell_asset, buy_asset)
            )
        return got

    tax: dict[str, list[tuple[float, float]]] = {}
    if ctx.book is not None and ctx.strategy.tax.aware:
        for asset in sorted({lot.asset for lot in ctx.book.lots}):
            lot_price = ctx.portfolio.prices.get(asset)
            if lot_price is None:
                continue
            tax[asset] = [
                (float("inf") if cap < 0 else float(cap * pp), float(rate))
                for cap, rate in ctx.book.tax_segments(asset, lot_price)
            ]
    limits = ctx.limits
    problem = optimise.Problem(
        accounts,
        slots,
        rows,
        float(min_usd * pp),
        impact,
        pools,
        tax,
        None if limits.max_trade_usd is None else float(limits.max_trade_usd * pp),
        None if limits.max_run_usd is None else float(limits.max_run_usd * pp),
        any(by_pair.values()),
    )
    return problem, index


def row_weight(ctx: PlanContext, row: Row, weights: Mapping[str, Decimal]) -> Decimal:
    key = f"{row.kind}:{row.name}"
    if key in weights:
        return weights[key]
    values = ctx.portfolio.value_by_asset()
    value = sum((values.get(a, Decimal(0)) for a in row.assets), Decimal(0))
    return value / ctx.total * HUNDRED
