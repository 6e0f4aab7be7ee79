"""Checks on what an aggregator returns, in one place, before anything can be signed.

An aggregator's answer is an unsigned transaction written by someone else. ``check_evm_swap``
decodes it and compares every field that moves money with what was asked; only the
``CheckedSwap`` it returns can go on to simulation and signing. Any mismatch raises
SuspiciousResponseError (exit 3) naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from eth_abi import decode
from eth_abi.exceptions import DecodingError

from core.errors import SuspiciousResponseError
from dex.base import BuiltSwap, EvmTx

ONEINCH_V6 = "0x111111125421ca6dc452d289314280a0f8842a65"
NATIVE = "0xeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
SWAP_SELECTOR = bytes.fromhex("07ed2379")
APPROVE_SELECTOR = bytes.fromhex("095ea7b3")
SWAP_DESC = "(address,address,address,address,uint256,uint256,uint256)"
_PARTIAL_FILL = 1 << 0
_REQUIRES_EXTRA_ETH = 1 << 1

# The real AggregationRouterV6, the same on Ethereum and Avalanche (aggregators.md).
DEFAULT_EVM_ROUTERS: dict[int, frozenset[str]] = {
    1: frozenset({ONEINCH_V6}),
    43114: frozenset({ONEINCH_V6}),
}


@dataclass(frozen=True)
class SwapPolicy:
    """What an aggregator's transaction may do."""

    evm_routers: Mapping[int, frozenset[str]] = field(
        default_factory=lambda: dict(DEFAULT_EVM_ROUTERS)
    )
    max_slippage_bps: int = 100
    unlimited_approval: bool = False


@dataclass(frozen=True)
class CheckedSwap:
    """A swap whose transaction was decoded and matched the request; ``min_out`` is the
    least the transaction itself guarantees (it reverts below it)."""

    built: BuiltSwap
    min_out: int


def _refuse(what: str) -> SuspiciousResponseError:
    return SuspiciousResponseError(f"aggregator transaction refused: {what}")


def _addr(word: str) -> str:
    return word.lower()


def check_evm_swap(built: BuiltSwap, policy: SwapPolicy) -> CheckedSwap:
    """Decode a 1inch ``swap`` transaction and hold every money field to the request."""
    req = built.quote.request
    tx = built.tx
    if not isinstance(tx, EvmTx):
        raise _refuse(f"expected an EVM transaction for {req.chain}")
    wallet = req.wallet.lower()
    if req.chain_id is None or tx.chain_id != req.chain_id:
        raise _refuse(f"chain id {tx.chain_id} is not {req.chain}'s ({req.chain_id})")
    if tx.sender.lower() != wallet:
        raise _refuse(f"from {tx.sender} is not the wallet {req.wallet}")
    routers = policy.evm_routers.get(tx.chain_id, frozenset())
    if tx.to.lower() not in routers:
        raise _refuse(f"router {tx.to} is not on the allow-list for {req.chain}")
    selling_native = req.sell.address is None
    expected_value = req.amount_in if selling_native else 0
    if tx.value != expected_value:
        raise _refuse(f"value {tx.value} wei, expected {expected_value}")
    if tx.data[:4] != SWAP_SELECTOR:
        raise _refuse(f"router method 0x{tx.data[:4].hex()} is not swap (0x07ed2379)")
    try:
        _executor, desc, _data = decode(["address", SWAP_DESC, "bytes"], tx.data[4:])
    except (DecodingError, ValueError, OverflowError):
        raise _refuse("swap calldata does not decode") from None
    src, dst, _src_receiver, dst_receiver, amount, min_return, flags = desc
    want_src = NATIVE if selling_native else str(req.sell.address).lower()
    want_dst = NATIVE if req.buy.address is None else str(req.buy.address).lower()
    if _addr(src) != want_src:
        raise _refuse(f"sells {src}, not {req.sell.symbol} ({want_src})")
    if _addr(dst) != want_dst:
        raise _refuse(f"buys {dst}, not {req.buy.symbol} ({want_dst})")
    if amount != req.amount_in:
        raise _refuse(f"amount {amount}, not {req.amount_in}")
    if _addr(dst_receiver) != wallet:
        raise _refuse(f"pays {dst_receiver}, not the wallet {req.wallet}")
    if flags & (_PARTIAL_FILL | _REQUIRES_EXTRA_ETH):
        raise _refuse(f"flags {flags:#x} allow a partial fill or extra ETH")
    if min_return == 0:
        raise _refuse("minReturn is 0")
    floor = built.quote.expected_out * (10_000 - policy.max_slippage_bps) // 10_000
    if min_return < floor:
        raise _refuse(
            f"minReturn {min_return} is below the quote {built.quote.expected_out} less "
            f"{policy.max_slippage_bps} bps ({floor})"
        )
    if min_return > built.expected_out:
        raise _refuse(f"minReturn {min_return} is above the expected {built.expected_out}")
    if built.approval is not None:
        check_evm_approval(built, policy)
    return CheckedSwap(built=built, min_out=int(min_return))


def check_evm_approval(built: BuiltSwap, policy: SwapPolicy) -> None:
    """An approval must be ``approve(router on the allow-list, exactly amount_in)`` on the
    sold token, from the wallet, with no value (unlimited only if the policy says so)."""
    req = built.quote.request
    a = built.approval
    assert a is not None
    if req.sell.address is None:
        raise _refuse("an approval for the native coin")
    if a.to.lower() != str(req.sell.address).lower():
        raise _refuse(f"approval goes to {a.to}, not the token {req.sell.symbol}")
    if a.sender.lower() != req.wallet.lower() or a.value != 0 or a.chain_id != req.chain_id:
        raise _refuse("approval sender, value or chain id is wrong")
    if a.data[:4] != APPROVE_SELECTOR:
        raise _refuse("approval calldata is not approve(address,uint256)")
    try:
        spender, amount = decode(["address", "uint256"], a.data[4:])
    except (DecodingError, ValueError, OverflowError):
        raise _refuse("approval calldata does not decode") from None
    if _addr(spender) not in policy.evm_routers.get(a.chain_id, frozenset()):
        raise _refuse(f"approval spender {spender} is not an allowed router")
    if amount != req.amount_in and not policy.unlimited_approval:
        raise _refuse(f"approval for {amount}, not exactly {req.amount_in}")
