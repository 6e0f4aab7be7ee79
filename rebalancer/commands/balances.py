"""``rebalancer balances``: holdings of every configured wallet on every chain.

USD values come from the live prices of the same refresh (the chains' oracles, read in the same
request as the balances, cross-checked with the aggregators' quotes; ``[prices]`` overrides),
each holding naming its price source. Disagreeing or missing sources are warnings here (a plan
refuses on them); an asset without a price shows null (JSON) or ``-`` (table), and the total
counts only what is priced.
"""

from __future__ import annotations

import argparse
from decimal import Decimal

from rebalancer.config import load_config
from rebalancer.output import emit_json, fmt_units, progress_unless, table, warn

_CENT = Decimal("0.01")


def run(args: argparse.Namespace) -> int:
    from rebalancer.market_prices import read_and_price

    config, registry = load_config(args.config)
    snap, market = read_and_price(
        config,
        registry,
        strict=False,
        warn=warn,
        history=True,
        progress=progress_unless(args.json),
    )
    names = {(c, w.address): w.name for w in config.wallets for c in w.chains}
    order = {name: i for i, name in enumerate(config.chains)}
    holdings = sorted(
        snap.holdings,
        key=lambda h: (
            order[h.chain],
            names[(h.chain, h.wallet)],
            not h.token.is_native,
            h.token.asset,
            h.token.symbol,
        ),
    )
    prices = market.usd
    values = [
        None if h.token.asset not in prices else h.amount * prices[h.token.asset] for h in holdings
    ]
    priced = [v for v in values if v is not None]
    total = sum(priced, Decimal(0)) if priced else None
    if args.json:
        emit_json(
            {
                "holdings": [
                    {
                        "chain": h.chain,
                        "wallet": h.wallet,
                        "wallet_name": names[(h.chain, h.wallet)],
                        "asset": h.token.asset,
                        "token": h.token.id,
                        "symbol": h.token.symbol,
                        "decimals": h.token.decimals,
                        "raw": str(h.raw),
                        "amount": format(h.amount.normalize(), "f"),
                        "price_usd": None
                        if h.token.asset not in prices
                        else str(prices[h.token.asset]),
                        "value_usd": None if v is None else str(v.quantize(_CENT)),
                        "price_source": market.source_of(h.token.asset),
                    }
                    for h, v in zip(holdings, values, strict=True)
                ],
                "total_usd": None if total is None else str(total.quantize(_CENT)),
                "prices": market.as_dict(),
                "failures": [
                    {
                        "chain": f.chain,
                        "wallet": f.wallet,
                        "token": f.token.id,
                        "symbol": f.token.symbol,
                        "reason": f.reason,
                    }
                    for f in snap.failures
                ],
            }
        )
        return 0
    rows = [
        (
            h.chain,
            names[(h.chain, h.wallet)],
            h.token.symbol,
            h.token.asset,
            fmt_units(h.amount),
            "-" if v is None else f"{v:,.2f}",
            market.source_of(h.token.asset) or "-",
        )
        for h, v in zip(holdings, values, strict=True)
    ]
    headers = ["chain", "wallet", "token", "asset", "amount", "value (USD)", "price source"]
    print(table(headers, rows, right=(4, 5)))
    wallets = len({(h.chain, h.wallet) for h in holdings})
    summary = f"\n{len(holdings)} holdings in {wallets} wallet/chain pairs"
    if total is not None:
        summary += f"; total ${total:,.2f} at the live prices"
        if len(priced) < len(values):
            summary += f" ({len(values) - len(priced)} holding(s) without a price left out)"
    else:
        summary += "; no price source answered, so no USD values"
    print(summary)
    for f in snap.failures:
        warn(f"{f.chain}: {f.token.symbol} for {names[(f.chain, f.wallet)]}: {f.reason}")
    return 0
