"""What the local Solana node says about transactions that landed: getSignatureStatuses and
getTransaction. Every landed transaction is ``finalized`` at once (no commitment levels)."""

from __future__ import annotations

import base64
from typing import Any

from solders.message import MessageV0

from rebalancer.localnet.solana_accounts import b58encode
from rebalancer.localnet.solana_node import rpc
from rebalancer.localnet.solana_node.clock import SlotClock
from rebalancer.localnet.solana_node.encoding import tx_json
from rebalancer.localnet.solana_node.history import History, TxRecord
from rebalancer.localnet.solana_node.rpc import Method, RpcError

MAX_SIGNATURE_STATUSES = 256


def status_json(record: TxRecord) -> dict[str, Any]:
    return {"Ok": None} if record.err is None else {"Err": record.err}


class StatusMethods:
    """The JSON-RPC methods that look transactions up by signature."""

    def __init__(self, clock: SlotClock, history: History) -> None:
        self.clock = clock
        self.history = history

    def methods(self) -> dict[str, Method]:
        return {
            "getSignatureStatuses": self.get_signature_statuses,
            "getTransaction": self.get_transaction,
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
        if encoding not in ("json", "base64", "base58"):
            raise rpc.invalid(
                f"Invalid params: encoding {encoding!r} is not supported by this node"
            )
        max_version = cfg.get("maxSupportedTransactionVersion")
        record = self.history.get(sig)
        if record is None:
            return None
        is_v0 = isinstance(record.tx.message, MessageV0)
        if is_v0 and max_version is None:
            raise RpcError(
                -32015,
                "Transaction version (0) is not supported by the requesting client. Please try "
                "the request again with the following configuration parameter: "
                '"maxSupportedTransactionVersion": 0',
            )
        raw = bytes(record.tx)
        transaction: Any
        if encoding == "base64":
            transaction = [base64.b64encode(raw).decode(), "base64"]
        elif encoding == "base58":
            transaction = [b58encode(raw), "base58"]
        else:
            transaction = tx_json(record.tx)
        meta: dict[str, Any] = {
            "err": record.err,
            "status": status_json(record),
            "fee": record.fee,
            "preBalances": record.pre_balances,
            "postBalances": record.post_balances,
            "innerInstructions": record.inner,
            "logMessages": record.logs,
            "preTokenBalances": record.pre_token,
            "postTokenBalances": record.post_token,
            "rewards": [],
            "loadedAddresses": {"writable": record.loaded[0], "readonly": record.loaded[1]},
            "computeUnitsConsumed": record.units,
        }
        if record.return_data is not None:
            meta["returnData"] = record.return_data
        out: dict[str, Any] = {
            "slot": record.slot,
            "transaction": transaction,
            "meta": meta,
            "blockTime": record.block_time,
        }
        if max_version is not None:
            out["version"] = 0 if is_v0 else "legacy"
        return out
