"""One plan: drift -> candidate trades (optimiser and naive) -> exact integer trades -> checks.

The optimiser works in floats on points of the total; this module turns its answer into trades
in integer base units and checks every constraint again in exact arithmetic: never more sold
than held, the gas reserve and the plan's own gas kept, no trade under the minimum, ``min_out``
after slippage. It also builds the naive plan (sell what is over, buy what is under, wallet by
wallet on each chain) and keeps whichever of the two (or doing nothing) scores better: fewer
band violations first, then lower cost. So the plan's cost is never above the naive plan's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from rebalancer.core.types import Token
from rebalancer.planner import optimise
from rebalancer.planner.config import StrategyConfig
from rebalancer.planner.drift import Drift, DriftRow, compute_drift, drift_rows
from rebalancer.planner.goals import row_goals
from rebalancer.planner.model import (
    HUNDRED,
    Portfolio,
    Position,
    Row,
    Targets,
    Universe,
    from_base_units,
    reserve_raw,
    to_base_units,
    tradable_tokens,
)
from rebalancer.planner.pairing import north_west
from rebalancer.planner.skips import AccountSkip, GoalSkip, Skip, SkipReason, TradeSkip
from rebalancer.planner.tax import Lot, LotBook, Realised

_BPS = Decimal(10_000)
_CENT = Decimal("0.01")
_VIOLATION_EPS = 1e-6


@dataclass(frozen=True, slots=True)
class Proposal:
    """A swap before rounding: sell ``usd`` worth of ``sell`` for ``buy`` in one wallet."""

    chain: str
    wallet: str
    sell: Token
    buy: Token
    usd: Decimal


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True)
class Plan:
    """The chosen trades, what was not done and why, and the drift after."""

    trades: tuple[Trade, ...]
    skipped: tuple[Skip, ...]
    before: Drift
    after: tuple[DriftRow, ...]
    total_usd: Decimal
    est_cost_usd: Decimal
    est_tax_usd: Decimal
    naive_cost_usd: Decimal | None
    method: str
    solver: Mapping[str, object] = field(default_factory=dict)
    mode: str = "band_edge"

    @property
    def after_max_drift_pp(self) -> Decimal:
        return max(
            (abs(r.drift_pp) for r in self.after if r.drift_pp is not None), default=Decimal(0)
        )


@dataclass
class _Context:
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
    held: dict[tuple[str, str, str], int] = field(default_factory=dict)
    """(chain, wallet, token id) -> base units before the plan (computed once)."""
    tokens: dict[str, Token] = field(default_factory=dict)


def make_plan(
    portfolio: Portfolio,
    targets: Targets,
    strategy: StrategyConfig,
    universe: Universe,
    *,
    now: datetime | None = None,
    last_rebalance: datetime | None = None,
    history: Mapping[str, Sequence[Decimal]] | None = None,
    lots: Sequence[Lot] | None = None,
    force: bool = False,
) -> Plan:
    """The cheapest trades that bring the portfolio within its bands (or onto target).

    Deterministic: the same inputs give the same plan. Nothing is traded unless a trigger fires
    (or ``force``).
    """
    drift = compute_drift(
        portfolio, targets, strategy, now=now, last_rebalance=last_rebalance, history=history
    )
    as_of = now.date() if now is not None else date(1970, 1, 1)
    ctx = _context(portfolio, strategy, universe, drift, lots, as_of)
    nothing = evaluate(ctx, [])
    if ctx.total <= 0 or not (drift.triggered or force):
        note = "empty portfolio" if ctx.total <= 0 else "no trigger fired"
        return _finish(ctx, nothing, "none", None, {"status": note})

    problem, slot_index = build_problem(ctx)
    naive = naive_proposals(ctx)
    extra = [
        (slot_index[(p.chain, p.wallet, p.sell.id)], slot_index[(p.chain, p.wallet, p.buy.id)])
        for p in naive
        if (p.chain, p.wallet, p.sell.id) in slot_index
        and (p.chain, p.wallet, p.buy.id) in slot_index
    ]
    sol = optimise.solve(problem, extra)
    proposals = [
        Proposal(
            problem.accounts[problem.slots[t.sell].account].chain,
            problem.accounts[problem.slots[t.sell].account].wallet,
            problem.slots[t.sell].token,
            problem.slots[t.buy].token,
            Decimal(repr(t.x_pp)) * ctx.total / HUNDRED,
        )
        for t in sol.trades
    ]
    optimised = evaluate(ctx, proposals)
    naive_out = evaluate(ctx, naive)
    best, method = nothing, "none"
    for outcome, name in ((naive_out, "naive"), (optimised, "optimised")):
        if _better(outcome, best, ctx):
            best, method = outcome, name
    solver = {
        "status": sol.status,
        "candidates": sol.stage1_support,
        "pairs": sol.pairs,
        "naive_trades": len(naive_out.trades),
        "naive_violation_pp": round(naive_out.violation_pp, 6),
        "violation_pp": round(best.violation_pp, 6),
    }
    return _finish(ctx, best, method, naive_out, solver)


def _score_cost(o: Outcome, ctx: _Context) -> Decimal:
    return o.cost_usd + (o.tax_usd if ctx.strategy.tax.aware else Decimal(0))


def _better(a: Outcome, b: Outcome, ctx: _Context) -> bool:
    """Fewer band violations first; at equal violations, the lower cost (ties keep ``b``)."""
    if a.violation_pp < b.violation_pp - _VIOLATION_EPS:
        return True
    if a.violation_pp > b.violation_pp + _VIOLATION_EPS:
        return False
    return _score_cost(a, ctx) < _score_cost(b, ctx)


# -- context ------------------------------------------------------------------------------------
def _context(
    portfolio: Portfolio,
    strategy: StrategyConfig,
    universe: Universe,
    drift: Drift,
    lots: Sequence[Lot] | None,
    as_of: date,
) -> _Context:
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
    held: dict[tuple[str, str, str], int] = {}
    tokens: dict[str, Token] = {}
    for p in portfolio.positions:
        tid = p.token.id
        held[(p.chain, p.wallet, tid)] = p.raw
        tokens[tid] = p.token
    return _Context(
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
    )


def _held(ctx: _Context) -> dict[tuple[str, str, str], int]:
    return dict(ctx.held)


def _native_raw(
    ctx: _Context, state: Mapping[tuple[str, str, str], int], chain: str, wallet: str
) -> int:
    return state.get((chain, wallet, ctx.universe.native(chain).id), 0)


def _locked(ctx: _Context, chain: str, native_raw: int) -> bool:
    """A wallet that cannot pay one swap's gas above its reserve cannot trade at all."""
    native_price = ctx.portfolio.prices.get(ctx.universe.chains[chain].native_asset)
    if native_price is None and ctx.gas_usd[chain] > 0:
        return True
    return native_raw - ctx.reserve[chain] < ctx.gas_raw[chain] or (native_raw < ctx.reserve[chain])


# -- optimiser problem ---------------------------------------------------------------------------
def build_problem(ctx: _Context) -> tuple[optimise.Problem, dict[tuple[str, str, str], int]]:
    """The optimiser's view of the context, in float points of the total."""
    pp = HUNDRED / ctx.total
    state = _held(ctx)
    accounts: list[optimise.Account] = []
    slots: list[optimise.Slot] = []
    index: dict[tuple[str, str, str], int] = {}
    min_usd = ctx.strategy.min_trade_usd
    for chain, wallet in ctx.portfolio.accounts:
        info = ctx.universe.chains[chain]
        native = ctx.universe.native(chain)
        native_price = ctx.portfolio.prices.get(info.native_asset, Decimal(0))
        nat_raw = _native_raw(ctx, state, chain, wallet)
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
            locked=_locked(ctx, chain, nat_raw),
        )
        accounts.append(acc)
        for token in ctx.tradable[chain]:
            raw = state.get((chain, wallet, token.id), 0)
            price = ctx.portfolio.prices[token.asset]
            value = from_base_units(raw, token.decimals) * price
            avail = value
            if token.is_native:
                avail = max(native_avail - ctx.gas_usd[chain], Decimal(0))
                acc.native_slot = len(slots)
            index[(chain, wallet, token.id)] = len(slots)
            slots.append(
                optimise.Slot(
                    account=a,
                    token=token,
                    asset=token.asset,
                    value_pp=float(value * pp),
                    avail_pp=float(avail * pp),
                    can_sell=raw > 0 and avail >= min_usd and avail > 0,
                    can_buy=True,
                )
            )
    weights = {r.key: r.weight_pct for r in ctx.drift.rows}
    rows = []
    for row in ctx.drift.targets.targeted:
        key = f"{row.kind}:{row.name}"
        lo, hi = ctx.solver_goals[key]
        value = _row_weight(ctx, row, weights)
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

    def impact(account: int, sell_asset: str, buy_asset: str) -> float:
        chain = accounts[account].chain
        key = (chain, sell_asset, buy_asset)
        if key not in impact_cache:
            k = ctx.strategy.cost_model(chain).impact_coefficient(sell_asset, buy_asset)
            impact_cache[key] = float(k) * scale
        return impact_cache[key]

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
    problem = optimise.Problem(accounts, slots, rows, float(min_usd * pp), impact, tax)
    return problem, index


def _row_weight(ctx: _Context, row: Row, weights: Mapping[str, Decimal]) -> Decimal:
    key = f"{row.kind}:{row.name}"
    if key in weights:
        return weights[key]
    values = ctx.portfolio.value_by_asset()
    value = sum((values.get(a, Decimal(0)) for a in row.assets), Decimal(0))
    return value / ctx.total * HUNDRED


# -- naive plan ----------------------------------------------------------------------------------
def naive_proposals(ctx: _Context) -> list[Proposal]:
    """Sell what is over, buy what is under, wallet by wallet on each chain, pro rata.

    Each over-weight leaf row sells the same fraction of every tradable position it has; each
    wallet spends what it sold on the under-weight leaves it can buy on its chain, in proportion
    to their gaps; sells and buys are paired in order (north-west corner).
    """
    total = ctx.total
    weights = {r.key: r.weight_pct for r in ctx.drift.rows}
    leaves = [r for r in ctx.drift.targets.leaves if r.target is not None]
    excess: dict[str, Decimal] = {}
    deficit: dict[str, Decimal] = {}
    gaps: dict[str, Decimal] = {}
    for row in leaves:
        key = f"{row.kind}:{row.name}"
        w = _row_weight(ctx, row, weights)
        lo, hi = ctx.solver_goals[key]
        t = row.target or Decimal(0)
        if w > hi:
            goal = t if ctx.strategy.mode == "target" else hi
            excess[key] = (w - goal) * total / HUNDRED
        elif w < lo:
            goal = t if ctx.strategy.mode == "target" else lo
            deficit[key] = (goal - w) * total / HUNDRED
        if w < t:
            gaps[key] = (t - w) * total / HUNDRED
    if not excess:
        return []
    sinks = deficit or gaps
    if not sinks:
        return []
    leaf_of = {a: f"{r.kind}:{r.name}" for r in leaves for a in r.assets}
    state = _held(ctx)
    sellable: dict[str, Decimal] = {}
    per_account: dict[tuple[str, str], list[tuple[Token, Decimal]]] = {}
    for chain, wallet in ctx.portfolio.accounts:
        nat = _native_raw(ctx, state, chain, wallet)
        if _locked(ctx, chain, nat):
            continue
        for token in ctx.tradable[chain]:
            leaf_key = leaf_of.get(token.asset)
            if leaf_key is None or leaf_key not in excess:
                continue
            raw = state.get((chain, wallet, token.id), 0)
            if token.is_native:
                raw = max(raw - ctx.reserve[chain] - 4 * ctx.gas_raw[chain], 0)
            value = from_base_units(raw, token.decimals) * ctx.portfolio.prices[token.asset]
            if value <= 0:
                continue
            sellable[leaf_key] = sellable.get(leaf_key, Decimal(0)) + value
            per_account.setdefault((chain, wallet), []).append((token, value))
    out: list[Proposal] = []
    for (chain, wallet), holdings in sorted(per_account.items()):
        buy_tokens: dict[str, Token] = {}
        for key in sorted(sinks):
            for token in ctx.tradable[chain]:
                if leaf_of.get(token.asset) == key:
                    buy_tokens[key] = token
                    break
        if not buy_tokens:
            continue
        sells = []
        for token, value in holdings:
            key = leaf_of[token.asset]
            fraction = min(Decimal(1), excess[key] / sellable[key])
            sells.append((token, value * fraction))
        proceeds = sum((v for _, v in sells), Decimal(0))
        need = sum((sinks[k] for k in buy_tokens), Decimal(0))
        buys = [(buy_tokens[k], proceeds * sinks[k] / need) for k in sorted(buy_tokens)]
        out.extend(_pair(chain, wallet, sells, buys))
    return out


def _pair(
    chain: str,
    wallet: str,
    sells: list[tuple[Token, Decimal]],
    buys: list[tuple[Token, Decimal]],
) -> list[Proposal]:
    """North-west corner: walk sells and buys in order, matching amounts."""
    return [
        Proposal(chain, wallet, sells[i][0], buys[j][0], amount)
        for i, j, amount in north_west([v for _, v in sells], [v for _, v in buys])
        if sells[i][0].asset != buys[j][0].asset
    ]


# -- exact evaluation ---------------------------------------------------------------------------
def evaluate(ctx: _Context, proposals: Sequence[Proposal]) -> Outcome:
    """Turn proposals into integer trades, enforcing every hard constraint exactly."""
    if not proposals:  # doing nothing leaves the portfolio as it is: no need to rebuild it
        return Outcome(
            (), (), ctx.portfolio, Decimal(0), Decimal(0), _violation(ctx, ctx.portfolio)
        )
    state = _held(ctx)
    tokens = dict(ctx.tokens)
    prices = ctx.portfolio.prices
    min_usd = ctx.strategy.min_trade_usd
    remaining: dict[tuple[str, str], int] = {}
    for p in proposals:
        remaining[(p.chain, p.wallet)] = remaining.get((p.chain, p.wallet), 0) + 1
    trades: list[Trade] = []
    skipped: list[Skip] = []
    cost = Decimal(0)
    for p in proposals:
        acc = (p.chain, p.wallet)
        remaining[acc] -= 1
        native = ctx.universe.native(p.chain)
        nat_key = (p.chain, p.wallet, native.id)
        sell_key = (p.chain, p.wallet, p.sell.id)
        buy_key = (p.chain, p.wallet, p.buy.id)
        gas_raw = ctx.gas_raw[p.chain]
        nat = state.get(nat_key, 0)
        base: dict[str, Any] = {
            "chain": p.chain,
            "wallet": p.wallet,
            "sell": p.sell.symbol,
            "buy": p.buy.symbol,
        }
        if _locked(ctx, p.chain, nat):
            skipped.append(
                TradeSkip(
                    **base,
                    reason=SkipReason.RESERVE,
                    detail="native coin at or below reserve + gas",
                )
            )
            continue
        avail = state.get(sell_key, 0)
        if p.sell.is_native:
            avail = max(nat - ctx.reserve[p.chain] - gas_raw * (remaining[acc] + 1), 0)
        price_in = prices[p.sell.asset]
        price_out = prices[p.buy.asset]
        raw_in = min(to_base_units(p.usd / price_in, p.sell.decimals), avail)
        dust = max(_CENT, p.usd * Decimal("1e-6"))
        if (
            not p.sell.is_native
            and avail - raw_in > 0
            and (from_base_units(avail - raw_in, p.sell.decimals) * price_in <= dust)
        ):
            raw_in = avail
        value_in = from_base_units(raw_in, p.sell.decimals) * price_in
        if value_in < min_usd and p.usd >= min_usd * Decimal("0.999"):
            need = to_base_units(min_usd / price_in, p.sell.decimals, up=True)
            if need <= avail:
                raw_in = need
                value_in = from_base_units(raw_in, p.sell.decimals) * price_in
        if raw_in <= 0 or value_in < min_usd:
            skipped.append(
                TradeSkip(
                    **base,
                    reason=SkipReason.UNDER_MINIMUM,
                    value_usd=value_in.quantize(_CENT),
                    detail=f"below min_trade_usd = {min_usd}",
                )
            )
            continue
        cm = ctx.strategy.cost_model(p.chain)
        fee = cm.fee_usd(value_in)
        impact = cm.impact_usd(value_in, p.sell.asset, p.buy.asset)
        if impact > value_in / 2:
            skipped.append(
                TradeSkip(**base, reason=SkipReason.NO_ROUTE, detail="not enough liquidity")
            )
            continue
        out_value = value_in - fee - impact
        expected = to_base_units(out_value / price_out, p.buy.decimals)
        if expected <= 0:
            skipped.append(
                TradeSkip(**base, reason=SkipReason.NO_ROUTE, detail="costs exceed the value")
            )
            continue
        slip = 1 - ctx.strategy.slippage_bps / _BPS
        min_out = to_base_units(Decimal(expected) * slip, 0)
        state[sell_key] = state.get(sell_key, 0) - raw_in
        state[buy_key] = state.get(buy_key, 0) + expected
        state[nat_key] = state.get(nat_key, 0) - gas_raw
        tokens[p.buy.id] = p.buy
        tokens[p.sell.id] = p.sell
        tokens[native.id] = native
        trade = Trade(
            id="",
            chain=p.chain,
            wallet=p.wallet,
            sell=p.sell,
            buy=p.buy,
            amount_in=raw_in,
            expected_out=expected,
            min_out=min_out,
            value_usd=value_in,
            fee_usd=fee,
            impact_usd=impact,
            gas_usd=ctx.gas_usd[p.chain],
            gas_native=gas_raw,
            reason="",
        )
        trades.append(trade)
        cost += trade.est_cost_usd
    _check_exact(ctx, state)
    positions = tuple(
        Position(chain, wallet, tokens[tid], raw, prices[tokens[tid].asset])
        for (chain, wallet, tid), raw in sorted(state.items())
        if raw > 0
    )
    after = Portfolio(positions, prices)
    trades, tax = _with_tax(ctx, trades)
    return Outcome(tuple(trades), tuple(skipped), after, cost, tax, _violation(ctx, after))


def _check_exact(ctx: _Context, state: Mapping[tuple[str, str, str], int]) -> None:
    """The invariants, in integers; a failure here is a bug in this module, not bad input."""
    before = ctx.held
    native_ids = {chain: ctx.universe.native(chain).id for chain in ctx.reserve}
    for (chain, wallet, tid), raw in state.items():
        if raw < 0:
            raise AssertionError(f"plan sells more {tid} than {wallet} holds on {chain}")
        if tid == native_ids[chain] and raw < ctx.reserve[chain] <= before.get(
            (chain, wallet, tid), 0
        ):
            raise AssertionError(f"plan spends the gas reserve of {wallet} on {chain}")


def _with_tax(ctx: _Context, trades: list[Trade]) -> tuple[list[Trade], Decimal]:
    if ctx.book is None:
        return trades, Decimal(0)
    book = LotBook(ctx.book.lots, ctx.book.cfg, ctx.book.as_of)
    out = []
    tax = Decimal(0)
    for t in trades:
        realised = book.sell(
            t.sell.asset, from_base_units(t.amount_in, t.sell.decimals), t.value_usd
        )
        tax += realised.tax_usd
        out.append(_replace(t, realised=realised))
    return out, tax


def _replace(t: Trade, **changes: object) -> Trade:
    fields = {name: getattr(t, name) for name in Trade.__slots__}
    fields.update(changes)
    return Trade(**fields)


def _violation(ctx: _Context, after: Portfolio) -> float:
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


# -- the result ---------------------------------------------------------------------------------
def _finish(
    ctx: _Context,
    best: Outcome,
    method: str,
    naive: Outcome | None,
    solver: Mapping[str, object],
) -> Plan:
    after_rows = tuple(drift_rows(best.after, ctx.drift.targets, ctx.drift.bands))
    by_key = {r.key: r for r in ctx.drift.rows}
    leaf_of = {a: f"{r.kind}:{r.name}" for r in ctx.drift.targets.leaves for a in r.assets}
    trades = []
    seen: set[str] = set()
    for n, t in enumerate(best.trades):
        digest = hashlib.sha256(
            f"{t.chain}|{t.wallet}|{t.sell.id}|{t.buy.id}|{t.amount_in}|{n}".encode()
        ).hexdigest()[:12]
        tid = digest if digest not in seen else f"{digest}-{n}"
        seen.add(tid)
        reason = (
            f"{_describe(by_key.get(leaf_of.get(t.sell.asset, '')), t.sell.asset)} -> "
            f"{_describe(by_key.get(leaf_of.get(t.buy.asset, '')), t.buy.asset)}"
        )
        trades.append(_replace(t, id=tid, reason=reason))
    skipped = list(best.skipped)
    if method != "none" or ctx.drift.triggered:
        skipped.extend(_residual_reasons(ctx, best))
    return Plan(
        trades=tuple(trades),
        skipped=tuple(skipped),
        before=ctx.drift,
        after=after_rows,
        total_usd=ctx.total,
        est_cost_usd=best.cost_usd,
        est_tax_usd=best.tax_usd,
        naive_cost_usd=None if naive is None else naive.cost_usd,
        method=method,
        solver=solver,
        mode=ctx.strategy.mode,
    )


def _describe(row: DriftRow | None, asset: str) -> str:
    if row is None or row.drift_pp is None:
        return f"{asset} (no target)"
    state = "out of band" if row.triggered else "in band"
    return f"{row.name} {row.drift_pp:+.2f}pp ({state})"


def _residual_reasons(ctx: _Context, best: Outcome) -> list[Skip]:
    """Why rows still miss their goal after the plan, and which wallets could not trade."""
    out: list[Skip] = []
    state = _held(ctx)
    for chain, wallet in ctx.portfolio.accounts:
        nat = _native_raw(ctx, state, chain, wallet)
        if _locked(ctx, chain, nat):
            native = ctx.universe.native(chain)
            have = from_base_units(nat, native.decimals)
            need = from_base_units(ctx.reserve[chain] + ctx.gas_raw[chain], native.decimals)
            out.append(
                AccountSkip(
                    reason=SkipReason.RESERVE,
                    chain=chain,
                    wallet=wallet,
                    detail=f"{have} {native.symbol} held, {need} needed for the gas "
                    "reserve and one swap; this wallet cannot trade",
                )
            )
    rows = {r.key: r for r in drift_rows(best.after, ctx.drift.targets, ctx.drift.bands)}
    missing = []
    after_total = best.after.total
    for key, (lo, hi) in ctx.goals.items():
        r = rows.get(key)
        w = r.weight_pct if r is not None else Decimal(0)
        if lo - w > Decimal("1e-6") or w - hi > Decimal("1e-6"):
            missing.append((key, w, lo, hi))
    if not missing:
        return out
    problem, _ = build_problem(ctx)
    con = [
        optimise.ConRow(
            k,
            row.assets,
            row.value_pp,
            float(ctx.goals[k][0]),
            float(ctx.goals[k][1]),
            row.target,
            row.leaf,
        )
        for row in problem.rows
        for k in [row.key]
    ]
    feasible = {
        level: optimise.pooled_feasible(problem, con, level)
        for level in ("account", "chain", "all")
    }
    min_usd = ctx.strategy.min_trade_usd
    for key, w, lo, hi in missing:
        kind, name = key.split(":", 1)
        under = w < lo
        gap = ((lo - w) if under else (w - hi)) * after_total / HUNDRED
        row = next(r for r in ctx.drift.targets.rows if f"{r.kind}:{r.name}" == key)
        chains = _chains_for(ctx, problem, row, under)
        entry: dict[str, Any] = {
            "name": name,
            "kind": kind,
            "amount_usd": gap.quantize(_CENT),
            "weight_pct": w.quantize(Decimal("0.0001")),
        }
        side = "under" if under else "over"
        if not chains:
            what = "no tradable, priced token to buy" if under else "nothing sellable"
            out.append(
                GoalSkip(**entry, reason=SkipReason.NO_ROUTE, detail=f"{side} its goal; {what}")
            )
        elif gap < min_usd or feasible["account"]:
            out.append(
                GoalSkip(
                    **entry,
                    reason=SkipReason.UNDER_MINIMUM,
                    detail=f"{side} its goal by {gap.quantize(_CENT)} USD; closing it needs "
                    f"trades under min_trade_usd = {min_usd} or costs more than it fixes",
                )
            )
        elif feasible["chain"]:
            out.append(
                GoalSkip(
                    **entry,
                    reason=SkipReason.NEEDS_TRANSFER,
                    detail=f"{side} its goal; move value between wallets on {', '.join(chains)}",
                )
            )
        elif feasible["all"]:
            direction = "to" if under else "from"
            out.append(
                GoalSkip(
                    **entry,
                    reason=SkipReason.NEEDS_BRIDGE,
                    chains=",".join(chains),
                    detail=f"{side} its goal; bridge about {gap.quantize(_CENT)} USD "
                    f"{direction} {', '.join(chains)}",
                )
            )
        else:
            out.append(
                GoalSkip(
                    **entry,
                    reason=SkipReason.INFEASIBLE,
                    detail=f"{side} its goal; the bands cannot all be met with the tradable "
                    "tokens even moving value freely between chains",
                )
            )
    return out


def _chains_for(ctx: _Context, problem: optimise.Problem, row: Row, under: bool) -> list[str]:
    """Chains where the row can be bought (under) or sold (over)."""
    chains = set()
    for s in problem.slots:
        acc = problem.accounts[s.account]
        if s.asset in row.assets and not acc.locked and (s.can_buy if under else s.avail_pp > 0):
            chains.add(acc.chain)
    return sorted(chains)
