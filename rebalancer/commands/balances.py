"""``rebalancer balances``: holdings of every configured wallet on every chain."""

from __future__ import annotations

import argparse
import asyncio

from rebalancer.config import load_config
from rebalancer.output import emit_json, fmt_amount, table, warn


def run(args: argparse.Namespace) -> int:
    from rebalancer.portfolio import read_holdings

    config, registry = load_config(args.config)
    snap = asyncio.run(read_holdings(config, registry))
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
                        "price_usd": None,
                        "value_usd": None,
                    }
                    for h in holdings
                ],
                "total_usd": None,
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
            fmt_amount(h.amount),
            "-",
        )
        for h in holdings
    ]
    print(table(["chain", "wallet", "token", "asset", "amount", "value (USD)"], rows, right=(4, 5)))
    wallets = len({(h.chain, h.wallet) for h in holdings})
    print(
        f"\n{len(holdings)} holdings in {wallets} wallet/chain pairs; "
        "no prices yet, so no USD values."
    )
    for f in snap.failures:
        warn(f"{f.chain}: {f.token.symbol} for {names[(f.chain, f.wallet)]}: {f.reason}")
    return 0
