"""Prices from the aggregators themselves: what a modest swap into USDC pays per unit.

The aggregator-quote price source of issue 4, next to the manual ``[prices]`` table. For each
held asset it quotes about $1,000 worth (at the manual price; 1 unit without one) into USDC on
the chain holding most of the asset, through the aggregator that would trade it there, and
reads USD per unit off the quote with integer arithmetic on base units. USDC is the unit of
account (1 by definition); USDT is quoted like any asset and is 1 only when it cannot be.
``check_quote_prices`` refuses to plan (exit 3) when the two sources disagree on an asset by
more than ``strategy.price_max_deviation_pct``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from typing import TYPE_CHECKING, Any

from rebalancer.core import bounds
from rebalancer.core.errors import CorruptResponseError
from rebalancer.core.types import Holding, Token
from rebalancer.dex.base import NoRouteError, SwapRequest
from rebalancer.planner.model import to_base_units
from rebalancer.planner.prices import ManualPrices, check_agreement

if TYPE_CHECKING:
    from rebalancer.config import Config
    from rebalancer.services import Services

QUOTE_ASSET = "USDC"
STABLES = frozenset({"USDC", "USDT"})
NOTIONAL_USD = Decimal(1000)
PRICE_DIGITS = 12  # significant digits kept of a quoted price (far below any deviation limit)


@dataclass(frozen=True)
class _Probe:
    """One quote to ask: sell ``amount`` of ``token`` for USDC on ``chain`` as ``wallet``."""

    asset: str
    chain: str
    wallet: str
    token: Token
    usdc: Token
    amount: int


@dataclass(frozen=True)
class QuotePrices:
    """USD per unit of each asset as the aggregators quote it (a ``PriceSource``).

    ``skipped`` names the assets no quote could price, with the reason.
    """

    table: Mapping[str, Decimal]
    name: str = "aggregator quotes"
    skipped: Mapping[str, str] = field(default_factory=dict)
    via: Mapping[str, str] = field(default_factory=dict)  # asset -> "1inch quote", ...

    def prices(self, assets: Iterable[str]) -> dict[str, Decimal]:
        return {a: self.table[a] for a in assets if a in self.table}

    @classmethod
    async def fetch(
        cls,
        services: Services,
        holdings: Sequence[Holding],
        manual: Mapping[str, Decimal],
        *,
        notional_usd: Decimal = NOTIONAL_USD,
        assets: Iterable[str] | None = None,
    ) -> QuotePrices:
        """Quote every held asset (or ``assets``); one aggregator's quotes go one at a time
        (free API tiers allow about one request a second), different aggregators run
        concurrently. ``manual`` prices size the probes (about $1,000 each)."""
        table: dict[str, Decimal] = {}
        skipped: dict[str, str] = {}
        via: dict[str, str] = {}
        by_aggregator: dict[int, list[_Probe]] = {}
        wanted = {h.token.asset for h in holdings if h.raw > 0} if assets is None else assets
        for asset in sorted(set(wanted)):
            if asset == QUOTE_ASSET:
                table[asset] = Decimal(1)
                via[asset] = "unit of account"
                continue
            probe = _probe(services, holdings, asset, manual.get(asset), notional_usd)
            if probe is None:
                if asset in STABLES:
                    table[asset] = Decimal(1)
                    via[asset] = "stablecoin at par (no quote)"
                else:
                    skipped[asset] = f"no configured chain has both {asset} and {QUOTE_ASSET}"
                continue
            by_aggregator.setdefault(id(services.aggregator(probe.chain)), []).append(probe)

        async def run(probes: list[_Probe]) -> None:
            for p in probes:
                name = getattr(services.aggregator(p.chain), "name", "aggregator")
                try:
                    table[p.asset] = await _quote(services, p)
                    via[p.asset] = f"{name} quote"
                except NoRouteError as exc:
                    if p.asset in STABLES:
                        table[p.asset] = Decimal(1)
                        via[p.asset] = "stablecoin at par (no route)"
                    else:
                        skipped[p.asset] = exc.message

        await asyncio.gather(*(run(ps) for ps in by_aggregator.values()))
        return cls(
            dict(sorted(table.items())),
            skipped=dict(sorted(skipped.items())),
            via=dict(sorted(via.items())),
        )


def _probe(
    services: Services,
    holdings: Sequence[Holding],
    asset: str,
    manual_price: Decimal | None,
    notional_usd: Decimal,
) -> _Probe | None:
    """Where and how much of ``asset`` to quote: the configured chain holding most of it
    (in whole units) among those with a USDC token, its most-held token and wallet there."""
    reg = services.registry
    held: dict[str, Decimal] = {}
    for h in holdings:
        if h.token.asset == asset and h.raw > 0:
            held[h.chain] = held.get(h.chain, Decimal(0)) + Decimal(h.raw).scaleb(-h.token.decimals)
    order = list(services.config.chains)
    candidates = [
        c
        for c in order
        if reg.by_symbol(c, QUOTE_ASSET) is not None
        and any(t.asset == asset for t in reg.tokens_on(c))
    ]
    if not candidates:
        return None
    chain = min(candidates, key=lambda c: (-held.get(c, Decimal(0)), order.index(c)))
    usdc = reg.by_symbol(chain, QUOTE_ASSET)
    assert usdc is not None
    here = [h for h in holdings if h.chain == chain and h.token.asset == asset and h.raw > 0]
    if here:
        best = max(here, key=lambda h: h.raw)
        token, wallet = best.token, best.wallet
    else:
        token = next(t for t in reg.tokens_on(chain) if t.asset == asset)
        wallets = [w.address for w in services.config.wallets if chain in w.chains]
        if not wallets:
            return None
        wallet = wallets[0]
    if manual_price is not None and manual_price > 0:
        amount = max(to_base_units(notional_usd / manual_price, token.decimals), 1)
    else:
        amount = 10**token.decimals
    return _Probe(asset, chain, wallet, token, usdc, amount)


async def _quote(services: Services, p: _Probe) -> Decimal:
    """USD per whole unit from one quote: (out / 10^usdc_dec) / (in / 10^dec), computed as
    one exact integer ratio and rounded once."""
    request = SwapRequest(
        chain=p.chain,
        chain_id=services.registry.chains[p.chain].chain_id,
        wallet=p.wallet,
        sell=p.token,
        buy=p.usdc,
        amount_in=p.amount,
        slippage_bps=services.config.policy.max_slippage_bps,
    )
    quote = await services.aggregator(p.chain).quote(request)
    if quote.expected_out <= 0:
        raise NoRouteError(f"{p.chain}: the quote for {p.token.symbol} -> USDC is 0")
    numerator = quote.expected_out * 10**p.token.decimals
    denominator = p.amount * 10**p.usdc.decimals
    with localcontext() as ctx:
        ctx.prec = PRICE_DIGITS
        usd = Decimal(numerator) / Decimal(denominator)
    what = f"{p.chain} aggregator's quote price of {p.token.symbol}"
    return bounds.price(usd, what, error=CorruptResponseError)


def check_quote_prices(
    config: Config,
    registry: Any,
    holdings: Sequence[Holding],
    manual: Mapping[str, Decimal],
    *,
    warn: Callable[[str], None] = lambda _m: None,
    env: Mapping[str, str] | None = None,
) -> QuotePrices:
    """Quote the held assets and refuse (PriceDisagreementError, exit 3) to go on with
    manual prices the quotes disagree with by more than the strategy allows (its own loop:
    a command that already runs one calls :func:`check_quotes` with its Services)."""
    return asyncio.run(_with_services(config, registry, holdings, manual, warn, env))


async def check_quotes(
    services: Services,
    holdings: Sequence[Holding],
    manual: Mapping[str, Decimal],
    *,
    warn: Callable[[str], None] = lambda _m: None,
) -> QuotePrices:
    """:func:`check_quote_prices` with the command's own Services (client, aggregators)."""
    quotes = await QuotePrices.fetch(services, holdings, manual)
    for asset, why in quotes.skipped.items():
        warn(f"price check: {asset} not quoted ({why}); its manual price is not checked")
    held = {h.token.asset for h in holdings if h.raw > 0}
    check_agreement(
        ManualPrices(dict(manual), "[prices]"),
        quotes,
        held,
        services.config.strategy.price_max_deviation_pct,
    )
    return quotes


async def _with_services(
    config: Config,
    registry: Any,
    holdings: Sequence[Holding],
    manual: Mapping[str, Decimal],
    warn: Callable[[str], None],
    env: Mapping[str, str] | None,
) -> QuotePrices:
    import httpx

    from rebalancer.services import Services

    async with httpx.AsyncClient(timeout=30) as client:
        services = Services(config, registry, client, env=env)
        return await check_quotes(services, holdings, manual, warn=warn)


DEPTH_SIZES_USD = (Decimal(1000), Decimal(10_000))


async def fit_depths(
    services: Services,
    holdings: Sequence[Holding],
    prices: Mapping[str, Decimal],
    assets: Iterable[str],
    known: Mapping[str, Decimal],
) -> dict[str, tuple[str, Decimal | None, str]]:
    """Market depth per asset fitted from the aggregators' quotes at two sizes (the plan's
    price-impact model): (chain, depth or None, how). ``known``: unit prices already quoted
    at the small size, not asked again."""
    small, large = DEPTH_SIZES_USD
    by_family: dict[str, list[tuple[_Probe, _Probe]]] = {}
    for asset in sorted(set(assets)):
        price = prices.get(asset)
        if asset == QUOTE_ASSET or price is None:
            continue
        p1 = _probe(services, holdings, asset, price, small)
        p2 = _probe(services, holdings, asset, price, large)
        if p1 is None or p2 is None:
            continue
        by_family.setdefault(services.aggregator_name(p1.chain), []).append((p1, p2))
    out: dict[str, tuple[str, Decimal | None, str]] = {}

    async def run(pairs: list[tuple[_Probe, _Probe]]) -> None:
        for p1, p2 in pairs:
            name = services.aggregator_name(p1.chain)
            how = f"fitted from {name} quotes of ${small:,.0f} and ${large:,.0f}"
            try:
                # NOTE: the price quote of the same asset was the same ~$1,000 probe
                q1 = known[p1.asset] if p1.asset in known else await _quote(services, p1)
                q2 = await _quote(services, p2)
            except NoRouteError as exc:
                out[p1.asset] = (p1.chain, None, f"not fitted: {exc.message}")
                continue
            if q2 >= q1:
                out[p1.asset] = (p1.chain, None, "not fitted: no impact between the two sizes")
                continue
            # NOTE: impact_usd = V**2 / depth gives a unit price falling by (V2 - V1) / depth
            # between the sizes; the whole fall is put on the asset's leg (USDC is the deep one).
            with localcontext() as ctx:
                ctx.prec = PRICE_DIGITS
                depth = (large - small) * q1 / (q1 - q2)
            out[p1.asset] = (p1.chain, depth.quantize(Decimal(1)), how)

    await asyncio.gather(*(run(ps) for ps in by_family.values()))
    return out
