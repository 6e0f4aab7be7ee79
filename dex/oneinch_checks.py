"""What only a 1inch transaction holds: AggregationRouterV6 ``swap`` and ``unoswap`` calldata.

``OneInch.check`` runs :func:`check_oneinch_swap`: the EVM family checks of ``dex.checks``
(chain id, sender, router allow-list, value, minimum return, approval), then the router call
decoded and every money field in it held to the request.
"""

from __future__ import annotations

from eth_abi import decode
from eth_abi.exceptions import DecodingError

from rebalancer.dex.base import ONEINCH_V6, BuiltSwap, CheckedSwap, EvmTx, SwapPolicy
from rebalancer.dex.checks import check_evm_approval, check_evm_call, check_min_return, refuse

__all__ = ["NATIVE", "ONEINCH_V6", "SWAP_SELECTOR", "check_oneinch_swap"]

NATIVE = "0xeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
SWAP_SELECTOR = bytes.fromhex("07ed2379")
SWAP_DESC = "(address,address,address,address,uint256,uint256,uint256)"
_PARTIAL_FILL = 1 << 0
_REQUIRES_EXTRA_ETH = 1 << 1

# 1inch v6 "unoswap" entry points: name -> (selector, has `to`, sells the native coin, pools).
# Their arguments are all uint256 words (1inch's packed ``Address`` type for tokens).
_UNOSWAPS: dict[bytes, tuple[str, bool, bool, int]] = {
    bytes.fromhex(sel): (name, to, eth, pools)
    for sel, name, to, eth, pools in [
        ("83800a8e", "unoswap", False, False, 1),
        ("8770ba91", "unoswap2", False, False, 2),
        ("19367472", "unoswap3", False, False, 3),
        ("e2c95c82", "unoswapTo", True, False, 1),
        ("ea76dddf", "unoswapTo2", True, False, 2),
        ("f7a70056", "unoswapTo3", True, False, 3),
        ("a76dfc3b", "ethUnoswap", False, True, 1),
        ("89af926a", "ethUnoswap2", False, True, 2),
        ("188ac35d", "ethUnoswap3", False, True, 3),
        ("175accdc", "ethUnoswapTo", True, True, 1),
        ("0f449d71", "ethUnoswapTo2", True, True, 2),
        ("493189f0", "ethUnoswapTo3", True, True, 3),
    ]
}
_LOW160 = (1 << 160) - 1


def check_oneinch_swap(built: BuiltSwap, policy: SwapPolicy) -> CheckedSwap:
    """Decode a 1inch ``swap`` (or ``unoswap``) transaction and hold every money field to the
    request."""
    req = built.quote.request
    tx = check_evm_call(built, policy)
    if tx.data[:4] in _UNOSWAPS:
        return _check_unoswap(built, tx, policy)
    if tx.data[:4] != SWAP_SELECTOR:
        raise refuse(
            f"router method 0x{tx.data[:4].hex()} is neither swap (0x07ed2379) nor an unoswap"
        )
    try:
        _executor, desc, _data = decode(["address", SWAP_DESC, "bytes"], tx.data[4:])
    except (DecodingError, ValueError, OverflowError):
        raise refuse("swap calldata does not decode") from None
    src, dst, _src_receiver, dst_receiver, amount, min_return, flags = desc
    want_src = NATIVE if req.sell.address is None else str(req.sell.address).lower()
    want_dst = NATIVE if req.buy.address is None else str(req.buy.address).lower()
    if src.lower() != want_src:
        raise refuse(f"sells {src}, not {req.sell.symbol} ({want_src})")
    if dst.lower() != want_dst:
        raise refuse(f"buys {dst}, not {req.buy.symbol} ({want_dst})")
    if amount != req.amount_in:
        raise refuse(f"amount {amount}, not {req.amount_in}")
    if dst_receiver.lower() != req.wallet.lower():
        raise refuse(f"pays {dst_receiver}, not the wallet {req.wallet}")
    if flags & (_PARTIAL_FILL | _REQUIRES_EXTRA_ETH):
        raise refuse(f"flags {flags:#x} allow a partial fill or extra ETH")
    check_min_return(built, policy, min_return)
    if built.approval is not None or built.approval_reset is not None:
        check_evm_approval(built, policy)
    return CheckedSwap(built=built, min_out=int(min_return))


def _packed_address(word: int, what: str) -> str:
    """A 1inch packed ``Address`` word that must be a plain address (no flag bits)."""
    if word >> 160:
        raise refuse(f"{what} carries flag bits {word >> 160:#x}")
    return f"0x{word & _LOW160:040x}"


def _check_unoswap(built: BuiltSwap, tx: EvmTx, policy: SwapPolicy) -> CheckedSwap:
    """The ``unoswap`` family: sold token, amount, receiver and minReturn are in the calldata;
    the token bought is not (the pools decide it), so only a simulation can prove it."""
    req = built.quote.request
    name, has_to, sells_eth, pools = _UNOSWAPS[tx.data[:4]]
    args = tx.data[4:]
    n = int(has_to) + (0 if sells_eth else 2) + 1 + pools
    if len(args) != 32 * n:
        raise refuse(f"{name} calldata has {len(args)} bytes, not {32 * n}")
    words = [int.from_bytes(args[i : i + 32], "big") for i in range(0, len(args), 32)]
    if has_to:
        to = _packed_address(words.pop(0), f"{name} receiver")
        if to != req.wallet.lower():
            raise refuse(f"{name} pays {to}, not the wallet {req.wallet}")
    if sells_eth:
        if req.sell.address is not None:
            raise refuse(f"{name} sells the native coin, not {req.sell.symbol}")
        amount = tx.value
    else:
        token = _packed_address(words.pop(0), f"{name} token")
        if req.sell.address is None or token != str(req.sell.address).lower():
            raise refuse(f"{name} sells {token}, not {req.sell.symbol}")
        amount = words.pop(0)
    if amount != req.amount_in:
        raise refuse(f"{name} amount {amount}, not {req.amount_in}")
    min_return = words.pop(0)
    check_min_return(built, policy, min_return)
    if built.approval is not None or built.approval_reset is not None:
        check_evm_approval(built, policy)
    return CheckedSwap(
        built=built,
        min_out=min_return,
        simulation_must_show=f"that {name} buys {req.buy.symbol}",
    )
