"""``rebalancer drift``: current vs target weights per class and asset, and which triggers fire.

Also home of ``load_inputs``, shared with ``plan`` and ``harvest``: the config, the registry,
holdings and prices (from ``--snapshot FILE`` offline, or the chains and the config's manual
prices live), checked once.
"""

from __future__ import annotations

import argparse
import asyncio
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
    snapshot: Any = None
    """The live read the portfolio was built from (a run records it as its "before")."""


def _read(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} file {path!r} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what} file {path!r}: {exc}") from None


def _config_prices(config: Any) -> dict[str, Decimal] | None:
    """The config's manual ``[prices]`` table (asset -> USD), when the config has one."""
    prices = getattr(config, "prices", None)
    if prices is None:
        return None
    table = prices if isinstance(prices, dict) else getattr(prices, "manual", None)
    return {str(k): Decimal(str(v)) for k, v in table.items()} if table else None


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
    args: argparse.Namespace, *, lots_arg: str | None = None, loaded: Any = None
) -> Inputs:
    """Config, registry, targets, holdings at prices; every problem is a one-line error.

    ``loaded``: the command's ``(config, registry)`` if it loaded them already. Live holdings
    and the quote check share one event loop and one client.
    """
    from rebalancer.config import load_config

    config, registry = loaded if loaded is not None else load_config(args.config)
    if getattr(args, "snapshot", None):
        return _finish(_snapshot_inputs(args, config, registry), lots_arg)

    async def live() -> Inputs:
        import httpx

        from rebalancer.services import Services

        # NOTE: aggregator quotes get longer than a balance read, as they did on their own
        timeout = 30 if config.price_check == "quotes" else 10
        async with httpx.AsyncClient(timeout=timeout) as client:
            return await live_inputs(Services(config, registry, client), lots_arg=lots_arg)

    return asyncio.run(live())


async def live_inputs(services: Any, *, lots_arg: str | None = None) -> Inputs:
    """:func:`load_inputs` from the chains, with the command's Services (``run``, ``watch``)."""
    from rebalancer.planner.model import Portfolio
    from rebalancer.planner.prices import ManualPrices

    config, registry = services.config, services.registry
    targets, names, now = _common(config, registry)
    prices = _config_prices_or_refuse(config)
    try:
        from rebalancer import portfolio as portfolio_mod
    except ImportError as exc:  # pragma: no cover - the foundation ships it
        raise ConfigError(f"live balances are not available ({exc}); use --snapshot FILE") from None
    live = await portfolio_mod.read_holdings(config, registry, adapters=services.adapter)
    failures = list(live.failures)
    if config.price_check == "quotes":
        from rebalancer.quote_prices import check_quotes

        await check_quotes(services, live.holdings, prices, warn=warn)
    portfolio = Portfolio.build(live.holdings, ManualPrices(prices, "prices").table)
    inputs = Inputs(config, registry, targets, portfolio, now=now, names=names)
    inputs.last_rebalance = _last_rebalance(config)
    inputs.failures = failures
    inputs.snapshot = live
    for f in failures:
        warn(
            f"{f.chain}: {f.token.symbol} of {names.get((f.chain, f.wallet), f.wallet)}: {f.reason}"
        )
    return _finish(inputs, lots_arg)


def _config_prices_or_refuse(config: Any) -> dict[str, Decimal]:
    prices = _config_prices(config)
    if not prices:
        raise ConfigError(
            "prices: no prices configured; add a [prices] table (asset = USD per unit) "
            "to the config, or use --snapshot FILE"
        )
    return prices


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
