"""Start, inspect and stop the local worlds: ``rebalancer localnet up | status | down``.

``up`` starts each world detached on a free loopback port (anvil "ethereum" chain id 1 and
"avalanche" chain id 43114 from the committed states, then the Solana node and the API
stand-ins as they exist), funds the demo wallets with a deliberately skewed portfolio and
writes a manifest (endpoints, PIDs, logs). ``down`` stops exactly the PIDs in that manifest.
``up`` is idempotent: worlds already running and answering are left as they are.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from rebalancer.chains.anvil import (
    NodeProcess,
    pid_alive,
    start_anvil,
    start_listening,
    stop_pid,
)
from rebalancer.chains.registry import Registry
from rebalancer.core.errors import ChainError
from rebalancer.core.resources import fixture_path
from rebalancer.endpoints import localnet_dir
from rebalancer.localnet.rpc import Rpc
from rebalancer.localnet.worlds import DEMO_HOLDINGS, WORLDS, demo_evm_address

FIXTURES = fixture_path()
MANIFEST = "manifest.json"
MARKET_PID = "market.pid"
HARDFORK = {"ethereum": "prague", "avalanche": "cancun"}


def default_dir() -> Path:
    """Where the manifest, unpacked states and logs live (the configs' ``localnet:`` lookups
    read the same place)."""
    return localnet_dir()


@dataclass
class World:
    """One running local world as the manifest records it."""

    name: str
    kind: str  # "anvil", "solana", "api"
    url: str
    pid: int
    log: str
    chain_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "url": self.url,
            "pid": self.pid,
            "log": self.log,
            "chain_id": self.chain_id,
        }


def read_manifest(state_dir: Path) -> dict[str, Any] | None:
    path = state_dir / MANIFEST
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ChainError(f"localnet manifest {path} is unreadable: {exc}") from None
    return data


def _answers(url: str, kind: str, name: str = "1inch") -> bool:
    method = "eth_chainId" if kind == "anvil" else "getHealth"
    try:
        if kind == "api" and name == "jupiter":
            # NOTE: the manifest names the v2 base; the label map is a v1 endpoint
            root = url.rsplit("/swap/", 1)[0]
            r = httpx.get(
                root + "/swap/v1/program-id-to-label", timeout=2, headers={"x-api-key": "status"}
            )
            return r.status_code == 200
        if kind == "api":
            r = httpx.get(
                url + "/1/approve/spender", timeout=2, headers={"Authorization": "Bearer status"}
            )
            return r.status_code == 200
        r = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method}, timeout=2)
        return r.status_code == 200 and "result" in r.json()
    except (httpx.HTTPError, ValueError):
        return False


def status(state_dir: Path) -> list[dict[str, Any]]:
    """Each world in the manifest with whether its process is alive and answering."""
    manifest = read_manifest(state_dir)
    if manifest is None:
        return []
    rows = []
    for w in manifest["worlds"]:
        alive = pid_alive(int(w["pid"]))
        answering = alive and _answers(w["url"], w["kind"], w["name"])
        rows.append({**w, "alive": alive, "answering": answering})
    return rows


def up(
    state_dir: Path,
    progress: Callable[[str], None] = lambda _m: None,
    *,
    services: bool = True,
) -> dict[str, Any]:
    """Start every world not already running; return the manifest.

    ``services=False`` starts the EVM worlds only (tests of the EVM side need no more).
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    current = status(state_dir)
    if current and all(row["answering"] for row in current):
        progress("local worlds already running")
        manifest = read_manifest(state_dir)
        assert manifest is not None
        return manifest
    if current:
        progress("some local worlds are down: restarting all of them")
        down(state_dir)
    worlds: list[World] = []
    try:
        registry = Registry.load()
        for name, spec in WORLDS.items():
            progress(f"starting anvil {name} (chain id {spec.chain_id})")
            node = _start_evm_world(name, spec.chain_id, state_dir)
            worlds.append(
                World(name, "anvil", node.url, node.pid, str(node.log_path), spec.chain_id)
            )
            progress(f"funding the demo wallet on {name}")
            fund_evm_demo(node.url, name, registry)
            refresh_evm_oracles(node.url, name)
        progress("starting the 1inch API stand-in")
        worlds.append(_start_oneinch(state_dir, {w.chain_id: w.url for w in worlds}))
        if services:
            worlds.extend(_optional_services(state_dir, progress))
    except BaseException:
        for w in worlds:
            stop_pid(w.pid)
        raise
    manifest = {
        "started_at": int(time.time()),
        "demo_wallets": {"evm": demo_evm_address()},
        "worlds": [w.as_dict() for w in worlds],
    }
    (state_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def down(state_dir: Path) -> list[dict[str, Any]]:
    """Stop exactly the processes the manifest names; remove the manifest."""
    manifest = read_manifest(state_dir)
    if manifest is None:
        return []
    stopped = []
    for pid in _market_pids(state_dir, manifest):
        stop_pid(pid)  # the detached market first: it would report the worlds' end as a fault
    (state_dir / MARKET_PID).unlink(missing_ok=True)
    for w in manifest["worlds"]:
        stop_pid(int(w["pid"]))
        stopped.append(w)
    (state_dir / MANIFEST).unlink(missing_ok=True)
    return stopped


def start_market(
    state_dir: Path, spec: str, days: float | None, step: str, speed: float | None
) -> int:
    """``up --market PATH``: the moving market as a detached process (its PID in the
    manifest's ``market`` section, its log in ``market.log``); ``down`` stops it. A market
    already running there is left as it is."""
    import subprocess
    import sys

    running = _market_pids(state_dir, read_manifest(state_dir))
    if running:
        return running[0]
    argv = [sys.executable, "-m", "rebalancer.localnet.market", "--dir", str(state_dir)]
    argv += ["--market", spec, "--step", step]
    if days is not None:
        argv += ["--days", str(days)]
    if speed is not None:
        argv += ["--speed", str(speed)]
    log = (state_dir / "market.log").open("ab")
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
    finally:
        log.close()
    # NOTE: the market records its PID in the manifest once it has opened the worlds; a file
    # of its own covers the moment before (the manifest is the market's to rewrite).
    (state_dir / MARKET_PID).write_text(f"{proc.pid}\n")
    return proc.pid


def market_status(state_dir: Path) -> dict[str, Any] | None:
    """The manifest's ``market`` section (None: the worlds were never moved), with whether
    its process runs."""
    manifest = read_manifest(state_dir)
    market = None if manifest is None else manifest.get("market")
    if not market:
        return None
    pids = _market_pids(state_dir, manifest)
    return {**market, "pid": pids[0] if pids else None, "running": bool(pids)}


def _market_pids(state_dir: Path, manifest: dict[str, Any] | None) -> list[int]:
    """The live market processes the manifest or the PID file name."""
    pids: list[int] = []
    recorded = ((manifest or {}).get("market") or {}).get("pid")
    if isinstance(recorded, int):
        pids.append(recorded)
    with contextlib.suppress(OSError, ValueError):
        pids.append(int((state_dir / MARKET_PID).read_text().strip()))
    return [p for p in dict.fromkeys(pids) if pid_alive(p)]


def endpoint(state_dir: Path, name: str) -> str | None:
    """The URL of a running world by name (for ``rpc = "localnet:NAME"`` in configs)."""
    manifest = read_manifest(state_dir)
    if manifest is None:
        return None
    for w in manifest["worlds"]:
        if w["name"] == name:
            return str(w["url"])
    return None


def unpack_state(name: str, state_dir: Path) -> Path:
    """anvil's --load-state takes plain JSON only: unpack the committed .gz once per up."""
    src = FIXTURES / "evm" / f"{name}.state.json.gz"
    dst = state_dir / f"{name}.state.json"
    dst.write_bytes(gzip.decompress(src.read_bytes()))
    return dst


def _start_evm_world(name: str, chain_id: int, state_dir: Path) -> NodeProcess:
    return start_anvil(
        name,
        state_dir / f"{name}.log",
        chain_id=chain_id,
        load_state=unpack_state(name, state_dir),
        extra=["--hardfork", HARDFORK[name], "--accounts", "1"],
        detached=True,
    )


def fund_evm_demo(url: str, chain: str, registry: Registry) -> None:
    """Give the demo wallet its skewed holdings: native via anvil_setBalance, tokens minted
    by the world's deployer (wrapped native through a real WETH9 deposit)."""
    world = json.loads((FIXTURES / "evm" / f"{chain}.world.json").read_text())
    deployer = world["deployer"]
    wallet = demo_evm_address()
    rpc = Rpc(url)
    try:
        spec = WORLDS[chain]
        for symbol, amount in DEMO_HOLDINGS[chain].items():
            if symbol == "native":
                raw = int(amount * Decimal(10) ** registry.native(chain).decimals)
                rpc.call("anvil_setBalance", wallet, hex(raw))
                continue
            token = registry.by_symbol(chain, symbol)
            assert token is not None and token.address is not None
            raw = int(amount * Decimal(10) ** token.decimals)
            if symbol == spec.wrapped_native:
                rpc.call("anvil_setBalance", deployer, hex(raw + 10**21))
                rpc.transact(deployer, token.address, "deposit()", value=raw)
                rpc.transact(deployer, token.address, "transfer(address,uint256)", wallet, raw)
            else:
                rpc.transact(deployer, token.address, "mint(address,uint256)", wallet, raw)
    finally:
        rpc.close()


def refresh_evm_oracles(url: str, chain: str, at: int | None = None) -> None:
    """A new round on every local Chainlink feed of ``chain`` at the snapshot price, dated
    ``at`` (default: now), so the feeds are fresh when the world starts."""
    from rebalancer.chains.oracles import feeds_on
    from rebalancer.localnet.worlds import PRICES

    world = json.loads((FIXTURES / "evm" / f"{chain}.world.json").read_text())
    when = int(time.time()) if at is None else at
    rpc = Rpc(url)
    try:
        for feed in feeds_on(chain):
            answer = int(PRICES[feed.asset] * 10**feed.decimals)
            rpc.transact(
                world["deployer"],
                feed.address,
                "pushRound(int256,uint64,uint64)",
                answer,
                when,
                when,
            )
    finally:
        rpc.close()


def _start_oneinch(state_dir: Path, worlds: dict[int | None, str]) -> World:
    """The local 1inch Swap API stand-in over the EVM worlds (its v6.1 base in the manifest)."""
    import sys

    argv = [sys.executable, "-m", "rebalancer.localnet.oneinch_server", "--port", "0"]
    for chain_id, url in worlds.items():
        argv += ["--world", f"{chain_id}={url}"]
    log = state_dir / "1inch.log"
    node = start_listening("1inch", argv, log, detached=True)
    return World("1inch", "api", node.url + "/swap/v6.1", node.pid, str(log))


def _optional_services(state_dir: Path, progress: Callable[[str], None]) -> list[World]:
    """The Solana node and the Jupiter stand-in (its v2 base in the manifest), where their
    modules exist."""
    import importlib.util
    import sys

    started: list[World] = []
    snapshot = FIXTURES / "solana" / "demo.json"
    if (
        importlib.util.find_spec("rebalancer.localnet.solana_node") is not None
        and snapshot.exists()
    ):
        progress("starting the Solana node")
        log = state_dir / "solana.log"
        from rebalancer.localnet.pyth_fixtures import write_live

        pyth = write_live(state_dir / "pyth.json", int(time.time()))
        node = start_listening(
            "solana",
            [
                sys.executable,
                "-m",
                "rebalancer.localnet.solana_node",
                "--port",
                "0",
                "--snapshot",
                str(snapshot),
                "--snapshot",
                str(pyth),
            ],
            log,
            detached=True,
        )
        started.append(World("solana", "solana", node.url, node.pid, str(log)))
        if importlib.util.find_spec("rebalancer.localnet.jupiter_server") is not None:
            progress("starting the Jupiter API stand-in")
            log = state_dir / "jupiter.log"
            argv = [sys.executable, "-m", "rebalancer.localnet.jupiter_server", "--port", "0"]
            try:
                jup = start_listening("jupiter", [*argv, "--rpc", node.url], log, detached=True)
            except BaseException:
                stop_pid(node.pid)  # up() only stops what this function returned
                raise
            started.append(World("jupiter", "api", jup.url + "/swap/v2", jup.pid, str(log)))
    return started
