"""``rebalancer drift``: current vs target weights per class and asset, and which triggers fire.

Also home of ``load_inputs``, shared with ``plan`` and ``harvest``: the config, the registry,
holdings and prices (from ``--snapshot FILE`` offline, or live from the chains: balances and
oracles in one request per chain, cross-checked with the aggregators' quotes, ``[prices]`` as
an override), checked once.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from rebalancer.core.errors import ConfigError, RefusedError
from rebalancer.output import emit_json, progress_unless, warn


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
) -> Inputs:
    """Config, registry, targets, holdings at prices; every problem is a one-line error.

    ``loaded``: the command's ``(config, registry)`` if it loaded them already. Live holdings,
    their oracles, the quotes and the gas prices share one event loop and one client.
    ``costs``: measure the chains' costs for the plan's cost model (plan, run, demo).
    ``record``: record this refresh's prices in the journal (the price history); a read-only
    view that refreshes every few seconds (the dashboard) passes False.
    """
    from rebalancer.config import load_config

    config, registry = loaded if loaded is not None else load_config(args.config)
    if getattr(args, "snapshot", None):
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
            )

    return asyncio.run(live())


async def live_inputs(
    services: Any, *, lots_arg: str | None = None, costs: bool = False, record: bool = True
) -> Inputs:
    """:func:`load_inputs` from the chains, with the command's Services (``run``, ``watch``).

    Balances and oracles in one request per chain, then the quotes (and, with ``costs``, the
    gas prices and the depth fit), then this refresh's prices recorded in the journal. The
    Services' config is replaced by one carrying these prices, so everything that values a
    trade afterwards (policy limits, fee budget, snapshots) uses them.
    """
    from rebalancer.market_prices import price_snapshot, with_prices
    from rebalancer.planner.model import Portfolio
    from rebalancer.price_history import record_and_load

    config, registry = services.config, services.registry
    targets, names, now = _common(config, registry)
    _refuse_without_sources(config)
    try:
        from rebalancer import portfolio as portfolio_mod
    except ImportError as exc:  # pragma: no cover - the foundation ships it
        raise ConfigError(f"live balances are not available ({exc}); use --snapshot FILE") from None
    live = await portfolio_mod.read_holdings(
        config, registry, adapters=services.adapter, progress=services.progress
    )
    failures = list(live.failures)
    market = await price_snapshot(services, live, warn=warn)
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
    if record:
        inputs.history = await record_and_load(services, live, market, time.time(), warn=warn)
    inputs.last_rebalance = _last_rebalance(config)
    inputs.failures = failures
    inputs.snapshot = live
    for f in failures:
        warn(
            f"{f.chain}: {f.token.symbol} of {names.get((f.chain, f.wallet), f.wallet)}: {f.reason}"
        )
    return _finish(inputs, lots_arg)


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


def _finish(inputs: Inputs, lots_arg: str | None) -> Inputs:
    from rebalancer.planner.tax import parse_lots_csv

    if lots_arg:
        inputs.lots = parse_lots_csv(
            _read(lots_arg, "lots"), Path(lots_arg).name, known_assets=inputs.registry.assets
        )
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
    from rebalancer.planner.drift import compute_drift
    from rebalancer.planner.render import drift_json, drift_text

    inputs = load_inputs(args)
    drift = compute_drift(
        inputs.portfolio,
        inputs.targets,
        inputs.config.strategy,
        now=inputs.now,
        last_rebalance=inputs.last_rebalance,
        history=inputs.history,
    )
    if args.json:
        emit_json(drift_json(drift))
    else:
        print(drift_text(drift))
    return 0
