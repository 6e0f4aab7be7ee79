"""Unsigned transactions for signing elsewhere, and the checks on the signed ones that come back.

An air-gapped wallet (or any external signer) gets exactly the bytes it must sign: for EVM the
EIP-2718 payload ``0x02 || rlp([...])`` whose keccak is signed, for Solana the serialised
message. What comes back is trusted only once it is proven to be those very bytes with the
wallet's signature: every field of an EVM transaction equals the exported one and the recovered
sender is the wallet; a Solana transaction carries the byte-identical message, the wallet's
signature verifies and the other signers' signatures (an RFQ maker's) are untouched. Any
difference is a refusal naming the file and the field, before anything is sent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import rlp
from eth_keys import keys
from eth_utils import keccak
from solders.message import to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from rebalancer.core.errors import RefusedError
from rebalancer.wallet.base import SignedEvmTransaction
from rebalancer.wallet.evm_tx import normalise, unsigned_payload

TYPE2_FIELD_NAMES = (
    "chainId",
    "nonce",
    "maxPriorityFeePerGas",
    "maxFeePerGas",
    "gas",
    "to",
    "value",
    "data",
    "accessList",
)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def evm_unsigned_payload(tx: Mapping[str, Any]) -> bytes:
    """The bytes an EVM wallet signs (keccak of them): ``0x02 || rlp([...])`` for type 2."""
    norm = normalise(tx)
    if not norm.typed:
        raise RefusedError("evm transaction: only type-2 transactions are exported")
    return unsigned_payload(norm)


def _mismatch(where: str, field: str, detail: str) -> RefusedError:
    return RefusedError(f"{where}: field {field} {detail}; nothing was sent")


def verify_evm_signed(
    raw: bytes, expected: Mapping[str, Any], wallet: str, where: str
) -> SignedEvmTransaction:
    """The signed raw transaction, proven to be ``expected`` signed by ``wallet``.

    ``where`` names the file in the refusal. Every field of the type-2 list is compared, so a
    different ``to``, value, data, nonce or fee is refused, and so is any other signer.
    """
    payload = evm_unsigned_payload(expected)
    if not raw or raw[0] != 0x02:
        first = f"0x{raw[0]:02x}" if raw else "nothing"
        raise _mismatch(where, "type", f"is {first}, not an EIP-1559 (0x02) transaction")
    try:
        items = rlp.decode(raw[1:])
    except Exception as exc:
        raise RefusedError(
            f"{where}: not an RLP-encoded transaction ({exc}); nothing was sent"
        ) from None
    if not isinstance(items, list) or len(items) != len(TYPE2_FIELD_NAMES) + 3:
        raise RefusedError(
            f"{where}: not a signed type-2 transaction (12 fields); nothing was sent"
        )
    want = rlp.decode(payload[1:])
    assert isinstance(want, list)
    for name, got, exp in zip(TYPE2_FIELD_NAMES, items, want, strict=False):
        if rlp.encode(got) != rlp.encode(exp):
            raise _mismatch(where, name, f"is {_show(got)}, the export says {_show(exp)}")
    v, r, s = (int.from_bytes(x, "big") for x in items[-3:])
    if v not in (0, 1):
        raise _mismatch(where, "v", f"is {v}, not a y-parity (0 or 1)")
    try:
        signature = keys.Signature(vrs=(v, r, s))
        signer = signature.recover_public_key_from_msg_hash(keccak(payload))
    except Exception:
        raise _mismatch(where, "signature", "does not recover to any key") from None
    sender = signer.to_checksum_address()
    if sender.lower() != wallet.lower():
        raise _mismatch(where, "signature", f"is by {sender}, not the wallet {wallet}")
    return SignedEvmTransaction(raw_transaction=raw, hash=keccak(raw), r=r, s=s, v=v)


def _show(item: Any) -> str:
    if isinstance(item, bytes):
        text = "0x" + item.hex()
        return text if len(text) <= 42 else f"{text[:42]}… ({len(item)} bytes)"
    return "a list" if isinstance(item, list) else str(item)


@dataclass(frozen=True)
class SolanaExport:
    """A Solana transaction as exported: partly signed (maker), the wallet's slot empty."""

    unsigned: VersionedTransaction
    message: bytes
    wallet: Pubkey

    @classmethod
    def parse(cls, raw: bytes, wallet: str, where: str) -> SolanaExport:
        try:
            tx = VersionedTransaction.from_bytes(raw)
        except Exception as exc:
            raise RefusedError(f"{where}: not a Solana versioned transaction ({exc})") from None
        return cls(tx, to_bytes_versioned(tx.message), Pubkey.from_string(wallet))

    @property
    def wallet_slot(self) -> int:
        required = self.unsigned.message.header.num_required_signatures
        keys_ = list(self.unsigned.message.account_keys)[:required]
        if self.wallet not in keys_:
            raise RefusedError(f"solana transaction: {self.wallet} is not one of its signers")
        return keys_.index(self.wallet)


def verify_solana_signed(
    export: SolanaExport,
    *,
    signed_tx: bytes | None = None,
    signature_b58: str | None = None,
    where: str,
) -> VersionedTransaction:
    """The full signed transaction, proven to be the exported message signed by the wallet.

    Takes either the whole signed transaction or just the wallet's signature (base58).
    """
    slot = export.wallet_slot
    if signed_tx is not None:
        try:
            tx = VersionedTransaction.from_bytes(signed_tx)
        except Exception as exc:
            raise RefusedError(f"{where}: not a Solana versioned transaction ({exc})") from None
        if to_bytes_versioned(tx.message) != export.message:
            raise _mismatch(where, "message", "differs from the exported message")
        signatures = list(tx.signatures)
    elif signature_b58 is not None:
        try:
            sig = Signature.from_string(signature_b58.strip())
        except Exception:
            raise _mismatch(where, "signature", "is not a base58 64-byte signature") from None
        signatures = list(export.unsigned.signatures)
        signatures[slot] = sig
    else:  # pragma: no cover - the caller passes one of them
        raise ValueError("signed_tx or signature_b58")
    exported = list(export.unsigned.signatures)
    if len(signatures) != len(exported):
        raise _mismatch(where, "signatures", f"has {len(signatures)}, not {len(exported)}")
    keys_ = list(export.unsigned.message.account_keys)
    for i, (got, was) in enumerate(zip(signatures, exported, strict=True)):
        if i == slot:
            if not got.verify(export.wallet, export.message):
                raise _mismatch(
                    where, f"signatures[{i}]", f"does not verify for the wallet {export.wallet}"
                )
        elif got != was:
            raise _mismatch(where, f"signatures[{i}]", f"of {keys_[i]} was changed")
        elif was != Signature.default() and not was.verify(keys_[i], export.message):
            raise _mismatch(where, f"signatures[{i}]", f"of {keys_[i]} does not verify")
    return VersionedTransaction.populate(export.unsigned.message, signatures)
