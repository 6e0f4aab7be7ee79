"""The naive plan: sell what is over, buy what is under, wallet by wallet, pro rata.

It is the baseline the optimised plan must beat (the plan keeps the better of the two) and the
benchmark's reference for the cost saved.
"""

from __future__ import annotations

from decimal import Decimal

from rebalancer.core.types import Token
from rebalancer.planner.context import PlanContext, is_locked, native_raw
from rebalancer.planner.evaluate import Proposal
from rebalancer.planner.model import HUNDRED, from_base_units
from rebalancer.planner.pairing import north_west
from rebalancer.planner.problem import row_weight


def naive_proposals(ctx: PlanContext) -> list[Proposal]:
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
        w = row_weight(ctx, row, weights)
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
    state = dict(ctx.held)
    sellable: dict[str, Decimal] = {}
    per_account: dict[tuple[str, str], list[tuple[Token, Decimal]]] = {}
    for chain, wallet in ctx.portfolio.accounts:
        nat = native_raw(ctx, state, chain, wallet)
        if is_locked(ctx, chain, nat):
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
    # NOTE: each chain's first tradable token of each leaf, found once (not once per wallet
    # and sink: a dense portfolio has ~10^3 of each)
    first: dict[str, dict[str, Token]] = {}
    for chain in {c for c, _ in per_account}:
        firsts = first[chain] = {}
        for token in ctx.tradable[chain]:
            leaf_key = leaf_of.get(token.asset)
            if leaf_key is not None and leaf_key not in firsts:
                firsts[leaf_key] = token
    out: list[Proposal] = []
    for (chain, wallet), holdings in sorted(per_account.items()):
        firsts = first[chain]
        buy_tokens = {key: firsts[key] for key in sorted(sinks) if key in firsts}
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
        out.extend(pair_in_order(chain, wallet, sells, buys))
    return out


def pair_in_order(
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
