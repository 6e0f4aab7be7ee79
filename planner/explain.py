"""Why: each trade's reason, and why rows still miss their goal after the plan (a wallet that
cannot pay gas, a row under the minimum, value that must move between wallets or chains)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from rebalancer.planner import optimise
from rebalancer.planner.context import PlanContext, is_locked, native_raw
from rebalancer.planner.drift import DriftRow, drift_rows
from rebalancer.planner.evaluate import Outcome
from rebalancer.planner.model import HUNDRED, Row, from_base_units
from rebalancer.planner.problem import build_problem
from rebalancer.planner.skips import AccountSkip, GoalSkip, Skip, SkipReason

_CENT = Decimal("0.01")


def describe(row: DriftRow | None, asset: str) -> str:
    if row is None or row.drift_pp is None:
        return f"{asset} (no target)"
    state = "out of band" if row.triggered else "in band"
    return f"{row.name} {row.drift_pp:+.2f}pp ({state})"


def residual_reasons(
    ctx: PlanContext, best: Outcome, problem: optimise.Problem | None = None
) -> list[Skip]:
    """Why rows still miss their goal after the plan, and which wallets could not trade.

    ``problem`` is ``build_problem(ctx)`` when the caller has it already (a dense one takes
    ~0.1 s to build)."""
    out: list[Skip] = []
    state = dict(ctx.held)
    for chain, wallet in ctx.portfolio.accounts:
        nat = native_raw(ctx, state, chain, wallet)
        if is_locked(ctx, chain, nat):
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


def chains_for(ctx: PlanContext, problem: optimise.Problem, row: Row, under: bool) -> list[str]:
    """Chains where the row can be bought (under) or sold (over)."""
    chains = set()
    for s in problem.slots:
        acc = problem.accounts[s.account]
        if s.asset in row.assets and not acc.locked and (s.can_buy if under else s.avail_pp > 0):
            chains.add(acc.chain)
    return sorted(chains)
