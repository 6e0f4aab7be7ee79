"""Backtests: replay a daily price history under the configured rules and compare strategies.

Modelling choices, so that five years of twenty assets replay in well under a second:

- **One pooled portfolio at the asset level.** Wallets and chains do not change what a rule
  earns, only where it trades; the replay holds one balance per asset and trades on one chain's
  cost model (``--chain``, default ``ethereum`` when configured). Each leaf target (``BTC = 40``,
  or ``STABLES = 10`` held as every priced stablecoin equally) is a sleeve; it starts exactly on
  target with ``capital`` USD at no cost.
- **The planner decides.** Every day a vectorised float screen looks for a day on which a rule
  *could* fire (a row within 1e-6 of its band edge or beyond, the calendar due, the minimum
  interval past); that day is then confirmed by ``planner.drift.compute_drift`` itself on the
  exact Decimal portfolio, with the rule's ``StrategyConfig`` (bands, relative bands,
  volatility-scaled bands, calendar triggers) and the price history. So a rule trades on exactly
  the days the live tool would, and the screen only makes the quiet days cheap.
- **The trade step** aims where the planner aims, without its optimiser: ``target`` mode puts
  every leaf back on target; ``band_edge`` moves each leaf into its aim interval from
  ``planner.goals.row_goals`` (rows out of band to ``edge_margin_pct`` inside the edge), spreads
  the difference over leaves with room in theirs, and falls back to target when a row would
  still miss its band. Value inside a sleeve is split as it already is. Asset deltas under
  ``min_trade_usd`` are dropped.
- **Costs** are the planner's, from the chain's ``CostModel``: sells are paired with buys
  largest first by the planner's north-west corner walk (``planner.pairing``; one swap per
  pair, as few swaps as a pooled wallet needs); each swap costs
  ``CostModel.fee_usd`` and ``CostModel.impact_usd`` of its value and one swap's
  ``CostModel.gas_usd`` (at that day's price of the chain's native asset when gas is given in
  it). Costs are taken pro rata from the portfolio after the trade.
- Timing: a day's check and its trades both happen at that day's price (the CSV close).
- Not replayed: wallets, gas reserves, taxes, the momentum tilt (targets stay fixed).

Strategies (``--strategy``): ``threshold`` (the configured bands, checked daily),
``calendar`` (back to target every ``max_interval_days``, default 30, whatever the drift),
``volatility`` (the bands scaled by ``[strategy.triggers.volatility]`` or its defaults) and
``buy-and-hold`` (never trades). Everything is deterministic: no randomness, ties broken by
order.

``backtest --json`` keys: ``{"prices", "start", "end", "days", "assets", "capital_usd",
"chain", "filled_prices", "strategies": [{"name", "label", "check_every_days", "final_usd",
"total_return", "annualised_return", "volatility", "sharpe", "sortino", "max_drawdown",
"periods", "periods_per_year", "risk_free", "rebalances", "swaps", "traded_usd",
"turnover", "turnover_annual", "fees_usd", "impact_usd", "gas_usd", "cost_usd",
"events": [{"date", "trigger", "traded_usd", "swaps", "cost_usd"}]}], "sweep": null | {...}}``.
Returns, volatility and drawdown are fractions; USD figures are decimal strings; ``sweep``
is documented in ``sweep_json``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np

from rebalancer.core.errors import ConfigError
from rebalancer.core.types import Holding, Token
from rebalancer.planner.config import CostModel, StrategyConfig, Triggers, VolatilityBands
from rebalancer.planner.drift import Drift, compute_drift
from rebalancer.planner.goals import row_goals
from rebalancer.planner.model import Portfolio, Targets, to_base_units
from rebalancer.planner.pairing import north_west
from rebalancer.reports.metrics import DAYS_PER_YEAR, Stats, summarise
from rebalancer.reports.prices_csv import PriceHistory

STRATEGIES = ("threshold", "calendar", "volatility", "buy-and-hold")
DEFAULT_CALENDAR_DAYS = 30
_SLACK = 1e-6
"""The float screen flags a row this close to its band edge (as a fraction) for the exact
check, so float rounding can never hide a crossing."""
_CHUNK = 64
_CENT = Decimal("0.01")
_DUST = Decimal("1e-9")


@dataclass(frozen=True)
class Rule:
    """One strategy to replay: the ``StrategyConfig`` whose triggers decide (None: never
    trade), and how often it looks (every ``check_every`` days)."""

    name: str
    strategy: StrategyConfig | None
    check_every: int = 1
    label: str = ""


def _plain(base: StrategyConfig, **triggers: Any) -> StrategyConfig:
    """``base`` with only the given triggers on (momentum off: targets stay fixed)."""
    values: dict[str, Any] = {
        "threshold": True,
        "max_interval_days": None,
        "volatility": None,
        "momentum": None,
        "min_interval_days": base.triggers.min_interval_days,
    }
    values.update(triggers)
    return base.model_copy(update={"triggers": Triggers(**values)})


def make_rules(
    base: StrategyConfig,
    names: Sequence[str] = STRATEGIES,
    *,
    band_pp: Decimal | None = None,
    calendar_days: Decimal | None = None,
    check_every: int = 1,
) -> list[Rule]:
    """The standard strategies from the configured strategy (see the module docstring)."""
    if band_pp is not None:
        base = base.model_copy(update={"band_pp": band_pp, "band_rel_pct": None})
    rules = []
    for name in names:
        if name == "threshold":
            strategy = _plain(base)
            band = f"{base.band_pp.normalize():f}"
            rel = "" if base.band_rel_pct is None else f", {base.band_rel_pct.normalize():f}% rel"
            rules.append(Rule(name, strategy, check_every, f"bands {band} pp{rel}, {base.mode}"))
        elif name == "calendar":
            days = calendar_days or base.triggers.max_interval_days or Decimal(30)
            strategy = _plain(base, threshold=False, max_interval_days=days)
            strategy = strategy.model_copy(update={"mode": "target"})
            rules.append(Rule(name, strategy, 1, f"to target every {days.normalize():f} days"))
        elif name == "volatility":
            vol = base.triggers.volatility or VolatilityBands()
            strategy = _plain(base, volatility=vol)
            rules.append(
                Rule(
                    name,
                    strategy,
                    check_every,
                    f"bands x clamp(vol/{vol.reference_vol_pct.normalize():f}%, 1, "
                    f"{vol.max_multiplier.normalize():f}), {base.mode}",
                )
            )
        elif name == "buy-and-hold":
            rules.append(Rule(name, None, 1, "never rebalance"))
        else:
            raise ConfigError(
                f"--strategy {name!r}: unknown strategy (known: {', '.join(STRATEGIES)})"
            )
    return rules


@dataclass(frozen=True)
class Costs:
    """The chain the replay trades on and its ``CostModel``, which prices every swap."""

    chain: str
    model: CostModel
    native: str | None
    """The asset whose price turns ``gas_per_swap_native`` into USD (None: gas is in USD)."""
    min_trade_usd: float

    @classmethod
    def of(cls, strategy: StrategyConfig, chain: str, native: str | None) -> Costs:
        model = strategy.cost_model(chain)
        return cls(
            chain=chain,
            model=model,
            native=native if model.gas_per_swap_native is not None else None,
            min_trade_usd=float(strategy.min_trade_usd),
        )

    @property
    def gas_usd(self) -> Decimal | None:
        """One swap's gas in USD when it does not depend on a price (None: it does)."""
        return None if self.native is not None else self.model.gas_usd(None)

    def check(self, history: PriceHistory) -> None:
        """Gas given in the native coin needs that coin's price on every day."""
        if self.model.gas_per_swap_native is not None and (
            self.native is None or self.native not in history.symbols
        ):
            raise ConfigError(
                f"strategy.costs.{self.chain}.gas_per_swap_native needs a price of the chain's "
                f"native asset {self.native or '?'} in the prices CSV (or set gas_per_swap_usd)"
            )

    def gas_on(self, history: PriceHistory, t: int) -> Decimal:
        """One swap's gas in USD on day ``t``."""
        if self.native is None:
            return self.model.gas_usd(None)
        price = history.prices[t, history.column(self.native)]
        return self.model.gas_usd(Decimal(repr(float(price))))


@dataclass
class Book:
    """The fixed shape of a replay: which rows the triggers look at, which sleeves hold what."""

    targets: Targets
    symbols: tuple[str, ...]
    row_keys: list[str]
    row_target: np.ndarray
    rows: np.ndarray
    """(rows x assets) 0/1: the assets of each targeted row."""
    leaf_keys: list[str]
    leaves: np.ndarray
    """(leaves x assets) 0/1: the held sleeves."""
    start_weights: np.ndarray
    tokens: list[Token] = field(default_factory=list)

    @classmethod
    def build(cls, targets: Targets, symbols: Sequence[str]) -> Book:
        """Rows and sleeves over the priced ``symbols``; a sleeve with a target and no price is
        an error naming it."""
        col = {s: j for j, s in enumerate(symbols)}
        keys, tgt, mat = [], [], []
        leaf_keys, leaves = [], []
        weights = np.zeros(len(symbols))
        for r in targets.rows:
            if r.target is None:
                continue
            members = sorted(col[a] for a in r.assets if a in col)
            vec = np.zeros(len(symbols))
            vec[members] = 1.0
            keys.append(f"{r.kind}:{r.name}")
            tgt.append(float(r.target) / 100)
            mat.append(vec)
            if r.leaf:
                if r.target > 0 and not members:
                    have = ", ".join(sorted(r.assets))
                    raise ConfigError(
                        f"strategy.targets.{r.name} = {r.target.normalize():f}: the prices CSV "
                        f"has no price for it (add rows for one of: {have})"
                    )
                leaf_keys.append(f"{r.kind}:{r.name}")
                leaves.append(vec)
                if members:
                    weights[members] += float(r.target) / 100 / len(members)
        tokens = [Token("backtest", "backtest:0", s, s, f"backtest:{s}", 18) for s in symbols]
        return cls(
            targets=targets,
            symbols=tuple(symbols),
            row_keys=keys,
            row_target=np.array(tgt),
            rows=np.array(mat).reshape(len(keys), len(symbols)),
            leaf_keys=leaf_keys,
            leaves=np.array(leaves).reshape(len(leaf_keys), len(symbols)),
            start_weights=weights / weights.sum(),
            tokens=tokens,
        )


@dataclass(frozen=True)
class Event:
    """One rebalance of a replay."""

    day: int
    trigger: str
    traded_usd: float
    swaps: int
    fee_usd: float
    impact_usd: float
    gas_usd: float

    @property
    def cost_usd(self) -> float:
        return self.fee_usd + self.impact_usd + self.gas_usd


@dataclass
class Result:
    """A replayed strategy: its daily values, drift and rebalances, and the statistics."""

    rule: Rule
    dates: tuple[Any, ...]
    values: np.ndarray
    drift_pp: np.ndarray
    """(days x rows) row weight minus target, percentage points, at each day's close."""
    events: list[Event]
    stats: Stats
    final_weights: np.ndarray
    """Row weights at the end (fractions, ``Book.row_keys`` order)."""

    @property
    def traded_usd(self) -> float:
        return sum(e.traded_usd for e in self.events)

    @property
    def cost_usd(self) -> float:
        return sum(e.cost_usd for e in self.events)

    @property
    def turnover(self) -> float:
        """Value sold over the period divided by the average portfolio value."""
        mean = float(np.mean(self.values)) if self.values.size else 0.0
        return self.traded_usd / mean if mean > 0 else 0.0

    @property
    def turnover_annual(self) -> float:
        days = max(len(self.values) - 1, 1)
        return self.turnover * DAYS_PER_YEAR / days

    def as_dict(self) -> dict[str, Any]:
        def usd(v: float) -> str:
            return str(Decimal(repr(float(v))).quantize(_CENT))

        return {
            "name": self.rule.name,
            "label": self.rule.label,
            "check_every_days": self.rule.check_every,
            "final_usd": usd(float(self.values[-1])),
            **self.stats.as_dict(),
            "rebalances": len(self.events),
            "swaps": sum(e.swaps for e in self.events),
            "traded_usd": usd(self.traded_usd),
            "turnover": round(self.turnover, 6),
            "turnover_annual": round(self.turnover_annual, 6),
            "fees_usd": usd(sum(e.fee_usd for e in self.events)),
            "impact_usd": usd(sum(e.impact_usd for e in self.events)),
            "gas_usd": usd(sum(e.gas_usd for e in self.events)),
            "cost_usd": usd(self.cost_usd),
            "events": [
                {
                    "date": self.dates[e.day].isoformat(),
                    "trigger": e.trigger,
                    "traded_usd": usd(e.traded_usd),
                    "swaps": e.swaps,
                    "cost_usd": usd(e.cost_usd),
                }
                for e in self.events
            ],
        }


def rolling_vol(prices: np.ndarray, cfg: VolatilityBands) -> np.ndarray:
    """``planner.triggers.realised_vol`` on every day at once: the annualised stdev of the last
    ``window`` log returns up to and including day t (NaN with fewer than two returns)."""
    days, n = prices.shape
    out = np.full((days, n), np.nan)
    if days < 3:
        return out
    r = np.diff(np.log(prices), axis=0)
    c1 = np.vstack([np.zeros(n), np.cumsum(r, axis=0)])
    c2 = np.vstack([np.zeros(n), np.cumsum(r * r, axis=0)])
    for t in range(2, days):
        lo = max(0, t - cfg.window)
        k = t - lo
        s1 = c1[t] - c1[lo]
        s2 = c2[t] - c2[lo]
        var = np.maximum((s2 - s1 * s1 / k) / (k - 1), 0.0)
        out[t] = np.sqrt(var)
    return out * math.sqrt(cfg.periods_per_year)


class _Replay:
    """The state of one strategy's replay over one history."""

    def __init__(
        self,
        history: PriceHistory,
        book: Book,
        rule: Rule,
        costs: Costs,
        capital: float,
        risk_free: float,
        start_weights: np.ndarray | None = None,
        near_edge: bool = False,
    ) -> None:
        if tuple(history.symbols) != book.symbols:
            raise ValueError("history and book disagree on the symbols")
        self.h = history
        self.book = book
        self.rule = rule
        self.costs = costs
        self.capital = capital
        if rule.strategy is not None:
            costs.check(history)
        self.sigma: np.ndarray | None = None
        strategy = rule.strategy
        if strategy is not None and strategy.triggers.volatility is not None:
            self.sigma = rolling_vol(history.prices, strategy.triggers.volatility)
        # NOTE: bands come from the targets as Decimals, exactly as the planner computes them.
        by_key = {f"{r.kind}:{r.name}": r.target for r in book.targets.rows}
        self.bands = np.array(
            [
                float(strategy.band_for(by_key[k] or Decimal(0))) / 100 if strategy else 1.0
                for k in book.row_keys
            ]
        )
        self.risk_free = risk_free
        self.start_weights = start_weights
        """Asset weights to start from (a live portfolio); None: on target. With them the
        first point is checked too, as the live tool's first check with no rebalance on
        record."""
        self.near_edge = near_edge
        """``target`` mode too stops at the near edge of the planner's aim (target +-
        ``target_tolerance_pp`` less the margin), as the live planner's cheapest plan does,
        instead of exactly on target (the living demo compares the two)."""

    def _moment(self, t: int) -> datetime:
        d = self.h.dates[t]
        if isinstance(d, datetime):
            return d
        return datetime.combine(d, datetime.min.time(), UTC)

    # -- the screen ------------------------------------------------------------------------
    def _band_matrix(self, values: np.ndarray, t0: int) -> np.ndarray:
        """Effective bands per day and row: the configured ones, widened by volatility."""
        strategy = self.rule.strategy
        assert strategy is not None
        vol = strategy.triggers.volatility
        if vol is None or self.sigma is None:
            return np.broadcast_to(self.bands, (values.shape[0], self.bands.size))
        sig = self.sigma[t0 : t0 + values.shape[0]]
        known = ~np.isnan(sig)
        num = np.where(known, values * np.nan_to_num(sig), 0.0) @ self.book.rows.T
        den = np.where(known, values, 0.0) @ self.book.rows.T
        with np.errstate(invalid="ignore", divide="ignore"):
            row_sigma = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
        ref = float(vol.reference_vol_pct) / 100
        mult = np.clip(row_sigma / ref, 1.0, float(vol.max_multiplier))
        mult = np.where(np.isnan(mult), 1.0, mult)
        return self.bands * mult

    def _candidates(
        self, weights: np.ndarray, values: np.ndarray, t0: int, last: int
    ) -> np.ndarray:
        strategy = self.rule.strategy
        assert strategy is not None
        trig = strategy.triggers
        days = np.arange(t0, t0 + weights.shape[0])
        # NOTE: last < 0 is "no rebalance on record": the calendar is due, as live
        elapsed = (days - last) * self.h.step_days if last >= 0 else np.full(days.size, np.inf)
        fire = np.zeros(days.size, dtype=bool)
        if trig.threshold:
            drift = np.abs(weights @ self.book.rows.T - self.book.row_target)
            fire |= np.any(drift > self._band_matrix(values, t0) - _SLACK, axis=1)
        if trig.max_interval_days is not None:
            fire |= elapsed >= float(trig.max_interval_days)
        fire &= elapsed >= float(trig.min_interval_days)
        fire &= days % self.rule.check_every == 0
        return fire

    # -- the planner's verdict -------------------------------------------------------------
    def _portfolio(self, units: np.ndarray, t: int) -> Portfolio:
        holdings = []
        prices: dict[str, Decimal] = {}
        for j, token in enumerate(self.book.tokens):
            prices[token.asset] = Decimal(repr(float(self.h.prices[t, j])))
            if units[j] > 0:
                raw = to_base_units(Decimal(repr(float(units[j]))), token.decimals)
                holdings.append(Holding("backtest", "pool", token, raw))
        return Portfolio.build(holdings, prices)

    def _verdict(self, units: np.ndarray, t: int, last: int) -> Drift:
        strategy = self.rule.strategy
        assert strategy is not None
        history: dict[str, list[Decimal]] = {}
        vol = strategy.triggers.volatility
        if vol is not None:
            lo = max(0, t - vol.window)
            history = {
                s: [Decimal(repr(float(p))) for p in self.h.prices[lo : t + 1, j]]
                for j, s in enumerate(self.book.symbols)
            }
        return compute_drift(
            self._portfolio(units, t),
            self.book.targets,
            strategy,
            now=self._moment(t),
            last_rebalance=self._moment(last) if last >= 0 else None,
            history=history,
        )

    # -- the trade step --------------------------------------------------------------------
    def _aim(self, weights: np.ndarray, drift: Drift) -> np.ndarray:
        """New asset weights: on target, or every leaf inside the planner's aim interval."""
        strategy = self.rule.strategy
        assert strategy is not None
        book = self.book
        row_w = book.leaves @ weights
        targets = {f"{r.kind}:{r.name}": r.target for r in drift.targets.rows}
        tgt = np.array([float(targets[k] or 0) / 100 for k in book.leaf_keys])
        new_row = tgt.copy()
        if strategy.mode == "band_edge" or self.near_edge:
            goals = row_goals(drift, strategy)
            lo, hi = (
                np.array([float(goals.aim[k][side]) / 100 for k in book.leaf_keys])
                for side in (0, 1)
            )
            new_row = np.clip(row_w, lo, hi)
            excess = float(new_row.sum() - 1.0)
            if excess > 0:
                room = np.maximum(new_row - lo, 0.0)
                new_row = new_row - excess * room / room.sum()
            elif excess < 0:
                room = np.maximum(hi - new_row, 0.0)
                new_row = new_row - excess * room / room.sum()
            new_w = self._spread(weights, row_w, new_row)
            hard_lo, hard_hi = (
                np.array([float(goals.hard[k][side]) / 100 for k in book.row_keys])
                for side in (0, 1)
            )
            rows_w = book.rows @ new_w
            if np.all((rows_w >= hard_lo - 1e-12) & (rows_w <= hard_hi + 1e-12)):
                return new_w
            new_row = tgt
        return self._spread(weights, row_w, new_row)

    def _spread(self, weights: np.ndarray, row_w: np.ndarray, new_row: np.ndarray) -> np.ndarray:
        """Asset weights from sleeve weights, keeping each sleeve's inner split."""
        book = self.book
        counts = book.leaves.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            scale = np.where(row_w > 0, new_row / np.where(row_w > 0, row_w, 1.0), 0.0)
            even = np.where(row_w > 0, 0.0, new_row / np.maximum(counts, 1))
        return weights * (scale @ book.leaves) + even @ book.leaves

    def _trade(self, units: np.ndarray, t: int, drift: Drift) -> tuple[np.ndarray, Event | None]:
        prices = self.h.prices[t]
        values = units * prices
        total = float(values.sum())
        weights = values / total
        delta = (self._aim(weights, drift) - weights) * total
        delta[np.abs(delta) < self.costs.min_trade_usd] = 0.0
        sells, buys = -np.minimum(delta, 0.0), np.maximum(delta, 0.0)
        s_tot, b_tot = float(sells.sum()), float(buys.sum())
        if s_tot <= 0 or b_tot <= 0:
            return units, None
        if s_tot > b_tot:
            sells *= b_tot / s_tot
        else:
            buys *= s_tot / b_tot
        model = self.costs.model
        symbols = self.book.symbols
        fee = Decimal(0)
        swaps = 0
        s_order = sorted(np.flatnonzero(sells), key=lambda i: (-sells[i], i))
        b_order = sorted(np.flatnonzero(buys), key=lambda i: (-buys[i], i))
        pairs = north_west(
            [Decimal(repr(float(sells[a]))) for a in s_order],
            [Decimal(repr(float(buys[b]))) for b in b_order],
        )
        volume: dict[str, Decimal] = {}
        k_of: dict[str, Decimal] = {}
        for i, j, usd in pairs:
            if usd <= _DUST:  # float residue of matching the two sides
                continue
            a, b = symbols[s_order[i]], symbols[b_order[j]]
            swaps += 1
            fee += model.fee_usd(usd)
            for pool, k in model.pools(a, b):  # impact per pool on its total, like the planner
                volume[pool] = volume.get(pool, Decimal(0)) + usd
                k_of[pool] = k
        impact = sum((k_of[p] * v * v for p, v in volume.items()), Decimal(0))
        gas = swaps * self.costs.gas_on(self.h, t)
        cost = float(fee + impact + gas)
        new_values = (values - sells + buys) * max(total - cost, 0.0) / total
        trigger = ",".join(x.name for x in drift.triggers if x.fired) or "threshold"
        event = Event(t, trigger, float(sells.sum()), swaps, float(fee), float(impact), float(gas))
        return new_values / prices, event

    # -- the loop --------------------------------------------------------------------------
    def run(self) -> Result:
        h, book = self.h, self.book
        days = len(h)
        start = book.start_weights if self.start_weights is None else self.start_weights
        units = self.capital * start / h.prices[0]
        values = np.empty(days)
        drift_pp = np.empty((days, len(book.row_keys)))
        events: list[Event] = []
        if self.rule.strategy is None:
            v = h.prices * units
            values[:] = v.sum(axis=1)
            drift_pp[:] = ((v / values[:, None]) @ book.rows.T - book.row_target) * 100
            return self._result(values, drift_pp, events, v[-1] / values[-1])
        last = 0 if self.start_weights is None else -1
        t = 0
        while t < days:
            stop = min(days, t + _CHUNK)
            v = h.prices[t:stop] * units
            totals = v.sum(axis=1)
            w = v / totals[:, None]
            cand = self._candidates(w, v, t, last)
            if t == 0 and self.start_weights is None:
                cand[0] = False
            hits = np.flatnonzero(cand)
            upto = stop if hits.size == 0 else t + int(hits[0])
            values[t:upto] = totals[: upto - t]
            drift_pp[t:upto] = (w[: upto - t] @ book.rows.T - book.row_target) * 100
            if hits.size == 0:
                t = stop
                continue
            day = upto
            verdict = self._verdict(units, day, last)
            if verdict.triggered:
                units, event = self._trade(units, day, verdict)
                last = day
                if event is not None:
                    events.append(event)
            vd = h.prices[day] * units
            values[day] = vd.sum()
            drift_pp[day] = (vd / values[day] @ book.rows.T - book.row_target) * 100
            t = day + 1
        final = h.prices[-1] * units
        return self._result(values, drift_pp, events, final / final.sum())

    def _result(
        self, values: np.ndarray, drift_pp: np.ndarray, events: list[Event], w_end: np.ndarray
    ) -> Result:
        returns = values[1:] / values[:-1] - 1.0
        stats = summarise(returns, DAYS_PER_YEAR / self.h.step_days, self.risk_free)
        return Result(
            self.rule, self.h.dates, values, drift_pp, events, stats, self.book.rows @ w_end
        )


def simulate(
    history: PriceHistory,
    book: Book,
    rule: Rule,
    costs: Costs,
    capital: float = 100_000.0,
    risk_free: float = 0.0,
    start_weights: np.ndarray | None = None,
    near_edge: bool = False,
) -> Result:
    """Replay ``rule`` over ``history`` from ``capital`` USD on target, or at
    ``start_weights`` (asset weights in ``book.symbols`` order); ``near_edge``: see
    ``_Replay.near_edge`` (deterministic)."""
    return _Replay(history, book, rule, costs, capital, risk_free, start_weights, near_edge).run()


# -- the sweep ------------------------------------------------------------------------------
DEFAULT_SWEEP_BANDS = (Decimal(1), Decimal(2), Decimal(3), Decimal(5), Decimal("7.5"), Decimal(10))
DEFAULT_SWEEP_INTERVALS = (1, 7, 30)


@dataclass(frozen=True)
class SweepPoint:
    band_pp: Decimal
    check_every: int
    in_sample: Result
    out_sample: Result


@dataclass(frozen=True)
class Sweep:
    """Threshold rules over a grid, scored in and out of sample, and the verdict."""

    split_date: Any
    points: list[SweepPoint]
    hold_in: Result
    hold_out: Result
    best: SweepPoint
    best_out_rank: int
    warning: str


def _score(r: Result) -> float:
    """Risk-adjusted return after costs: the Sharpe ratio (no variation ranks last)."""
    return r.stats.sharpe if r.stats.sharpe is not None else -math.inf


def sweep(
    history: PriceHistory,
    book: Book,
    base: StrategyConfig,
    costs: Costs,
    *,
    bands: Sequence[Decimal] = DEFAULT_SWEEP_BANDS,
    intervals: Sequence[int] = DEFAULT_SWEEP_INTERVALS,
    split: float = 0.7,
    capital: float = 100_000.0,
    risk_free: float = 0.0,
) -> Sweep:
    """Try every (band width, check interval) threshold rule on the first ``split`` of the
    history, pick the best Sharpe after costs, and replay every rule on the rest, fresh on
    target, to show how much of the edge survives out of sample."""
    days = len(history)
    cut = round(days * split)
    if not 0 < split < 1 or cut < 30 or days - cut < 30:
        raise ConfigError(
            f"--split {split}: needs at least 30 days on each side (the history has {days})"
        )
    first, second = history.slice(0, cut), history.slice(cut, days)
    base = base.model_copy(update={"band_rel_pct": None})
    points = []
    for band in bands:
        for every in intervals:
            strategy = _plain(base.model_copy(update={"band_pp": band}))
            rule = Rule("threshold", strategy, every, f"bands {band.normalize():f} pp")
            points.append(
                SweepPoint(
                    band,
                    every,
                    simulate(first, book, rule, costs, capital, risk_free),
                    simulate(second, book, rule, costs, capital, risk_free),
                )
            )
    hold = Rule("buy-and-hold", None, 1, "never rebalance")
    hold_in = simulate(first, book, hold, costs, capital, risk_free)
    hold_out = simulate(second, book, hold, costs, capital, risk_free)
    best = max(points, key=lambda p: (_score(p.in_sample), -p.in_sample.turnover))
    out_scores = sorted((_score(p.out_sample) for p in points), reverse=True)
    rank = out_scores.index(_score(best.out_sample)) + 1
    return Sweep(
        second.dates[0],
        points,
        hold_in,
        hold_out,
        best,
        rank,
        _overfit_warning(best, rank, len(points), hold_out),
    )


def _overfit_warning(best: SweepPoint, rank: int, n: int, hold_out: Result) -> str:
    ins, outs = _score(best.in_sample), _score(best.out_sample)
    lines = [
        "The best rule was picked on the in-sample part of the history only; a rule tuned to "
        "one history usually does worse on the next. Prefer a band that is good across the "
        "grid over the single best cell."
    ]
    if rank > max(1, n // 2):
        lines.append(
            f"OVERFITTING: out of sample it ranks {rank} of {n}: its in-sample edge did not "
            "survive."
        )
    elif math.isfinite(ins) and math.isfinite(outs) and outs < ins - 0.5:
        lines.append(
            f"Its Sharpe fell from {ins:.2f} in sample to {outs:.2f} out of sample "
            f"(rank {rank} of {n})."
        )
    if _score(best.out_sample) < _score(hold_out):
        lines.append("Out of sample it did worse than buy-and-hold after costs.")
    return " ".join(lines)


def sweep_json(s: Sweep) -> dict[str, Any]:
    """``{"split_date", "in_sample_days", "out_sample_days", "best": {"band_pp",
    "check_every_days", "in_sample_sharpe", "out_sample_sharpe", "out_sample_rank"},
    "grid": [{"band_pp", "check_every_days", "in_sample": {stats + costs},
    "out_sample": {...}}], "buy_and_hold": {"in_sample", "out_sample"}, "warning"}``."""

    def brief(r: Result) -> dict[str, Any]:
        d = r.as_dict()
        d.pop("events")
        return d

    return {
        "split_date": s.split_date.isoformat(),
        "in_sample_days": len(s.hold_in.values),
        "out_sample_days": len(s.hold_out.values),
        "best": {
            "band_pp": str(s.best.band_pp.normalize()),
            "check_every_days": s.best.check_every,
            "in_sample_sharpe": s.best.in_sample.stats.sharpe,
            "out_sample_sharpe": s.best.out_sample.stats.sharpe,
            "out_sample_rank": s.best_out_rank,
        },
        "grid": [
            {
                "band_pp": str(p.band_pp.normalize()),
                "check_every_days": p.check_every,
                "in_sample": brief(p.in_sample),
                "out_sample": brief(p.out_sample),
            }
            for p in s.points
        ],
        "buy_and_hold": {"in_sample": brief(s.hold_in), "out_sample": brief(s.hold_out)},
        "warning": s.warning,
    }
