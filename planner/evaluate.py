"""Exact evaluation: proposals (USD amounts from the optimiser or the naive plan) -> trades in
integer base units, every hard constraint enforced again in exact arithmetic.

Never more sold than held; the gas reserve and the plan's own gas kept; no trade under
``min_trade_usd`` nor over ``max_trade_usd`` (a larger proposal becomes equal slices, each its
own trade paying its own gas); the run's total within ``max_run_usd``; ``min_out`` after
slippage. What cannot be done is listed with a reason, never silently dropped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from rebalancer.core.types import Token
from rebalancer.planner.context import PlanContext, unpriced_gas
from rebalancer.planner.drift import drift_rows
from rebalancer.planner.model import Portfolio, Position, from_base_units, to_base_units
from rebalancer.planner.skips import Skip, SkipReason, TradeSkip
from rebalancer.planner.tax import Realised, realise_sales

_BPS = Decimal(10_000)
_CENT = Decimal("0.01")
_DUST = Decimal("1e-6")
_NEAR_MIN = Decimal("0.999")


@dataclass(frozen=True, slots=True)
class Proposal:
    """A swap before rounding: sell ``usd`` worth of ``sell`` for ``buy`` in one wallet."""

    chain: str
    wallet: str
    sell: Token
    buy: Token
    usd: Decimal


_set = object.__setattr__


@dataclass(frozen=True, slots=True, init=False)
class Trade:
    """One swap of the plan, in integer base units."""

    id: str
    chain: str
    wallet: str
    sell: Token
    buy: Token
    amount_in: int
    expected_out: int
    min_out: int
    value_usd: Decimal
    fee_usd: Decimal
    impact_usd: Decimal
    gas_usd: Decimal
    gas_native: int
    reason: str
    realised: Realised | None = None

    # NOTE: written out rather than generated: a dense plan builds ~10^4 trades two or three
    # times, and this is ~20% less work than the generated frozen __init__ (same signature)
    def __init__(
        self,
        id: str,
        chain: str,
        wallet: str,
        sell: Token,
        buy: Token,
        amount_in: int,
        expected_out: int,
        min_out: int,
        value_usd: Decimal,
        fee_usd: Decimal,
        impact_usd: Decimal,
        gas_usd: Decimal,
        gas_native: int,
        reason: str,
        realised: Realised | None = None,
    ) -> None:
        _set(self, "id", id)
        _set(self, "chain", chain)
        _set(self, "wallet", wallet)
        _set(self, "sell", sell)
        _set(self, "buy", buy)
        _set(self, "amount_in", amount_in)
        _set(self, "expected_out", expected_out)
        _set(self, "min_out", min_out)
        _set(self, "value_usd", value_usd)
        _set(self, "fee_usd", fee_usd)
        _set(self, "impact_usd", impact_usd)
        _set(self, "gas_usd", gas_usd)
        _set(self, "gas_native", gas_native)
        _set(self, "reason", reason)
        _set(self, "realised", realised)

    @property
    def est_cost_usd(self) -> Decimal:
        return self.fee_usd + self.impact_usd + self.gas_usd


@dataclass(frozen=True, slots=True)
class Outcome:
    """A list of trades evaluated exactly: what is left after, what it cost, how far off."""

    trades: tuple[Trade, ...]
    skipped: tuple[Skip, ...]
    after: Portfolio
    cost_usd: Decimal
    tax_usd: Decimal
    violation_pp: float


_TRADE_FIELDS = Trade.__slots__


def replace(t: Trade, **changes: object) -> Trade:
    """A copy of ``t`` with some fields changed."""
    copy = object.__new__(Trade)
    for name in _TRADE_FIELDS:
        object.__setattr__(copy, name, changes[name] if name in changes else getattr(t, name))
    return copy


MAX_SLICES = 32
"""Most slices of one proposal in one run (the optimiser's bound too): a move larger than
``MAX_SLICES * max_trade_usd`` is left for later runs, never tens of millions of trades."""


def sliced(ctx: PlanContext, proposals: Sequence[Proposal]) -> list[Proposal]:
    """Proposals over ``max_trade_usd`` as equal slices within it (each its own trade), at most
    ``MAX_SLICES`` of one proposal (then each a full slice)."""
    cap = ctx.limits.max_trade_usd
    if cap is None:
        return list(proposals)
    out: list[Proposal] = []
    for p in proposals:
        if p.usd <= cap:
            out.append(p)
            continue
        n = math.ceil(p.usd / cap)
        part = p.usd / n
        if n > MAX_SLICES:
            n, part = MAX_SLICES, cap
        out.extend(Proposal(p.chain, p.wallet, p.sell, p.buy, part) for _ in range(n))
    return out


def evaluate(ctx: PlanContext, proposals: Sequence[Proposal]) -> Outcome:
    """Turn proposals into integer trades, enforcing every hard constraint exactly.

    Impact is per pool on the volume of every trade through it (``CostModel.pools``), so it is
    known only once every trade's size is: the walk charges each trade its share at a volume
    at least the final one (never more bought than the final figure), then the shares are
    settled at the final volumes, which only ever adds to what is bought."""
    if not proposals:  # doing nothing leaves the portfolio as it is: no need to rebuild it
        return Outcome((), (), ctx.portfolio, Decimal(0), Decimal(0), violation(ctx, ctx.portfolio))
    proposals = sliced(ctx, proposals)
    pools = _Pools(ctx)
    floors: dict[str, Decimal] = {}
    volume = pools.volumes(
        (p.chain, p.sell.asset, p.buy.asset, _most(ctx, p, floors)) for p in proposals
    )
    for _ in range(_SETTLE_ROUNDS):
        walk = _walk(ctx, proposals, pools, volume)
        final = walk.volume
        if all(v <= volume.get(key, Decimal(0)) for key, v in final.items()):
            break
        grown = {key: max(v, volume.get(key, Decimal(0))) for key, v in final.items()}
        volume = {**volume, **grown}
    else:  # cannot happen: each round's volume only grows toward what the trades carry
        raise AssertionError("plan impact did not settle")
    trades, cost = _settle(ctx, walk, pools, final)
    # NOTE: only what the trades touched can change: a dense portfolio holds ~10^4 positions
    # more than a plan trades, so the rest is carried over as it is
    native = {c: ctx.universe.native(c).id for c in ctx.gas_usd}
    changed = {k: walk.state[k] for t in trades for k in _keys(native, t)}
    check_exact(ctx, changed, trades)
    after = _after(ctx, changed, walk.tokens)
    trades, tax = _with_tax(ctx, trades)
    return Outcome(tuple(trades), walk.skipped, after, cost, tax, violation(ctx, after))


_SETTLE_ROUNDS = 8


def _keys(native: Mapping[str, str], t: Trade) -> tuple[tuple[str, str, str], ...]:
    """The holdings a trade changes: what it sells, what it buys, the native coin it pays
    (``native``: chain -> its native coin's id)."""
    return (
        (t.chain, t.wallet, t.sell.id),
        (t.chain, t.wallet, t.buy.id),
        (t.chain, t.wallet, native[t.chain]),
    )


def _after(
    ctx: PlanContext, changed: Mapping[tuple[str, str, str], int], tokens: Mapping[str, Token]
) -> Portfolio:
    """The portfolio after the plan: the positions before, with the changed ones replaced."""
    prices = ctx.portfolio.prices
    left = dict(changed)
    positions: list[Position] = []
    before = ctx.portfolio.positions
    # NOTE: ``held`` has one key per position, in position order (``make_context``): its keys
    # spare building ~10^4 of them again
    keys: Iterable[tuple[str, str, str]] = ctx.held
    if len(ctx.held) != len(before):  # pragma: no cover - a context not from make_context
        keys = [(p.chain, p.wallet, p.token.id) for p in before]
    for key, p in zip(keys, before, strict=True):
        raw = left.pop(key, None)
        if raw is None:
            if p.raw > 0:
                positions.append(p)
        elif raw > 0:
            positions.append(Position(p.chain, p.wallet, p.token, raw, p.price))
    fresh = [
        Position(chain, wallet, tokens[tid], raw, prices[tokens[tid].asset])
        for (chain, wallet, tid), raw in left.items()
        if raw > 0
    ]
    if fresh:
        positions.extend(fresh)
        positions.sort(key=lambda p: (p.chain, p.wallet, p.token.id))
    return Portfolio(tuple(positions), prices)


def _most(ctx: PlanContext, p: Proposal, floors: dict[str, Decimal]) -> Decimal:
    """The most a proposal's trade can be worth (what it asks plus the dust the walk may add,
    or the minimum size it may be raised to, never above what is held): so one walk at these
    volumes charges at least the final impact, and settles in one round. ``floors`` caches
    per token the minimum plus one base unit."""
    sell = p.sell
    price = ctx.portfolio.prices[sell.asset]
    held = from_base_units(ctx.held.get((p.chain, p.wallet, sell.id), 0), sell.decimals)
    floor = floors.get(sell.id)
    if floor is None:
        floor = floors[sell.id] = ctx.strategy.min_trade_usd + (
            from_base_units(1, sell.decimals) * price
        )
    asked = p.usd + max(_CENT, p.usd * _DUST)
    return min(max(asked, floor), held * price)


class _Pools:
    """The pools of each (chain, sell asset, buy asset), computed once per plan."""

    def __init__(self, ctx: PlanContext) -> None:
        self._models = {c: ctx.strategy.cost_model(c) for c in ctx.gas_usd}
        self._of: dict[tuple[str, str, str], tuple[tuple[tuple[str, str], Decimal], ...]] = {}

    def of(self, chain: str, sell: str, buy: str) -> tuple[tuple[tuple[str, str], Decimal], ...]:
        key = (chain, sell, buy)
        got = self._of.get(key)
        if got is None:
            got = self._of[key] = tuple(
                ((chain, name), k) for name, k in self._models[chain].pools(sell, buy)
            )
        return got

    def volumes(
        self, swaps: Iterable[tuple[str, str, str, Decimal]]
    ) -> dict[tuple[str, str], Decimal]:
        out: dict[tuple[str, str], Decimal] = {}
        get, known, zero = out.get, self._of, Decimal(0)
        for chain, sell, buy, usd in swaps:
            # NOTE: the cached pools looked up here, not through ``of`` (~10^4 swaps a plan)
            of = known.get((chain, sell, buy)) or self.of(chain, sell, buy)
            for pool, _ in of:
                out[pool] = get(pool, zero) + usd
        return out

    def rate(
        self, chain: str, sell: str, buy: str, volume: Mapping[tuple[str, str], Decimal]
    ) -> Decimal:
        """Impact per USD of a trade at these pool volumes: sum of k * V over its pools."""
        return sum(
            (k * volume.get(pool, Decimal(0)) for pool, k in self.of(chain, sell, buy)),
            Decimal(0),
        )


@dataclass
class _Step:
    """One trade of the walk, before its impact is settled."""

    p: Proposal
    raw_in: int
    value_in: Decimal
    fee: Decimal
    expected: int
    """What it buys with the walk's (upper) impact."""


@dataclass
class _Walk:
    trades: list[_Step]
    skipped: tuple[Skip, ...]
    state: dict[tuple[str, str, str], int]
    tokens: dict[str, Token]
    volume: dict[tuple[str, str], Decimal]
    """What the trades carry through each pool (``_Pools.volumes`` of them, summed as they
    are made, in the same order)."""


def _walk(
    ctx: PlanContext,
    proposals: Sequence[Proposal],
    pools: _Pools,
    volume: Mapping[tuple[str, str], Decimal],
) -> _Walk:
    """The proposals in order against the holdings, each trade's impact at ``volume``."""
    state = dict(ctx.held)
    held = ctx.held
    tokens = dict(ctx.tokens)
    prices = ctx.portfolio.prices
    min_usd = ctx.strategy.min_trade_usd
    max_usd = ctx.limits.max_trade_usd
    run_left = ctx.limits.max_run_usd
    remaining: dict[tuple[str, str], int] = {}
    for p in proposals:
        remaining[(p.chain, p.wallet)] = remaining.get((p.chain, p.wallet), 0) + 1
    trades: list[_Step] = []
    skipped: list[Skip] = []
    sold: dict[tuple[str, str, str], int] = {}
    natives = {c: ctx.universe.native(c) for c in ctx.gas_usd}
    models = {c: ctx.strategy.cost_model(c) for c in ctx.gas_usd}
    no_price = {c: unpriced_gas(ctx, c) for c in ctx.gas_usd}
    # NOTE: one Decimal rate per (chain, pair): a dense plan repeats pairs ~10^4 times
    rates: dict[tuple[str, str, str], Decimal] = {}
    carried: dict[tuple[str, str], Decimal] = {}
    zero = Decimal(0)

    def skip(p: Proposal, reason: SkipReason, detail: str, **extra: Any) -> None:
        # NOTE: built only for a trade not made (a dense plan makes ~10^4 and skips few)
        skipped.append(
            TradeSkip(
                chain=p.chain,
                wallet=p.wallet,
                sell=p.sell.symbol,
                buy=p.buy.symbol,
                reason=reason,
                **extra,
                detail=detail,
            )
        )

    for p in proposals:
        chain = p.chain
        acc = (chain, p.wallet)
        remaining[acc] -= 1
        native = natives[chain]
        nat_key = (chain, p.wallet, native.id)
        sell, buy = p.sell, p.buy
        sell_key = (chain, p.wallet, sell.id)
        buy_key = (chain, p.wallet, buy.id)
        gas_raw = ctx.gas_raw[chain]
        nat = state.get(nat_key, 0)
        reserve = ctx.reserve[chain]
        # ``is_locked``, its price check done once per chain
        if no_price[chain] or nat - reserve < gas_raw or nat < reserve:
            skip(p, SkipReason.RESERVE, "native coin at or below reserve + gas")
            continue
        if sell.is_native:
            avail = max(nat - reserve - gas_raw * (remaining[acc] + 1), 0)
        else:
            avail = state.get(sell_key, 0)
        # NOTE: never sell what the plan itself bought: sales come out of the holdings before it
        avail = min(avail, held.get(sell_key, 0) - sold.get(sell_key, 0))
        price_in = prices[sell.asset]
        limit_usd = max_usd
        if run_left is not None:
            limit_usd = run_left if limit_usd is None else min(limit_usd, run_left)
        if limit_usd is not None:
            avail = min(avail, to_base_units(limit_usd / price_in, sell.decimals))
        usd = p.usd
        raw_in = min(to_base_units(usd / price_in, sell.decimals), avail)
        if not sell.is_native and avail - raw_in > 0:
            dust = max(_CENT, usd * _DUST)
            if from_base_units(avail - raw_in, sell.decimals) * price_in <= dust:
                raw_in = avail
        value_in = from_base_units(raw_in, sell.decimals) * price_in
        if value_in < min_usd and usd >= min_usd * _NEAR_MIN:
            need = to_base_units(min_usd / price_in, sell.decimals, up=True)
            if need <= avail:
                raw_in = need
                value_in = from_base_units(raw_in, sell.decimals) * price_in
        if raw_in <= 0 or value_in < min_usd:
            if run_left is not None and run_left < min_usd:
                skip(
                    p,
                    SkipReason.RUN_LIMIT,
                    f"policy.max_run_usd = {ctx.limits.max_run_usd} reached",
                )
                continue
            skip(
                p,
                SkipReason.UNDER_MINIMUM,
                f"below min_trade_usd = {min_usd}",
                value_usd=value_in.quantize(_CENT),
            )
            continue
        fee = models[chain].fee_usd(value_in)
        pair = (chain, sell.asset, buy.asset)
        rate = rates.get(pair)
        if rate is None:
            rate = rates[pair] = pools.rate(chain, sell.asset, buy.asset, volume)
        impact = rate * value_in
        if impact > value_in / 2:
            skip(p, SkipReason.NO_ROUTE, "not enough liquidity")
            continue
        out_value = value_in - fee - impact
        expected = to_base_units(out_value / prices[buy.asset], buy.decimals)
        if expected <= 0:
            skip(p, SkipReason.NO_ROUTE, "costs exceed the value")
            continue
        state[sell_key] = state.get(sell_key, 0) - raw_in
        sold[sell_key] = sold.get(sell_key, 0) + raw_in
        state[buy_key] = state.get(buy_key, 0) + expected
        state[nat_key] = state.get(nat_key, 0) - gas_raw
        if run_left is not None:
            run_left -= value_in
        tokens[buy.id] = buy
        tokens[sell.id] = sell
        tokens[native.id] = native
        for pool, _ in pools._of.get(pair) or pools.of(*pair):
            carried[pool] = carried.get(pool, zero) + value_in
        trades.append(_Step(p, raw_in, value_in, fee, expected))
    return _Walk(trades, tuple(skipped), state, tokens, carried)


def _settle(
    ctx: PlanContext, walk: _Walk, pools: _Pools, volume: Mapping[tuple[str, str], Decimal]
) -> tuple[list[Trade], Decimal]:
    """Each trade's impact at the final pool volumes (at most what the walk charged, so only
    ever more is bought), and the plan's cost."""
    prices = ctx.portfolio.prices
    slip = 1 - ctx.strategy.slippage_bps / _BPS
    rates: dict[tuple[str, str, str], Decimal] = {}
    out: list[Trade] = []
    cost = Decimal(0)
    for step in walk.trades:
        p = step.p
        pair = (p.chain, p.sell.asset, p.buy.asset)
        rate = rates.get(pair)
        if rate is None:
            rate = rates[pair] = pools.rate(*pair, volume)
        impact = rate * step.value_in
        expected = to_base_units(
            (step.value_in - step.fee - impact) / prices[p.buy.asset], p.buy.decimals
        )
        if expected < step.expected:  # cannot happen: volumes only shrank
            raise AssertionError("plan impact grew when settled")
        walk.state[(p.chain, p.wallet, p.buy.id)] += expected - step.expected
        gas_usd = ctx.gas_usd[p.chain]
        # NOTE: positional, in field order: a dense plan settles ~10^4 trades, and keywords
        # cost half as much again
        out.append(
            Trade(
                "",
                p.chain,
                p.wallet,
                p.sell,
                p.buy,
                step.raw_in,
                expected,
                to_base_units(Decimal(expected) * slip, 0),
                step.value_in,
                step.fee,
                impact,
                gas_usd,
                ctx.gas_raw[p.chain],
                "",
            )
        )
        cost += step.fee + impact + gas_usd  # Trade.est_cost_usd
    return out, cost


def check_exact(
    ctx: PlanContext, state: Mapping[tuple[str, str, str], int], trades: Sequence[Trade] = ()
) -> None:
    """The invariants, in integers; a failure here is a bug in the planner, not bad input."""
    before = ctx.held
    native_ids = {chain: ctx.universe.native(chain).id for chain in ctx.reserve}
    for (chain, wallet, tid), raw in state.items():
        if raw < 0:
            raise AssertionError(f"plan sells more {tid} than {wallet} holds on {chain}")
        if tid == native_ids[chain] and raw < ctx.reserve[chain] <= before.get(
            (chain, wallet, tid), 0
        ):
            raise AssertionError(f"plan spends the gas reserve of {wallet} on {chain}")
    limits = ctx.limits
    for t in trades:
        if limits.max_trade_usd is not None and t.value_usd > limits.max_trade_usd:
            raise AssertionError(f"plan trade of {t.value_usd} USD over max_trade_usd")
    run = sum((t.value_usd for t in trades), Decimal(0))
    if limits.max_run_usd is not None and run > limits.max_run_usd:
        raise AssertionError("plan trades more than max_run_usd")


def _with_tax(ctx: PlanContext, trades: list[Trade]) -> tuple[list[Trade], Decimal]:
    if ctx.book is None:
        return trades, Decimal(0)
    realised, tax = realise_sales(
        ctx.book,
        [
            (t.sell.asset, from_base_units(t.amount_in, t.sell.decimals), t.value_usd)
            for t in trades
        ],
    )
    return [replace(t, realised=r) for t, r in zip(trades, realised, strict=True)], tax


def violation(ctx: PlanContext, after: Portfolio) -> float:
    """Sum over targeted rows of how far (points) each ends outside its goal interval."""
    rows = drift_rows(after, ctx.drift.targets, ctx.drift.bands)
    total = 0.0
    by_key = {r.key: r for r in rows}
    for key, (lo, hi) in ctx.goals.items():
        r = by_key.get(key)
        w = r.weight_pct if r is not None else Decimal(0)
        if w < lo:
            total += float(lo - w)
        elif w > hi:
            total += float(w - hi)
    return total
