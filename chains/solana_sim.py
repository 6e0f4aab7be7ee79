"""Solana simulation before anything is signed: ``simulateTransaction`` (signatures not verified,
the user's slot still empty) returning the post-state of the account that receives the output."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from rebalancer.chains.base import SimResult, SwapLegs
from rebalancer.core.errors import SimulationError
from rebalancer.core.tx import SolanaTx
from rebalancer.core.types import Token

if TYPE_CHECKING:
    from rebalancer.chains.solana import SolanaChain


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


async def simulate(adapter: SolanaChain, legs: SwapLegs) -> SimResult:
    """``simulateTransaction`` with the post-state of the receiving account."""
    tx = legs.swap
    if not isinstance(tx, SolanaTx) or legs.approval is not None:
        raise SimulationError("solana: only a single versioned transaction can be simulated")
    account = receiving_account(legs.wallet, legs.buy)
    encoded = base64.b64encode(tx.raw).decode()
    calls: list[tuple[str, list[Any]]] = [
        ("getAccountInfo", [account, {"encoding": "base64", "commitment": "confirmed"}]),
        (
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
        ),
    ]
    if legs.buy.is_native:  # the fee payer is the wallet: the fee it paid is added back
        calls.append(("getFeeForMessage", [base64.b64encode(tx.payload()).decode()]))
    # NOTE: one request (a JSON-RPC batch) for the balance before, the simulation and the fee.
    got = await adapter.calls(calls)
    info, result = got[0], got[1]
    before = _amount_of((info or {}).get("value"), legs.buy.is_native)
    value = (result or {}).get("value") or {}
    if value.get("err") is not None:
        logs = " | ".join((value.get("logs") or [])[-3:])
        raise SimulationError(f"solana: the swap fails in simulation: {value['err']} {logs}")
    post = (value.get("accounts") or [None])[0]
    gained = _amount_of(post, legs.buy.is_native) - before
    if legs.buy.is_native:
        gained += int((got[2] or {}).get("value") or 0)
    return SimResult("simulateTransaction", gained, int(value.get("unitsConsumed") or 0))
