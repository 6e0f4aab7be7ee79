"""Price history for the live volatility and momentum triggers, kept in the journal.

Every live refresh records the prices it used (source ``live``). When a trigger needs more
history than the journal holds for an asset, the asset's Chainlink feed is walked back once with
``getRoundData`` (source ``backfill``: the oracle's own past rounds). The points become evenly
spaced closes (``planner.history.closes``) at the triggers' period; what is still too short is
said plainly by the planner and moves nothing.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from rebalancer.chains.oracles import OracleKind
from rebalancer.planner.history import closes, period_s

if TYPE_CHECKING:
    from rebalancer.chains.oracles import OracleReading
    from rebalancer.config import Config
    from rebalancer.journal import Journal
    from rebalancer.market_prices import MarketPrices
    from rebalancer.portfolio import Snapshot

MAX_BACKFILL_ROUNDS = 2000  # per asset, once: about 80 days of an hourly feed


def needs(config: Config) -> tuple[int, int]:
    """(closes needed, seconds per close) for the configured triggers; (0, 0) without any."""
    t = config.strategy.triggers
    want, per = 0, 86400
    if t.volatility is not None:
        want = t.volatility.window + 1
        per = period_s(t.volatility.periods_per_year)
    if t.momentum is not None:
        want = max(want, t.momentum.lookback + 1)
    return want, per


def record_and_load(
    config: Config,
    registry: Any,
    snap: Snapshot,
    market: MarketPrices,
    now: float,
    *,
    warn: Callable[[str], None] = lambda _m: None,
) -> dict[str, list[Decimal]]:
    """Record this refresh's prices; return each asset's closes for the triggers (backfilled
    from the oracles' past rounds the first time they are short)."""
    from rebalancer.journal import Journal
    from rebalancer.services import journal_path

    journal = Journal(journal_path(config, os.environ))
    try:
        journal.record_prices(int(now), market.usd, "live")
        want, per = needs(config)
        if want == 0:
            return {}
        since = int(now) - want * per
        points = journal.price_points(since)
        short = [a for a in market.usd if len(closes(points.get(a, []), per)) < want]
        todo = [a for a in short if not journal.backfilled(a)]
        if todo:
            _backfill(config, registry, snap, todo, journal, want * per, warn)
            points = journal.price_points(since)
        return {a: closes(p, per) for a, p in points.items()}
    finally:
        journal.close()


def _backfill(
    config: Config,
    registry: Any,
    snap: Snapshot,
    assets: list[str],
    journal: Journal,
    span_s: int,
    warn: Callable[[str], None],
) -> None:
    """Walk each asset's first usable Chainlink feed back over ``span_s`` seconds."""
    picked: dict[str, OracleReading] = {}
    for r in snap.oracles:
        if (
            r.feed.kind == OracleKind.CHAINLINK
            and r.feed.asset in assets
            and r.round_id is not None
            and r.usd is not None
            and r.feed.asset not in picked
        ):
            picked[r.feed.asset] = r
    if not picked:
        return
    got = asyncio.run(_read_rounds(config, registry, list(picked.values()), span_s))
    for asset in assets:
        points = got.get(asset)
        if points is None:
            continue
        journal.record_points(asset, points, "backfill")
        journal.mark_backfilled(asset)  # NOTE: once: a feed's past does not grow backwards
        if not points:
            warn(f"price history of {asset}: its oracle has no past rounds to backfill from")


async def _read_rounds(
    config: Config, registry: Any, readings: list[OracleReading], span_s: int
) -> dict[str, list[tuple[int, Decimal]]]:
    import httpx

    from rebalancer.chains.evm import EvmChain
    from rebalancer.endpoints import resolve_rpc

    out: dict[str, list[tuple[int, Decimal]]] = {}
    async with httpx.AsyncClient(timeout=30) as client:
        adapters: dict[str, EvmChain] = {}
        for r in readings:
            chain = r.feed.chain
            if chain not in adapters:
                url = resolve_rpc(chain, config.chains[chain].rpc, None, None)
                adapters[chain] = EvmChain(registry.chains[chain], url, client)
        jobs = []
        for r in readings:
            count = min(MAX_BACKFILL_ROUNDS, span_s // max(r.feed.heartbeat_s, 1) + 1)
            assert r.round_id is not None
            jobs.append(adapters[r.feed.chain].past_rounds(r.feed, r.round_id, count))
        from rebalancer.core.errors import ChainError

        results = await asyncio.gather(*jobs, return_exceptions=True)
        for r, res in zip(readings, results, strict=True):
            if isinstance(res, ChainError):
                continue  # NOTE: history is best effort; the prices themselves were checked
            if isinstance(res, BaseException):
                raise res
            out[r.feed.asset] = res
    return out
