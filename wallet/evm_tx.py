"""EVM transaction encoding for signers that get a signature back, not a signed blob (Ledger).

The unsigned payload here is exactly what the Ethereum app hashes and signs, and the signed
encoding is what a node accepts; both are checked against eth-account's own signing in tests.
Only EIP-1559 (type 2) and legacy EIP-155 transactions are supported, the two the tool builds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import rlp
from eth_utils import is_checksum_address, keccak, to_bytes, to_canonical_address

_TYPE2_FIELDS = ("chainId", "nonce", "maxPriorityFeePerGas", "maxFeePerGas", "gas", "value")
_LEGACY_FIELDS = ("chainId", "nonce", "gasPrice", "gas", "value")


@dataclass(frozen=True, slots=True)
class EvmTx:
    """A normalised transaction: integers, bytes, and whether it is type 2 or legacy."""

    typed: bool
    chain_id: int
    nonce: int
    gas: int
    to: bytes
    value: int
    data: bytes
    gas_price: int = 0
    max_fee_per_gas: int = 0
    max_priority_fee_per_gas: int = 0
    access_list: tuple[tuple[bytes, tuple[bytes, ...]], ...] = ()


def _int(tx: Mapping[str, Any], key: str) -> int:
    if key not in tx:
        raise ValueError(f"evm transaction: missing field {key!r}")
    v = tx[key]
    if isinstance(v, str):
        v = int(v, 16) if v.startswith(("0x", "0X")) else int(v)
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise ValueError(f"evm transaction: field {key!r} must be a non-negative integer")
    return v


def _access_list(items: Sequence[Any]) -> tuple[tuple[bytes, tuple[bytes, ...]], ...]:
    out = []
    for item in items:
        address = item["address"] if isinstance(item, Mapping) else item[0]
        keys = item["storageKeys"] if isinstance(item, Mapping) else item[1]
        out.append((to_canonical_address(address), tuple(to_bytes(hexstr=k) for k in keys)))
    return tuple(out)


def normalise(tx: Mapping[str, Any]) -> EvmTx:
    """Read a web3-style dict (camelCase keys, ints or hex strings) into an :class:`EvmTx`.

    ``type`` 2 (or the presence of ``maxFeePerGas``) means EIP-1559; ``gasPrice`` means legacy.
    Contract creation (no ``to``) is refused: the tool never deploys.
    """
    tx_type = tx.get("type")
    if isinstance(tx_type, str):
        tx_type = int(tx_type, 16)
    typed = tx_type == 2 or (tx_type is None and "maxFeePerGas" in tx)
    if tx_type not in (None, 0, 2):
        raise ValueError(f"evm transaction: type {tx_type} is not supported (only 2 and legacy)")
    if not typed and "gasPrice" not in tx:
        raise ValueError("evm transaction: needs maxFeePerGas (type 2) or gasPrice (legacy)")
    to = tx.get("to")
    if not to:
        raise ValueError("evm transaction: missing 'to' (contract creation is not supported)")
    mixed_case = isinstance(to, str) and to[2:] not in (to[2:].lower(), to[2:].upper())
    if mixed_case and not is_checksum_address(to):
        raise ValueError(f"evm transaction: 'to' {to} fails its EIP-55 checksum")
    for key in _TYPE2_FIELDS if typed else _LEGACY_FIELDS:
        _int(tx, key)
    data = tx.get("data") or tx.get("input") or b""
    data_bytes = to_bytes(hexstr=data) if isinstance(data, str) else bytes(data)
    return EvmTx(
        typed=typed,
        chain_id=_int(tx, "chainId"),
        nonce=_int(tx, "nonce"),
        gas=_int(tx, "gas"),
        to=to_canonical_address(to),
        value=_int(tx, "value"),
        data=data_bytes,
        gas_price=0 if typed else _int(tx, "gasPrice"),
        max_fee_per_gas=_int(tx, "maxFeePerGas") if typed else 0,
        max_priority_fee_per_gas=_int(tx, "maxPriorityFeePerGas") if typed else 0,
        access_list=_access_list(tx.get("accessList") or ()) if typed else (),
    )


def _fields(tx: EvmTx) -> list[Any]:
    if tx.typed:
        access = [[addr, list(keys)] for addr, keys in tx.access_list]
        return [
            tx.chain_id,
            tx.nonce,
            tx.max_priority_fee_per_gas,
            tx.max_fee_per_gas,
            tx.gas,
            tx.to,
            tx.value,
            tx.data,
            access,
        ]
    return [tx.nonce, tx.gas_price, tx.gas, tx.to, tx.value, tx.data]


def unsigned_payload(tx: EvmTx) -> bytes:
    """The bytes whose keccak is signed: ``0x02 || rlp(...)`` or the EIP-155 legacy RLP."""
    if tx.typed:
        return b"\x02" + rlp.encode(_fields(tx))
    return rlp.encode([*_fields(tx), tx.chain_id, 0, 0])


def eip155_tail_length(tx: EvmTx) -> int:
    """Length of the trailing ``chainId, 0, 0`` of a legacy payload (the "EIP-155 marker")."""
    return len(rlp.encode(tx.chain_id)) + 2


def signed_encoding(tx: EvmTx, v: int, r: int, s: int) -> bytes:
    """The raw signed transaction; ``v`` is the y-parity (typed) or the EIP-155 value (legacy)."""
    if tx.typed:
        return b"\x02" + rlp.encode([*_fields(tx), v, r, s])
    return rlp.encode([*_fields(tx), v, r, s])


def signing_hash(tx: EvmTx) -> bytes:
    return keccak(unsigned_payload(tx))


def tx_hash(raw: bytes) -> bytes:
    return keccak(raw)
