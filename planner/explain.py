"""Why: each trade's reason, and why rows still miss their goal after the plan (a wallet that
cannot pay gas, a row under the minimum, markets too shallow for the move, value that must move
between wallets or chains)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from rebalancer.planner import optimise
from rebalancer.planner.config import CostModel
from rebalancer.planner.context import PlanContext, is_locked, native_raw
from rebalancer.planner.drift import DriftRow, drift_rows
from rebalancer.planner.evaluate import MAX_SLICES, Outcome
from rebalancer.planner.model import HUNDRED, Row, from_base_units
from rebalancer.planner.problem import build_problem
from rebalancer.planner.skips import AccountSkip, GoalSkip, Skip, SkipReason, TradeSkip

_CENT = Decimal("0.01")
_EPS = Decimal("1e-6")
_REFUSED = Decimal("0.5")
"""The exact evaluation never makes a swap whose impact is above half its value."""
_STEEP = Decimal("0.1")
"""A move that loses at least this share to impact (a lower bound) is named as the cause."""
_RUN_SHARE = Decimal("0.01")
"""The per-run size suggested for a shallow market: about this share lost to impact a run."""
_LISTED = 3


def describe(row: DriftRow | None, asset: str) -> str:
    if row is None or row.drift_pp is None:
        return f"{asset} (no target)"
    state = "out of band" if row.triggered else "in band"
    return f"{row.name} {row.drift_pp:+.2f}pp ({state})"


def residual_reasons(
    ctx: PlanContext,
    best: Outcome,
    problem: optimise.Problem | None = None,
    next_run: bool = False,
) -> list[Skip]:
    """Why rows still miss their goal after the plan, and which wallets could not trade.

    ``problem`` is ``build_problem(ctx)`` when the caller has it already (a dense one takes
    ~0.1 s to build). ``next_run``: the plan without the policy's run limits reaches the
    bands, so that limit is why rows it could close still miss."""
    out: list[Skip] = []
    state = dict(ctx.held)
    for chain, wallet in ctx.portfolio.accounts:
        nat = native_raw(ctx, state, chain, wallet)
        if is_locked(ctx, chain, nat):
            out.append(
                AccountSkip(
                    reason=SkipReason.RESERVE,
                    chain=chain,
                    wallet=wallet,
                    detail=f"{_gas_short(ctx, chain, nat)}; this wallet cannot trade",
                )
            )
    rows = {r.key: r for r in drift_rows(best.after, ctx.drift.targets, ctx.drift.bands)}
    missing = []
    after_total = best.after.total
    for key, (lo, hi) in ctx.goals.items():
        r = rows.get(key)
        w = r.weight_pct if r is not None else Decimal(0)
        if lo - w > _EPS or w - hi > _EPS:
            missing.append((key, w, lo, hi))
    if not missing:
        return out
    if problem is None:
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
    markets: _Markets | None = None
    for key, w, lo, hi in missing:
        kind, name = key.split(":", 1)
        under = w < lo
        gap = ((lo - w) if under else (w - hi)) * after_total / HUNDRED
        row = next(r for r in ctx.drift.targets.rows if f"{r.kind}:{r.name}" == key)
        chains = chains_for(ctx, problem, row, under)
        entry: dict[str, Any] = {
            "name": name,
            "kind": kind,
            "amount_usd": gap.quantize(_CENT),
            "weight_pct": w.quantize(Decimal("0.0001")),
        }
        side = "under" if under else "over"
        if not chains:
            locked = _locked_holders(ctx, problem, row, under)
            if locked:
                out.append(
                    GoalSkip(
                        **entry,
                        reason=SkipReason.RESERVE,
                        detail=f"{side} its goal; the wallets that could "
                        f"{'buy' if under else 'sell'} it cannot pay gas: {locked}",
                    )
                )
                continue
            what = "no tradable, priced token to buy" if under else "nothing sellable"
            out.append(
                GoalSkip(
                    **entry,
                    reason=SkipReason.NO_ROUTE,
                    detail=f"{side} its goal; {what}{_untradable(ctx, row, under)}",
                )
            )
        elif gap < min_usd:
            out.append(
                GoalSkip(
                    **entry,
                    reason=SkipReason.UNDER_MINIMUM,
                    detail=f"{side} its goal by {gap.quantize(_CENT)} USD; closing it needs "
                    f"trades under min_trade_usd = {min_usd} or costs more than it fixes",
                )
            )
        elif feasible["account"]:
            if markets is None:
                markets = _Markets(ctx, problem)
            reason, why = _not_closed(ctx, problem, best, markets, row, under, gap, next_run)
            detail = f"{side} its goal by {gap.quantize(_CENT)} USD; {why}"
            out.append(GoalSkip(**entry, reason=reason, detail=detail))
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


def _not_closed(
    ctx: PlanContext,
    problem: optimise.Problem,
    best: Outcome,
    markets: _Markets,
    row: Row,
    under: bool,
    gap: Decimal,
    next_run: bool,
) -> tuple[SkipReason, str]:
    """Why a row that trades within its wallets could close, ignoring costs and minimum
    sizes, still misses: the run limit when the plan without it reaches the bands, else the
    markets too shallow, the run limit, the gas the plan spent, or (none of those) the
    minimum size or costs."""
    limit = run_limit(ctx, best)
    shallow = "" if next_run and limit else _shallow(ctx, best, markets, row, under, gap)
    if shallow:
        return SkipReason.DEPTH, shallow
    if limit:
        return SkipReason.RUN_LIMIT, f"{limit}: the rest is left for the next run"
    spent = _gas_spent(ctx, problem, best, markets, row, under)
    if spent:
        return SkipReason.RESERVE, f"after this plan's swaps {spent}"
    min_usd = ctx.strategy.min_trade_usd
    return (
        SkipReason.UNDER_MINIMUM,
        f"closing it needs trades under min_trade_usd = {min_usd} or costs more than it fixes",
    )


def run_limit(ctx: PlanContext, best: Outcome) -> str:
    """The policy limit ``best`` ran into, in words ("" when none did): ``max_run_usd`` (what
    it trades is within one minimum trade of it) or ``max_trade_usd`` (a swap cut into the
    most slices one run makes)."""
    limits = ctx.limits
    if limits.max_run_usd is None and limits.max_trade_usd is None:
        return ""  # no limit: nothing to count (a dense plan has ~10^4 trades)
    cap = limits.max_run_usd
    if cap is not None:
        traded = sum((t.value_usd for t in best.trades), Decimal(0))
        if traded >= cap - ctx.strategy.min_trade_usd:
            return f"policy.max_run_usd = {cap} reached"
    if limits.max_trade_usd is not None:
        slices: dict[tuple[str, str, str, str], int] = {}
        for t in best.trades:
            key = (t.chain, t.wallet, t.sell.id, t.buy.id)
            slices[key] = slices.get(key, 0) + 1
        if max(slices.values(), default=0) >= MAX_SLICES:
            return (
                f"policy.max_trade_usd = {limits.max_trade_usd}: at most {MAX_SLICES} slices of "
                "one swap per run"
            )
    return ""


def chains_for(ctx: PlanContext, problem: optimise.Problem, row: Row, under: bool) -> list[str]:
    """Chains where the row can be bought (under) or sold (over)."""
    chains = set()
    for s in problem.slots:
        acc = problem.accounts[s.account]
        if s.asset in row.assets and not acc.locked and (s.can_buy if under else s.avail_pp > 0):
            chains.add(acc.chain)
    return sorted(chains)


def _gas_short(ctx: PlanContext, chain: str, nat: int) -> str:
    """What a wallet's native coin is short of: its reserve and one swap's gas."""
    native = ctx.universe.native(chain)
    have = from_base_units(nat, native.decimals)
    need = from_base_units(ctx.reserve[chain] + ctx.gas_raw[chain], native.decimals)
    return f"{have} {native.symbol} held, {need} needed for the gas reserve and one swap"


def _gas_hint(ctx: PlanContext, chains: Sequence[str]) -> str:
    symbols = ", ".join(sorted({ctx.universe.native(c).symbol for c in chains}))
    keys = ", ".join(f"strategy.gas_reserve.{c}" for c in sorted(set(chains)))
    return f"add {symbols} there or lower {keys}"


def _listed(items: Sequence[str]) -> str:
    shown = "; ".join(items[:_LISTED])
    return shown if len(items) <= _LISTED else f"{shown}; and {len(items) - _LISTED} more"


def _locked_holders(ctx: PlanContext, problem: optimise.Problem, row: Row, under: bool) -> str:
    """The wallets that hold the row (over) or could buy it (under) but cannot pay one swap's
    gas above their reserve, with what their native coin is short of ("" when none)."""
    found: dict[tuple[str, str], None] = {}
    holding = {s.account for s in problem.slots if s.value_pp > 0 and s.asset not in row.assets}
    for s in problem.slots:
        acc = problem.accounts[s.account]
        if not acc.locked or s.asset not in row.assets:
            continue
        if (s.can_buy and s.account in holding) if under else s.value_pp > 0:
            found[(acc.chain, acc.wallet)] = None
    if not found:
        return ""
    lines = [
        f"{chain} {wallet}: {_gas_short(ctx, chain, native_raw(ctx, ctx.held, chain, wallet))}"
        for chain, wallet in found
    ]
    return f"{_listed(lines)}; {_gas_hint(ctx, [c for c, _ in found])}"


def _untradable(ctx: PlanContext, row: Row, under: bool) -> str:
    """Which of the row's tokens ``strategy.tradable`` leaves out, as a hint ("" when none)."""
    allowed = {t.id for tokens in ctx.tradable.values() for t in tokens}
    chains = sorted({c for c, _ in ctx.portfolio.accounts})
    if under:
        left_out = [
            (c, t.symbol)
            for c in chains
            for t in ctx.universe.tokens_on(c)
            if t.asset in row.assets and t.id not in allowed and t.asset in ctx.portfolio.prices
        ]
    else:
        left_out = [
            (p.chain, p.token.symbol)
            for p in ctx.portfolio.positions
            if p.token.asset in row.assets and p.raw > 0 and p.token.id not in allowed
        ]
    if not left_out:
        return ""
    by_chain: dict[str, list[str]] = {}
    for c, symbol in left_out:
        by_chain.setdefault(c, []).append(symbol)
    names = _listed([f"{', '.join(sorted(set(s)))} on {c}" for c, s in by_chain.items()])
    return (
        f" (not in strategy.tradable: {names}; tokens in their tax.repurchase_wait_days are "
        "left out too)"
    )


def _gas_spent(
    ctx: PlanContext,
    problem: optimise.Problem,
    best: Outcome,
    markets: _Markets,
    row: Row,
    under: bool,
) -> str:
    """When every wallet that could still trade the row has spent, on this plan's swaps, the
    gas it can pay above its reserve: those wallets and what they are short of ("" if not)."""
    wallets = {
        (problem.accounts[s.account].chain, problem.accounts[s.account].wallet)
        for s in problem.slots
        if not problem.accounts[s.account].locked
        and s.asset in row.assets
        and (s.can_buy if under else s.avail_pp > 0)
    }
    traded = {(t.chain, t.wallet) for t in best.trades}
    if not wallets or not wallets & traded:
        return ""
    if markets.after is None:
        markets.after = {(p.chain, p.wallet, p.token.id): p.raw for p in best.after.positions}
    after = markets.after
    short = []
    for chain, wallet in sorted(wallets):
        nat = native_raw(ctx, after, chain, wallet)
        if not is_locked(ctx, chain, nat):
            return ""
        short.append(f"{chain} {wallet}: {_gas_short(ctx, chain, nat)}")
    chains = [c for c, _ in wallets]
    return f"no wallet that could trade it can pay more gas ({_listed(short)}); " + _gas_hint(
        ctx, chains
    )


@dataclass(frozen=True, slots=True)
class _Route:
    """The markets one chain offers a row's move: the row's own assets' pools, those of what
    it can be traded against, and the pair pools between them (depths in USD)."""

    chain: str
    own: tuple[tuple[str, Decimal], ...]
    """(asset, depth), deepest first."""
    other: tuple[tuple[str, Decimal], ...]
    pairs: tuple[tuple[str, Decimal], ...]
    """(``"A/B"`` as configured, depth), deepest first."""

    @property
    def depth(self) -> Decimal:
        """The effective depth ``S``: moving ``V`` through these markets loses at least
        ``V**2 / S`` to impact. The asset pools are in series (each swap goes through one of
        the row's and one of the other side's), the pair pools beside them; spreading over
        pools of one side is at best in proportion to depth."""
        own = sum((d for _, d in self.own), Decimal(0))
        other = sum((d for _, d in self.other), Decimal(0))
        series = own * other / (own + other) if own and other else Decimal(0)
        return series + sum((d for _, d in self.pairs), Decimal(0))


class _Markets:
    """Per chain, the assets the plan may sell and buy there (unlocked wallets only), and which
    assets' rows have room to grow or shrink from where they were, read once per plan."""

    def __init__(self, ctx: PlanContext, problem: optimise.Problem) -> None:
        self.after: dict[tuple[str, str, str], int] | None = None
        """The plan's holdings after, by key (built when first needed)."""
        self.sell: dict[str, set[str]] = {}
        self.buy: dict[str, set[str]] = {}
        for s in problem.slots:
            acc = problem.accounts[s.account]
            if acc.locked:
                continue
            if s.can_sell and s.avail_pp > 0:
                self.sell.setdefault(acc.chain, set()).add(s.asset)
            if s.can_buy:
                self.buy.setdefault(acc.chain, set()).add(s.asset)
        weights = {r.key: r.weight_pct for r in ctx.drift.rows}
        self.full: set[str] = set()
        self.empty: set[str] = set()
        for r in ctx.drift.targets.targeted:
            key = f"{r.kind}:{r.name}"
            if key not in ctx.goals:
                continue
            lo, hi = ctx.goals[key]
            w = weights.get(key, Decimal(0))
            if w >= hi - _EPS:
                self.full |= r.assets
            if w <= lo + _EPS:
                self.empty |= r.assets

    def routes(self, ctx: PlanContext, row: Row, under: bool) -> list[_Route]:
        """Where the row can move: per chain, its assets that can be bought (under) or sold
        (over) and the assets outside it whose rows have room to take the other side."""
        out = []
        own_side, other_side = (self.buy, self.sell) if under else (self.sell, self.buy)
        blocked = self.empty if under else self.full
        for chain in sorted(own_side):
            own = own_side[chain] & row.assets
            other = other_side.get(chain, set()) - row.assets - blocked
            if not own or not other:
                continue
            cm = ctx.strategy.cost_model(chain)
            pairs = []
            paired: dict[str, int] = {}
            for key, depth in cm.depth_usd_by_pair.items():
                a, _, b = key.partition("/")
                if (a in own and b in other) or (b in own and a in other):
                    pairs.append((key, depth))
                    paired[a] = paired.get(a, 0) + 1
                    paired[b] = paired.get(b, 0) + 1
            # NOTE: a configured pair trades through its own pool only, not its assets' markets
            own_free = {a for a in own if paired.get(a, 0) < len(other)}
            other_free = {b for b in other if paired.get(b, 0) < len(own)}
            out.append(
                _Route(
                    chain,
                    _deepest(cm, own_free),
                    _deepest(cm, other_free),
                    tuple(sorted(pairs, key=lambda x: (-x[1], x[0]))),
                )
            )
        out.sort(key=lambda r: (-r.depth, r.chain))
        return out


def _deepest(cm: CostModel, assets: set[str]) -> tuple[tuple[str, Decimal], ...]:
    return tuple(sorted(((a, cm.depth(a)) for a in assets), key=lambda x: (-x[1], x[0])))


def _plain(d: Decimal) -> str:
    """A USD figure as a config value is written: no exponent, no trailing zeros."""
    return f"{d.quantize(Decimal(1)) if d >= 100 else d.normalize():f}"


def _names(assets: Sequence[tuple[str, Decimal]]) -> str:
    shown = ", ".join(a for a, _ in assets[:_LISTED])
    return shown if len(assets) <= _LISTED else f"{shown} and {len(assets) - _LISTED} more"


def _market_text(routes: Sequence[_Route]) -> str:
    parts = []
    for r in routes[:2]:
        texts = []
        if r.own and r.other:
            own = sum((d for _, d in r.own), Decimal(0))
            other = sum((d for _, d in r.other), Decimal(0))
            texts.append(
                f"{_names(r.own)} on {r.chain} (depth {_plain(own)} USD) against "
                f"{_names(r.other)} (depth {_plain(other)} USD)"
            )
        if r.pairs:
            pools = sum((d for _, d in r.pairs), Decimal(0))
            where = "" if texts else f" on {r.chain}"
            texts.append(f"the {_names(r.pairs)} pool{where} (depth {_plain(pools)} USD)")
        parts.append(" and ".join(texts))
    if len(routes) > 2:
        parts.append(f"{len(routes) - 2} more chain{'s' if len(routes) > 3 else ''}")
    if len(parts) == 1:
        return parts[0]
    return f"{', '.join(parts[:-1])} and {parts[-1]}"


def _depth_key(ctx: PlanContext, route: _Route) -> str:
    """The config value that sets the shallowest side of the deepest route, with its value."""
    cm = ctx.strategy.cost_model(route.chain)
    base = f"strategy.costs.{route.chain}"
    own = sum((d for _, d in route.own), Decimal(0))
    other = sum((d for _, d in route.other), Decimal(0))
    if route.pairs and (not own or not other or route.pairs[0][1] >= min(own, other) / 2):
        key, depth = route.pairs[0]
        return f'{base}.depth_usd_by_pair."{key}" (now {_plain(depth)})'
    asset, depth = route.own[0] if own <= other else route.other[0]
    if asset in cm.depth_usd_by_asset:
        return f"{base}.depth_usd_by_asset.{asset} (now {_plain(depth)})"
    return f"{base}.depth_usd (now {_plain(depth)})"


def _share(share: Decimal) -> str:
    pct = share * HUNDRED
    if pct >= HUNDRED:
        return "more than the value it moves"
    return f"at least {pct:.0f}% of the value it moves"


def _shallow(
    ctx: PlanContext, best: Outcome, markets: _Markets, row: Row, under: bool, gap: Decimal
) -> str:
    """When the markets the row moves through are too shallow for the move, why and what to
    change ("" when price impact does not explain the miss).

    Three signs, from the surest: (1) moving what the row was off by through every market it
    can use loses, at least, ``_STEEP`` of it (``_Route.depth``: a lower bound whatever the
    split; from a half, no such swap is made at all); (2) the plan's swaps of it were refused
    for impact over half their value; (3) what its swaps lose to impact is as large as the gap
    they leave."""
    routes = markets.routes(ctx, row, under)
    depth = sum((r.depth for r in routes), Decimal(0))
    if depth <= 0:
        return ""
    key = f"{row.kind}:{row.name}"
    lo, hi = ctx.goals[key]
    before = next((r.weight_pct for r in ctx.drift.rows if r.key == key), Decimal(0))
    need = max((lo - before) if under else (before - hi), Decimal(0)) * ctx.total / HUNDRED
    need = max(need, gap)
    share = need / depth
    touched = [t for t in best.trades if (t.buy if under else t.sell).asset in row.assets]
    paid = sum((t.impact_usd for t in touched), Decimal(0))
    moved = sum((t.value_usd for t in touched), Decimal(0))
    refused = 0
    for s in best.skipped:
        if isinstance(s, TradeSkip) and s.reason == SkipReason.NO_ROUTE:
            token = ctx.universe.by_symbol(s.chain, s.buy if under else s.sell)
            refused += token is not None and token.asset in row.assets
    where = _market_text(routes)
    if share >= _STEEP:
        never = ", and a swap losing half is never made" if share >= _REFUSED else ""
        lead = (
            "closing it"
            if need <= gap + _CENT
            else f"moving the {need.quantize(_CENT)} USD it was off by before the plan"
        )
        text = (
            f"the markets are too shallow: {lead} would lose {_share(share)} to price impact "
            f"in {where}{never}"
        )
    elif refused:
        text = (
            f"{refused} of its swaps were refused: they would lose more than half their value "
            f"to price impact in {where}"
        )
    elif paid > 0 and paid >= gap / 2 and paid >= moved * _RUN_SHARE:
        text = (
            f"its swaps lose {paid.quantize(_CENT)} USD ({paid / moved * HUNDRED:.1f}% of the "
            f"{moved.quantize(_CENT)} USD they move) to price impact in {where}, "
            f"{'more than it misses by' if paid >= gap else 'near what it misses by'}"
        )
    else:
        return ""
    return f"{text}; {_remedy(ctx, routes[0], depth, need)}"


def _remedy(ctx: PlanContext, route: _Route, depth: Decimal, need: Decimal) -> str:
    """What to change: the depth in the config if the market is deeper, else smaller runs."""
    step = max(_two_digits(depth * _RUN_SHARE), ctx.strategy.min_trade_usd, _CENT)
    cap = ctx.limits.max_run_usd
    if cap is not None and cap <= step:
        runs = f"at policy.max_run_usd = {cap}, about {math.ceil(need / cap):,} runs"
    else:
        runs = (
            f"policy.max_run_usd = {_plain(step)} loses about "
            f"{step / depth * HUNDRED:.0f}% a run, about {math.ceil(need / step):,} runs"
        )
    return (
        f"if these markets are deeper, raise {_depth_key(ctx, route)}; else move it over "
        f"several runs ({runs})"
    )


def _two_digits(d: Decimal) -> Decimal:
    """``d`` rounded down to two significant digits."""
    if d <= 0:
        return Decimal(0)
    exp = d.adjusted() - 1
    return (d.scaleb(-exp).to_integral_value(rounding="ROUND_FLOOR")).scaleb(exp)
