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
from typing import TYPE_CHECKING

from rebalancer.chains.oracles import OracleKind
from rebalancer.planner.history import closes, period_s

if TYPE_CHECKING:
    from rebalancer.chains.oracles import OracleReading
    from rebalancer.config import Config
    from rebalancer.journal import Journal
    from rebalancer.market_prices import MarketPrices
    from rebalancer.portfolio import Snapshot
    from rebalancer.services import Services

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


async def record_and_load(
    services: Services,
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

    config = services.config
    journal = Journal(
        journal_path(config, os.environ), services.clock.time, durable=not services.clock.simulated
    )
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
            await _backfill(services, snap, todo, journal, want * per, warn)
            points = journal.price_points(since)
        return {a: closes(p, per) for a, p in points.items()}
    finally:
        journal.close()


async def _backfill(
    services: Services,
    snap: Snapshot,
    assets: list[str],
    journal: Journal,
    span_s: int,
    warn: Callable[[str], None],
) -> None:
    """Walk each asset's first usable Chainlink feed back over ``span_s`` seconds."""
    from rebalancer.core.errors import ChainError

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
    readings = list(picked.values())
    jobs = []
    for r in readings:
        count = min(MAX_BACKFILL_ROUNDS, span_s // max(r.feed.heartbeat_s, 1) + 1)
        assert r.round_id is not None
        jobs.append(services.adapter(r.feed.chain).past_rounds(r.feed, r.round_id, count))
    results = await asyncio.gather(*jobs, return_exceptions=True)
    for r, res in zip(readings, results, strict=True):
        if isinstance(res, ChainError):
            continue  # NOTE: history is best effort; the prices themselves were checked
        if isinstance(res, BaseException):
            raise res
        journal.record_points(r.feed.asset, res, "backfill")
        journal.mark_backfilled(r.feed.asset)  # NOTE: once: a feed's past does not grow
        if not res:
            warn(f"price history of {r.feed.asset}: its oracle has no past rounds to backfill")
