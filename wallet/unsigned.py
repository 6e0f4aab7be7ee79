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

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rlp
from eth_keys import keys
from eth_utils import keccak
from solders.message import to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from rebalancer.core.documents import load_json
from rebalancer.core.errors import ConfigError, RefusedError
from rebalancer.core.tx import (
    EvmTransaction,
    SignedEvmTransaction,
    SignedSolanaTransaction,
    SignedTx,
    SolanaTx,
    UnsignedTx,
)
from rebalancer.wallet.evm_tx import as_dict, normalise

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
    return norm.payload()


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


# -- the files of an export, per family ----------------------------------------------------------
@dataclass(frozen=True)
class Exported:
    """One transaction written for signing elsewhere: its files, and its manifest fields."""

    files: dict[str, bytes]
    fields: dict[str, Any]


def export_tx(tx: UnsignedTx, tx_id: str, wallet: str) -> Exported:
    """The files a wallet needs to sign ``tx`` (named after ``tx_id``) and what the manifest
    records of them: the hash of the exact bytes to sign, the nonce or the expiry."""
    if isinstance(tx, EvmTransaction):
        payload = tx.payload()
        unsigned = as_dict(tx, wallet)
        return Exported(
            {
                f"{tx_id}.unsigned.json": (json.dumps(unsigned, indent=2) + "\n").encode(),
                f"{tx_id}.unsigned.rlp": ("0x" + payload.hex() + "\n").encode(),
            },
            {
                "nonce": tx.nonce,
                "expiry": None,
                "files": {
                    "unsigned": f"{tx_id}.unsigned.json",
                    "payload": f"{tx_id}.unsigned.rlp",
                    "signed": f"{tx_id}.signed.hex",
                },
                "sha256": sha256_hex(payload),
            },
        )
    message = tx.payload()
    return Exported(
        {
            f"{tx_id}.unsigned.b64": base64.b64encode(tx.raw) + b"\n",
            f"{tx_id}.message.b64": base64.b64encode(message) + b"\n",
        },
        {
            "expiry": {"last_valid_block_height": tx.last_valid_block_height},
            "files": {
                "unsigned": f"{tx_id}.unsigned.b64",
                "message": f"{tx_id}.message.b64",
                "signed": f"{tx_id}.signed.b64",
                "signature": f"{tx_id}.signature.b58",
            },
            "sha256": sha256_hex(message),
            "unsigned_sha256": sha256_hex(tx.raw),
        },
    )


def read_file(folder: Path, name: str) -> bytes:
    """A file of an export folder; a name from the manifest must be a plain file name."""
    if "/" in name or name.startswith("."):
        raise RefusedError(f"manifest.json: file name {name!r} is not a plain file name")
    try:
        return (folder / name).read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{folder / name}: missing") from None
    except OSError as exc:
        raise ConfigError(f"{folder / name}: cannot read: {exc.strerror}") from None


def _read_evm(folder: Path, entry: Mapping[str, Any]) -> tuple[UnsignedTx, SignedTx]:
    files = entry["files"]
    unsigned_name = files["unsigned"]
    try:
        unsigned = load_json(read_file(folder, unsigned_name))
        payload = evm_unsigned_payload(unsigned)
    except (ValueError, RecursionError, KeyError, TypeError, AttributeError):
        raise RefusedError(
            f"{folder / unsigned_name}: changed since the export; nothing sent"
        ) from None
    if sha256_hex(payload) != entry["sha256"]:
        raise RefusedError(f"{folder / unsigned_name}: changed since the export; nothing sent")
    if int(unsigned["nonce"]) != int(entry["nonce"]):
        raise RefusedError(f"{folder / unsigned_name}: field nonce differs from the manifest")
    name = files["signed"]
    text = read_file(folder, name).decode(errors="replace").strip()
    try:
        raw = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raise RefusedError(f"{folder / name}: not hex; nothing was sent") from None
    signed = verify_evm_signed(raw, unsigned, entry["wallet"], str(folder / name))
    return normalise(unsigned), signed


def _read_solana(folder: Path, entry: Mapping[str, Any]) -> tuple[UnsignedTx, SignedTx]:
    files = entry["files"]
    unsigned_raw = base64.b64decode(read_file(folder, files["unsigned"]))
    where = str(folder / files["unsigned"])
    if sha256_hex(unsigned_raw) != entry["unsigned_sha256"]:
        raise RefusedError(f"{where}: changed since the export; nothing was sent")
    export = SolanaExport.parse(unsigned_raw, entry["wallet"], where)
    if sha256_hex(export.message) != entry["sha256"]:
        raise RefusedError(f"{where}: field message changed since the export; nothing was sent")
    signed_path = folder / files["signed"]
    if signed_path.exists():
        tx = verify_solana_signed(
            export,
            signed_tx=base64.b64decode(read_file(folder, files["signed"])),
            where=str(signed_path),
        )
    else:
        sig_path = folder / files["signature"]
        if not sig_path.exists():
            raise ConfigError(f"{signed_path}: missing (or {sig_path.name}): sign it first")
        tx = verify_solana_signed(
            export, signature_b58=sig_path.read_text().strip(), where=str(sig_path)
        )
    expiry = (entry.get("expiry") or {}).get("last_valid_block_height")
    unsigned_tx = SolanaTx(unsigned_raw, None if expiry is None else int(expiry))
    return unsigned_tx, SignedSolanaTransaction(bytes(tx), str(tx.signatures[0]))


_READERS = {"evm": _read_evm, "solana": _read_solana}


def read_signed(folder: Path, entry: Mapping[str, Any]) -> tuple[UnsignedTx, SignedTx]:
    """The exported transaction of a manifest entry and its signed form, proven to match
    (every field, the signer, the other signers' signatures), or a refusal naming the file."""
    reader = _READERS.get(str(entry.get("family")))
    if reader is None:
        raise ConfigError(f"manifest: {entry.get('id')} has unknown family {entry.get('family')!r}")
    return reader(folder, entry)
