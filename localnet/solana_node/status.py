"""What the local Solana node says about transactions that landed, by signature or address:
getSignatureStatuses, getTransaction, getSignaturesForAddress. Every landed transaction is
``finalized`` at once (no commitment levels)."""

from __future__ import annotations

import base64
from typing import Any

from solders.message import MessageV0
from solders.pubkey import Pubkey

from rebalancer.localnet.solana_accounts import b58encode
from rebalancer.localnet.solana_node import rpc
from rebalancer.localnet.solana_node.clock import SlotClock
from rebalancer.localnet.solana_node.encoding import tx_json
from rebalancer.localnet.solana_node.history import History, TxRecord
from rebalancer.localnet.solana_node.parsed import (
    MEMO_PROGRAMS,
    parsed_inner_json,
    parsed_tx_json,
)
from rebalancer.localnet.solana_node.rpc import Method, RpcError

MAX_SIGNATURE_STATUSES = 256
MAX_SIGNATURES_FOR_ADDRESS = 1000
TX_ENCODINGS = ("json", "jsonParsed", "base64", "base58")


def status_json(record: TxRecord) -> dict[str, Any]:
    return {"Ok": None} if record.err is None else {"Err": record.err}


def check_tx_encoding(encoding: Any) -> None:
    if encoding not in TX_ENCODINGS:
        raise rpc.invalid(f"Invalid params: encoding {encoding!r} is not supported by this node")


def check_version(record: TxRecord, max_version: Any) -> None:
    """A v0 transaction needs ``maxSupportedTransactionVersion`` (old clients cannot read it)."""
    if isinstance(record.tx.message, MessageV0) and max_version is None:
        raise RpcError(
            -32015,
            "Transaction version (0) is not supported by the requesting client. Please try "
            "the request again with the following configuration parameter: "
            '"maxSupportedTransactionVersion": 0',
        )


def transaction_with_meta(record: TxRecord, encoding: str, max_version: Any) -> dict[str, Any]:
    """``{"transaction", "meta"[, "version"]}`` of a landed transaction, as getTransaction and
    getBlock show it in ``encoding``."""
    raw = bytes(record.tx)
    keys = record.account_keys()
    transaction: Any
    inner = record.inner
    if encoding == "base64":
        transaction = [base64.b64encode(raw).decode(), "base64"]
    elif encoding == "base58":
        transaction = [b58encode(raw), "base58"]
    elif encoding == "jsonParsed":
        transaction = parsed_tx_json(record.tx, record.loaded)
        inner = parsed_inner_json(record.inner, keys)
    else:
        transaction = tx_json(record.tx)
    meta: dict[str, Any] = {
        "err": record.err,
        "status": status_json(record),
        "fee": record.fee,
        "preBalances": record.pre_balances,
        "postBalances": record.post_balances,
        "innerInstructions": inner,
        "logMessages": record.logs,
        "preTokenBalances": record.pre_token,
        "postTokenBalances": record.post_token,
        "rewards": [],
        "computeUnitsConsumed": record.units,
    }
    if encoding != "jsonParsed":  # NOTE: the parsed form lists loaded keys in accountKeys
        meta["loadedAddresses"] = {"writable": record.loaded[0], "readonly": record.loaded[1]}
    if record.return_data is not None:
        meta["returnData"] = record.return_data
    out: dict[str, Any] = {"transaction": transaction, "meta": meta}
    if max_version is not None:
        out["version"] = 0 if isinstance(record.tx.message, MessageV0) else "legacy"
    return out


class StatusMethods:
    """The JSON-RPC methods that look transactions up by signature."""

    def __init__(self, clock: SlotClock, history: History) -> None:
        self.clock = clock
        self.history = history

    def methods(self) -> dict[str, Method]:
        return {
            "getSignatureStatuses": self.get_signature_statuses,
            "getTransaction": self.get_transaction,
            "getSignaturesForAddress": self.get_signatures_for_address,
        }

    def get_signature_statuses(self, params: list[Any]) -> dict[str, Any]:
        sigs = rpc.arg(params, 0, "signatures")
        rpc.config(params, 1, self.clock.slot)
        if not isinstance(sigs, list):
            raise rpc.invalid("Invalid params: signatures must be an array")
        if len(sigs) > MAX_SIGNATURE_STATUSES:
            raise rpc.invalid(f"Too many inputs provided; max {MAX_SIGNATURE_STATUSES}")
        out: list[dict[str, Any] | None] = []
        for sig in sigs:
            rpc.signature(sig)
            record = self.history.get(sig)
            if record is None:
                out.append(None)
                continue
            out.append(
                {
                    "slot": record.slot,
                    "confirmations": None,
                    "err": record.err,
                    "status": status_json(record),
                    "confirmationStatus": "finalized",
                }
            )
        return self.clock.wrap(out)

    def get_transaction(self, params: list[Any]) -> dict[str, Any] | None:
        sig = rpc.arg(params, 0, "signature")
        cfg = params[1] if len(params) > 1 else None
        if isinstance(cfg, str):  # the old positional encoding form
            cfg = {"encoding": cfg}
        cfg = rpc.config([cfg], 0, self.clock.slot)
        if cfg.get("commitment") == "processed":
            raise rpc.invalid("Method does not support commitment below `confirmed`")
        rpc.signature(sig)
        encoding = cfg.get("encoding") or "json"
        check_tx_encoding(encoding)
        max_version = cfg.get("maxSupportedTransactionVersion")
        record = self.history.get(sig)
        if record is None:
            return None
        check_version(record, max_version)
        out = transaction_with_meta(record, encoding, max_version)
        out["slot"] = record.slot
        out["blockTime"] = record.block_time
        return out

    def get_signatures_for_address(self, params: list[Any]) -> list[dict[str, Any]]:
        """Wallet history: landed transactions that referenced the address, newest first."""
        key = rpc.pubkey(rpc.arg(params, 0, "address"))
        cfg = rpc.config(params, 1, self.clock.slot)
        if cfg.get("commitment") == "processed":
            raise rpc.invalid("Method does not support commitment below `confirmed`")
        limit = cfg.get("limit")
        if limit is None:
            limit = MAX_SIGNATURES_FOR_ADDRESS
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise rpc.invalid("Invalid params: limit must be a positive integer")
        if limit > MAX_SIGNATURES_FOR_ADDRESS:
            raise rpc.invalid(f"Invalid limit; max {MAX_SIGNATURES_FOR_ADDRESS}")
        before, until = cfg.get("before"), cfg.get("until")
        for sig in (before, until):
            if sig is not None:
                rpc.signature(sig)
        records = list(reversed(self.history.of_account(str(key))))
        if before is not None:
            index = next((i for i, r in enumerate(records) if r.signature == before), None)
            records = [] if index is None else records[index + 1 :]
        if until is not None:
            index = next((i for i, r in enumerate(records) if r.signature == until), None)
            if index is not None:
                records = records[:index]
        return [
            {
                "signature": r.signature,
                "slot": r.slot,
                "err": r.err,
                "memo": memo_of(r),
                "blockTime": r.block_time,
                "confirmationStatus": "finalized",
            }
            for r in records[:limit]
        ]


def memo_of(record: TxRecord) -> str | None:
    """The memo field of getSignaturesForAddress: each memo as ``[length] text``, joined by
    ``"; "`` (the validator's format), or None."""
    keys = record.account_keys()
    memos = []
    for ix in record.tx.message.instructions:
        if Pubkey.from_string(keys[ix.program_id_index]) in MEMO_PROGRAMS:
            text = bytes(ix.data).decode("utf-8", errors="replace")
            memos.append(f"[{len(bytes(ix.data))}] {text}")
    return "; ".join(memos) or None
