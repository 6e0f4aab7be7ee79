"""The composition root: chain adapters, aggregators, signers and the policy, built once from
the config for one command and shared by everything it runs. Nothing below this reads the
environment.

Every part can be handed in instead of built (``adapters=``, ``aggregators=``, ``signers=``),
and ``wrap`` sees each adapter, aggregator and signer Services builds itself, so a test can
put a fault in front of a real one; :func:`injected` sets these for the Services a CLI command
builds (the test seam: no engine internals are patched).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from rebalancer.chains.base import CONFIRM_TIMEOUT_S, ChainAdapter, adapter_for
from rebalancer.chains.registry import Registry
from rebalancer.config import DEFAULT_AGGREGATOR, Config, WalletConfig
from rebalancer.core.errors import ConfigError
from rebalancer.dex.base import SwapAggregator
from rebalancer.endpoints import resolve_rpc

if TYPE_CHECKING:
    import httpx

    from rebalancer.clock import Clock
    from rebalancer.core.tx import SignedTx
    from rebalancer.dex.checks import SwapPolicy
    from rebalancer.wallet.base import Signer

T = TypeVar("T")


@dataclass(frozen=True)
class Injected:
    """Parts handed to Services instead of the ones it would build (tests, bench)."""

    adapters: Mapping[str, ChainAdapter] = field(default_factory=dict)
    """By chain name."""
    aggregators: Mapping[str, SwapAggregator] = field(default_factory=dict)
    """By aggregator name (``1inch``, ``jupiter``)."""
    signers: Mapping[tuple[str, str], Signer] = field(default_factory=dict)
    """By (chain, lower-case address)."""
    wrap: Callable[[Any], Any] | None = None
    """Called with every adapter, aggregator and signer built here; returns what to use."""
    confirm_timeout_s: float | None = None
    """How long to wait for a sent transaction before leaving it in flight."""


_INJECTED: ContextVar[Injected | None] = ContextVar("rebalancer_injected", default=None)


@contextmanager
def injected(**parts: Any) -> Iterator[Injected]:
    """Every Services built inside this block (by any command) uses these parts."""
    value = Injected(**parts)
    token = _INJECTED.set(value)
    try:
        yield value
    finally:
        _INJECTED.reset(token)


def data_dir(env: Mapping[str, str]) -> Path:
    """The user's data folder for the journal (XDG), overridable with REBALANCER_DATA_DIR."""
    if env.get("REBALANCER_DATA_DIR"):
        return Path(env["REBALANCER_DATA_DIR"])
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "rebalancer"


def journal_path(config: Config, env: Mapping[str, str]) -> Path:
    return Path(config.journal).expanduser() if config.journal else data_dir(env) / "journal.sqlite"


API_VERSIONS: dict[str, tuple[str, ...]] = {"1inch": ("v6.1", "v6.0"), "jupiter": ("v2", "v1")}
"""Aggregator -> the API versions it speaks, the default first."""
_VERSION_TAIL = re.compile(r"/swap/(v[0-9.]+)$")


def api_url(name: str, url: str, api: str | None) -> tuple[str, str]:
    """The base URL with ``aggregators.NAME.api`` applied, and the version it speaks.

    Without ``api`` the URL is kept as written and its ``/swap/vX`` end names the version
    (none: the aggregator's default). ConfigError for a version the adapter does not speak.
    """
    known = API_VERSIONS.get(name)
    m = _VERSION_TAIL.search(url)
    if api is not None:
        url = url[: m.start()] if m else url.rstrip("/")
        url = f"{url}/swap/{api}"
        version = api
    else:
        version = m.group(1) if m else (known[0] if known else "")
    if known is not None and version not in known:
        raise ConfigError(
            f"aggregators.{name}.api: {version!r} is not a version rebalancer speaks "
            f"(one of {', '.join(known)})"
        )
    return url, version


def _resolve_api(name: str, spec: str, local_dir: Path | None) -> str:
    """An aggregator base URL; ``localnet:NAME`` points at a running local stand-in."""
    if not spec.startswith("localnet:"):
        return spec
    import json

    from rebalancer.endpoints import localnet_dir

    manifest = (local_dir or localnet_dir()) / "manifest.json"
    try:
        worlds = json.loads(manifest.read_text())["worlds"]
    except (OSError, ValueError, KeyError):
        raise ConfigError(
            f"aggregators.{name}.base_url = {spec!r}: no local worlds are running "
            "(run `rebalancer localnet up`)"
        ) from None
    for w in worlds:
        if w.get("name") == spec.removeprefix("localnet:"):
            return str(w["url"])
    raise ConfigError(f"aggregators.{name}.base_url = {spec!r}: no such local stand-in is running")


class Services:
    """What one run needs, made lazily from the config and shared across its trades."""

    def __init__(
        self,
        config: Config,
        registry: Registry,
        client: httpx.AsyncClient,
        *,
        env: Mapping[str, str] | None = None,
        local_dir: Path | None = None,
        work_dir: Path | None = None,
        prompt: Callable[[str], None] | None = None,
        adapters: Mapping[str, ChainAdapter] | None = None,
        aggregators: Mapping[str, SwapAggregator] | None = None,
        signers: Mapping[tuple[str, str], Signer] | None = None,
        wrap: Callable[[Any], Any] | None = None,
        confirm_timeout_s: float | None = None,
        clock: Clock | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        inj = _INJECTED.get() or Injected()
        self.progress: Callable[[str], None] = progress or (lambda _m: None)
        """The command's progress lines (``output.progress_unless``): silent with ``--json``."""
        self.config = config
        self.registry = registry
        self.client = client
        self.env = os.environ if env is None else env
        self.local_dir = local_dir
        self.work_dir = work_dir
        self.prompt = prompt
        self.urls = {
            name: resolve_rpc(name, c.rpc, self.env, local_dir) for name, c in config.chains.items()
        }
        self.send_urls = {
            name: resolve_rpc(name, c.send_rpc, self.env, local_dir, key="send_rpc")
            for name, c in config.chains.items()
            if c.send_rpc is not None
        }
        """``[chains.X] send_rpc``, resolved: where signed transactions of chain X are sent."""
        self._adapters: dict[str, ChainAdapter] = {**inj.adapters, **(adapters or {})}
        self._aggregators: dict[str, SwapAggregator] = {**inj.aggregators, **(aggregators or {})}
        self._signers: dict[tuple[str, str], Signer] = {**inj.signers, **(signers or {})}
        self._opened: dict[tuple[str, str], Signer] = {}
        self._wrap = wrap or inj.wrap
        self.confirm_timeout_s = confirm_timeout_s or inj.confirm_timeout_s or CONFIRM_TIMEOUT_S
        """How long a sent transaction is waited for before it is left in flight."""
        self.clock = clock or self._clock()
        """The tool's time: the wall clock, or the chains' on simulated local worlds."""
        self.activity: dict[tuple[str, str], str | None] = {}
        """Each signing wallet's last on-chain activity (``ChainAdapter.last_activity``) by
        (chain, lower-case address), read before the balances: the engine refuses to sign when
        it moved since (someone else sent from the wallet)."""

    def _clock(self) -> Clock:
        """The chains' clock when a market moves the configured local worlds, else the wall's;
        the time is read from the first EVM chain (else the first chain) of the config."""
        from rebalancer.clock import WALL, chain_clock, simulated_manifest
        from rebalancer.endpoints import localnet_dir

        specs = {name: c.rpc for name, c in self.config.chains.items()}
        if not simulated_manifest(specs, self.local_dir or localnet_dir()):
            return WALL
        known = self.registry.chains
        first = min(self.config.chains, key=lambda n: n not in known or known[n].family != "evm")
        return chain_clock(lambda: self.adapter(first).chain_time())

    async def aclose(self) -> None:
        """Stop what the adapters started for this command (kept simulation nodes)."""
        for adapter in self._adapters.values():
            await adapter.aclose()

    def _built(self, part: T) -> T:
        return part if self._wrap is None else self._wrap(part)

    def adapter(self, chain: str) -> ChainAdapter:
        """The chain's adapter, built once and shared (one client, one chain-id check)."""
        if chain not in self._adapters:
            if chain not in self.urls:
                raise ConfigError(f"chains.{chain}: not configured")
            self._adapters[chain] = self._built(
                adapter_for(
                    self.registry.chains[chain],
                    self.urls[chain],
                    self.client,
                    work_dir=self.work_dir,
                    simulation=self.config.policy.evm_simulation,
                    send_url=self.send_urls.get(chain),
                    rpc_timeout=self.config.chains[chain].rpc_timeout,
                )
            )
        return self._adapters[chain]

    def aggregator_name(self, chain: str) -> str:
        """``[chains.X] aggregator``, else the default for the chain's family."""
        chosen = self.config.chains[chain].aggregator if chain in self.config.chains else None
        return chosen or DEFAULT_AGGREGATOR[self.registry.chains[chain].family]

    def aggregator(self, chain: str) -> SwapAggregator:
        name = self.aggregator_name(chain)
        if name not in self._aggregators:
            spec = self.config.aggregators.get(name)
            if spec is None:
                raise ConfigError(f"aggregators.{name}: not configured (needed for {chain})")
            url, version = api_url(
                name, _resolve_api(name, spec.base_url, self.local_dir), spec.api
            )
            key = self.env.get(spec.api_key_env) if spec.api_key_env else None
            if key is None and spec.base_url.startswith("localnet:"):
                key = "localnet"  # NOTE: the local stand-ins want a key, any key; no secret here
            build = _AGGREGATORS.get(name)
            if build is None:
                raise ConfigError(
                    f"aggregators.{name}: no such aggregator (known: {', '.join(_AGGREGATORS)})"
                )
            self._aggregators[name] = self._built(build(self, url, key, version))
        return self._aggregators[name]

    async def submit(self, chain: str, signed: SignedTx) -> str | None:
        """Where the chain's aggregator landed ``signed`` through its own service (Jupiter
        ``/execute`` for an ``/order`` transaction it built in this command), or None: the
        chain adapter sends it. Only an aggregator already built for this command is asked."""
        agg = self._aggregators.get(self.aggregator_name(chain)) if chain in self.urls else None
        return None if agg is None else await agg.submit(signed)

    def swap_policy(self) -> SwapPolicy:
        from rebalancer.dex.checks import DEFAULT_EVM_ROUTERS, SwapPolicy

        p = self.config.policy
        routers: dict[int, frozenset[str]] = dict(DEFAULT_EVM_ROUTERS)
        for chain, extra in p.extra_routers.items():
            info = self.registry.chains.get(chain)
            if info is None or info.chain_id is None:
                raise ConfigError(f"policy.extra_routers.{chain}: not an EVM chain")
            routers[info.chain_id] = routers.get(info.chain_id, frozenset()) | {
                a.lower() for a in extra
            }
        kwargs: dict[str, Any] = {
            "evm_routers": routers,
            "max_slippage_bps": p.max_slippage_bps,
            "unlimited_approval": p.unlimited_approval,
        }
        return SwapPolicy(
            **kwargs,
            extra_programs=frozenset(p.extra_programs),
            rfq_makers=frozenset(p.rfq_makers),
            delegated_makers=frozenset(p.rfq_makers) if self._local_jupiter() else frozenset(),
            max_compute_units=p.max_compute_units,
            max_priority_fee_lamports=p.max_priority_fee_lamports,
        )

    def _local_jupiter(self) -> bool:
        """Jupiter is the local stand-in (``localnet:``), whose ``/build`` fills are delegated
        transfers from its maker (``SwapPolicy.delegated_makers``); never a real API."""
        spec = self.config.aggregators.get("jupiter")
        return spec is not None and spec.base_url.startswith("localnet:")

    async def read_activity(self) -> None:
        """Mark every signing wallet's last activity now, before the balances are read."""
        import asyncio

        pairs = [
            (chain, w.address)
            for w in self.config.wallets
            if w.signer is not None
            for chain in w.chains
            if chain in self.config.chains
        ]
        marks = await asyncio.gather(*(self.adapter(c).last_activity(a) for c, a in pairs))
        self.activity = {(c, a.lower()): m for (c, a), m in zip(pairs, marks, strict=True)}

    def wallet(self, chain: str, address: str) -> WalletConfig:
        for w in self.config.wallets:
            if chain in w.chains and w.address.lower() == address.lower():
                return w
        raise ConfigError(f"wallet {address} on {chain} is not in the config")

    async def signer(self, chain: str, address: str) -> Signer:
        """The wallet's signer, opened once per run (a key file is decrypted once)."""
        key = (chain, address.lower())
        shared = (self.registry.chains[chain].family, address.lower())
        if key not in self._signers and shared in self._opened:
            self._signers[key] = self._opened[shared]  # one key, several chains of a family
        if key not in self._signers:
            from rebalancer.wallet.factory import open_signer

            w = self.wallet(chain, address)
            if w.signer is None:
                raise ConfigError(
                    f"wallets.{w.name}.signer: not set, so this wallet is read-only; add "
                    '`signer = { kind = "keyfile", file = ... }` or a Ledger'
                )
            s = w.signer
            kwargs: dict[str, Any] = {}
            if self.prompt is not None:
                kwargs["prompt"] = self.prompt
            opened = await open_signer(
                kind=s.kind,
                family=self.registry.chains[chain].family,
                address=w.address,
                environ=self.env,
                path=s.path,
                transport=s.transport,
                file=s.file,
                passphrase_env=s.passphrase_env,
                **kwargs,
            )
            self._opened[shared] = self._signers[key] = self._built(opened)
        return self._signers[key]


def _oneinch(s: Services, url: str, key: str | None, version: str) -> SwapAggregator:
    from rebalancer.dex.oneinch import OneInch

    return OneInch(s.client, base_url=url, api_key=key)


def _jupiter(s: Services, url: str, key: str | None, version: str) -> SwapAggregator:
    from rebalancer.dex.jupiter import Jupiter

    spec = s.config.aggregators["jupiter"]
    return Jupiter(
        s.client,
        base_url=url,
        api_key=key,
        max_priority_lamports=s.config.policy.max_priority_fee_lamports,
        api="v2" if version == "v2" else "v1",
        mode=spec.mode or "build",
        max_compute_units=s.config.policy.max_compute_units,
    )


# aggregator name -> how Services builds it (the SDK is imported only when one is needed)
_AGGREGATORS: dict[str, Callable[[Services, str, str | None, str], SwapAggregator]] = {
    "1inch": _oneinch,
    "jupiter": _jupiter,
}
