"""What time it is for the tool: the wall clock, or the chains' clock on simulated worlds.

On real chains (and on local worlds that do not move) the tool runs on the wall clock. When
the local worlds are driven by a market (``rebalancer localnet market``, ``demo --days``: the
localnet manifest records ``"market": {"simulated": true}``), days pass in seconds and the only
true time is the chains' own: the latest block's timestamp. Then calendar triggers, plan age,
price history, journal dates, holding periods and report periods all follow the chains.

A :class:`Clock` is read once per check (:meth:`Clock.refresh`, one RPC); between two
refreshes it runs on from that reading with the wall clock's pace, so the records of one check
stay in order. Pure code never reads a clock: it is handed ``now``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rebalancer.core.errors import ChainError


class Clock:
    """Wall time, or (``read`` given) the chains' time, read by :meth:`refresh`."""

    def __init__(self, read: Callable[[], Awaitable[float]] | None = None) -> None:
        self._read = read
        self._base: float | None = None
        self._mono = 0.0

    @property
    def simulated(self) -> bool:
        return self._read is not None

    async def refresh(self) -> datetime:
        """Read the chains' time now (simulated; one RPC); the wall clock needs nothing."""
        if self._read is not None:
            self._base = float(await self._read())
            self._mono = time.monotonic()
        return self.now()

    def time(self) -> float:
        """Unix seconds on this clock (a simulated clock not yet read is read on first use of
        :meth:`refresh`; before that it is an error, not the wall clock)."""
        if self._read is None:
            return time.time()
        if self._base is None:
            raise ChainError("the simulated clock was used before the chains' time was read")
        return self._base + (time.monotonic() - self._mono)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)


WALL = Clock()
"""The wall clock: real chains, frozen local worlds, offline commands."""


def simulated_manifest(rpc_specs: Mapping[str, str], local_dir: Path) -> bool:
    """Whether the chains of these ``rpc`` specs are local worlds a market moves: some spec is
    ``localnet:NAME`` and the manifest says ``"market": {"simulated": true}``."""
    if not any(spec.startswith("localnet:") for spec in rpc_specs.values()):
        return False
    try:
        manifest: Any = json.loads((local_dir / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    market = manifest.get("market") if isinstance(manifest, dict) else None
    return isinstance(market, dict) and market.get("simulated") is True


def chain_clock(read_chain_time: Callable[[], Awaitable[int]]) -> Clock:
    """A simulated clock over one chain's latest block time."""

    async def read() -> float:
        return float(await read_chain_time())

    return Clock(read)


def now_for(config: Any, registry: Any) -> datetime:
    """The time for a command that has no Services yet (``apply`` checking a plan's age): the
    wall clock, or one read of the chains' on simulated worlds."""
    from rebalancer.endpoints import localnet_dir

    specs = {name: c.rpc for name, c in config.chains.items()}
    if not simulated_manifest(specs, localnet_dir()):
        return WALL.now()
    import asyncio

    import httpx

    from rebalancer.services import Services

    async def read() -> datetime:
        async with httpx.AsyncClient(timeout=10) as client:
            services = Services(config, registry, client)
            try:
                return await services.clock.refresh()
            finally:
                await services.aclose()

    return asyncio.run(read())
