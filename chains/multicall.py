"""Hand-rolled ABI codec for Multicall3 ``aggregate3``: the one call every refresh makes.

web3.py's contract layer spends milliseconds encoding a thousand sub-calls; this encodes and
decodes the fixed shapes we need (``balanceOf(address)``, ``getEthBalance(address)``) in
plain bytes operations, with bounds checks so a lying node gets a ChainError, not garbage.
"""

from __future__ import annotations

from collections.abc import Sequence

MULTICALL3 = "0xcA11bde05977b3631167028862bE2a173976CA11"
AGGREGATE3 = bytes.fromhex("82ad56cb")
BALANCE_OF = bytes.fromhex("70a08231")
GET_ETH_BALANCE = bytes.fromhex("4d2301cc")
_WORD = 32


class DecodeError(ValueError):
    """The node's answer is not a well-formed aggregate3 result."""


def _word(n: int) -> bytes:
    return n.to_bytes(_WORD, "big")


def address_arg(address: str) -> bytes:
    """A 20-byte address left-padded to one ABI word."""
    return b"\x00" * 12 + bytes.fromhex(address[2:])


def encode_aggregate3(calls: Sequence[tuple[str, bytes]]) -> bytes:
    """``aggregate3((address target, bool allowFailure, bytes callData)[])`` with every
    ``allowFailure`` true, so one reverting token does not spoil the rest."""
    heads: list[bytes] = []
    bodies: list[bytes] = []
    offset = _WORD * len(calls)
    for target, data in calls:
        padded = data + b"\x00" * (-len(data) % _WORD)
        body = address_arg(target) + _word(1) + _word(3 * _WORD) + _word(len(data)) + padded
        heads.append(_word(offset))
        bodies.append(body)
        offset += len(body)
    return b"".join([AGGREGATE3, _word(_WORD), _word(len(calls)), *heads, *bodies])


def decode_aggregate3(data: bytes, expected: int) -> list[tuple[bool, bytes]]:
    """Decode ``(bool success, bytes returnData)[]``; raise DecodeError on any inconsistency."""
    size = len(data)

    def read(pos: int) -> int:
        if pos < 0 or pos + _WORD > size:
            raise DecodeError(f"offset {pos} outside a {size}-byte answer")
        return int.from_bytes(data[pos : pos + _WORD], "big")

    base = read(0)
    count = read(base)
    if count != expected:
        raise DecodeError(f"{count} results for {expected} calls")
    start = base + _WORD
    out: list[tuple[bool, bytes]] = []
    for i in range(count):
        elem = start + read(start + i * _WORD)
        success = read(elem) == 1
        ret_at = elem + read(elem + _WORD)
        length = read(ret_at)
        end = ret_at + _WORD + length
        if end > size:
            raise DecodeError(f"result {i} runs past the answer")
        out.append((success, data[ret_at + _WORD : end]))
    return out


def uint_result(success: bool, ret: bytes) -> int | None:
    """The uint256 a balance call returned, or None if it failed or returned no word
    (a revert, or an address that is not a contract)."""
    if not success or len(ret) < _WORD:
        return None
    return int.from_bytes(ret[:_WORD], "big")
