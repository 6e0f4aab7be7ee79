"""A market that moves the local worlds: replay a price path on every chain, step by step.

Each ``Market.step(at, prices)`` brings ALL local worlds of the manifest to the simulated time
``at`` and the USD ``prices``:

- EVM worlds (anvil): ``evm_setNextBlockTimestamp(at)``, then ONE transaction of the local
  arbitrageur (``contracts/LocalArbitrageur.sol``) that publishes a new round on every
  Chainlink-style feed (``updatedAt = at``) and moves every Uniswap V2 and V3 pool of the world
  to the new prices by real swaps from its own inventory (V3: a swap with
  ``sqrtPriceLimitX96`` = target stops exactly there; V2: the input computed from the
  reserves, so the price lands within the pool's fee). The block it mines is dated ``at``.
- The Solana node: ``localnet_warpClock(at)`` moves its slot and Clock sysvar forward (only
  the last 150 blockhashes stay valid, as after real time passing), then
  ``localnet_setAccounts`` writes every Pyth PriceUpdateV2 account with ``publish_time = at``.
- The Jupiter stand-in: ``POST /localnet/prices`` moves its maker's book to the same prices.

Quotes, pools and oracles therefore agree at every step within the pools' fees. When a market
first opens on a world it deploys the arbitrageur, funds it (minted tokens, wrapped native) and
makes it the owner of the world's feeds; the manifest's ``market`` section records that the
worlds are simulated (``simulated``, ``start``, ``now``, ``path``, ``step``, the prices of the
last step and the arbitrageur per chain), so other commands read time from the chains.

Time only moves forward. A path's own dates are usually before the chains' clocks (anvil and
the Solana node start at the wall clock), so ``replay`` SHIFTS the path: its first step lands at
the chains' current time rounded up to the next whole minute, and every later step keeps its
distance from the first. ``step`` itself refuses an ``at`` that is not after the chains' time
(ConfigError, exit 2). Assets a path does not price keep their last price (the worlds' snapshot
prices at first); stablecoins stay at 1 unless the path says otherwise.

Paths: ``load_path`` (the CSV ``backtest --prices`` reads), ``random_walk`` (seeded geometric
walk) and ``default_story`` (the living demo's built-in 120 days).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any

import httpx
from eth_abi import encode

from rebalancer.core.errors import ChainError, ConfigError
from rebalancer.core.resources import fixture_path, package_path
from rebalancer.localnet.rpc import selector
from rebalancer.localnet.worlds import PRICES, WORLDS

ASSETS: tuple[str, ...] = ("ETH", "BTC", "AVAX", "SOL", "LINK", "UNI", "AAVE", "JUP", "BONK")
"""The volatile assets the local worlds price (pools, feeds, the Jupiter maker)."""
STABLES: tuple[str, ...] = ("USDC", "USDT")
"""At 1 USD unless a path prices them."""
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
"""Where generated paths start (the worlds' genesis); ``replay`` shifts them to chain time."""
ARBITRAGEUR_BIN = "LocalArbitrageur.bin"
_INVENTORY_USD = Decimal(10) ** 11  # the arbitrageur's stock of each token, in USD at snapshot
_STEP_GAS = 15_000_000
_Q96 = 2**96
_MIN_SQRT, _MAX_SQRT = 4295128739, 1461446703485210103287273052203988822378723970342
_STEP_SIG = "step(uint64,(address,int256)[],(address,uint160,bool)[])"
_STEP_SELECTOR = selector(_STEP_SIG).hex()

# Annual drift and volatility of ``random_walk`` by asset (documented defaults: no drift,
# volatilities of the order the assets showed in 2023-2025).
DEFAULT_DRIFT: dict[str, float] = dict.fromkeys(ASSETS, 0.0)
DEFAULT_VOL: dict[str, float] = {
    "ETH": 0.65,
    "BTC": 0.50,
    "AVAX": 0.90,
    "SOL": 0.85,
    "LINK": 0.80,
    "UNI": 0.85,
    "AAVE": 0.80,
    "JUP": 1.00,
    "BONK": 1.20,
}


# -- price paths --------------------------------------------------------------------------------
@dataclass(frozen=True)
class PricePath:
    """Ordered steps of (UTC time, USD price by asset); every step prices the same assets."""

    steps: tuple[tuple[datetime, dict[str, Decimal]], ...]
    source: str
    """What the path is, for the manifest and progress lines: a file name, ``seed 7``..."""

    def __post_init__(self) -> None:
        if not self.steps:
            raise ConfigError(f"{self.source}: the price path is empty")

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self) -> Iterator[tuple[datetime, dict[str, Decimal]]]:
        return iter(self.steps)

    @property
    def assets(self) -> tuple[str, ...]:
        return tuple(sorted(self.steps[0][1]))

    @property
    def start(self) -> datetime:
        return self.steps[0][0]

    @property
    def step(self) -> timedelta:
        """The interval between the first two steps (zero for a one-step path)."""
        return self.steps[1][0] - self.steps[0][0] if len(self.steps) > 1 else timedelta(0)

    def shifted(self, start: datetime) -> PricePath:
        """The same path with its first step at ``start`` (the chains' clock)."""
        delta = start - self.start
        return PricePath(tuple((t + delta, p) for t, p in self.steps), self.source)

    def head(self, days: float) -> PricePath:
        """The steps within ``days`` of the first."""
        end = self.start + timedelta(days=days)
        return PricePath(tuple(s for s in self.steps if s[0] <= end), self.source)


def parse_step(text: str) -> timedelta:
    """``6h``, ``30m``, ``1d``, ``90s`` as a timedelta (ConfigError otherwise). At least a
    minute: between steps the chains' own clocks run on with the wall clock."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    raw = text.strip().lower()
    try:
        value = float(raw[:-1])
        seconds = value * units[raw[-1]]
    except (ValueError, KeyError, IndexError):
        raise ConfigError(f"--step {text!r}: not a duration (like 6h, 30m, 1d)") from None
    if not math.isfinite(seconds) or seconds < 60:
        raise ConfigError(f"--step {text!r}: must be at least a minute")
    return timedelta(seconds=int(seconds))


def format_step(step: timedelta) -> str:
    seconds = int(step.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def load_path(csv_path: Path | str, step: timedelta | None = None) -> PricePath:
    """The CSV ``backtest --prices`` reads (the same parser and checks: gaps longer than the
    backtest fills, zero or negative prices, unknown assets and unsorted dates are one
    ConfigError naming the row). Daily closes are the steps; a ``step`` under a day
    interpolates geometrically between closes."""
    from rebalancer.reports.prices_csv import parse_prices_csv

    path = Path(csv_path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"--prices {path}: cannot read: {exc.strerror}") from None
    table = parse_prices_csv(text, path.name, known_assets=ASSETS + STABLES)
    symbols = table.symbols
    grid = table.history(symbols)  # the backtest's own gap checks, on the same grid
    daily: list[tuple[datetime, dict[str, Decimal]]] = []
    last: dict[str, Decimal] = {}
    for day in grid.dates:
        for s in symbols:
            hit = table.rows[s].get(day)
            if hit is not None:
                last[s] = hit[0]
        daily.append((datetime(day.year, day.month, day.day, tzinfo=UTC), dict(last)))
    if step is None or step >= timedelta(days=1):
        return PricePath(tuple(daily), path.name)
    per_day = max(int(timedelta(days=1) / step), 1)
    steps: list[tuple[datetime, dict[str, Decimal]]] = []
    for (t0, p0), (_t1, p1) in itertools.pairwise(daily):
        for k in range(per_day):
            frac = Decimal(k) / per_day
            steps.append((t0 + step * k, {a: _geo(p0[a], p1[a], frac) for a in p0}))
    steps.append(daily[-1])
    return PricePath(tuple(steps), path.name)


def _geo(a: Decimal, b: Decimal, frac: Decimal) -> Decimal:
    if frac == 0 or a == b:
        return a
    with localcontext() as ctx:
        ctx.prec = 28
        return _tidy(a * ((b / a).ln() * frac).exp())


def _tidy(value: Decimal | float, digits: int = 10) -> Decimal:
    """A price rounded to ``digits`` significant digits (floats end here, as Decimals)."""
    d = Decimal(repr(value)) if isinstance(value, float) else value
    if d == 0:
        return d
    exponent = min(d.adjusted() - digits + 1, 0)
    q = d.quantize(Decimal(1).scaleb(exponent)).normalize()
    return q.quantize(Decimal(1)) if q.as_tuple().exponent > 0 else q  # type: ignore[operator]


def random_walk(
    assets: Sequence[str] = ASSETS,
    days: float = 120,
    step: timedelta = timedelta(hours=6),
    seed: int = 0,
    *,
    drift: Mapping[str, float] | None = None,
    vol: Mapping[str, float] | None = None,
    start: datetime = EPOCH,
    start_prices: Mapping[str, Decimal] = PRICES,
) -> PricePath:
    """A seeded geometric random walk: each asset's log price moves by
    ``(drift - vol**2 / 2) * dt + vol * sqrt(dt) * Z`` per step (annual ``drift`` and
    ``vol``, defaults ``DEFAULT_DRIFT`` / ``DEFAULT_VOL``; independent normal ``Z`` from
    ``random.Random(seed)``), from the worlds' snapshot prices. Same seed, same path."""
    unknown = [a for a in assets if a not in ASSETS]
    if unknown:
        raise ConfigError(f"random walk: unknown asset {unknown[0]} (known: {', '.join(ASSETS)})")
    rng = random.Random(seed)
    dt = step.total_seconds() / (365 * 86400)
    mu = {**DEFAULT_DRIFT, **(drift or {})}
    sigma = {**DEFAULT_VOL, **(vol or {})}
    n = int(timedelta(days=days) / step)
    logs = {a: math.log(float(start_prices[a])) for a in assets}
    steps = []
    for i in range(n + 1):
        if i:
            for a in assets:
                z = rng.gauss(0.0, 1.0)
                logs[a] += (mu[a] - sigma[a] ** 2 / 2) * dt + sigma[a] * math.sqrt(dt) * z
        steps.append((start + step * i, {a: _tidy(math.exp(logs[a])) for a in assets}))
    return PricePath(tuple(steps), f"random walk, seed {seed}")


# (end of the segment as a share of the story, ETH, BTC, alts multiplier at its end)
_STORY: tuple[tuple[float, float, float, float], ...] = (
    (0.25, 1.45, 1.25, 1.70),  # rally: ETH +45%, BTC +25%, alts +70% in a month
    (0.30, 1.45, 1.25, 1.70),  # the top holds a few days
    (0.33, 0.95, 1.02, 0.95),  # sharp drop: ETH -35%, alts -45% in four days
    (0.67, 0.97, 1.00, 0.98),  # quiet stretch: a month of almost nothing
    (1.00, 1.15, 1.30, 1.05),  # BTC leads a slow recovery
)


def default_story(
    days: float = 120,
    step: timedelta = timedelta(hours=6),
    start: datetime = EPOCH,
    start_prices: Mapping[str, Decimal] = PRICES,
) -> PricePath:
    """The living demo's built-in path. Design (as shares of ``days``; 120 by default):

    - 0-25%: a rally, ETH +45%, BTC +25%, the alts (SOL, AVAX, LINK, UNI, AAVE, JUP, BONK)
      +70%: a portfolio on target drifts out of its band toward ETH and the alts (threshold
      trigger).
    - 25-30%: the top holds.
    - 30-33%: a sharp drop in about four days, ETH to 0.95x and alts to 0.95x of the start,
      BTC flat: drift flips, and the daily volatility jumps (volatility trigger).
    - 33-67%: a quiet stretch, prices almost still: only the calendar trigger fires.
    - 67-100%: BTC leads a slow recovery (+30% BTC, +15% ETH, +5% alts).

    Each segment moves log-linearly from ``start_prices`` (the worlds' snapshot by default),
    with a small seeded wiggle (0.4% per step) so charts look alive; stablecoins stay at 1.
    Deterministic.
    """
    rng = random.Random(20260101)
    n = int(timedelta(days=days) / step)
    steps = []
    for i in range(n + 1):
        x = i / n if n else 0.0
        prev_end, prev = 0.0, [1.0, 1.0, 1.0]
        level = prev
        for end, eth, btc, alts in _STORY:
            if x <= end + 1e-12:
                f = (x - prev_end) / (end - prev_end) if end > prev_end else 1.0
                level = [
                    math.exp(math.log(a) + (math.log(b) - math.log(a)) * f)
                    for a, b in zip(prev, (eth, btc, alts), strict=True)
                ]
                break
            prev_end, prev = end, [eth, btc, alts]
        wiggle = {a: math.exp(rng.gauss(0.0, 0.004)) if i else 1.0 for a in ASSETS}
        prices = {}
        for a in ASSETS:
            m = level[0] if a == "ETH" else level[1] if a == "BTC" else level[2]
            prices[a] = _tidy(float(start_prices[a]) * m * wiggle[a])
        steps.append((start + step * i, prices))
    return PricePath(tuple(steps), f"the default story ({format_step(step)} steps)")


# -- the engine ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class StepReport:
    """What one step did: when, at which prices, and how long each chain spent per phase."""

    index: int
    at: datetime
    prices: dict[str, Decimal]
    timings: dict[str, dict[str, float]] = field(default_factory=dict)
    """Seconds by chain (``ethereum``, ``avalanche``, ``solana``, ``jupiter``) and phase: on
    EVM ``send`` (the clock and the step's transaction in one batch) and ``mined`` (until its
    receipt), on Solana ``clock`` and ``oracles``, ``maker`` for Jupiter."""
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "at": self.at.isoformat().replace("+00:00", "Z"),
            "prices": {a: str(p) for a, p in sorted(self.prices.items())},
            "timings_ms": {
                c: {k: round(v * 1000, 2) for k, v in t.items()} for c, t in self.timings.items()
            },
            "ms": round(self.seconds * 1000, 2),
        }


@dataclass
class _Pool:
    address: str
    v2: bool
    asset0: str
    asset1: str
    decimals0: int
    decimals1: int


@dataclass
class _EvmWorld:
    name: str
    url: str
    deployer: str
    arbitrageur: str
    feeds: list[tuple[str, str, int]]  # (address, asset, decimals)
    pools: list[_Pool]


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def from_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


class Market:
    """The engine moving every local world; open with ``await Market.open(state_dir)``."""

    def __init__(self, state_dir: Path, client: httpx.AsyncClient, *, pools: bool = True) -> None:
        self.state_dir = state_dir
        self.client = client
        self.move_pools = pools
        self.evm: list[_EvmWorld] = []
        self.solana_url: str | None = None
        self.jupiter_url: str | None = None
        self.prices: dict[str, Decimal] = {a: PRICES[a] for a in ASSETS + STABLES}
        self.steps = 0
        self._now: datetime | None = None
        self._mints: dict[str, str] = {}  # Solana mint -> asset

    # -- lifecycle ------------------------------------------------------------------------------
    @classmethod
    async def open(
        cls, state_dir: Path, *, client: httpx.AsyncClient | None = None, pools: bool = True
    ) -> Market:
        """Read the manifest, set up the arbitrageur on each EVM world (once per world), and
        return a market ready to step. ConfigError when no worlds run."""
        from rebalancer.localnet.manager import read_manifest

        manifest = read_manifest(state_dir)
        if manifest is None:
            raise ConfigError(f"no local worlds in {state_dir}: run `rebalancer localnet up` first")
        market = cls(state_dir, client or httpx.AsyncClient(timeout=30), pools=pools)
        try:
            await market._setup(manifest)
        except BaseException:
            if client is None:
                await market.client.aclose()
            raise
        return market

    async def aclose(self) -> None:
        await self.client.aclose()

    async def __aenter__(self) -> Market:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _setup(self, manifest: dict[str, Any]) -> None:
        from rebalancer.chains.oracles import feeds_on
        from rebalancer.chains.registry import Registry

        registry = Registry.load()
        section: dict[str, Any] = dict(manifest.get("market") or {})
        arbs: dict[str, str] = dict(section.get("arbitrageur") or {})
        for p, v in (section.get("prices") or {}).items():
            self.prices[p] = Decimal(v)
        for w in manifest["worlds"]:
            if w["kind"] == "anvil" and w["name"] in WORLDS:
                info = json.loads(fixture_path("evm", f"{w['name']}.world.json").read_text())
                pools = []
                for p in info["pools"]:
                    t0 = registry.by_symbol(w["name"], p["token0"])
                    t1 = registry.by_symbol(w["name"], p["token1"])
                    assert t0 is not None and t1 is not None
                    pools.append(
                        _Pool(p["address"], p["kind"] == "v2", t0.asset, t1.asset, t0.decimals,
                              t1.decimals)
                    )  # fmt: skip
                feeds = [(f.address, f.asset, f.decimals) for f in feeds_on(w["name"])]
                world = _EvmWorld(w["name"], w["url"], info["deployer"], "", feeds, pools)
                world.arbitrageur = await self._arbitrageur(world, info, arbs.get(w["name"]))
                arbs[w["name"]] = world.arbitrageur
                self.evm.append(world)
            elif w["kind"] == "solana":
                self.solana_url = w["url"]
            elif w["name"] == "jupiter":
                self.jupiter_url = str(w["url"]).rsplit("/swap/", 1)[
                    0
                ]  # the server root (v1 or v2 base)
        if self.solana_url is not None:
            for t in registry.tokens_on("solana"):
                if t.address is not None:
                    self._mints[t.address] = t.asset
        self._now = await self.now()
        section.update({"simulated": True, "arbitrageur": arbs})
        section.setdefault("now", iso(self._now))
        self.steps = int(section.get("steps", 0))
        self._record(section)

    async def _arbitrageur(self, w: _EvmWorld, info: dict[str, Any], known: str | None) -> str:
        """The world's arbitrageur: the one the manifest names if it still has code, else a
        new one, deployed, funded and made the owner of the world's feeds."""
        if known is not None and await self._rpc(w, "eth_getCode", known, "latest") not in (
            "0x",
            None,
        ):
            return known
        me = w.deployer
        await self._rpc(w, "anvil_setBalance", me, hex(10**27))
        code = package_path("localnet", "contracts", ARBITRAGEUR_BIN).read_text().strip()
        receipt = await self._send(w, {"from": me, "data": "0x" + code.removeprefix("0x")})
        arb = str(receipt["contractAddress"])
        await self._send(w, _tx(me, arb, "init(address)", ["address"], [me]))
        spec = WORLDS[w.name]
        from rebalancer.chains.registry import Registry

        registry = Registry.load()
        for symbol, address in info["tokens"].items():
            token = registry.by_symbol(w.name, symbol)
            assert token is not None
            raw = int(_INVENTORY_USD / PRICES[token.asset] * Decimal(10) ** token.decimals)
            if symbol == spec.wrapped_native:
                await self._rpc(w, "anvil_setBalance", arb, hex(raw))
                await self._send(
                    w, _tx(me, arb, "wrap(address,uint256)", ["address", "uint256"], [address, raw])
                )
            else:
                await self._send(
                    w,
                    _tx(me, address, "mint(address,uint256)", ["address", "uint256"], [arb, raw]),
                )
        for feed, _asset, _dec in w.feeds:
            # NOTE: slot 0 packs owner (low 20 bytes), decimals, phaseId and the round counter.
            slot0 = int(await self._rpc(w, "eth_getStorageAt", feed, "0x0", "latest"), 16)
            new = (slot0 >> 160 << 160) | int(arb, 16)
            await self._rpc(w, "anvil_setStorageAt", feed, "0x0", "0x" + f"{new:064x}")
        return arb

    def _record(self, updates: Mapping[str, Any]) -> None:
        """Merge ``updates`` into the manifest's ``market`` section (atomic rewrite)."""
        from rebalancer.localnet.manager import MANIFEST, read_manifest

        manifest = read_manifest(self.state_dir)
        if manifest is None:
            return
        manifest["market"] = {**(manifest.get("market") or {}), **updates}
        path = self.state_dir / MANIFEST
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
        tmp.replace(path)

    def describe(self, path: PricePath, start: datetime) -> None:
        """Record which path the simulated clock follows, at which step, and ``start``: where
        this placing of the path lands its first step (a rerun of the same path continues from
        there). Each new placing replaces the last, so a second run that is interrupted
        continues from its own start, not the first run's."""
        self._record({"path": path.source, "step": format_step(path.step), "start": iso(start)})

    # -- time -----------------------------------------------------------------------------------
    async def now(self) -> datetime:
        """The chains' time: the latest of their clocks (an EVM world's latest block, the
        Solana node's block time)."""
        times: list[int] = []
        for w in self.evm:
            block = await self._rpc(w, "eth_getBlockByNumber", "latest", False)
            times.append(int(block["timestamp"], 16))
        if self.solana_url is not None:
            slot = await self._solana("getSlot")
            block_time = await self._solana("getBlockTime", slot)
            times.append(int(block_time))
        if not times:
            raise ConfigError(f"no chain in the localnet manifest of {self.state_dir}")
        return datetime.fromtimestamp(max(times), UTC)

    # -- one step -------------------------------------------------------------------------------
    async def step(self, at: datetime, prices: Mapping[str, Decimal]) -> StepReport:
        """Bring every world to time ``at`` and USD ``prices`` (assets left out keep their
        last price). Refuses a time not after the chains' clock (ConfigError); a world that
        stops answering is a ChainError naming it (exit 4)."""
        if at.tzinfo is None:
            raise ConfigError(f"step at {at}: needs a timezone (UTC)")
        at = at.astimezone(UTC).replace(microsecond=0)
        for a, p in prices.items():
            if a not in self.prices:
                raise ConfigError(f"step at {iso(at)}: unknown asset {a}")
            if not isinstance(p, Decimal) or not p.is_finite() or p <= 0:
                raise ConfigError(f"step at {iso(at)}: {a} = {p!r}: must be a positive Decimal")
        now = self._now or await self.now()
        if at <= now:
            raise ConfigError(
                f"step at {iso(at)} is not after the chains' time {iso(now)}: chain time only "
                "moves forward"
            )
        new = {**self.prices, **prices}
        started = time.perf_counter()
        timings: dict[str, dict[str, float]] = {}
        jobs = [self._step_evm(w, at, new, timings) for w in self.evm]
        if self.solana_url is not None:
            jobs.append(self._step_solana(at, new, timings))
        if self.jupiter_url is not None:
            jobs.append(self._step_jupiter(new, timings))
        await asyncio.gather(*jobs)
        self.prices = new
        self._now = at
        self.steps += 1
        report = StepReport(self.steps, at, dict(new), timings, time.perf_counter() - started)
        self._record(
            {"now": iso(at), "steps": self.steps, "prices": {a: str(p) for a, p in new.items()}}
        )
        return report

    async def _step_evm(
        self,
        w: _EvmWorld,
        at: datetime,
        prices: Mapping[str, Decimal],
        timings: dict[str, dict[str, float]],
    ) -> None:
        t0 = time.perf_counter()
        stamp = int(at.timestamp())
        feeds = [(addr, int(prices[asset] * Decimal(10) ** dec)) for addr, asset, dec in w.feeds]
        pools = (
            [(p.address, sqrt_price_x96(prices, p), p.v2) for p in w.pools]
            if self.move_pools
            else []
        )
        tx = {
            "from": w.deployer,
            "to": w.arbitrageur,
            "data": step_calldata(stamp, feeds, pools),
            "gas": hex(_STEP_GAS),
        }
        # NOTE: one batch, answered in order: the clock is set before the transaction mines.
        answers = await self._batch(
            w, [("evm_setNextBlockTimestamp", [hex(stamp)]), ("eth_sendTransaction", [tx])]
        )
        t1 = time.perf_counter()
        await self._receipt(w, str(answers[1]))
        timings[w.name] = {"send": t1 - t0, "mined": time.perf_counter() - t1}

    async def _step_solana(
        self, at: datetime, prices: Mapping[str, Decimal], timings: dict[str, dict[str, float]]
    ) -> None:
        from rebalancer.localnet.pyth_fixtures import build_pyth_snapshot

        t0 = time.perf_counter()
        warped = await self._solana("localnet_warpClock", int(at.timestamp()))
        t1 = time.perf_counter()
        accounts = build_pyth_snapshot(int(at.timestamp()), int(warped["slot"]), prices)
        await self._solana("localnet_setAccounts", accounts["accounts"])
        timings["solana"] = {"clock": t1 - t0, "oracles": time.perf_counter() - t1}

    async def _step_jupiter(
        self, prices: Mapping[str, Decimal], timings: dict[str, dict[str, float]]
    ) -> None:
        t0 = time.perf_counter()
        usd = {m: str(prices[a]) for m, a in self._mints.items() if a in prices}
        url = f"{self.jupiter_url}/localnet/prices"
        try:
            r = await self.client.post(url, json={"usd": usd}, headers={"x-api-key": "market"})
        except httpx.HTTPError as exc:
            raise ChainError(f"the Jupiter stand-in at {url} stopped answering: {exc}") from None
        if r.status_code != 200:
            raise ChainError(f"the Jupiter stand-in refused the prices: {r.text[:200]}")
        timings["jupiter"] = {"maker": time.perf_counter() - t0}

    # -- JSON-RPC -------------------------------------------------------------------------------
    async def _post(self, name: str, url: str, method: str, params: list[Any]) -> Any:
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        try:
            r = await self.client.post(url, json=body)
            data = r.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ChainError(
                f"world {name} at {url} stopped answering ({method}): {type(exc).__name__}"
            ) from None
        if "error" in data:
            message = str((data["error"] or {}).get("message"))[:200]
            raise ChainError(f"{method} failed on world {name}: {message}")
        return data["result"]

    async def _rpc(self, w: _EvmWorld, method: str, *params: Any) -> Any:
        return await self._post(w.name, w.url, method, list(params))

    async def _solana(self, method: str, *params: Any) -> Any:
        assert self.solana_url is not None
        return await self._post("solana", self.solana_url, method, list(params))

    async def _batch(self, w: _EvmWorld, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """Several calls in one JSON-RPC batch; any error is a ChainError naming the world."""
        body = [
            {"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)
        ]
        try:
            r = await self.client.post(w.url, json=body)
            answers = sorted(r.json(), key=lambda a: a["id"])
        except (httpx.HTTPError, ValueError, TypeError, KeyError) as exc:
            raise ChainError(
                f"world {w.name} at {w.url} stopped answering ({calls[0][0]}): {type(exc).__name__}"
            ) from None
        for (method, _), answer in zip(calls, answers, strict=True):
            if "error" in answer:
                message = str((answer["error"] or {}).get("message"))[:200]
                raise ChainError(f"{method} failed on world {w.name}: {message}")
        return [a["result"] for a in answers]

    async def _send(self, w: _EvmWorld, tx: dict[str, Any]) -> dict[str, Any]:
        """Send from the world's unlocked deployer and insist on a successful receipt."""
        tx = {"gas": hex(_STEP_GAS), **tx}
        return await self._receipt(w, await self._rpc(w, "eth_sendTransaction", tx))

    async def _receipt(self, w: _EvmWorld, tx_hash: str) -> dict[str, Any]:
        receipt: dict[str, Any] | None = None
        deadline = time.monotonic() + 30
        while receipt is None:
            receipt = await self._rpc(w, "eth_getTransactionReceipt", tx_hash)
            if receipt is None:
                if time.monotonic() > deadline:
                    raise ChainError(f"world {w.name}: transaction {tx_hash} was never mined")
                await asyncio.sleep(0.001)
        if int(receipt["status"], 16) != 1:
            raise ChainError(f"world {w.name}: the market's transaction {tx_hash} reverted")
        return receipt


def step_calldata(
    at: int, feeds: Sequence[tuple[str, int]], pools: Sequence[tuple[str, int, bool]]
) -> str:
    """ABI calldata of ``LocalArbitrageur.step(uint64, Feed[], Pool[])``, encoded by hand (both
    structs are static: a head of three words, then each array's length and words); eth_abi
    takes ~10 ms for it, this ~0.1 ms."""

    def word(value: int) -> str:
        return f"{value % 2**256:064x}"

    def addr(a: str) -> str:
        return a.lower().removeprefix("0x").rjust(64, "0")

    feeds_part = word(len(feeds)) + "".join(addr(a) + word(v) for a, v in feeds)
    pools_part = word(len(pools)) + "".join(addr(a) + word(p) + word(int(v2)) for a, p, v2 in pools)
    head = word(at) + word(3 * 32) + word(3 * 32 + len(feeds_part) // 2)
    return "0x" + _STEP_SELECTOR + head + feeds_part + pools_part


def _tx(sender: str, to: str, signature: str, types: list[str], args: list[Any]) -> dict[str, Any]:
    return {
        "from": sender,
        "to": to,
        "data": "0x" + (selector(signature) + encode(types, args)).hex(),
    }


def sqrt_price_x96(prices: Mapping[str, Decimal], pool: _Pool) -> int:
    """Uniswap's sqrtPriceX96 of ``pool`` at USD ``prices``: sqrt(token1 per token0 in raw
    units) * 2**96, clamped inside the V3 bounds."""
    with localcontext() as ctx:
        ctx.prec = 60
        ratio = (
            prices[pool.asset0]
            / prices[pool.asset1]
            * Decimal(10) ** (pool.decimals1 - pool.decimals0)
        )
        value = int(ratio.sqrt() * _Q96)
    return min(max(value, _MIN_SQRT + 1), _MAX_SQRT - 1)


# -- replaying a path ---------------------------------------------------------------------------
def start_after(now: datetime) -> datetime:
    """Where a shifted path's first step lands: the next whole minute after ``now``."""
    return (now + timedelta(minutes=1)).replace(second=0, microsecond=0)


async def replay(
    market: Market,
    path: PricePath,
    *,
    speed: float | None = None,
    on_step: Callable[[StepReport, datetime], None] = lambda _r, _d: None,
    should_stop: Callable[[], bool] = lambda: False,
) -> list[StepReport]:
    """Step ``market`` through ``path``, shifted to start after the chains' time. ``speed``
    (simulated seconds per wall second) paces the steps; None runs them back to back.
    ``on_step(report, path_date)`` follows each step; ``should_stop`` is asked before each."""
    start = start_after(await market.now())
    shifted = path.shifted(start)
    market.describe(path, start)
    reports: list[StepReport] = []
    began = time.monotonic()
    for (at, prices), (orig, _) in zip(shifted, path, strict=True):
        if should_stop():
            break
        if speed is not None and speed > 0:
            due = began + (at - start).total_seconds() / speed
            while not should_stop() and time.monotonic() < due:
                await asyncio.sleep(min(0.1, due - time.monotonic()))
            if should_stop():
                break
        report = await market.step(at, prices)
        reports.append(report)
        on_step(report, orig)
    return reports


# -- the command ----------------------------------------------------------------------------------
def choose_path(
    prices: str | None,
    seed: int | None,
    days: float | None,
    step: timedelta,
    start_prices: Mapping[str, Decimal] = PRICES,
) -> PricePath:
    """The path a command asked for: a CSV (``--prices``), a seeded walk (``--seed``) or the
    default story; ``--days`` cuts a CSV and sizes the others (default 120). The walk and the
    story start from ``start_prices`` (a rerun: where the worlds' last step left them)."""
    if prices is not None and seed is not None:
        raise ConfigError("--prices and --seed are two paths: give one")
    if days is not None and not (0 < days <= 3650):
        raise ConfigError(f"--days {days}: must be between 0 and 3650")
    if prices is not None:
        path = load_path(prices, step)
        return path.head(days) if days is not None else path
    if seed is not None:
        return random_walk(days=days or 120, step=step, seed=seed, start_prices=start_prices)
    return default_story(days=days or 120, step=step, start_prices=start_prices)


def parse_market_spec(
    spec: str, days: float | None, step: timedelta, start_prices: Mapping[str, Decimal] = PRICES
) -> PricePath:
    """``localnet up --market PATH``: a CSV file, ``story`` or ``seed:N``."""
    if spec == "story":
        return choose_path(None, None, days, step, start_prices)
    if spec.startswith("seed:"):
        try:
            seed = int(spec.removeprefix("seed:"))
        except ValueError:
            raise ConfigError(f"--market {spec!r}: seed:N needs an integer N") from None
        return choose_path(None, seed, days, step, start_prices)
    return choose_path(spec, None, days, step)


def last_prices(state_dir: Path) -> dict[str, Decimal]:
    """The prices the worlds' last market step left (the snapshot's when they never moved)."""
    from rebalancer.localnet.manager import read_manifest

    manifest = read_manifest(state_dir) or {}
    recorded = (manifest.get("market") or {}).get("prices") or {}
    return {**PRICES, **{a: Decimal(v) for a, v in recorded.items()}}


def _short(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _price_line(prices: Mapping[str, Decimal]) -> str:
    return " ".join(f"{a} {_tidy(prices[a], 6):f}" for a in ("ETH", "BTC", "SOL", "AVAX"))


def run_foreground(
    state_dir: Path,
    path: PricePath,
    *,
    speed: float | None,
    progress: Callable[[str], None],
) -> tuple[int, dict[str, Any]]:
    """Replay ``path`` on the worlds of ``state_dir`` until it ends or a signal arrives.

    SIGINT, SIGTERM and SIGHUP finish the current step, record it and stop (130, 143, 129);
    a world that dies stops the market at the step it reached (ChainError, exit 4).
    Returns the exit code and the summary (the ``--json`` document)."""
    import signal

    received: list[int] = []
    base = 0
    summary: dict[str, Any] = {"path": path.source, "step": format_step(path.step), "steps": 0}
    first: dict[str, Decimal] = {}
    last: dict[str, Decimal] = {}

    def on_step(report: StepReport, orig: datetime) -> None:
        nonlocal first, last
        first = first or report.prices
        last = report.prices
        summary["steps"] = report.index - base
        summary["end"] = iso(report.at)
        progress(
            f"step {report.index - base}/{len(path)} {_short(report.at)} "
            f"(path {_short(orig)}) {_price_line(report.prices)} {report.seconds * 1000:.0f} ms"
        )

    async def go() -> None:
        nonlocal base
        loop = asyncio.get_running_loop()
        sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        for s in sigs:
            loop.add_signal_handler(s, received.append, int(s))
        market = await Market.open(state_dir)
        try:
            base = market.steps
            market._record({"pid": os.getpid()})
            start = start_after(await market.now())
            summary["start"] = iso(start)
            progress(
                f"market: {len(path)} steps of {format_step(path.step)} from {path.source}, "
                f"simulated clock from {_short(start)}"
            )
            began = time.perf_counter()
            await replay(
                market, path, speed=speed, on_step=on_step, should_stop=lambda: bool(received)
            )
            elapsed = time.perf_counter() - began
            summary["seconds"] = round(elapsed, 3)
            summary["steps_per_s"] = round(summary["steps"] / elapsed, 2) if elapsed else None
        finally:
            market._record({"pid": None})
            await market.aclose()
            for s in sigs:
                loop.remove_signal_handler(s)

    try:
        asyncio.run(go())
    except ChainError as exc:
        summary["error"] = str(exc)
        summary["prices"] = {a: [first[a], last[a]] for a in sorted(last)} if last else {}
        return exc.exit_code, summary
    summary["prices"] = {a: [first[a], last[a]] for a in sorted(last)} if last else {}
    if received:
        summary["stopped_by"] = signal.Signals(received[0]).name
        return 128 + received[0], summary
    return 0, summary


def final_line(summary: Mapping[str, Any]) -> str:
    """The one line a market run ends with (stderr for an error or a signal)."""
    reached = f"step {summary['steps']} ({summary.get('end') or 'before the first step'})"
    if "error" in summary:
        return f"error: {summary['error']}; the market stopped at {reached}"
    if "stopped_by" in summary:
        return f"stopped by {summary['stopped_by']} after {reached}, recorded in the manifest"
    return (
        f"moved the local worlds through {summary['steps']} step(s) of {summary['step']} "
        f"({summary.get('start')} to {summary.get('end')}) in {summary.get('seconds')} s"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rebalancer.localnet.market``: the detached market ``localnet up --market``
    starts (the same loop as ``rebalancer localnet market``)."""
    import argparse
    import sys

    from rebalancer.localnet.manager import default_dir

    parser = argparse.ArgumentParser(prog="python -m rebalancer.localnet.market")
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--market", required=True, metavar="PATH", help="CSV, story or seed:N")
    parser.add_argument("--days", type=float, default=None)
    parser.add_argument("--step", default="6h")
    parser.add_argument("--speed", type=float, default=None)
    args = parser.parse_args(argv)

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        state_dir = args.dir or default_dir()
        path = parse_market_spec(
            args.market, args.days, parse_step(args.step), last_prices(state_dir)
        )
        code, summary = run_foreground(state_dir, path, speed=args.speed, progress=say)
    except ConfigError as exc:
        say(f"error: {exc}")
        return exc.exit_code
    say(final_line(summary))
    print(json.dumps(summary, default=str), flush=True)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
