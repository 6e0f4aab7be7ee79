"""Read every configured wallet on every chain, all chains at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rebalancer.chains.base import ChainAdapter, ReadFailure, adapter_for
from rebalancer.chains.oracles import OracleReading, feeds_on
from rebalancer.chains.registry import Registry
from rebalancer.config import Config
from rebalancer.core.types import Holding, Token
from rebalancer.endpoints import resolve_rpc


@dataclass
class Snapshot:
    """Holdings across all chains, the balances that could not be read, and what the chains'
    price oracles said in the same requests."""

    holdings: list[Holding] = field(default_factory=list)
    failures: list[ReadFailure] = field(default_factory=list)
    oracles: list[OracleReading] = field(default_factory=list)


def tokens_for(config: Config, registry: Registry, chain: str) -> list[Token]:
    """The tokens to read on ``chain``: the config's list, or every registry token there."""
    wanted = config.chains[chain].tokens
    if wanted is None:
        return registry.tokens_on(chain)
    native = registry.native(chain)
    picked = [registry.by_symbol(chain, s) for s in wanted]
    return [native, *(t for t in picked if t is not None and t != native)]


async def read_holdings(
    config: Config,
    registry: Registry,
    *,
    env: Mapping[str, str] | None = None,
    local_dir: Path | None = None,
    timeout: float = 10.0,
    adapters: Callable[[str], ChainAdapter] | None = None,
    progress: Callable[[str], None] | None = None,
) -> Snapshot:
    """Every wallet's holdings on every configured chain, the chains read concurrently.

    ``adapters`` hands out the command's adapters (``Services.adapter``: one client, chain ids
    checked once); without it the read opens its own client. Zero balances are dropped, except
    the native coin (gas money is worth seeing at zero).
    With ``oracles.enabled``, each chain's request also reads its feeds for the assets the
    config reads anywhere (no extra request). ``progress`` hears one line per chain as its
    read lands.
    """
    say = progress or (lambda _m: None)
    if adapters is not None:
        return await _read(config, registry, adapters, say)
    import httpx

    urls = {
        name: resolve_rpc(name, chain.rpc, env, local_dir) for name, chain in config.chains.items()
    }
    async with httpx.AsyncClient(timeout=timeout) as client:
        return await _read(
            config,
            registry,
            lambda name: adapter_for(registry.chains[name], urls[name], client),
            say,
        )


async def _read(
    config: Config,
    registry: Registry,
    adapters: Callable[[str], ChainAdapter],
    say: Callable[[str], None],
) -> Snapshot:
    start = time.monotonic()

    async def one(name: str, wallets: list[str], tokens: list[Token], feeds: list[Any]) -> Any:
        got = await adapters(name).balances(wallets, tokens, feeds)
        say(
            f"balances: {name} read, {len(wallets)} wallet(s) x {len(tokens)} token(s)"
            f"{f' and {len(feeds)} oracle feed(s)' if feeds else ''} "
            f"({time.monotonic() - start:.1f} s)"
        )
        return got

    jobs = []
    assets = {t.asset for c in config.chains for t in tokens_for(config, registry, c)}
    for name in config.chains:
        wallets = [w.address for w in config.wallets if name in w.chains]
        if not wallets:
            continue
        feeds = feeds_on(name, assets) if config.oracles.enabled else []
        jobs.append(one(name, wallets, tokens_for(config, registry, name), feeds))
    results = await asyncio.gather(*jobs)
    snap = Snapshot()
    for balances in results:
        snap.holdings.extend(h for h in balances.holdings if h.raw or h.token.is_native)
        snap.failures.extend(balances.failures)
        snap.oracles.extend(balances.oracles)
    return snap
