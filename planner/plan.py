"""One plan: drift -> candidate trades (optimiser and naive) -> exact integer trades -> checks.

The steps live in their own modules: ``context`` (the facts of one plan), ``problem`` (the
optimiser's view), ``optimise`` (the trade program), ``naive`` (the baseline), ``evaluate``
(exact integer trades and every hard constraint), ``explain`` (why trades are made and why rows
still miss their goal). This module runs them and keeps whichever of the optimised plan (or its
alternative, ``Solution.alternative``), the naive plan or doing nothing scores better: fewer
band violations first, then lower cost. So the plan's cost is never above the naive plan's.
"""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from dataclasses import replace as dc_replace
from datetime import date, datetime
from decimal import Decimal
from operator import attrgetter

from rebalancer.planner import optimise
from rebalancer.planner.config import StrategyConfig, TradeLimits
from rebalancer.planner.context import PlanContext, make_context
from rebalancer.planner.drift import Drift, DriftRow, compute_drift, drift_rows
from rebalancer.planner.evaluate import MAX_SLICES, Outcome, Proposal, Trade, evaluate
from rebalancer.planner.explain import describe, residual_reasons, run_limit
from rebalancer.planner.model import HUNDRED, Portfolio, Targets, Universe
from rebalancer.planner.naive import naive_proposals
from rebalancer.planner.problem import build_problem
from rebalancer.planner.skips import GoalSkip, PlanSkip, Skip, SkipReason
from rebalancer.planner.tax import Lot

__all__ = [
    "Outcome",
    "Plan",
    "Proposal",
    "Trade",
    "build_problem",
    "evaluate",
    "make_context",
    "make_plan",
    "naive_proposals",
]

_VIOLATION_EPS = 1e-6
_CENT = Decimal("0.01")


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
    reachable: bool = True
    """False when no plan can bring every row inside its goal (``unreachable_why`` says why)."""
    unreachable_why: str | None = None
    left_usd: Decimal | None = None
    """What ``max_run_usd`` left for the next run (None: the limit did not bind)."""

    @property
    def after_max_drift_pp(self) -> Decimal:
        return max(
            (abs(r.drift_pp) for r in self.after if r.drift_pp is not None), default=Decimal(0)
        )


@contextmanager
def _gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off while planning. A dense plan allocates ~10^5 objects
    that reference counting frees, and no cycles; yet full collections over them took a fifth
    of the plan's time (0.7 s of 3.5 s at 15,000 positions). Restored after, as it was."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


@_gc_paused()
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
    limits: TradeLimits | None = None,
) -> Plan:
    """The cheapest trades that bring the portfolio within its bands (or onto target).

    Deterministic: the same inputs give the same plan. Nothing is traded unless a trigger fires
    (or ``force``). ``limits`` are the policy's size limits (see ``TradeLimits``).
    """
    drift = compute_drift(
        portfolio, targets, strategy, now=now, last_rebalance=last_rebalance, history=history
    )
    as_of = now.date() if now is not None else date(1970, 1, 1)
    ctx = make_context(portfolio, strategy, universe, drift, lots, as_of, limits)
    nothing = evaluate(ctx, [])
    if ctx.total <= 0 or not (drift.triggered or force):
        note = "empty portfolio" if ctx.total <= 0 else "no trigger fired"
        return _finish(ctx, nothing, "none", None, {"status": note})

    best, method, naive_out, solver, problem = _choose(ctx, nothing)
    reachable, why, left = True, None, None
    if best.violation_pp > _VIOLATION_EPS:
        reachable, left = _only_run_limit(ctx, best)
    explained = method != "none" or drift.triggered
    residual = residual_reasons(ctx, best, problem, left is not None) if explained else []
    if left is not None:
        limit = ctx.limits.max_run_usd
        what = (
            f"policy.max_run_usd = {limit} reached"
            if limit is not None
            else f"policy.max_trade_usd = {ctx.limits.max_trade_usd}: at most {MAX_SLICES} "
            "slices of one swap per run"
        )
        residual.append(
            PlanSkip(
                reason=SkipReason.RUN_LIMIT,
                amount_usd=left.quantize(_CENT),
                detail=f"{what}: about {left.quantize(_CENT)} USD of trades left for the next run",
            )
        )
    if not reachable:
        why = (
            "; ".join(f"{r.name}: {r.detail}" for r in residual if isinstance(r, GoalSkip))
            or "; ".join(r.detail for r in residual)
            or "the bands cannot all be met"
        )
        if ctx.strategy.on_unreachable == "refuse":
            refused = PlanSkip(
                reason=SkipReason.UNREACHABLE,
                detail="strategy.on_unreachable = refuse: the bands cannot be reached, "
                "so nothing is traded",
            )
            return _finish(
                ctx, nothing, "none", naive_out, solver, [refused, *residual], False, why, None
            )
    return _finish(ctx, best, method, naive_out, solver, residual, reachable, why, left)


def _choose(
    ctx: PlanContext, nothing: Outcome
) -> tuple[Outcome, str, Outcome, dict[str, object], optimise.Problem]:
    """The optimised plan, the naive plan and doing nothing, evaluated exactly: the best (and
    the optimiser's problem, which the explanations read too)."""
    problem, slot_index = build_problem(ctx)
    naive = naive_proposals(ctx)
    extra = [
        (slot_index[(p.chain, p.wallet, p.sell.id)], slot_index[(p.chain, p.wallet, p.buy.id)])
        for p in naive
        if (p.chain, p.wallet, p.sell.id) in slot_index
        and (p.chain, p.wallet, p.buy.id) in slot_index
    ]
    sol = optimise.solve(problem, extra)
    optimised = evaluate(ctx, _proposals(ctx, problem, sol))
    for other_sol in sol.chain()[1:]:
        other = evaluate(ctx, _proposals(ctx, problem, other_sol))
        if _better(other, optimised, ctx):
            sol, optimised = other_sol, other
    naive_out = evaluate(ctx, naive)
    best, method = nothing, "none"
    for outcome, name in ((naive_out, "naive"), (optimised, "optimised")):
        if _better(outcome, best, ctx):
            best, method = outcome, name
    solver: dict[str, object] = {
        "status": sol.status,
        "method": sol.method,
        "candidates": sol.stage1_support,
        "pairs": sol.pairs,
        "gap": None if sol.gap is None else round(sol.gap, 6),
        "naive_trades": len(naive_out.trades),
        "naive_violation_pp": round(naive_out.violation_pp, 6),
        "violation_pp": round(best.violation_pp, 6),
    }
    return best, method, naive_out, solver, problem


def _proposals(
    ctx: PlanContext, problem: optimise.Problem, sol: optimise.Solution
) -> list[Proposal]:
    """The optimiser's trades as proposals in USD, for the exact evaluation."""
    slots, accounts = problem.slots, problem.accounts
    return [
        Proposal(
            accounts[slots[t.sell].account].chain,
            accounts[slots[t.sell].account].wallet,
            slots[t.sell].token,
            slots[t.buy].token,
            Decimal(repr(t.x_pp)) * ctx.total / HUNDRED,
        )
        for t in sol.trades
    ]


def _only_run_limit(ctx: PlanContext, best: Outcome) -> tuple[bool, Decimal | None]:
    """Is ``best`` short of the bands only because of ``max_run_usd`` (or of ``MAX_SLICES``
    slices under ``max_trade_usd``)? Then the bands are reachable over several runs: returns
    (True, what the plan without those limits trades beyond ``best``)."""
    if not run_limit(ctx, best):
        return False, None
    # NOTE: without either limit (slices of a huge move would be millions of trades): what is
    # left is about value, and the uncapped plan's value is the same with or without slices
    free = dc_replace(
        ctx,
        limits=ctx.limits.model_copy(update={"max_run_usd": None, "max_trade_usd": None}),
    )
    uncapped = _choose(free, evaluate(free, []))[0]
    if uncapped.violation_pp > _VIOLATION_EPS:
        return False, None
    traded = sum((t.value_usd for t in best.trades), Decimal(0))
    left = sum((t.value_usd for t in uncapped.trades), Decimal(0)) - traded
    return True, max(left, Decimal(0))


def _score_cost(o: Outcome, ctx: PlanContext) -> Decimal:
    return o.cost_usd + (o.tax_usd if ctx.strategy.tax.aware else Decimal(0))


def _better(a: Outcome, b: Outcome, ctx: PlanContext) -> bool:
    """Fewer band violations first; at equal violations, the lower cost (ties keep ``b``)."""
    if a.violation_pp < b.violation_pp - _VIOLATION_EPS:
        return True
    if a.violation_pp > b.violation_pp + _VIOLATION_EPS:
        return False
    return _score_cost(a, ctx) < _score_cost(b, ctx)


_TRADE_FIELDS = tuple(f.name for f in fields(Trade))
assert all(f.init for f in fields(Trade)), "_named passes every field to Trade()"
_trade_values = attrgetter(*_TRADE_FIELDS)
_ID, _REASON = _TRADE_FIELDS.index("id"), _TRADE_FIELDS.index("reason")


def _named(t: Trade, tid: str, reason: str) -> Trade:
    """``t`` with its id and reason, built by one positional ``Trade()`` call (faster than a
    field-by-field copy: a dense plan names ~10^4 trades)."""
    values = list(_trade_values(t))
    values[_ID] = tid
    values[_REASON] = reason
    return Trade(*values)


def _finish(
    ctx: PlanContext,
    best: Outcome,
    method: str,
    naive: Outcome | None,
    solver: Mapping[str, object],
    residual: Sequence[Skip] = (),
    reachable: bool = True,
    why: str | None = None,
    left: Decimal | None = None,
) -> Plan:
    after_rows = tuple(drift_rows(best.after, ctx.drift.targets, ctx.drift.bands))
    by_key = {r.key: r for r in ctx.drift.rows}
    leaf_of = {a: f"{r.kind}:{r.name}" for r in ctx.drift.targets.leaves for a in r.assets}
    trades = []
    seen: set[str] = set()
    # NOTE: one description per asset, one reason per pair: a dense plan has ~10^4 pairs
    described: dict[str, str] = {}
    reasons: dict[tuple[str, str], str] = {}
    for n, t in enumerate(best.trades):
        digest = hashlib.sha256(
            f"{t.chain}|{t.wallet}|{t.sell.id}|{t.buy.id}|{t.amount_in}|{n}".encode()
        ).hexdigest()[:12]
        tid = digest if digest not in seen else f"{digest}-{n}"
        seen.add(tid)
        pair = (t.sell.asset, t.buy.asset)
        reason = reasons.get(pair)
        if reason is None:
            sides = []
            for asset in pair:
                text = described.get(asset)
                if text is None:
                    text = described[asset] = describe(by_key.get(leaf_of.get(asset, "")), asset)
                sides.append(text)
            reason = reasons[pair] = " -> ".join(sides)
        trades.append(_named(t, tid, reason))
    skipped = [*best.skipped, *residual]
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
        reachable=reachable,
        unreachable_why=why,
        left_usd=left,
    )
