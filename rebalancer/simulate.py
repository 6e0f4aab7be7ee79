"""Simulate a checked swap before anything is signed, and say how.

EVM: a throwaway anvil fork of the chain's own RPC at its latest block; the wallet is
impersonated, the approval and the swap run unsigned, and the wallet's real balance change is
measured. Where anvil is missing or cannot fork the RPC, ``eth_simulateV1`` on the RPC itself
runs the same calls in one simulated block (balance read, approval, swap, balance read).
Solana: ``simulateTransaction`` (signatures not verified, the user's slot still empty)
returning the post-state of the account that receives the output.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from rebalancer.chains.anvil import start_anvil, stop_pid
from rebalancer.chains.evm import EvmChain
from rebalancer.chains.solana import SolanaChain
from rebalancer.core.errors import ChainError, ConfigError, SimulationError
from rebalancer.core.types import Token
from rebalancer.dex.base import EvmTx, SolanaTx
from rebalancer.dex.checks import CheckedSwap


def gas_limit(simulated: int, fallback: int) -> int:
    """A transaction's gas limit: what the simulation used plus 30%, or, unsimulated, the
    aggregator's own figure."""
    return simulated * 13 // 10 if simulated else fallback


class SimulationUnavailable(SimulationError):
    """No way to simulate here (no anvil, RPC cannot be forked, no eth_simulateV1)."""


@dataclass(frozen=True)
class SimResult:
    """What the simulation showed the wallet would get, and what it cost."""

    method: str
    out: int
    gas_used: int = 0
    approval_gas_used: int = 0


async def simulate_evm(adapter: EvmChain, checked: CheckedSwap, log_dir: Path) -> SimResult:
    """On an anvil fork if one can be started, else with ``eth_simulateV1``."""
    try:
        return await simulate_evm_fork(adapter, checked, log_dir)
    except SimulationUnavailable as fork_problem:
        try:
            return await simulate_evm_rpc(adapter, checked)
        except SimulationUnavailable as rpc_problem:
            raise SimulationUnavailable(f"{fork_problem.message}; {rpc_problem.message}") from None


async def simulate_evm_fork(adapter: EvmChain, checked: CheckedSwap, log_dir: Path) -> SimResult:
    """Run the approval (if any) and the swap on a fork, as the wallet; measure the output."""
    req = checked.built.quote.request
    swap = checked.built.tx
    assert isinstance(swap, EvmTx)
    try:
        node = await asyncio.to_thread(
            start_anvil,
            f"fork-{req.chain}",
            log_dir / f"fork-{req.chain}.log",
            fork_url=adapter.rpc_url,
        )
    except ConfigError as exc:
        raise SimulationUnavailable(f"no anvil fork of {req.chain}: {exc}") from None
    except ChainError as exc:
        raise SimulationUnavailable(f"cannot fork {req.chain}: {exc}") from None
    try:
        async with httpx.AsyncClient(timeout=60) as client:
            fork = EvmChain(adapter.info, node.url, client, retries=1, backoff=0.05)
            await fork.call("anvil_impersonateAccount", [req.wallet])
            approval_gas = 0
            if checked.built.approval is not None:
                r = await _run(fork, checked.built.approval)
                if int(r["status"], 16) != 1:
                    raise SimulationError(f"{req.chain}: the approval reverts on the fork")
                approval_gas = int(r["gasUsed"], 16)
            before = await fork.token_balance(req.wallet, req.buy)
            r = await _run(fork, swap)
            if int(r["status"], 16) != 1:
                raise SimulationError(
                    f"{req.chain}: the swap {req.sell.symbol} -> {req.buy.symbol} reverts on "
                    "the fork (price moved past minReturn, or the route is broken)"
                )
            after = await fork.token_balance(req.wallet, req.buy)
            gas = int(r["gasUsed"], 16)
            gained = after - before
            if req.buy.is_native:  # the wallet paid the gas in the coin it bought
                gained += gas * int(r.get("effectiveGasPrice", "0x0"), 16)
            return SimResult("anvil fork", gained, gas, approval_gas)
    finally:
        await asyncio.to_thread(stop_pid, node.pid)


def _balance_call(wallet: str, token: Token) -> dict[str, str]:
    """A read of ``wallet``'s balance as a call (the native coin through Multicall3)."""
    from rebalancer.chains.multicall import BALANCE_OF, GET_ETH_BALANCE, MULTICALL3, address_arg

    if token.address is None:
        return {"to": MULTICALL3, "data": "0x" + (GET_ETH_BALANCE + address_arg(wallet)).hex()}
    return {"to": str(token.address), "data": "0x" + (BALANCE_OF + address_arg(wallet)).hex()}


async def simulate_evm_rpc(adapter: EvmChain, checked: CheckedSwap) -> SimResult:
    """``eth_simulateV1`` on the chain's RPC: one simulated block holding a balance read, the
    approval, the swap and a second balance read, state carried from call to call."""
    req = checked.built.quote.request
    swap = checked.built.tx
    assert isinstance(swap, EvmTx)

    def call(tx: EvmTx) -> dict[str, str]:
        return {
            "from": tx.sender,
            "to": tx.to,
            "data": "0x" + tx.data.hex(),
            "value": hex(tx.value),
            "gas": hex(max(tx.gas, 1_000_000)),
        }

    read = {"from": req.wallet, **_balance_call(req.wallet, req.buy)}
    calls = [read]
    if checked.built.approval is not None:
        calls.append(call(checked.built.approval))
    calls += [call(swap), read]
    try:
        blocks = await adapter.call(
            "eth_simulateV1",
            [{"blockStateCalls": [{"calls": calls}], "validation": False}, "latest"],
        )
    except ChainError as exc:
        if (
            "not found" in exc.message.lower()
            or "not supported" in exc.message.lower()
            or ("-32601" in exc.message)
        ):
            raise SimulationUnavailable(f"{req.chain}: the RPC has no eth_simulateV1") from None
        raise SimulationError(f"{req.chain}: eth_simulateV1 failed: {exc.message}") from None
    try:
        results = blocks[0]["calls"]
        statuses = [int(str(r["status"]), 16) for r in results]
        before = int(str(results[0]["returnData"]), 16)
        after = int(str(results[-1]["returnData"]), 16)
        gas = int(str(results[-2]["gasUsed"]), 16)
        approval_gas = int(str(results[1]["gasUsed"]), 16) if len(results) == 4 else 0
    except (KeyError, IndexError, TypeError, ValueError):
        raise SimulationError(f"{req.chain}: eth_simulateV1 answered malformed") from None
    if not all(statuses):
        raise SimulationError(
            f"{req.chain}: the swap {req.sell.symbol} -> {req.buy.symbol} reverts in "
            "eth_simulateV1 (price moved past minReturn, or the route is broken)"
        )
    return SimResult("eth_simulateV1", after - before, gas, approval_gas)


async def _run(fork: EvmChain, tx: EvmTx) -> dict[str, Any]:
    """Send an unsigned transaction as its (impersonated) sender and wait for its receipt."""
    tx_hash = await fork.call(
        "eth_sendTransaction",
        [
            {
                "from": tx.sender,
                "to": tx.to,
                "data": "0x" + tx.data.hex(),
                "value": hex(tx.value),
                "gas": hex(max(tx.gas, 1_000_000)),
            }
        ],
    )
    for _ in range(2000):
        receipt = await fork.receipt(str(tx_hash))
        if receipt is not None:
            return receipt
        await asyncio.sleep(0.005)
    raise SimulationError("the fork did not mine the simulated transaction")


def ata(owner: str, mint: str) -> str:
    """The associated token account of ``owner`` for ``mint`` (SPL Token program)."""
    from solders.pubkey import Pubkey
    from solders.token.associated import get_associated_token_address

    return str(get_associated_token_address(Pubkey.from_string(owner), Pubkey.from_string(mint)))


def receiving_account(wallet: str, token: Token) -> str:
    """Where a swap's output lands: the wallet itself for SOL, else its associated account."""
    return wallet if token.is_native else ata(wallet, str(token.address))


def _amount_of(account: dict[str, Any] | None, native: bool) -> int:
    if account is None:
        return 0
    if native:
        return int(account["lamports"])
    data = base64.b64decode(account["data"][0])
    return int.from_bytes(data[64:72], "little") if len(data) >= 72 else 0


async def simulate_solana(adapter: SolanaChain, checked: CheckedSwap) -> SimResult:
    """``simulateTransaction`` with the post-state of the receiving account."""
    req = checked.built.quote.request
    tx = checked.built.tx
    assert isinstance(tx, SolanaTx)
    account = receiving_account(req.wallet, req.buy)
    info = await adapter.call(
        "getAccountInfo", [account, {"encoding": "base64", "commitment": "confirmed"}]
    )
    before = _amount_of((info or {}).get("value"), req.buy.is_native)
    encoded = base64.b64encode(tx.raw).decode()
    result = await adapter.call(
        "simulateTransaction",
        [
            encoded,
            {
                "encoding": "base64",
                "sigVerify": False,
                "replaceRecentBlockhash": False,
                "commitment": "confirmed",
                "accounts": {"encoding": "base64", "addresses": [account]},
            },
        ],
    )
    value = (result or {}).get("value") or {}
    if value.get("err") is not None:
        logs = " | ".join((value.get("logs") or [])[-3:])
        raise SimulationError(f"solana: the swap fails in simulation: {value['err']} {logs}")
    post = (value.get("accounts") or [None])[0]
    gained = _amount_of(post, req.buy.is_native) - before
    if req.buy.is_native:  # the fee payer is the wallet: add back the fee it paid
        from solders.message import to_bytes_versioned
        from solders.transaction import VersionedTransaction

        message = to_bytes_versioned(VersionedTransaction.from_bytes(tx.raw).message)
        fee = await adapter.call("getFeeForMessage", [base64.b64encode(message).decode()])
        gained += int((fee or {}).get("value") or 0)
    return SimResult("simulateTransaction", gained, int(value.get("unitsConsumed") or 0))
