"""Blocks of the slots the local Solana node produced: getBlock, getBlockTime, getBlocks,
getFirstAvailableBlock. Every slot from the node's first one to the current one is a block
(no skipped slots); earlier slots are "missing in long-term storage", later ones "not
available" yet, with the validator's error codes.

NOTE: a transaction lands in the slot whose blockhash getLatestBlockhash was answering, so a
block's transactions may name that block's own ``blockhash`` (on a validator they name an
earlier one).
"""

from __future__ import annotations

from typing import Any

from rebalancer.localnet.solana_node import rpc
from rebalancer.localnet.solana_node.clock import SlotClock
from rebalancer.localnet.solana_node.history import History, TxRecord
from rebalancer.localnet.solana_node.rpc import Method, RpcError
from rebalancer.localnet.solana_node.status import (
    check_tx_encoding,
    check_version,
    transaction_with_meta,
)

MAX_GET_BLOCKS_RANGE = 500_000
MAX_FEE_ACCOUNTS = 128
RECENT_FEE_SLOTS = 150  # the validator's prioritization fee cache
COMPUTE_BUDGET_PROGRAM = "ComputeBudget111111111111111111111111111111"
_DETAILS = ("full", "accounts", "signatures", "none")


class BlockMethods:
    """The JSON-RPC methods that read blocks by slot."""

    def __init__(self, clock: SlotClock, history: History) -> None:
        self.clock = clock
        self.history = history

    def methods(self) -> dict[str, Method]:
        return {
            "getBlock": self.get_block,
            "getBlockTime": self.get_block_time,
            "getBlocks": self.get_blocks,
            "getFirstAvailableBlock": self.get_first_available_block,
            "getRecentPrioritizationFees": self.get_recent_prioritization_fees,
        }

    def get_recent_prioritization_fees(self, params: list[Any]) -> list[dict[str, int]]:
        """The last 150 slots, each with the least compute-unit price (micro-lamports) a
        landed transaction of that slot paid; with accounts given, of the transactions that
        write-locked each of them, the highest of those per slot (a transaction locking all
        of them had to pay that). 0 where no such transaction landed, as on mainnet."""
        given = params[0] if params else []
        if not isinstance(given, list) or len(given) > MAX_FEE_ACCOUNTS:
            raise rpc.invalid(f"Too many inputs provided; max {MAX_FEE_ACCOUNTS}")
        accounts = [str(rpc.pubkey(a)) for a in given]
        first = max(self.clock.base_slot, self.clock.slot - RECENT_FEE_SLOTS + 1)
        out: list[dict[str, int]] = []
        for slot in range(first, self.clock.slot + 1):
            records = self.history.in_slot(slot)
            if not accounts:
                prices = [unit_price(r) for r in records]
                fee = min(prices, default=0)
            else:
                fee = 0
                for account in accounts:
                    prices = [unit_price(r) for r in records if account in writable(r)]
                    fee = max(fee, min(prices, default=0))
            out.append({"slot": slot, "prioritizationFee": fee})
        return out

    def _produced(self, slot: Any) -> int:
        slot = rpc.int_arg(slot, "slot")
        if slot > self.clock.slot:
            raise RpcError(-32004, f"Block not available for slot {slot}")
        if slot < self.clock.base_slot:
            raise RpcError(-32009, f"Slot {slot} was skipped, or missing in long-term storage")
        return slot

    def get_block_time(self, params: list[Any]) -> int:
        return self.clock.block_time(self._produced(rpc.arg(params, 0, "slot")))

    def get_first_available_block(self, params: list[Any]) -> int:
        return self.clock.base_slot

    def get_blocks(self, params: list[Any]) -> list[int]:
        start = rpc.int_arg(rpc.arg(params, 0, "start slot"), "start slot")
        end_arg = params[1] if len(params) > 1 and not isinstance(params[1], dict) else None
        cfg = rpc.config(params, 2 if end_arg is not None else 1, self.clock.slot)
        if cfg.get("commitment") == "processed":
            raise rpc.invalid("Method does not support commitment below `confirmed`")
        end = self.clock.slot if end_arg is None else rpc.int_arg(end_arg, "end slot")
        if end - start > MAX_GET_BLOCKS_RANGE:
            raise rpc.invalid(f"Slot range too large; max {MAX_GET_BLOCKS_RANGE}")
        return list(range(max(start, self.clock.base_slot), min(end, self.clock.slot) + 1))

    def get_block(self, params: list[Any]) -> dict[str, Any]:
        slot_arg = rpc.arg(params, 0, "slot")
        cfg = params[1] if len(params) > 1 else None
        if isinstance(cfg, str):  # the old positional encoding form
            cfg = {"encoding": cfg}
        cfg = rpc.config([cfg], 0, self.clock.slot)
        if cfg.get("commitment") == "processed":
            raise rpc.invalid("Method does not support commitment below `confirmed`")
        encoding = cfg.get("encoding") or "json"
        check_tx_encoding(encoding)
        details = cfg.get("transactionDetails") or "full"
        if details not in _DETAILS:
            raise rpc.invalid(f"Invalid params: unknown variant `{details}`")
        max_version = cfg.get("maxSupportedTransactionVersion")
        slot = self._produced(slot_arg)
        records = self.history.in_slot(slot)
        parent = max(slot - 1, self.clock.base_slot)
        block: dict[str, Any] = {
            "blockHeight": self.clock.block_height(slot),
            "blockTime": self.clock.block_time(slot),
            "blockhash": self.clock.blockhash_at(slot),
            "parentSlot": parent,
            "previousBlockhash": self.clock.blockhash_at(parent),
        }
        if details in ("full", "accounts"):
            for record in records:
                check_version(record, max_version)
            block["transactions"] = [
                transaction_with_meta(r, encoding, max_version) for r in records
            ]
            if details == "accounts":
                block["transactions"] = [_accounts_only(t) for t in block["transactions"]]
        elif details == "signatures":
            block["signatures"] = [r.signature for r in records]
        if cfg.get("rewards", True):
            block["rewards"] = []
        return block


def _accounts_only(entry: dict[str, Any]) -> dict[str, Any]:
    """``transactionDetails: accounts``: signatures and account keys, balances in the meta."""
    tx = entry["transaction"]
    message = tx["message"] if isinstance(tx, dict) else {}
    keys = message.get("accountKeys", [])
    meta = entry["meta"]
    out: dict[str, Any] = {
        "transaction": {"accountKeys": keys, "signatures": tx.get("signatures", [])},
        "meta": {
            k: meta[k] for k in ("err", "status", "fee", "preBalances", "postBalances") if k in meta
        },
    }
    if "version" in entry:
        out["version"] = entry["version"]
    return out


def unit_price(record: TxRecord) -> int:
    """The ``SetComputeUnitPrice`` of a landed transaction (0 without one)."""
    msg = record.tx.message
    keys = msg.account_keys
    for ix in msg.instructions:
        data = bytes(ix.data)
        if str(keys[ix.program_id_index]) == COMPUTE_BUDGET_PROGRAM and data[:1] == b"\x03":
            return int.from_bytes(data[1:9], "little")
    return 0


def writable(record: TxRecord) -> set[str]:
    """The accounts a landed transaction write-locked (static and loaded)."""
    msg = record.tx.message
    h = msg.header
    keys = [str(k) for k in msg.account_keys]
    signed = h.num_required_signatures
    out = keys[: signed - h.num_readonly_signed_accounts]
    out += keys[signed : len(keys) - h.num_readonly_unsigned_accounts]
    return {*out, *record.loaded[0]}
