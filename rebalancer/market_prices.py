"""Live prices from two independent sources: the chains' oracles and the aggregators' quotes.

The oracles (Chainlink on the EVM chains, Pyth on Solana) come with the balance refresh, in
the same request per chain; the quotes (``rebalancer.quote_prices``) are asked for afterwards.
For each asset the price used is the oracle's (the median where several chains have a feed),
and it must agree with the quotes within ``strategy.price_max_deviation_pct``, or the command
refuses (exit 3) naming the asset and both prices. A reading is not used when it is older than
its feed's heartbeat (or ``oracles.max_age_s``), when its Pyth confidence is wider than
``oracles.max_confidence_pct`` of the price, or when the feed reverted, answered a
non-positive price, or is the wrong account; the reason is shown. One source alone is enough
only when ``policy.allow_single_price_source`` says so.

The config's ``[prices]`` is an explicit override: an asset listed there is valued at that
price (checked against the quotes when ``price_check = "quotes"``, as before), whatever the
oracles say.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from statistics import median
from typing import TYPE_CHECKING, Any

from rebalancer.core.errors import RefusedError
from rebalancer.planner.prices import PriceDisagreementError, deviation_pct

if TYPE_CHECKING:
    from rebalancer.chains.oracles import OracleReading
    from rebalancer.config import Config
    from rebalancer.portfolio import Snapshot
    from rebalancer.quote_prices import QuotePrices
    from rebalancer.services import Services

MANUAL = "[prices]"


class MissingPriceError(RefusedError):
    """A held asset has no price two sources agree on (and a single one is not allowed)."""


@dataclass(frozen=True, slots=True)
class SourcePrice:
    """What one source said of one asset: its price and age, or why it is not used."""

    name: str
    usd: Decimal | None
    age_s: int | None = None
    reason: str | None = None

    @property
    def usable(self) -> bool:
        return self.usd is not None and self.reason is None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "usd": None if self.usd is None else str(self.usd),
            "age_s": self.age_s,
        }
        if self.reason is not None:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True, slots=True)
class AssetPrice:
    """The price used for one asset, where it came from, and every source heard."""

    asset: str
    usd: Decimal | None
    source: str | None
    sources: tuple[SourcePrice, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "usd": None if self.usd is None else str(self.usd),
            "source": self.source,
            "sources": [s.as_dict() for s in self.sources],
        }


@dataclass
class MarketPrices:
    """Every asset's price for one refresh; ``usd`` is what the planner and engine value at."""

    assets: dict[str, AssetPrice] = field(default_factory=dict)
    quotes: QuotePrices | None = None  # the quotes heard, reused by the depth fit

    @property
    def usd(self) -> dict[str, Decimal]:
        return {a: p.usd for a, p in sorted(self.assets.items()) if p.usd is not None}

    def source_of(self, asset: str) -> str | None:
        p = self.assets.get(asset)
        return None if p is None else p.source

    def as_dict(self) -> dict[str, Any]:
        return {a: p.as_dict() for a, p in sorted(self.assets.items())}


def assess(reading: OracleReading, now: float, config: Config) -> SourcePrice:
    """One oracle reading as a source: usable, or the reason it is not."""
    age = None if reading.updated_at is None else int(now - reading.updated_at)
    name = reading.feed.name
    if reading.reason is not None or reading.usd is None:
        return SourcePrice(name, reading.usd, age, reading.reason or "no answer")
    limit = config.oracles.max_age_s or reading.feed.heartbeat_s + config.oracles.grace_s
    if age is not None and age > limit:
        return SourcePrice(
            name, reading.usd, age, f"stale: updated {age} s ago, more than {limit} s"
        )
    if reading.conf_usd is not None:
        share = reading.conf_usd / reading.usd * 100
        if share > config.oracles.max_confidence_pct:
            return SourcePrice(
                name,
                reading.usd,
                age,
                f"confidence ±{reading.conf_usd} is {share:.2f}% of the price, more than "
                f"oracles.max_confidence_pct = {config.oracles.max_confidence_pct}",
            )
    return SourcePrice(name, reading.usd, age)


def resolve(
    config: Config,
    wanted: Iterable[str],
    held: set[str],
    readings: Sequence[OracleReading],
    quotes: QuotePrices | None,
    *,
    now: float,
    strict: bool = True,
    warn: Callable[[str], None] = lambda _m: None,
) -> MarketPrices:
    """The price of every ``wanted`` asset from the oracles, the quotes and ``[prices]``.

    A held asset (``held``) whose sources disagree, or that has fewer than the two sources
    the policy asks for, refuses (exit 3) when ``strict``; otherwise (``balances``) it is
    warned about and keeps the oracle's price. An asset that is not held but fails the same
    test is left unpriced (the planner will not buy it) with a warning.
    """
    manual = config.prices
    limit = config.strategy.price_max_deviation_pct
    single_ok = config.policy.allow_single_price_source
    by_asset: dict[str, list[OracleReading]] = {}
    for r in readings:
        by_asset.setdefault(r.feed.asset, []).append(r)
    out = MarketPrices()
    for asset in sorted(set(wanted)):
        sources = [assess(r, now, config) for r in by_asset.get(asset, [])]
        quote: SourcePrice | None = None
        if quotes is not None:
            if asset in quotes.table:
                quote = SourcePrice(quotes.via.get(asset, quotes.name), quotes.table[asset], 0)
            elif asset in quotes.skipped:
                quote = SourcePrice(quotes.name, None, None, quotes.skipped[asset])
        heard = [*sources, *([quote] if quote is not None else [])]
        if asset in manual:
            row = SourcePrice(MANUAL, manual[asset])
            out.assets[asset] = AssetPrice(asset, manual[asset], MANUAL, (row, *heard))
            continue
        usable = [s for s in sources if s.usable]
        oracle = median([s.usd for s in usable if s.usd is not None]) if usable else None
        oracle_name = usable[0].name if len(usable) == 1 else f"median of {len(usable)} oracles"
        if oracle is not None and len(usable) > 1:
            for s in usable:
                if s.usd is not None and deviation_pct(s.usd, oracle) > limit:
                    warn(f"price of {asset}: {s.name} says {s.usd}, {oracle_name} {oracle}")
        quoted = quote.usd if quote is not None and quote.usable else None
        fallback: tuple[Decimal | None, str | None] = (
            (oracle, oracle_name)
            if oracle is not None
            else (quoted, None if quote is None else quote.name)
        )
        problem = _check(asset, oracle, oracle_name, quoted, quote, sources, limit)
        price, used = fallback
        if isinstance(problem, MissingPriceError) and single_ok and price is not None:
            warn(f"{problem.message.split(':')[0]}: one source only; allowed by policy")
            problem = None
        if problem is not None:
            if asset in held:
                if strict:
                    raise problem
                warn(problem.message)
            else:
                if heard:  # NOTE: an asset nobody prices and nobody holds is not news
                    warn(f"{problem.message}; {asset} is left unpriced")
                price = used = None
        out.assets[asset] = AssetPrice(asset, price, used, tuple(heard))
    return out


def _check(
    asset: str,
    oracle: Decimal | None,
    oracle_name: str,
    quoted: Decimal | None,
    quote: SourcePrice | None,
    sources: list[SourcePrice],
    limit: Decimal,
) -> RefusedError | None:
    """None when the oracle and the quotes both stand and agree; else the refusal."""
    if oracle is not None and quoted is not None:
        dev = deviation_pct(oracle, quoted)
        if dev <= limit:
            return None
        assert quote is not None
        return PriceDisagreementError(
            f"price of {asset}: {oracle_name} says {oracle}, {quote.name} says {quoted} "
            f"({dev:.2f}% apart, more than strategy.price_max_deviation_pct = {limit}); "
            "refusing to plan"
        )
    why_oracle = (
        "; ".join(f"{s.name}: {s.reason}" for s in sources)
        if sources
        else "no oracle feed in chains/data/oracles.toml"
    )
    why_quote = (
        "quotes are off (price_check)"
        if quote is None
        else f"{quote.name}: {quote.reason or 'no quote'}"
    )
    if oracle is None and quoted is None:
        return MissingPriceError(
            f"price of {asset}: no source ({why_oracle}; {why_quote}); add {asset} to "
            "[prices] to value it by hand"
        )
    if oracle is not None:
        single = f"only {oracle_name} ({oracle}); {why_quote}"
    else:
        assert quote is not None
        single = f"only {quote.name} ({quoted}); {why_oracle}"
    return MissingPriceError(
        f"price of {asset}: {single}: two independent sources are required "
        "(policy.allow_single_price_source = true accepts one)"
    )


def quotes_wanted(config: Config, held: set[str]) -> bool:
    """Whether to ask the aggregators: ``price_check = "quotes"``, or by default whenever a
    held asset has no ``[prices]`` entry (the quotes are then its second source)."""
    if config.price_check is not None:
        return config.price_check == "quotes"
    return any(a not in config.prices for a in held)


def readable_assets(config: Config, registry: Any) -> set[str]:
    """Every asset with a token on a configured chain (what the planner may hold or buy)."""
    from rebalancer.portfolio import tokens_for

    return {t.asset for chain in config.chains for t in tokens_for(config, registry, chain)}


async def price_snapshot(
    services: Services,
    snap: Snapshot,
    *,
    strict: bool = True,
    warn: Callable[[str], None] = lambda _m: None,
    now: float | None = None,
) -> MarketPrices:
    """Price a fresh balance refresh with the command's Services: its oracle readings, the
    quotes when wanted, and ``[prices]``; checked as :func:`resolve` says."""
    from rebalancer.quote_prices import QuotePrices, check_quotes

    config, registry = services.config, services.registry
    held = {h.token.asset for h in snap.holdings if h.raw > 0}
    wanted = readable_assets(config, registry) | held | set(config.prices)
    quotes = None
    if quotes_wanted(config, held):
        if config.prices and all(a in config.prices for a in held):
            services.progress(f"prices: checking [prices] of {len(held)} asset(s) by quotes")
            # NOTE: the manual-price check of issue 4, unchanged: its message names [prices].
            quotes = await check_quotes(services, snap.holdings, config.prices, warn=warn)
        else:
            hints = {r.feed.asset: r.usd for r in snap.oracles if r.usd is not None}
            asked = wanted - set(config.prices)
            services.progress(f"prices: asking the aggregators to quote {len(asked)} asset(s)")
            quotes = await QuotePrices.fetch(
                services,
                snap.holdings,
                {**hints, **config.prices},
                assets=asked,
            )
    market = resolve(
        config,
        wanted,
        held,
        snap.oracles,
        quotes,
        now=time.time() if now is None else now,
        strict=strict,
        warn=warn,
    )
    market.quotes = quotes
    return market


def with_prices(config: Config, market: MarketPrices) -> Config:
    """The config with ``prices`` set to the prices of this refresh, so everything below that
    values a trade (policy limits, fee budget, journal snapshots) uses them."""
    return config.model_copy(update={"prices": market.usd})


def read_and_price(
    config: Config,
    registry: Any,
    *,
    strict: bool = True,
    warn: Callable[[str], None] = lambda _m: None,
    history: bool = False,
    progress: Callable[[str], None] | None = None,
) -> tuple[Snapshot, MarketPrices]:
    """One balance refresh (oracles in the same request) and its prices, in one event loop
    with one client; ``history`` also records them in the journal (``balances``)."""

    async def go() -> tuple[Snapshot, MarketPrices]:
        import httpx

        from rebalancer.portfolio import read_holdings
        from rebalancer.services import Services

        async with httpx.AsyncClient(timeout=30) as client:
            services = Services(config, registry, client, progress=progress)
            snap = await read_holdings(
                config, registry, adapters=services.adapter, progress=services.progress
            )
            market = await price_snapshot(services, snap, strict=strict, warn=warn)
            if history:
                from rebalancer.price_history import record_and_load

                await record_and_load(services, snap, market, time.time(), warn=warn)
            return snap, market

    return asyncio.run(go())


def priced_config(config: Config, registry: Any) -> Config:
    """The config with live prices for every asset ``[prices]`` does not cover (``apply``,
    ``simulate``, ``export`` value a plan's trades at today's prices); unchanged when
    ``[prices]`` already prices every readable asset."""
    if readable_assets(config, registry) <= set(config.prices):
        return config
    from rebalancer.output import warn

    _snap, market = read_and_price(config, registry, warn=warn)
    return with_prices(config, market)
