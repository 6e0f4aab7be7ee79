"""Tax-loss harvesting: candidates, and same-asset harvest swaps inside the plan.

A candidate is an asset whose lots held at a loss add up to at least
``tax.harvest_min_loss_usd``. Selling those lots realises the loss; buying a *different* asset
of the same class keeps the allocation (and avoids buying back the same asset). When the plan
already sells the asset, the loss comes for free by choosing the loss lots for that sale.

A harvest swap keeps the exposure exactly: it sells a token of the asset (WBTC) for another
token of the same asset on the same chain (cbBTC). Its saving is the tax the plan's sales owe
without it minus the tax with it (its sale realises the loss, by ``tax.method``, against the lots
the plan's own sales leave); its cost is the planner's model of the swap (fee, impact, gas). It
goes into the plan only when the saving beats the cost, never into a token the plan buys or
sells, and never into a token still in its repurchase wait (``tax.repurchase_wait_days``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from dataclasses import replace as dc_replace
from datetime import date
from decimal import Decimal
from functools import partial

from rebalancer.core.types import Token
from rebalancer.planner.config import StrategyConfig, TradeLimits
from rebalancer.planner.context import PlanContext, make_context
from rebalancer.planner.drift import Drift
from rebalancer.planner.evaluate import Proposal, Trade, evaluate, replace
from rebalancer.planner.model import (
    Portfolio,
    Universe,
    from_base_units,
    to_base_units,
    tradable_tokens,
)
from rebalancer.planner.plan import Plan
from rebalancer.planner.tax import HarvestCandidate, Lot, realise_sales, unrealised_losses

_CENT = Decimal("0.01")


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


@dataclass(frozen=True, slots=True)
class HarvestSwap:
    """A same-asset swap that would realise a loss: what it sells, what it would buy, the tax
    it saves and what it costs (``trades`` empty: not made, ``note`` says why)."""

    chain: str
    wallet: str
    sell: Token
    buy: Token | None
    amount: Decimal
    """Units of ``sell``."""
    loss_usd: Decimal
    saving_usd: Decimal
    cost_usd: Decimal
    trades: tuple[Trade, ...]
    note: str

    @property
    def net_usd(self) -> Decimal:
        return self.saving_usd - self.cost_usd


def _units(t: Trade) -> Decimal:
    return from_base_units(t.amount_in, t.sell.decimals)


def harvest_swaps(
    ctx: PlanContext,
    planned: Sequence[Trade],
    blocked: Mapping[str, date] | None = None,
) -> list[HarvestSwap]:
    """Every same-asset harvest swap worth a look, after the plan's own ``planned`` trades;
    those with ``trades`` beat their cost and fit beside the plan. ``blocked``: token id ->
    the day its repurchase wait ends."""
    if ctx.book is None:
        return []
    blocked = blocked or {}
    cfg = ctx.strategy.tax
    prices = ctx.portfolio.prices
    sales = [(t.sell.asset, _units(t), t.value_usd) for t in planned]
    touched = {(t.chain, t.sell.id) for t in planned} | {(t.chain, t.buy.id) for t in planned}
    sold: dict[tuple[str, str, str], int] = {}
    per_account: dict[tuple[str, str], int] = {}
    for t in planned:
        key = (t.chain, t.wallet, t.sell.id)
        sold[key] = sold.get(key, 0) + t.amount_in
        per_account[(t.chain, t.wallet)] = per_account.get((t.chain, t.wallet), 0) + 1
    out: list[HarvestSwap] = []
    for p in sorted(ctx.portfolio.positions, key=lambda p: (p.chain, p.wallet, p.token.id)):
        token, price = p.token, prices.get(p.token.asset)
        tradable = ctx.tradable.get(p.chain, [])
        if token.is_native or price is None or price <= 0 or token not in tradable:
            continue
        if token.id in blocked:  # in its repurchase wait: the plan leaves it alone
            continue
        subs = [t for t in tradable if t.asset == token.asset and t.id != token.id]
        if not subs:
            continue
        _, base_tax = realise_sales(ctx.book, sales)
        left = ctx.book.copy()
        for asset, amount, proceeds in sales:
            left.sell(asset, amount, proceeds)
        loss_units = sum(
            (
                left.remaining[lot.id]
                for lot in left.lots
                if lot.asset == token.asset and lot.unit_basis > price
            ),
            Decimal(0),
        )
        raw = min(
            p.raw - sold.get((p.chain, p.wallet, token.id), 0),
            to_base_units(loss_units, token.decimals),
        )
        if raw <= 0:
            continue
        amount = from_base_units(raw, token.decimals)
        value = amount * price
        realised, tax_with = realise_sales(ctx.book, [*sales, (token.asset, amount, value)])
        loss = -realised[-1].gain_usd
        if loss < cfg.harvest_min_loss_usd or loss <= 0:
            continue
        saving = base_tax - tax_with

        found = partial(
            HarvestSwap,
            chain=p.chain,
            wallet=p.wallet,
            sell=token,
            amount=amount,
            loss_usd=loss,
            saving_usd=saving,
        )

        if (p.chain, token.id) in touched:
            out.append(
                found(
                    buy=None,
                    trades=(),
                    cost_usd=Decimal(0),
                    note=f"the plan already trades {token.symbol} on {p.chain}",
                )
            )
            continue
        free = [t for t in subs if t.id not in blocked and (p.chain, t.id) not in touched]
        if not free:
            waits = ", ".join(
                f"{t.symbol} until {blocked[t.id].isoformat()}" for t in subs if t.id in blocked
            )
            why = f"repurchase wait: {waits}" if waits else "the plan trades every substitute"
            out.append(found(buy=subs[0], trades=(), cost_usd=Decimal(0), note=why))
            continue
        best: tuple[Decimal, Token, tuple[Trade, ...]] | None = None
        for sub in free:
            ev = evaluate(ctx, [Proposal(p.chain, p.wallet, token, sub, value)])
            if not ev.trades:
                continue
            if best is None or ev.cost_usd < best[0]:
                best = (ev.cost_usd, sub, ev.trades)
        if best is None:
            out.append(
                found(
                    buy=free[0],
                    trades=(),
                    cost_usd=Decimal(0),
                    note="no swap into a substitute is possible (see plan)",
                )
            )
            continue
        cost, sub, trades = best
        if not _gas_left(ctx, p.chain, p.wallet, per_account, len(trades), planned):
            out.append(
                found(
                    buy=sub,
                    trades=(),
                    cost_usd=cost,
                    note="not enough native coin above the reserve for one more swap",
                )
            )
            continue
        if saving <= cost:
            out.append(
                found(
                    buy=sub,
                    trades=(),
                    cost_usd=cost,
                    note=f"the tax saved ({saving:.2f} USD) does not beat the cost",
                )
            )
            continue
        out.append(
            found(
                buy=sub,
                trades=trades,
                cost_usd=cost,
                note=f"realises {loss:.2f} USD of loss; {sub.symbol} is also {sub.asset}",
            )
        )
        sales.extend((t.sell.asset, _units(t), t.value_usd) for t in trades)
        touched |= {(p.chain, token.id), (p.chain, sub.id)}
        per_account[(p.chain, p.wallet)] = per_account.get((p.chain, p.wallet), 0) + len(trades)
    return out


def _gas_left(
    ctx: PlanContext,
    chain: str,
    wallet: str,
    per_account: Mapping[tuple[str, str], int],
    n: int,
    planned: Sequence[Trade],
) -> bool:
    """Whether the wallet's native coin pays ``n`` more swaps after the plan's, above reserve."""
    native = ctx.universe.native(chain)
    held = ctx.held.get((chain, wallet, native.id), 0)
    spent = sum(t.amount_in for t in planned if t.chain == chain and t.sell.id == native.id)
    gas = ctx.gas_raw[chain] * (per_account.get((chain, wallet), 0) + n)
    return held - spent - gas >= ctx.reserve[chain]


def with_harvest(
    plan: Plan,
    portfolio: Portfolio,
    strategy: StrategyConfig,
    universe: Universe,
    lots: Sequence[Lot],
    as_of: date,
    limits: TradeLimits | None = None,
    blocked: Mapping[str, date] | None = None,
) -> tuple[Plan, list[HarvestSwap]]:
    """The plan with the harvest swaps that beat their cost appended (``tax.aware`` and
    ``tax.harvest`` on), and every swap looked at. The plan's drift after is left as it was:
    a harvest swap moves no weight but its own small cost."""
    if not (strategy.tax.aware and strategy.tax.harvest and lots):
        return plan, []
    if not plan.reachable and strategy.on_unreachable == "refuse":
        return plan, []  # the plan said it trades nothing
    ctx = make_context(portfolio, strategy, universe, plan.before, lots, as_of, limits)
    swaps = harvest_swaps(ctx, plan.trades, blocked)
    extra = [t for s in swaps for t in s.trades]
    if not extra:
        return plan, swaps
    run_cap = ctx.limits.max_run_usd
    total = sum((t.value_usd for t in (*plan.trades, *extra)), Decimal(0))
    if run_cap is not None and total > run_cap:
        return plan, [
            dc_replace(s, trades=(), note="policy.max_run_usd leaves no room") for s in swaps
        ]
    seen = {t.id for t in plan.trades}
    named: list[Trade] = []
    for n, t in enumerate(extra, start=len(plan.trades)):
        digest = hashlib.sha256(
            f"harvest|{t.chain}|{t.wallet}|{t.sell.id}|{t.buy.id}|{t.amount_in}|{n}".encode()
        ).hexdigest()[:12]
        tid = digest if digest not in seen else f"{digest}-{n}"
        seen.add(tid)
        named.append(
            replace(
                t,
                id=tid,
                reason=f"harvest: {t.sell.symbol} -> {t.buy.symbol} realises a loss on "
                f"{t.sell.asset} lots, same exposure",
            )
        )
    trades = [*plan.trades, *named]
    assert ctx.book is not None
    realised, tax = realise_sales(
        ctx.book, [(t.sell.asset, _units(t), t.value_usd) for t in trades]
    )
    trades = [replace(t, realised=r) for t, r in zip(trades, realised, strict=True)]
    cost = sum((t.est_cost_usd for t in named), Decimal(0))
    return (
        dc_replace(
            plan,
            trades=tuple(trades),
            est_cost_usd=plan.est_cost_usd + cost,
            est_tax_usd=tax,
        ),
        swaps,
    )
