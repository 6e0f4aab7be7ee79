"""Reading a web3-style transaction dict (an export file, a test) into the one unsigned type.

The encoder itself is :class:`rebalancer.core.tx.EvmTransaction`: every signer signs its
``payload()``. Only EIP-1559 (type 2) and legacy EIP-155 transactions are supported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from eth_utils import is_checksum_address, to_bytes, to_canonical_address

from rebalancer.core.tx import EvmTransaction

_TYPE2_FIELDS = ("chainId", "nonce", "maxPriorityFeePerGas", "maxFeePerGas", "gas", "value")
_LEGACY_FIELDS = ("chainId", "nonce", "gasPrice", "gas", "value")


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


def normalise(tx: Mapping[str, Any]) -> EvmTransaction:
    """Read a web3-style dict (camelCase keys, ints or hex strings) into an ``EvmTransaction``.

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
    return EvmTransaction(
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


def as_dict(tx: EvmTransaction, sender: str) -> dict[str, Any]:
    """A type-2 transaction by field name, as an export's ``<id>.unsigned.json`` shows it."""
    from eth_utils import to_checksum_address

    if not tx.typed:
        raise ValueError("evm transaction: only type-2 transactions are exported")
    return {
        "type": 2,
        "chainId": tx.chain_id,
        "nonce": tx.nonce,
        "from": sender,
        "to": to_checksum_address(tx.to),
        "value": tx.value,
        "data": "0x" + tx.data.hex(),
        "gas": tx.gas,
        "maxFeePerGas": tx.max_fee_per_gas,
        "maxPriorityFeePerGas": tx.max_priority_fee_per_gas,
        "accessList": [],
    }
