"""Performance from the journal: P&L per asset, time-weighted return, risk, turnover and costs.

Inputs: every run (its plan document carries each trade's estimated fee, impact and gas), every
trade (only ``confirmed`` trades moved money; ``realised_out`` is what arrived) and the
``portfolio_before`` / ``portfolio_after`` snapshots executing runs record, plus optional tax
lots. Money stays ``Decimal``; statistics are floats (``rebalancer.reports.metrics``).

How the figures are made:

- **Periods**: one per executing run, from the previous run's last snapshot to this run's last.
  The return of a period chains the market move of the holdings the previous snapshot saw
  (those units at the new snapshot's prices) and the run's own trading drag (after / before).
  Money that arrived or left between runs is therefore not a return: it is reported as
  ``net_flows_usd``. Chained, the periods give the time-weighted return.
- **Annualisation**: ``P = 365.25 days / mean period length``; with less than a day of history
  the annualised figures (return, volatility, Sharpe, Sortino) are null. Risk-free rate:
  ``--risk-free PCT`` (annual, default 0). Formulas: ``rebalancer.reports.metrics``.
- **Buy-and-hold**: the first snapshot's holdings valued at each later snapshot's prices.
- **P&L** with ``--lots``: realised from the configured lot method (``planner.tax.LotBook``)
  on every confirmed sale at its planned value; bought units become new lots at their cost;
  unrealised is the open lots at the last prices (units held without a lot are left out).
  Without lots, an average cost per asset that
  starts at the first snapshot's market value: P&L since tracking began. Holdings that change
  between runs (deposits, withdrawals, gas) are reconciled at each snapshot without P&L.
- **Costs**: the plan's estimates (``fee_usd``, ``impact_usd``) of confirmed trades, the gas
  actually paid (the journal's ``fee_native`` of the swap and its approval, valued at the plan's
  native-coin price; the plan's estimate where no fee was recorded), and the shortfall of
  ``realised_out`` against ``expected_out`` at the buy asset's price (negative: better than
  expected). Turnover: value sold over the average portfolio value.

``report --json`` keys::

    {"journal", "as_of",
     "period": {"start", "end", "days", "runs", "executed_runs", "snapshots", "points"},
     "value": {"start_usd", "end_usd", "net_flows_usd", "buy_and_hold_usd"},
     "returns": {"twr", "annualised", "volatility", "sharpe", "sortino", "max_drawdown",
                 "periods", "periods_per_year", "risk_free"},
     "costs": {"trades", "trades_by_state", "traded_usd", "turnover", "fees_usd",
               "impact_usd", "gas_usd", "est_cost_usd", "slippage_vs_expected_usd",
               "total_cost_usd"},
     "pnl": {"basis" ("lots" | "average_cost"), "realised_usd", "unrealised_usd",
             "assets": [{"asset", "amount", "price_usd", "value_usd", "cost_basis_usd",
                         "unrealised_usd", "realised_usd"}]},
     "allocation": [{"name", "kind", "weight_pct", "target_pct", "band_pp", "drift_pp"}],
     "series": [{"at", "run_id", "value_usd", "index_usd", "buy_and_hold_usd",
                 "max_drift_pp", "drift_pp": {row name: pp}}]}

Returns, volatility and drawdown are fractions (0.05 = 5%); USD and amounts are decimal
strings; a figure there is no data for is null.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from rebalancer.documents.journal import RunRow, SnapshotRow, TradeRow
from rebalancer.documents.plan import PlanFile, PlanTrade, TokenRef
from rebalancer.documents.status import RunMode, TradeStatus
from rebalancer.intents import approval_ids
from rebalancer.planner.config import StrategyConfig
from rebalancer.planner.model import Targets
from rebalancer.planner.tax import Lot, LotBook
from rebalancer.reports.metrics import Stats, growth_index, summarise

_ZERO = Decimal(0)
_CENT = Decimal("0.01")
_KIND_ORDER = {"portfolio_before": 0, "portfolio_after": 1}
SECONDS_PER_YEAR = 365.25 * 86400


@dataclass(frozen=True)
class Snap:
    """One portfolio snapshot: units and values per asset at its prices."""

    run_id: int
    kind: str
    at: float
    prices: dict[str, Decimal]
    amounts: dict[str, Decimal]
    total: Decimal

    @classmethod
    def parse(cls, row: SnapshotRow) -> Snap:
        doc = row.data
        # NOTE: a zero price is no price (as it always was here)
        prices = {k: v for k, v in doc.prices.items() if v}
        amounts: dict[str, Decimal] = {}
        for h in doc.holdings:
            units = Decimal(h.raw).scaleb(-h.decimals)
            amounts[h.asset] = amounts.get(h.asset, _ZERO) + units
        return cls(row.run_id, row.kind.value, row.taken_at, prices, amounts, doc.total_usd)

    def value_at(self, prices: Mapping[str, Decimal]) -> Decimal:
        """These holdings at other prices (this snapshot's price where one is missing)."""
        out = _ZERO
        for asset, units in self.amounts.items():
            price = prices.get(asset, self.prices.get(asset))
            if price is not None:
                out += units * price
        return out

    def values(self) -> dict[str, Decimal]:
        return {a: u * self.prices[a] for a, u in self.amounts.items() if a in self.prices}


@dataclass(frozen=True)
class Fill:
    """A confirmed trade with what the plan expected of it."""

    run_id: int
    trade_id: str
    at: float
    sell: str
    buy: str
    sold: Decimal
    bought: Decimal
    expected: Decimal | None
    value_usd: Decimal
    fee_usd: Decimal
    impact_usd: Decimal
    gas_usd: Decimal
    est_cost_usd: Decimal


@dataclass
class AssetPnl:
    asset: str
    amount: Decimal = _ZERO
    price: Decimal | None = None
    cost_basis: Decimal = _ZERO
    realised: Decimal = _ZERO
    covered: Decimal | None = None
    """With lots: the units the open lots account for (unrealised P&L counts only these)."""

    @property
    def value(self) -> Decimal | None:
        return None if self.price is None else self.amount * self.price

    @property
    def unrealised(self) -> Decimal | None:
        if self.price is None:
            return None
        if self.covered is None:
            return self.amount * self.price - self.cost_basis
        units = max(min(self.covered, self.amount), _ZERO)
        basis = self.cost_basis * units / self.covered if self.covered > 0 else _ZERO
        return units * self.price - basis

    def as_dict(self) -> dict[str, Any]:
        def q(v: Decimal | None) -> str | None:
            return None if v is None else str(v.quantize(_CENT) + _ZERO)

        return {
            "asset": self.asset,
            "amount": f"{self.amount.normalize():f}" if self.amount else "0",
            "price_usd": None if self.price is None else str(self.price),
            "value_usd": q(self.value),
            "cost_basis_usd": q(self.cost_basis),
            "unrealised_usd": q(self.unrealised),
            "realised_usd": q(self.realised),
        }


@dataclass
class Point:
    """A closing snapshot of a run: the value, the return since the previous point."""

    snap: Snap
    ret: float | None
    index: Decimal = _ZERO
    hold: Decimal = _ZERO
    drift: dict[str, Decimal] = field(default_factory=dict)


@dataclass
class Report:
    """Everything ``rebalancer report`` shows, computed once."""

    journal: str
    runs: int
    executed_runs: int
    snapshots: int
    points: list[Point]
    stats: Stats | None
    annualised_ok: bool
    net_flows: Decimal
    fills: list[Fill]
    states: dict[str, int]
    slippage: Decimal
    turnover: float | None
    pnl_basis: str
    pnl: list[AssetPnl]
    allocation: list[dict[str, Any]]
    leaf_rows: list[tuple[str, Decimal, Decimal]]
    """(name, target %, band pp) of the leaf rows, for the charts."""

    def as_json(self) -> dict[str, Any]:
        def usd(v: Decimal | None) -> str | None:
            return None if v is None else str(v.quantize(_CENT) + _ZERO)

        def when(p: Point) -> str:
            return datetime.fromtimestamp(p.snap.at, UTC).isoformat()

        first, last = (self.points[0], self.points[-1]) if self.points else (None, None)
        stats = self.stats.as_dict() if self.stats else {}
        if not self.annualised_ok:
            for k in ("annualised_return", "volatility", "sharpe", "sortino", "periods_per_year"):
                stats[k] = None
        fees = sum((f.fee_usd for f in self.fills), _ZERO)
        impact = sum((f.impact_usd for f in self.fills), _ZERO)
        gas = sum((f.gas_usd for f in self.fills), _ZERO)
        est = sum((f.est_cost_usd for f in self.fills), _ZERO)
        realised = sum((a.realised for a in self.pnl), _ZERO)
        unrealised = sum((a.unrealised or _ZERO for a in self.pnl), _ZERO)
        return {
            "journal": self.journal,
            "as_of": None if last is None else when(last),
            "period": {
                "start": None if first is None else when(first),
                "end": None if last is None else when(last),
                "days": None
                if first is None or last is None
                else round((last.snap.at - first.snap.at) / 86400, 4),
                "runs": self.runs,
                "executed_runs": self.executed_runs,
                "snapshots": self.snapshots,
                "points": len(self.points),
            },
            "value": {
                "start_usd": None if first is None else usd(first.snap.total),
                "end_usd": None if last is None else usd(last.snap.total),
                "net_flows_usd": usd(self.net_flows),
                "buy_and_hold_usd": None if last is None else usd(last.hold),
            },
            "returns": {
                "twr": stats.get("total_return"),
                "annualised": stats.get("annualised_return"),
                "volatility": stats.get("volatility"),
                "sharpe": stats.get("sharpe"),
                "sortino": stats.get("sortino"),
                "max_drawdown": stats.get("max_drawdown"),
                "periods": stats.get("periods", 0),
                "periods_per_year": stats.get("periods_per_year"),
                "risk_free": stats.get("risk_free"),
            },
            "costs": {
                "trades": len(self.fills),
                "trades_by_state": dict(sorted(self.states.items())),
                "traded_usd": usd(sum((f.value_usd for f in self.fills), _ZERO)),
                "turnover": None if self.turnover is None else round(self.turnover, 6),
                "fees_usd": usd(fees),
                "impact_usd": usd(impact),
                "gas_usd": usd(gas),
                "est_cost_usd": usd(est),
                "slippage_vs_expected_usd": usd(self.slippage),
                "total_cost_usd": usd(est + self.slippage),
            },
            "pnl": {
                "basis": self.pnl_basis,
                "realised_usd": usd(realised),
                "unrealised_usd": usd(unrealised),
                "assets": [a.as_dict() for a in self.pnl],
            },
            "allocation": self.allocation,
            "series": [
                {
                    "at": when(p),
                    "run_id": p.snap.run_id,
                    "value_usd": usd(p.snap.total),
                    "index_usd": usd(p.index),
                    "buy_and_hold_usd": usd(p.hold),
                    "max_drift_pp": str(
                        max((abs(d) for d in p.drift.values()), default=_ZERO).quantize(_CENT)
                    ),
                    "drift_pp": {k: str(v.quantize(_CENT) + _ZERO) for k, v in p.drift.items()},
                }
                for p in self.points
            ],
        }


def _fills(
    runs: Sequence[RunRow], trades: Sequence[TradeRow], registry: Any
) -> tuple[list[Fill], dict[str, int]]:
    """Confirmed trades joined with their plan entries; the other states only counted."""
    plans: dict[int, dict[str, PlanTrade]] = {}
    for r in runs:
        if isinstance(r.plan, PlanFile):
            plans[r.id] = {t.id: t for t in r.plan.trades}
    states: dict[str, int] = {}
    fills = []
    fees = {(x.run_id, x.trade_id): x.fee_native for x in trades if x.fee_native is not None}
    for t in trades:
        states[t.state.value] = states.get(t.state.value, 0) + 1
        if t.state != TradeStatus.CONFIRMED:
            continue
        entry = plans.get(t.run_id, {}).get(t.trade_id)

        def side(ref: TokenRef | None, token_id: str) -> tuple[str, int]:
            if ref is not None:
                return ref.asset, ref.decimals
            token = registry.by_id(token_id) if registry is not None else None
            if token is None:
                return token_id, 0
            return token.asset, token.decimals

        def figure(v: Decimal | None) -> Decimal:
            return v if v is not None and v.is_finite() else _ZERO

        sell, sell_dec = side(None if entry is None else entry.sell, t.sell)
        paid = [
            fees[key]
            for key in ((t.run_id, row) for row in (t.trade_id, *approval_ids(t.trade_id)))
            if key in fees
        ]
        gas_usd = figure(None if entry is None else entry.gas_usd)
        gas_est = (None if entry is None else entry.gas_native) or 0
        if paid and gas_est > 0:
            # NOTE: the fee actually paid (swap + approval), valued at the plan's own price of
            # the native coin (its estimate in USD over its estimate in base units).
            gas_usd = gas_usd * Decimal(sum(paid)) / Decimal(gas_est)
        buy, buy_dec = side(None if entry is None else entry.buy, t.buy)
        expected = None if entry is None else entry.expected_out
        out = t.realised_out if t.realised_out is not None else expected
        fills.append(
            Fill(
                run_id=t.run_id,
                trade_id=t.trade_id,
                at=float(t.updated_at),
                sell=sell,
                buy=buy,
                sold=Decimal(t.amount_in).scaleb(-sell_dec),
                bought=_ZERO if out is None else Decimal(int(out)).scaleb(-buy_dec),
                expected=None if expected is None else Decimal(int(expected)).scaleb(-buy_dec),
                value_usd=figure(None if entry is None else entry.value_usd),
                fee_usd=figure(None if entry is None else entry.fee_usd),
                impact_usd=figure(None if entry is None else entry.impact_usd),
                gas_usd=gas_usd,
                est_cost_usd=figure(None if entry is None else entry.est_cost_usd),
            )
        )
    return fills, states


class _AverageCost:
    """P&L since tracking began: an average cost per asset, deposits at market value."""

    def __init__(self) -> None:
        self.assets: dict[str, AssetPnl] = {}

    def _get(self, asset: str) -> AssetPnl:
        return self.assets.setdefault(asset, AssetPnl(asset))

    def reconcile(self, snap: Snap) -> None:
        for asset in sorted(set(snap.amounts) | set(self.assets)):
            a = self._get(asset)
            diff = snap.amounts.get(asset, _ZERO) - a.amount
            if diff > 0:
                a.cost_basis += diff * snap.prices.get(asset, _ZERO)
            elif diff < 0 and a.amount > 0:
                a.cost_basis += a.cost_basis / a.amount * diff
            a.amount += diff

    def fill(self, f: Fill, _when: date) -> None:
        s = self._get(f.sell)
        if s.amount > 0:
            basis = s.cost_basis / s.amount * min(f.sold, s.amount)
            s.realised += f.value_usd - basis
            s.cost_basis -= basis
        s.amount -= f.sold
        b = self._get(f.buy)
        b.amount += f.bought
        b.cost_basis += f.value_usd


class _Lots:
    """P&L from tax lots: sales consume lots by the configured method."""

    def __init__(self, lots: Sequence[Lot], strategy: StrategyConfig, as_of: date) -> None:
        self.book = LotBook(list(lots), strategy.tax, as_of)
        self.assets: dict[str, AssetPnl] = {}

    def _get(self, asset: str) -> AssetPnl:
        return self.assets.setdefault(asset, AssetPnl(asset))

    def reconcile(self, snap: Snap) -> None:
        for asset, units in snap.amounts.items():
            self._get(asset).amount = units

    def fill(self, f: Fill, when: date) -> None:
        self.book.as_of = when
        if f.sold > 0:
            r = self.book.sell(f.sell, f.sold, f.value_usd)
            self._get(f.sell).realised += r.gain_usd
        if f.bought > 0:
            lot = Lot(f"run{f.run_id}:{f.trade_id}", when, f.buy, f.bought, f.value_usd)
            lots = list(self.book.lots)
            lots.append(lot)
            self.book.lots = lots
            self.book.remaining[lot.id] = lot.amount
        self._get(f.sell).amount -= f.sold
        self._get(f.buy).amount += f.bought

    def finish(self) -> None:
        for a in self.assets.values():
            a.covered = _ZERO
        for lot in self.book.lots:
            left = self.book.remaining.get(lot.id, _ZERO)
            a = self._get(lot.asset)
            a.cost_basis += left * lot.unit_basis
            a.covered = (a.covered or _ZERO) + left


class _BookLots(_Lots):
    """The lot book's own answer: fills only move amounts; bases are the book's open lots."""

    def __init__(self, open_lots: Sequence[Lot], strategy: StrategyConfig, as_of: date) -> None:
        super().__init__(open_lots, strategy, as_of)

    def fill(self, f: Fill, when: date) -> None:
        self._get(f.sell).amount -= f.sold
        self._get(f.buy).amount += f.bought


def build_report(
    *,
    journal_path: str,
    runs: Sequence[RunRow],
    trades: Sequence[TradeRow],
    snapshots: Sequence[SnapshotRow],
    strategy: StrategyConfig,
    targets: Targets,
    registry: Any = None,
    lots: Sequence[Lot] | None = None,
    prices: Mapping[str, Decimal] | None = None,
    risk_free: float = 0.0,
    book_realised: Mapping[str, Decimal] | None = None,
    book_open: Sequence[Lot] | None = None,
    now: datetime,
) -> Report:
    """Every figure of the report from the journal's rows (pure: no I/O here; ``now`` is the
    tool's clock, the chains' on simulated worlds).

    ``book_realised`` and ``book_open``: realised gain per asset and the open lots of the lot
    book (:mod:`rebalancer.reports.taxbook`), which then replace the walk's own, so ``report``
    and ``tax`` give one answer."""
    snaps = sorted(
        (Snap.parse(s) for s in snapshots if s.kind in _KIND_ORDER),
        key=lambda s: (s.run_id, _KIND_ORDER[s.kind], s.at),
    )
    fills, states = _fills(runs, trades, registry)

    # -- periods: market move between runs, trading drag within a run -----------------------
    points: list[Point] = []
    net_flows = _ZERO
    growth = 1.0
    prev: Snap | None = None
    for i, s in enumerate(snaps):
        if prev is None:
            points.append(Point(s, None))
            prev = s
            continue
        if s.run_id == prev.run_id:
            factor = float(s.total / prev.total) if prev.total > 0 else 1.0
        else:
            moved = prev.value_at(s.prices)
            net_flows += s.total - moved
            factor = float(moved / prev.total) if prev.total > 0 else 1.0
        growth *= factor
        if i == len(snaps) - 1 or snaps[i + 1].run_id != s.run_id:
            points.append(Point(s, growth - 1.0))
            growth = 1.0
        prev = s
    returns = [p.ret for p in points[1:] if p.ret is not None]
    stats = None
    annualised_ok = False
    if points:
        span = points[-1].snap.at - points[0].snap.at
        ppy = SECONDS_PER_YEAR / (span / len(returns)) if returns and span > 0 else 1.0
        annualised_ok = span >= 86400 and bool(returns)
        stats = summarise(returns, ppy, risk_free)
        start = points[0].snap
        for p, g in zip(points, growth_index(returns), strict=True):
            p.index = start.total * Decimal(repr(float(g)))
            p.hold = start.value_at(p.snap.prices)

    # -- drift per point and the last allocation ------------------------------------------
    targeted = [r for r in targets.rows if r.target is not None]
    held = {a for s in snaps[-1:] for a, units in s.amounts.items() if units > 0}
    leaves = [r for r in targeted if r.leaf and (r.target or r.assets & held)]
    for p in points:
        values = p.snap.values()
        total = sum(values.values(), _ZERO)
        for r in leaves:
            w = sum((values.get(a, _ZERO) for a in r.assets), _ZERO)
            weight = w / total * 100 if total > 0 else _ZERO
            p.drift[r.name] = weight - (r.target or _ZERO)
    allocation = []
    if points:
        values = points[-1].snap.values()
        total = sum(values.values(), _ZERO)
        for r in targeted:
            w = sum((values.get(a, _ZERO) for a in r.assets), _ZERO)
            weight = w / total * 100 if total > 0 else _ZERO
            target = r.target or _ZERO
            if r.kind == "asset" and not target and not w:
                continue
            allocation.append(
                {
                    "name": r.name,
                    "kind": r.kind,
                    "weight_pct": str(weight.quantize(_CENT)),
                    "target_pct": str(target.quantize(_CENT)),
                    "band_pp": str(strategy.band_for(target).quantize(_CENT)),
                    "drift_pp": str((weight - target).quantize(_CENT)),
                }
            )

    # -- P&L: walk the runs in order: before, trades, after ---------------------------------
    book: _AverageCost | _Lots = _Lots(lots, strategy, now.date()) if lots else _AverageCost()
    if lots and book_open is not None:
        book = _BookLots(book_open, strategy, now.date())
    fills_by_run: dict[int, list[Fill]] = {}
    for f in fills:
        fills_by_run.setdefault(f.run_id, []).append(f)
    snaps_by_run: dict[int, list[Snap]] = {}
    for s in snaps:
        snaps_by_run.setdefault(s.run_id, []).append(s)
    for run_id in sorted(set(fills_by_run) | set(snaps_by_run)):
        run_snaps = snaps_by_run.get(run_id, [])
        for s in run_snaps:
            if s.kind == "portfolio_before":
                book.reconcile(s)
        for f in fills_by_run.get(run_id, []):
            book.fill(f, datetime.fromtimestamp(f.at, UTC).date())
        for s in run_snaps:
            if s.kind == "portfolio_after":
                book.reconcile(s)
    if isinstance(book, _Lots):
        book.finish()
    last_prices = dict(prices or {})
    for s in snaps:
        last_prices.update(s.prices)
    if book_realised is not None:
        for a in book.assets.values():
            a.realised = _ZERO
        for asset, gain in book_realised.items():
            book._get(asset).realised = gain
    pnl = sorted(book.assets.values(), key=lambda a: a.asset)
    for a in pnl:
        a.price = last_prices.get(a.asset)
    pnl = [a for a in pnl if a.amount or a.realised or a.cost_basis]

    # -- costs -------------------------------------------------------------------------------
    slippage = _ZERO
    for f in fills:
        price = _price_near(snaps, f.run_id, f.buy) or last_prices.get(f.buy)
        if f.expected is not None and price is not None:
            slippage += (f.expected - f.bought) * price
    traded = sum((f.value_usd for f in fills), _ZERO)
    mean_value = sum((p.snap.total for p in points), _ZERO) / len(points) if points else _ZERO
    turnover = float(traded / mean_value) if mean_value > 0 else None

    executed = {r.id for r in runs if r.mode == RunMode.EXECUTE}
    return Report(
        journal=journal_path,
        runs=len(runs),
        executed_runs=len(executed),
        snapshots=len(snaps),
        points=points,
        stats=stats,
        annualised_ok=annualised_ok,
        net_flows=net_flows,
        fills=fills,
        states=states,
        slippage=slippage,
        turnover=turnover,
        pnl_basis="lots" if lots else "average_cost",
        pnl=pnl,
        allocation=allocation,
        leaf_rows=[
            (r.name, r.target or _ZERO, strategy.band_for(r.target or _ZERO)) for r in leaves
        ],
    )


def _price_near(snaps: Sequence[Snap], run_id: int, asset: str) -> Decimal | None:
    """The asset's price in the run's own snapshot (the prices the trade was planned at)."""
    for s in snaps:
        if s.run_id == run_id and asset in s.prices:
            return s.prices[asset]
    return None
