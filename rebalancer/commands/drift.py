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
from rebalancer.output import emit_json, warn


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
    args: argparse.Namespace, *, lots_arg: str | None = None, costs: bool = False
) -> Inputs:
    """Config, registry, targets, holdings at prices; every problem is a one-line error.

    ``costs``: measure the chains' gas prices for the plan's cost model (plan, run, demo).
    """
    from rebalancer.config import load_config
    from rebalancer.planner.model import Portfolio, validate_all
    from rebalancer.planner.prices import ManualPrices, check_agreement
    from rebalancer.planner.snapshot import parse_snapshot
    from rebalancer.planner.tax import parse_lots_csv

    config, registry = load_config(args.config)
    strategy = config.strategy
    targets = validate_all(strategy, registry)
    names = {(c, w.address): w.name for w in config.wallets for c in w.chains}
    now = datetime.now(UTC)
    if getattr(args, "snapshot", None):
        snap = parse_snapshot(_read(args.snapshot, "snapshot"), registry, Path(args.snapshot).name)
        if snap.reference_prices:
            held = {h.token.asset for h in snap.holdings if h.raw > 0}
            check_agreement(
                ManualPrices(snap.prices, "snapshot prices"),
                ManualPrices(snap.reference_prices, "reference_prices"),
                held,
                strategy.price_max_deviation_pct,
            )
        portfolio = Portfolio.build(snap.holdings, snap.prices)
        inputs = Inputs(
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
    else:
        if not config.prices and not config.oracles.enabled and config.price_check == "off":
            raise ConfigError(
                "prices: no prices configured; add a [prices] table (asset = USD per unit) "
                'to the config, turn [oracles] or price_check = "quotes" on, or use '
                "--snapshot FILE"
            )
        try:
            from rebalancer.portfolio import read_holdings
        except ImportError as exc:  # pragma: no cover - the foundation ships it
            raise ConfigError(
                f"live balances are not available ({exc}); use --snapshot FILE"
            ) from None
        from rebalancer.market_prices import live_prices, quotes_wanted, with_prices

        live = asyncio.run(read_holdings(config, registry))
        failures = list(live.failures)
        market = live_prices(config, registry, live, warn=warn)
        config = with_prices(config, market)
        cost_inputs: dict[str, Any] = {}
        if costs:
            from rebalancer.endpoints import resolve_rpc
            from rebalancer.market_costs import measure

            depths = None
            held = {h.token.asset for h in live.holdings if h.raw > 0}
            if quotes_wanted(config, held):
                from rebalancer.quote_prices import fetch_depths

                known = {} if market.quotes is None else dict(market.quotes.table)
                depths = fetch_depths(
                    config, registry, live.holdings, market.usd, market.usd, known=known
                )
            urls = {name: resolve_rpc(name, c.rpc) for name, c in config.chains.items()}
            from rebalancer.market_costs import recorded_gas

            config, cost_inputs = measure(
                config, registry, urls, market.usd, depths, recorded_gas(config, registry)
            )
        portfolio = Portfolio.build(live.holdings, market.usd)
        inputs = Inputs(config, registry, targets, portfolio, now=now, names=names)
        inputs.market = market
        inputs.cost_inputs = cost_inputs
        from rebalancer.price_history import record_and_load

        inputs.history = record_and_load(config, registry, live, market, time.time(), warn=warn)
        inputs.last_rebalance = _last_rebalance(config)
        inputs.failures = failures
        for f in failures:
            warn(
                f"{f.chain}: {f.token.symbol} of {names.get((f.chain, f.wallet), f.wallet)}: "
                f"{f.reason}"
            )
    if lots_arg:
        inputs.lots = parse_lots_csv(
            _read(lots_arg, "lots"), Path(lots_arg).name, known_assets=registry.assets
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
