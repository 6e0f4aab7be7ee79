"""What the local Solana node reads from a transaction: its wire decoding, the accounts it
loads (lookup tables included) and the fee the runtime charges for its message."""

from __future__ import annotations

import base64
import binascii
import math
import struct
from typing import Any

from solders.hash import Hash
from solders.message import Message, MessageV0, from_bytes_versioned
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from rebalancer.localnet.solana_accounts import SYSTEM_PROGRAM, b58decode
from rebalancer.localnet.solana_node import rpc
from rebalancer.localnet.solana_node.accounts import Accounts

LAMPORTS_PER_SIGNATURE = 5_000
COMPUTE_BUDGET_PROGRAM = Pubkey.from_string("ComputeBudget111111111111111111111111111111")
# Programs whose instructions get the 3,000 CU default (SIMD-0170) when pricing priority fees.
_BUILTINS = {
    SYSTEM_PROGRAM,
    COMPUTE_BUDGET_PROGRAM,
    Pubkey.from_string("Vote111111111111111111111111111111111111111"),
    Pubkey.from_string("Stake11111111111111111111111111111111111111"),
    Pubkey.from_string("AddressLookupTab1e1111111111111111111111111"),
    Pubkey.from_string("BPFLoaderUpgradeab1e11111111111111111111111"),
    Pubkey.from_string("BPFLoader2111111111111111111111111111111111"),
    Pubkey.from_string("Config1111111111111111111111111111111111111"),
}


def decode_tx(text: Any, cfg: dict[str, Any]) -> VersionedTransaction:
    """A wire transaction from sendTransaction/simulateTransaction, sanitized."""
    encoding = cfg.get("encoding") or "base58"
    if encoding not in ("base58", "base64"):
        raise rpc.invalid(
            f"Invalid params: unsupported encoding: {encoding}. Supported encodings: base58, base64"
        )
    if not isinstance(text, str):
        raise rpc.invalid("Invalid params: transaction must be a string")
    try:
        raw = b58decode(text) if encoding == "base58" else base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise rpc.invalid(f"invalid {encoding} encoding: {exc}") from None
    try:
        tx = VersionedTransaction.from_bytes(raw)
    except ValueError as exc:
        raise rpc.invalid(
            f"failed to deserialize solana_transaction::versioned::VersionedTransaction: {exc}"
        ) from None
    try:
        tx.sanitize()
    except Exception:
        raise rpc.invalid(
            "invalid transaction: Transaction failed to sanitize accounts offsets correctly"
        ) from None
    return tx


def decode_message(text: Any) -> Message | MessageV0:
    """A base64 message, as getFeeForMessage takes it."""
    try:
        message = from_bytes_versioned(base64.b64decode(text, validate=True))
    except (TypeError, ValueError, binascii.Error):
        raise rpc.invalid("Invalid params: invalid base64 message") from None
    if not isinstance(message, Message | MessageV0):
        raise rpc.invalid("Invalid params: unsupported message version")
    return message


def with_blockhash(tx: VersionedTransaction, blockhash: Hash) -> VersionedTransaction:
    """The same transaction (same signatures) over another blockhash."""
    msg = tx.message
    new_msg: Message | MessageV0
    if isinstance(msg, MessageV0):
        new_msg = MessageV0(
            msg.header, msg.account_keys, blockhash, msg.instructions, msg.address_table_lookups
        )
    else:
        h = msg.header
        new_msg = Message.new_with_compiled_instructions(
            h.num_required_signatures,
            h.num_readonly_signed_accounts,
            h.num_readonly_unsigned_accounts,
            msg.account_keys,
            blockhash,
            msg.instructions,
        )
    return VersionedTransaction.populate(new_msg, tx.signatures)


def loaded_addresses(
    accounts: Accounts, tx: VersionedTransaction
) -> tuple[list[Pubkey], list[Pubkey]]:
    """Addresses a v0 transaction loads from lookup tables (writable, then readonly)."""
    msg = tx.message
    if not isinstance(msg, MessageV0):
        return [], []
    writable: list[Pubkey] = []
    readonly: list[Pubkey] = []
    for lookup in msg.address_table_lookups:
        table = accounts.get(lookup.account_key)
        if table is None:
            return [], []
        data = bytes(table.data)[56:]
        addresses = [Pubkey.from_bytes(data[i : i + 32]) for i in range(0, len(data), 32)]
        try:
            writable += [addresses[i] for i in bytes(lookup.writable_indexes)]
            readonly += [addresses[i] for i in bytes(lookup.readonly_indexes)]
        except IndexError:
            return [], []
    return writable, readonly


def all_keys(accounts: Accounts, tx: VersionedTransaction) -> list[Pubkey]:
    """Static keys, then loaded writable, then loaded readonly: the runtime's account order."""
    writable, readonly = loaded_addresses(accounts, tx)
    return [*tx.message.account_keys, *writable, *readonly]


def fee_for_message(message: Message | MessageV0) -> int:
    """Base fee per signature plus the priority fee, as the runtime charges it."""
    keys = message.account_keys
    price = 0
    limit: int | None = None
    default_limit = 0
    for ix in message.instructions:
        program = keys[ix.program_id_index]
        data = bytes(ix.data)
        if program == COMPUTE_BUDGET_PROGRAM and data[:1] == b"\x02" and len(data) >= 5:
            (limit,) = struct.unpack_from("<I", data, 1)
        elif program == COMPUTE_BUDGET_PROGRAM and data[:1] == b"\x03" and len(data) >= 9:
            (price,) = struct.unpack_from("<Q", data, 1)
        default_limit += 3_000 if program in _BUILTINS else 200_000
    units = min(limit if limit is not None else default_limit, 1_400_000)
    priority = math.ceil(price * units / 1_000_000)
    return LAMPORTS_PER_SIGNATURE * message.header.num_required_signatures + priority
