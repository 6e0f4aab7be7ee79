"""``rebalancer drift``: current vs target weights per class and asset, and which triggers fire.

Also home of ``load_inputs``, shared with ``plan`` and ``harvest``: the config, the registry,
holdings and prices (from ``--snapshot FILE`` offline, or live from the chains: balances and
oracles in one request per chain, cross-checked with the aggregators' quotes, ``[prices]`` as
an override), checked once.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rebalancer.core.errors import ConfigError, RefusedError
from rebalancer.output import emit_json, progress_unless, warn

if TYPE_CHECKING:
    from rebalancer.planner.drift import Drift


@dataclass
class Inputs:
    """Everything the planner needs for one command, already validated."""

    config: Any
    registry: Any
    targets: Any
    portfolio: Any
    now: datetime
    as_of: datetime | None = None
    last_rebalance: datetime | None = None
    history: dict[str, list[Decimal]] = field(default_factory=dict)
    lots: Sequence[Any] = ()
    failures: Sequence[Any] = ()
    names: dict[tuple[str, str], str] = field(default_factory=dict)
    market: Any = None  # rebalancer.market_prices.MarketPrices of a live read
    cost_inputs: dict[str, Any] = field(default_factory=dict)  # measured vs assumed, per chain
    snapshot: Any = None
    """The live read the portfolio was built from (a run records it as its "before")."""
    book: Any = None
    """The journal's lot book (rebalancer.reports.taxbook.Book), when the command plans."""
    read_at: datetime | None = None
    """When a live read was made, on the command's clock (the chains' on simulated worlds)."""
    settled: bool = False
    """A lazy read stopped before the quotes and costs: no trigger fires (nothing to plan)."""

    def drift(self) -> Drift:
        """The drift and trigger verdicts of these inputs (history and last rebalance too)."""
        from rebalancer.planner.drift import compute_drift

        return compute_drift(
            self.portfolio,
            self.targets,
            self.config.strategy,
            now=self.now,
            last_rebalance=self.last_rebalance,
            history=self.history,
        )


def _read(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} file {path!r} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what} file {path!r}: {exc}") from None


def _last_rebalance(config: Any) -> datetime | None:
    """When the journal last confirmed a trade (the calendar trigger's clock); a journal that
    does not exist yet is not created by a read-only command."""
    import os

    from rebalancer.journal import Journal
    from rebalancer.services import journal_path

    path = journal_path(config, os.environ)
    if not path.exists():
        return None
    journal = Journal(path)
    try:
        last = journal.last_rebalance()
    finally:
        journal.close()
    return None if last is None else datetime.fromtimestamp(last, UTC)


def load_inputs(
    args: argparse.Namespace,
    *,
    lots_arg: str | None = None,
    loaded: Any = None,
    costs: bool = False,
    record: bool = True,
    book: bool = False,
) -> Inputs:
    """Config, registry, targets, holdings at prices; every problem is a one-line error.

    ``loaded``: the command's ``(config, registry)`` if it loaded them already. Live holdings,
    their oracles, the quotes and the gas prices share one event loop and one client.
    ``costs``: measure the chains' costs for the plan's cost model (plan, run, demo).
    ``record``: record this refresh's prices in the journal (the price history); a read-only
    view that refreshes every few seconds (the dashboard) passes False.
    ``book``: read the journal's lot book for the plan's tax (``plan``, ``run``, ``harvest``);
    ``lots_arg`` (a lots CSV) or a snapshot's lots override its lots.
    """
    from rebalancer.config import load_config

    config, registry = loaded if loaded is not None else load_config(args.config)
    if getattr(args, "snapshot", None):
        # NOTE: a snapshot is its own offline world: its lots (or --lots), not the journal's
        return _finish(_snapshot_inputs(args, config, registry), lots_arg)

    async def live() -> Inputs:
        import httpx

        from rebalancer.services import Services

        # NOTE: aggregator quotes get longer than a balance read, as they did on their own
        timeout = 30 if config.price_check != "off" else 10
        # NOTE: progress for a person at a command line; a caller without ``json`` in its
        # arguments (the dashboard, the demo) reports its own.
        say = progress_unless(getattr(args, "json", True) or not record)
        async with httpx.AsyncClient(timeout=timeout) as client:
            return await live_inputs(
                Services(config, registry, client, progress=say),
                lots_arg=lots_arg,
                costs=costs,
                record=record,
                book=book,
            )

    return asyncio.run(live())


async def live_inputs(
    services: Any,
    *,
    lots_arg: str | None = None,
    costs: bool = False,
    record: bool = True,
    book: bool = False,
    lazy: bool = False,
) -> Inputs:
    """:func:`load_inputs` from the chains, with the command's Services (``run``, ``watch``).

    Balances and oracles in one request per chain, then the quotes (and, with ``costs``, the
    gas prices and the depth fit), then this refresh's prices recorded in the journal. The
    Services' config is replaced by one carrying these prices, so everything that values a
    trade afterwards (policy limits, fee budget, snapshots) uses them.

    ``lazy`` (the living demo's checks): the triggers are first asked on the oracles' prices
    alone; when none fires the read stops there (``Inputs.settled``), without the quotes and
    the cost measurement that only a plan needs. When one fires, everything is read as usual.
    """
    from rebalancer.market_prices import price_snapshot, with_prices
    from rebalancer.planner.model import Portfolio
    from rebalancer.price_history import record_and_load

    config, registry = services.config, services.registry
    now = await services.clock.refresh()
    targets, names, _wall = _common(config, registry)
    _refuse_without_sources(config)
    try:
        from rebalancer import portfolio as portfolio_mod
    except ImportError as exc:  # pragma: no cover - the foundation ships it
        raise ConfigError(f"live balances are not available ({exc}); use --snapshot FILE") from None
    live = await portfolio_mod.read_holdings(
        config, registry, adapters=services.adapter, progress=services.progress
    )
    failures = list(live.failures)
    history: dict[str, list[Decimal]] | None = None
    if lazy and not failures:
        quick = await _settled(services, live, targets, now, record)
        if isinstance(quick, Inputs):
            quick.names, quick.snapshot = names, live
            return _finish(quick, lots_arg)
        history = quick
    market = await price_snapshot(services, live, warn=warn, now=now.timestamp())
    config = with_prices(config, market)
    services.config = config
    cost_inputs: dict[str, Any] = {}
    if costs:
        from rebalancer.market_costs import measure_costs

        services.progress("costs: reading gas prices and fitting each route's depth")
        config, cost_inputs = await measure_costs(services, live, market)
        services.config = config
    portfolio = Portfolio.build(live.holdings, market.usd)
    inputs = Inputs(config, registry, targets, portfolio, now=now, names=names)
    inputs.market = market
    inputs.cost_inputs = cost_inputs
    if history is not None:
        inputs.history = history  # recorded by the lazy first look
    elif record:
        inputs.history = await record_and_load(
            services, live, market, services.clock.time(), warn=warn
        )
    inputs.read_at = now
    inputs.last_rebalance = _last_rebalance(config)
    inputs.failures = failures
    inputs.snapshot = live
    for f in failures:
        warn(
            f"{f.chain}: {f.token.symbol} of {names.get((f.chain, f.wallet), f.wallet)}: {f.reason}"
        )
    return _finish(inputs, lots_arg, book)


async def _settled(
    services: Any, live: Any, targets: Any, now: datetime, record: bool
) -> Inputs | dict[str, list[Decimal]] | None:
    """The lazy first look: Inputs marked settled when no trigger fires on the oracles'
    prices; else the price history it recorded (None: not recorded, or no oracle prices)."""
    from rebalancer.core.errors import RebalancerError
    from rebalancer.market_prices import price_snapshot, with_prices
    from rebalancer.planner.drift import compute_drift
    from rebalancer.planner.model import Portfolio
    from rebalancer.price_history import record_and_load

    config = services.config
    if not config.oracles.enabled:
        return None
    # NOTE: the oracles alone decide whether to look further; a plan is priced as always
    single = config.policy.model_copy(update={"allow_single_price_source": True})
    services.config = config.model_copy(update={"price_check": "off", "policy": single})
    try:
        market = await price_snapshot(services, live, now=now.timestamp())
    except RebalancerError:
        return None  # NOTE: the full read says what is wrong, with the quotes' view too
    finally:
        services.config = config
    history: dict[str, list[Decimal]] = {}
    if record:
        history = await record_and_load(services, live, market, services.clock.time())
    portfolio = Portfolio.build(live.holdings, market.usd)
    last = _last_rebalance(config)
    drift = compute_drift(
        portfolio, targets, config.strategy, now=now, last_rebalance=last, history=history
    )
    if drift.triggered:
        return history if record else None
    inputs = Inputs(with_prices(config, market), services.registry, targets, portfolio, now=now)
    inputs.market, inputs.history, inputs.last_rebalance = market, history, last
    inputs.read_at, inputs.settled = now, True
    services.config = inputs.config
    return inputs


def _refuse_without_sources(config: Any) -> None:
    """No [prices], no oracles and no quotes: nothing could price a live portfolio."""
    if not config.prices and not config.oracles.enabled and config.price_check == "off":
        raise ConfigError(
            "prices: no prices configured; add a [prices] table (asset = USD per unit) "
            'to the config, turn [oracles] or price_check = "quotes" on, or use '
            "--snapshot FILE"
        )


def _common(config: Any, registry: Any) -> tuple[Any, dict[tuple[str, str], str], datetime]:
    from rebalancer.planner.model import validate_all

    targets = validate_all(config.strategy, registry)
    names = {(c, w.address): w.name for w in config.wallets for c in w.chains}
    return targets, names, datetime.now(UTC)


def _snapshot_inputs(args: argparse.Namespace, config: Any, registry: Any) -> Inputs:
    from rebalancer.planner.model import Portfolio
    from rebalancer.planner.prices import ManualPrices, check_agreement
    from rebalancer.planner.snapshot import parse_snapshot

    targets, names, now = _common(config, registry)
    snap = parse_snapshot(_read(args.snapshot, "snapshot"), registry, Path(args.snapshot).name)
    if snap.reference_prices:
        held = {h.token.asset for h in snap.holdings if h.raw > 0}
        check_agreement(
            ManualPrices(snap.prices, "snapshot prices"),
            ManualPrices(snap.reference_prices, "reference_prices"),
            held,
            config.strategy.price_max_deviation_pct,
        )
    portfolio = Portfolio.build(snap.holdings, snap.prices)
    return Inputs(
        config,
        registry,
        targets,
        portfolio,
        now=snap.as_of or now,
        as_of=snap.as_of,
        last_rebalance=snap.last_rebalance,
        history=snap.history,
        lots=snap.lots,
        names=names,
    )


def _finish(inputs: Inputs, lots_arg: str | None, book: bool = False) -> Inputs:
    """The lots the plan's tax counts: ``--lots CSV``, else the snapshot's, else (``book``)
    the open lots of the journal's book. The book is read either way for its repurchase
    waits."""
    from rebalancer.planner.tax import parse_lots_csv

    if book:
        from rebalancer.commands.lots import read_book

        inputs.book = read_book(inputs.config, inputs.registry, inputs.now)
    if lots_arg:
        inputs.lots = parse_lots_csv(
            _read(lots_arg, "lots"), Path(lots_arg).name, known_assets=inputs.registry.assets
        )
    elif not inputs.lots and inputs.book is not None:
        inputs.lots = inputs.book.open_lots()
    return inputs


def refuse_partial(inputs: Inputs) -> None:
    """Planning on a portfolio with unread balances could buy what is already held."""
    if inputs.failures:
        f = inputs.failures[0]
        raise RefusedError(
            f"{len(inputs.failures)} balance(s) could not be read (first: {f.token.symbol} on "
            f"{f.chain}: {f.reason}); refusing to plan on a partial portfolio"
        )


def run(args: argparse.Namespace) -> int:
    from rebalancer.planner.render import drift_json, drift_text

    inputs = load_inputs(args)
    drift = inputs.drift()
    if args.json:
        emit_json(drift_json(drift))
    else:
        print(drift_text(drift))
    return 0
