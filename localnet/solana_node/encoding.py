"""Transactions and their execution metadata in the validator's ``json`` encoding
(compiled instructions, base58 data)."""

from __future__ import annotations

import base64
from typing import Any

from solders.message import MessageV0
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import TransactionMetadata

from rebalancer.localnet.solana_accounts import b58encode


def return_data_json(meta: TransactionMetadata) -> dict[str, Any] | None:
    data = meta.return_data()
    if not bytes(data.data):
        return None
    return {
        "programId": str(data.program_id),
        "data": [base64.b64encode(bytes(data.data)).decode(), "base64"],
    }


def inner_json(meta: TransactionMetadata) -> list[dict[str, Any]]:
    out = []
    for index, inner in enumerate(meta.inner_instructions()):
        if not inner:
            continue
        instructions = []
        for item in inner:
            ix = item.instruction()
            instructions.append(
                {
                    "programIdIndex": ix.program_id_index,
                    "accounts": list(bytes(ix.accounts)),
                    "data": b58encode(bytes(ix.data)),
                    "stackHeight": item.stack_height(),
                }
            )
        out.append({"index": index, "instructions": instructions})
    return out


def header_json(tx: VersionedTransaction) -> dict[str, int]:
    h = tx.message.header
    return {
        "numReadonlySignedAccounts": h.num_readonly_signed_accounts,
        "numReadonlyUnsignedAccounts": h.num_readonly_unsigned_accounts,
        "numRequiredSignatures": h.num_required_signatures,
    }


def lookups_json(tx: VersionedTransaction) -> list[dict[str, Any]]:
    msg = tx.message
    if not isinstance(msg, MessageV0):
        return []
    return [
        {
            "accountKey": str(lookup.account_key),
            "readonlyIndexes": list(bytes(lookup.readonly_indexes)),
            "writableIndexes": list(bytes(lookup.writable_indexes)),
        }
        for lookup in msg.address_table_lookups
    ]


def tx_json(tx: VersionedTransaction) -> dict[str, Any]:
    """The ``json`` encoding of a transaction (compiled instructions, base58 data)."""
    msg = tx.message
    message: dict[str, Any] = {
        "accountKeys": [str(k) for k in msg.account_keys],
        "header": header_json(tx),
        "instructions": [
            {
                "accounts": list(bytes(ix.accounts)),
                "data": b58encode(bytes(ix.data)),
                "programIdIndex": ix.program_id_index,
                "stackHeight": None,
            }
            for ix in msg.instructions
        ],
        "recentBlockhash": str(msg.recent_blockhash),
    }
    if isinstance(msg, MessageV0):
        message["addressTableLookups"] = lookups_json(tx)
    return {"message": message, "signatures": [str(s) for s in tx.signatures]}
