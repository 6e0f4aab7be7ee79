"""EVM simulation before anything is signed: an anvil fork, else ``eth_simulateV1``.

A throwaway anvil fork of the chain's own RPC at its latest block: the wallet is impersonated,
the approvals (the reset of a leftover allowance first, where the token approves only from
zero) and the swap run unsigned, and the wallet's real balance change is measured; an approve
must return true, or nothing where the token is known to (registry quirk ``no-return-data``,
mainnet USDT). Where
anvil is missing or cannot fork the RPC, ``eth_simulateV1`` on the RPC itself runs the same
calls in one simulated block (balance read, approval, swap, balance read).
"""

from __future__ import annotations

import asyncio
import tempfile
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from rebalancer.chains.anvil import start_anvil, stop_pid
from rebalancer.chains.base import SimResult, SwapLegs
from rebalancer.core.errors import (
    ChainError,
    ConfigError,
    MethodNotFoundError,
    SimulationError,
    SimulationUnavailable,
)
from rebalancer.core.tx import EvmCall, Proposal
from rebalancer.core.types import Token, TokenQuirk

if TYPE_CHECKING:
    from rebalancer.chains.evm import EvmChain


def _call(tx: Proposal) -> EvmCall:
    if not isinstance(tx, EvmCall):
        raise SimulationError(f"an EVM chain cannot simulate {type(tx).__name__}")
    return tx


async def simulate(adapter: EvmChain, legs: SwapLegs) -> SimResult:
    """On an anvil fork if one can be started, else with ``eth_simulateV1``."""
    try:
        return await simulate_fork(adapter, legs)
    except SimulationUnavailable as fork_problem:
        try:
            return await simulate_rpc(adapter, legs)
        except SimulationUnavailable as rpc_problem:
            raise SimulationUnavailable(f"{fork_problem.message}; {rpc_problem.message}") from None


async def simulate_fork(adapter: EvmChain, legs: SwapLegs) -> SimResult:
    """Run the approval (if any) and the swap on a fork, as the wallet; measure the output."""
    chain = adapter.info.name
    swap = _call(legs.swap)
    scratch = (
        nullcontext(str(adapter.work_dir))
        if adapter.work_dir is not None
        else tempfile.TemporaryDirectory(prefix="rebalancer-fork-")
    )
    with scratch as tmp:
        log_dir = Path(tmp)
        try:
            node = await asyncio.to_thread(
                start_anvil,
                f"fork-{chain}",
                log_dir / f"fork-{chain}.log",
                fork_url=adapter.rpc_url,
            )
        except ConfigError as exc:
            raise SimulationUnavailable(f"no anvil fork of {chain}: {exc}") from None
        except ChainError as exc:
            raise SimulationUnavailable(f"cannot fork {chain}: {exc}") from None
        try:
            return await _on_fork(adapter, node.url, legs, swap)
        finally:
            await asyncio.to_thread(stop_pid, node.pid)


async def _on_fork(adapter: EvmChain, url: str, legs: SwapLegs, swap: EvmCall) -> SimResult:
    from rebalancer.chains.evm import EvmChain

    chain = adapter.info.name
    async with httpx.AsyncClient(timeout=60) as client:
        fork = EvmChain(adapter.info, url, client, retries=1, backoff=0.05)
        await fork.call("anvil_impersonateAccount", [legs.wallet])
        approval_gas = reset_gas = 0
        for what, leg in (("approval reset", legs.approval_reset), ("approval", legs.approval)):
            if leg is None:
                continue
            call = _call(leg)
            try:
                returned = await fork.call("eth_call", [_unsigned_call(call), "latest"])
            except ChainError:
                raise SimulationError(f"{chain}: the {what} reverts on the fork") from None
            _approve_returned(chain, what, legs.sell, str(returned))
            r = await _run(fork, call)
            if int(r["status"], 16) != 1:
                raise SimulationError(f"{chain}: the {what} reverts on the fork")
            if leg is legs.approval:
                approval_gas = int(r["gasUsed"], 16)
            else:
                reset_gas = int(r["gasUsed"], 16)
        before = await fork.balance(legs.wallet, legs.buy)
        r = await _run(fork, swap)
        if int(r["status"], 16) != 1:
            raise SimulationError(
                f"{chain}: the swap {legs.sell.symbol} -> {legs.buy.symbol} reverts on "
                "the fork (price moved past minReturn, or the route is broken)"
            )
        after = await fork.balance(legs.wallet, legs.buy)
        gas = int(r["gasUsed"], 16)
        gained = after - before
        if legs.buy.is_native:  # the wallet paid the gas in the coin it bought
            gained += gas * int(r.get("effectiveGasPrice", "0x0"), 16)
        return SimResult("anvil fork", gained, gas, approval_gas, reset_gas)


def _approve_returned(chain: str, what: str, token: Token, data: str) -> None:
    """An ``approve`` must return true; a token known to return nothing (mainnet USDT) may
    return no data at all, and its success is the call not reverting."""
    raw = data.removeprefix("0x")
    if not raw and TokenQuirk.NO_RETURN_DATA in token.quirks:
        return
    if len(raw) != 64 or int(raw, 16) != 1:
        shown = "no data" if not raw else f"0x{raw[:64]}"
        raise SimulationError(
            f"{chain}: the {what} of {token.symbol} returned {shown}, not true: the token may "
            "not have approved (only tokens known to return nothing may, registry quirk "
            "no-return-data)"
        )


def _balance_call(wallet: str, token: Token) -> dict[str, str]:
    """A read of ``wallet``'s balance as a call (the native coin through Multicall3)."""
    from rebalancer.chains.multicall import BALANCE_OF, GET_ETH_BALANCE, MULTICALL3, address_arg

    if token.address is None:
        return {"to": MULTICALL3, "data": "0x" + (GET_ETH_BALANCE + address_arg(wallet)).hex()}
    return {"to": str(token.address), "data": "0x" + (BALANCE_OF + address_arg(wallet)).hex()}


def _unsigned_call(tx: EvmCall) -> dict[str, str]:
    """A proposed call as its sender would send it unsigned (fork) or simulate it (RPC)."""
    return {
        "from": tx.sender,
        "to": tx.to,
        "data": "0x" + tx.data.hex(),
        "value": hex(tx.value),
        "gas": hex(max(tx.gas, 1_000_000)),
    }


async def simulate_rpc(adapter: EvmChain, legs: SwapLegs) -> SimResult:
    """``eth_simulateV1`` on the chain's RPC: one simulated block holding a balance read, the
    approval, the swap and a second balance read, state carried from call to call."""
    chain = adapter.info.name
    read = {"from": legs.wallet, **_balance_call(legs.wallet, legs.buy)}
    calls = [read, *(_unsigned_call(_call(p)) for p in legs.proposals), read]
    try:
        blocks = await adapter.call(
            "eth_simulateV1",
            [{"blockStateCalls": [{"calls": calls}], "validation": False}, "latest"],
        )
    except MethodNotFoundError:
        raise SimulationUnavailable(f"{chain}: the RPC has no eth_simulateV1") from None
    except ChainError as exc:
        raise SimulationError(f"{chain}: eth_simulateV1 failed: {exc.message}") from None
    try:
        results = blocks[0]["calls"]
        statuses = [int(str(r["status"]), 16) for r in results]
        before = int(str(results[0]["returnData"]), 16)
        after = int(str(results[-1]["returnData"]), 16)
        gas = int(str(results[-2]["gasUsed"]), 16)
        firsts = [leg for leg in (legs.approval_reset, legs.approval) if leg is not None]
        middle = results[1:-2]  # the approvals, between the first read and the swap
        used = dict(zip(map(id, firsts), (int(str(r["gasUsed"]), 16) for r in middle), strict=True))
        returned = [str(r.get("returnData", "0x")) for r in middle]
        approval_gas = used.get(id(legs.approval), 0)
        reset_gas = used.get(id(legs.approval_reset), 0)
    except (KeyError, IndexError, TypeError, ValueError):
        raise SimulationError(f"{chain}: eth_simulateV1 answered malformed") from None
    if not all(statuses):
        raise SimulationError(
            f"{chain}: the swap {legs.sell.symbol} -> {legs.buy.symbol} reverts in "
            "eth_simulateV1 (price moved past minReturn, or the route is broken)"
        )
    for leg, data in zip(firsts, returned, strict=True):
        what = "approval" if leg is legs.approval else "approval reset"
        _approve_returned(chain, what, legs.sell, data)
    return SimResult("eth_simulateV1", after - before, gas, approval_gas, reset_gas)


async def _run(fork: EvmChain, tx: EvmCall) -> dict[str, Any]:
    """Send an unsigned transaction as its (impersonated) sender and wait for its receipt."""
    tx_hash = await fork.call("eth_sendTransaction", [_unsigned_call(tx)])
    for _ in range(2000):
        receipt = await fork.receipt(str(tx_hash))
        if receipt is not None:
            return receipt
        await asyncio.sleep(0.005)
    raise SimulationError("the fork did not mine the simulated transaction")
