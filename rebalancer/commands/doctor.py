"""``rebalancer doctor``: check a config against the live endpoints before money is involved.

One line per check with a fix hint: the config; each chain's node (reachable, the right chain,
latency) and its send_rpc if configured; each oracle feed the config reads (it answers, and its
last update is within the freshness limit prices are held to); each aggregator (a harmless
quote, which also proves the API key is accepted); each signer (opened: key file decrypted
with its passphrase variable, Ledger connected on the right app at the configured address);
the journal (writable, not held by a running rebalancer); anvil for fork simulation, or the
fallback used without it. Nothing is signed or sent. The exit code is the first failure's
(2 config, 3 refused, 4 outside party).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from rebalancer.commands import config_arg
from rebalancer.core.errors import ConfigError, RebalancerError
from rebalancer.output import emit_json, progress_unless


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass
class Check:
    """One line of the report."""

    name: str
    status: Status
    detail: str
    hint: str = ""
    exit_code: int = 0
    latency_ms: int | None = None


def _fail(name: str, exc: RebalancerError, hint: str) -> Check:
    from rebalancer.cli import _scrub

    return Check(name, Status.FAIL, _scrub(exc.message), hint, exc.exit_code)


def add_arguments(p: argparse.ArgumentParser) -> None:
    config_arg(p)
    p.add_argument(
        "--timeout", type=float, default=15.0, metavar="S", help="per request (default 15 s)"
    )


def _unresolved(config: Any) -> dict[str, Check]:
    """Chains whose ``rpc`` cannot be turned into a URL (an unset variable, no local world)."""
    from rebalancer.endpoints import resolve_rpc

    out = {}
    for name, chain in config.chains.items():
        try:
            resolve_rpc(name, chain.rpc)
        except ConfigError as exc:
            out[name] = _fail(f"chain {name}", exc, f"set the variable, or fix chains.{name}.rpc")
    return out


async def _chains(
    services: Any, config: Any, registry: Any, unresolved: dict[str, Check]
) -> tuple[list[Check], list[Check]]:
    """The chain checks, and the oracle checks of the feeds read in the same requests."""
    from rebalancer.chains.oracles import feeds_on
    from rebalancer.endpoints import resolve_rpc
    from rebalancer.market_prices import readable_assets

    assets = readable_assets(config, registry)
    checks: list[Check] = []
    oracles: list[Check] = []
    if not config.oracles.enabled:
        oracles.append(Check("oracles", Status.SKIP, "oracles.enabled = false: [prices] or quotes"))
    for name, chain in config.chains.items():
        label = f"chain {name}"
        if name in unresolved:
            checks.append(unresolved[name])
            continue
        adapter = services.adapter(name)
        wallet = next((w.address for w in config.wallets if name in w.chains), None)
        info = registry.chains[name]
        feeds = feeds_on(name, assets) if config.oracles.enabled else []
        start = time.perf_counter()
        try:
            got = await adapter.balances([wallet] if wallet else [], [registry.native(name)], feeds)
        except RebalancerError as exc:
            hint = (
                "the URL points at another chain: fix chains." + name + ".rpc"
                if isinstance(exc, ConfigError)
                else "is the node up and the URL right (with its API key)?"
            )
            checks.append(_fail(label, exc, hint))
            continue
        ms = round((time.perf_counter() - start) * 1000)
        who = f"chain id {info.chain_id}" if info.chain_id is not None else "genesis hash"
        if got.failures:
            f = got.failures[0]
            checks.append(
                Check(label, Status.FAIL, f"reads fail: {f.reason}", "check the node", 4, ms)
            )
        else:
            checks.append(Check(label, Status.OK, f"{who} right, {ms} ms", latency_ms=ms))
        oracles += [_oracle(r, config) for r in got.oracles]
        send = getattr(chain, "send_rpc", None)
        if send:
            checks.append(await _send_rpc(services, name, send, resolve_rpc))
    return checks, oracles


def _oracle(reading: Any, config: Any) -> Check:
    """One feed: it answered a positive price (4 if not: the chain or the registry is wrong)
    and is fresh enough for a run to use it (3 if not: a run would refuse that price)."""
    from rebalancer.core.display import short_units
    from rebalancer.market_prices import assess

    feed = reading.feed
    label = f"oracle {feed.chain} {feed.asset}"
    where = f"{feed.kind} {feed.description} at {feed.address}"
    limit = config.oracles.max_age_s or feed.heartbeat_s + config.oracles.grace_s
    source = assess(reading, time.time(), config)
    if reading.reason is not None or reading.usd is None:
        return Check(
            label,
            Status.FAIL,
            f"{where}: {reading.reason or 'no answer'}",
            f"no working feed at that address on chains.{feed.chain}.rpc: is it the real "
            f"chain (not a fork or another network)? Otherwise set [oracles] enabled = false "
            f"and price {feed.asset} with the quotes or [prices]",
            4,
        )
    price = f"${short_units(reading.usd)}"
    if not source.usable:
        return Check(
            label,
            Status.FAIL,
            f"{where}: {price}, {source.reason}",
            f"a run refuses this price: wait for the feed's next round, or raise [oracles] "
            f"max_age_s (now {limit} s) or max_confidence_pct if you accept it",
            3,
        )
    return Check(
        label, Status.OK, f"{price}, updated {source.age_s} s ago (limit {limit} s), {feed.kind}"
    )


async def _send_rpc(services: Any, chain: str, spec: str, resolve: Any) -> Check:
    """A send-only node (``[chains.X] send_rpc``): reachable and answering JSON-RPC."""
    import httpx

    from rebalancer.core.redact import redact_url

    label = f"send_rpc {chain}"
    try:
        url = resolve(chain, spec, services.env, services.local_dir)
    except ConfigError as exc:
        return _fail(label, exc, f"set the variable, or fix chains.{chain}.send_rpc")
    family = services.registry.chains[chain].family
    method = "eth_chainId" if family == "evm" else "getHealth"
    start = time.perf_counter()
    try:
        r = await services.client.post(
            url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": []}
        )
        ok = r.status_code == 200 and "result" in r.json()
    except (httpx.HTTPError, ValueError):
        ok = False
    ms = round((time.perf_counter() - start) * 1000)
    if not ok:
        return Check(
            label,
            Status.FAIL,
            f"{redact_url(url)} does not answer {method}",
            f"check chains.{chain}.send_rpc",
            4,
        )
    return Check(label, Status.OK, f"answers {method}, {ms} ms", latency_ms=ms)


async def _aggregators(services: Any, config: Any, registry: Any) -> list[Check]:
    from rebalancer.dex.base import SwapRequest

    checks: list[Check] = []
    seen: set[str] = set()
    for name in config.chains:
        agg_name = services.aggregator_name(name)
        if agg_name in seen:
            continue
        seen.add(agg_name)
        label = f"aggregator {agg_name}"
        spec = config.aggregators.get(agg_name)
        if (
            spec is not None
            and spec.api_key_env
            and not spec.base_url.startswith("localnet:")
            and not services.env.get(spec.api_key_env)
        ):
            checks.append(
                Check(
                    label,
                    Status.FAIL,
                    f"environment variable {spec.api_key_env} (the API key) is not set",
                    f"export {spec.api_key_env}=... (from the {agg_name} developer portal)",
                    2,
                )
            )
            continue
        sell = registry.native(name)
        buy = registry.by_symbol(name, "USDC")
        wallet = next((w.address for w in config.wallets if name in w.chains), None)
        if buy is None or wallet is None:
            checks.append(Check(label, Status.SKIP, "no USDC or wallet to quote with"))
            continue
        request = SwapRequest(
            chain=name,
            chain_id=registry.chains[name].chain_id,
            wallet=wallet,
            sell=sell,
            buy=buy,
            amount_in=10 ** max(sell.decimals - 2, 0),
            slippage_bps=config.policy.max_slippage_bps,
        )
        start = time.perf_counter()
        try:
            quote = await services.aggregator(name).quote(request)
        except RebalancerError as exc:
            checks.append(_fail(label, exc, f"check aggregators.{agg_name} and its API key"))
            continue
        ms = round((time.perf_counter() - start) * 1000)
        checks.append(
            Check(
                label,
                Status.OK,
                f"quoted {sell.symbol} -> {buy.symbol} on {name} ({quote.expected_out} "
                f"base units), key accepted, {ms} ms",
                latency_ms=ms,
            )
        )
    return checks


async def _signers(services: Any, config: Any) -> list[Check]:
    checks: list[Check] = []
    for w in config.wallets:
        label = f"signer {w.name}"
        if w.signer is None:
            checks.append(Check(label, Status.SKIP, "no signer: read-only (plans, no trades)"))
            continue
        try:
            signer = await services.signer(w.chains[0], w.address)
        except RebalancerError as exc:
            hint = (
                f"set {w.signer.passphrase_env} to the key file's passphrase"
                if w.signer.kind == "keyfile" and w.signer.passphrase_env
                else "connect and unlock the Ledger, open the chain's app"
                if w.signer.kind == "ledger"
                else f"check wallets.{w.name}.signer"
            )
            checks.append(_fail(label, exc, hint))
            continue
        checks.append(Check(label, Status.OK, f"{w.signer.kind} opens, signs as {signer.identity}"))
    return checks


def _journal(config: Any) -> Check:
    import fcntl
    import os

    from rebalancer.runs import open_journal

    try:
        journal = open_journal(config)
    except ConfigError as exc:
        return _fail("journal", exc, "set journal = PATH in the config to a writable place")
    try:
        probe = journal.path.parent / f".doctor-{os.getpid()}"
        try:
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            return Check("journal", Status.FAIL, f"{journal.path.parent}: {exc.strerror}", "", 2)
        with open(str(journal.path) + ".lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return Check(
                    "journal",
                    Status.FAIL,
                    f"{journal.path} is held by a running rebalancer",
                    "wait for that run, or stop the watch that holds it",
                    3,
                )
            fcntl.flock(lock, fcntl.LOCK_UN)
        return Check("journal", Status.OK, f"{journal.path} writable, not locked")
    finally:
        journal.close()


def _anvil(registry: Any, config: Any) -> Check:
    from rebalancer.chains.anvil import find_anvil

    if not any(registry.chains[c].family == "evm" for c in config.chains):
        return Check("simulation", Status.SKIP, "no EVM chain")
    try:
        path = find_anvil()
    except ConfigError:
        return Check(
            "simulation",
            Status.WARN,
            "anvil not found: EVM trades are simulated with eth_simulateV1 on the RPC "
            "(refused where the RPC lacks it)",
            "install anvil (`npm install @foundry-rs/anvil-linux-amd64`) or set REBALANCER_ANVIL",
        )
    return Check("simulation", Status.OK, f"anvil at {path} (fork simulation)")


async def _live(
    config: Any, registry: Any, timeout: float, say: Callable[[str], None]
) -> list[Check]:
    import tempfile
    from pathlib import Path

    import httpx

    from rebalancer.services import Services

    with tempfile.TemporaryDirectory(prefix="rebalancer-doctor-") as tmp:
        async with httpx.AsyncClient(timeout=timeout) as client:
            unresolved = _unresolved(config)
            reachable = {n: c for n, c in config.chains.items() if n not in unresolved}
            services = Services(
                config.model_copy(update={"chains": reachable}),
                registry,
                client,
                work_dir=Path(tmp),
            )
            say(f"doctor: reading {len(config.chains)} chain(s) and their oracle feeds")
            checks, oracles = await _chains(services, config, registry, unresolved)
            checks += oracles
            say("doctor: asking each aggregator for a harmless quote")
            checks += await _aggregators(services, config, registry)
            say(f"doctor: opening {len(config.wallets)} signer(s)")
            checks += await _signers(services, config)
    return checks


def diagnose(
    config_path: str, timeout: float = 15.0, say: Callable[[str], None] = lambda _m: None
) -> list[Check]:
    """Every check, in order; the config's own failure stops the rest."""
    from rebalancer.config import load_config

    try:
        config, registry = load_config(config_path)
    except ConfigError as exc:
        return [_fail("config", exc, "fix the named field (or `rebalancer init` a new one)")]
    checks = [
        Check(
            "config",
            Status.OK,
            f"{config_path} valid: {len(config.wallets)} wallet(s), "
            f"chains {', '.join(config.chains)}",
        )
    ]
    try:
        checks += asyncio.run(_live(config, registry, timeout, say))
    except ConfigError as exc:
        checks.append(_fail("services", exc, "fix the named field"))
    checks.append(_journal(config))
    checks.append(_anvil(registry, config))
    return checks


def run(args: argparse.Namespace) -> int:
    checks = diagnose(args.config, args.timeout, progress_unless(args.json))
    failed = [c for c in checks if c.status is Status.FAIL]
    code = failed[0].exit_code if failed else 0
    if args.json:
        emit_json(
            {
                "ok": not failed,
                "exit_code": code,
                "checks": [{**asdict(c), "status": str(c.status)} for c in checks],
            }
        )
        return code
    for c in checks:
        mark = {Status.OK: "ok  ", Status.WARN: "warn", Status.FAIL: "FAIL", Status.SKIP: "skip"}
        line = f"{mark[c.status]}  {c.name:<22} {c.detail}"
        if c.hint and c.status in (Status.FAIL, Status.WARN):
            line += f"\n      fix: {c.hint}"
        print(line)
    if failed:
        print(f"\n{len(failed)} check(s) failed; first: {failed[0].name} (exit {code})")
    else:
        print("\nall checks passed")
    return code
