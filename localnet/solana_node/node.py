"""The local Solana node assembled: one LiteSVM, its clock, accounts and history, and the
table of JSON-RPC methods each part serves."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from solders.account import Account
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from rebalancer.localnet.solana_accounts import SYSTEM_PROGRAM
from rebalancer.localnet.solana_node import rpc
from rebalancer.localnet.solana_node.accounts import AccountMethods, Accounts
from rebalancer.localnet.solana_node.blocks import BlockMethods
from rebalancer.localnet.solana_node.clock import (
    API_VERSION,
    SLOTS_PER_EPOCH,
    ClockMethods,
    SlotClock,
)
from rebalancer.localnet.solana_node.history import History, TxRecord
from rebalancer.localnet.solana_node.rpc import Dispatcher
from rebalancer.localnet.solana_node.send import Sender
from rebalancer.localnet.solana_node.simulate import Simulator
from rebalancer.localnet.solana_node.status import StatusMethods

MAINNET_GENESIS_HASH = "5eykt4UsFv8P8NJdTREpY1vzqKqZKvdpKuc147dw2N9d"
FEATURE_SET = 3294202862
_FAUCET_SEED = b"rebalancer localnet solana faucet"
_FAUCET_LAMPORTS = 500_000_000 * 10**9


class SolanaNode:
    """The node's state and JSON-RPC methods, independent of HTTP; thread-safe."""

    def __init__(
        self,
        accounts: Mapping[Pubkey, Account] | None = None,
        *,
        slot_ms: int = 400,
        start_slot: int | None = None,
        genesis_hash: str = MAINNET_GENESIS_HASH,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.svm = LiteSVM().with_blockhash_check(False)
        self.genesis_hash = genesis_hash
        self.clock = SlotClock(
            self.svm, slot_ms=slot_ms, start_slot=start_slot, monotonic=monotonic, wall=wall
        )
        self.accounts = Accounts(self.svm)
        self.history = History()
        self.faucet = Keypair.from_seed(hashlib.sha256(_FAUCET_SEED).digest())
        self.svm.set_account(self.faucet.pubkey(), Account(_FAUCET_LAMPORTS, b"", SYSTEM_PROGRAM))
        for key, account in (accounts or {}).items():
            self.svm.set_account(key, account)
        self.clock.tick()
        self.simulator = Simulator(self.accounts, self.clock, self.history)
        self.sender = Sender(self.accounts, self.clock, self.history, self.simulator, self.faucet)
        self._lock = threading.RLock()
        methods: dict[str, rpc.Method] = {
            "getHealth": lambda p: "ok",
            "getVersion": lambda p: {"solana-core": API_VERSION, "feature-set": FEATURE_SET},
            "getGenesisHash": lambda p: self.genesis_hash,
            "getIdentity": lambda p: {"identity": str(self.faucet.pubkey())},
            "getEpochInfo": self._get_epoch_info,
            "getTransactionCount": self._get_transaction_count,
            **ClockMethods(self.clock).methods(),
            **AccountMethods(self.accounts, self.clock).methods(),
            **self.simulator.methods(),
            **self.sender.methods(),
            **StatusMethods(self.clock, self.history).methods(),
            **BlockMethods(self.clock, self.history).methods(),
            # NOTE: admin methods of the local worlds (a simulated market moves time and the
            # oracles); the node only ever listens on 127.0.0.1.
            "localnet_warpClock": self._warp_clock,
            "localnet_setAccounts": self._set_accounts,
        }
        self.rpc = Dispatcher(methods, self._lock, self.clock.tick)

    @property
    def slot(self) -> int:
        return self.clock.slot

    def handle_body(self, body: bytes) -> Any:
        """Answer one HTTP body (a request, a batch, or garbage); None means "no reply"."""
        return self.rpc.handle_body(body)

    def set_account(self, key: Pubkey, account: Account) -> None:
        """Write an account directly (snapshot loading, tests)."""
        with self._lock:
            self.accounts.set(key, account)

    def execute(self, tx: VersionedTransaction) -> TxRecord | None:
        """Run a transaction for real; record it if it lands. Returns None if dropped."""
        with self._lock:
            return self.sender.execute(tx)

    def _get_epoch_info(self, params: list[Any]) -> dict[str, Any]:
        slot = self.clock.slot
        rpc.config(params, 0, slot)
        return {
            "absoluteSlot": slot,
            "blockHeight": self.clock.block_height(),
            "epoch": slot // SLOTS_PER_EPOCH,
            "slotIndex": slot % SLOTS_PER_EPOCH,
            "slotsInEpoch": SLOTS_PER_EPOCH,
            "transactionCount": len(self.history),
        }

    def _warp_clock(self, params: list[Any]) -> dict[str, int]:
        """``[unix_timestamp]``: move the slot and the Clock sysvar forward to that time."""
        when = rpc.int_arg(rpc.arg(params, 0, "unix_timestamp"), "unix_timestamp")
        slot = self.clock.warp(when)
        return {"slot": slot, "unixTimestamp": self.clock.block_time(slot)}

    def _set_accounts(self, params: list[Any]) -> int:
        """``[{pubkey: {"data": [base64, "base64"], "lamports", "owner", "executable"}}]``:
        write accounts as a snapshot lists them (the market's Pyth price updates)."""
        import base64
        import binascii

        accounts = rpc.arg(params, 0, "accounts")
        if not isinstance(accounts, dict):
            raise rpc.invalid("Invalid params: accounts must be a map of pubkey to account")
        parsed: list[tuple[Pubkey, Account]] = []
        for key, acc in accounts.items():
            try:
                data = base64.b64decode(acc["data"][0], validate=True)
                account = Account(
                    int(acc["lamports"]),
                    data,
                    Pubkey.from_string(acc["owner"]),
                    bool(acc.get("executable", False)),
                )
            except (KeyError, TypeError, ValueError, IndexError, binascii.Error):
                raise rpc.invalid(f"Invalid params: account {key} is malformed") from None
            parsed.append((rpc.pubkey(key), account))
        for key_, account in parsed:
            self.accounts.set(key_, account)
        return len(parsed)

    def _get_transaction_count(self, params: list[Any]) -> int:
        rpc.config(params, 0, self.clock.slot)
        return len(self.history)


def load_accounts(paths: Sequence[str | Path]) -> tuple[dict[Pubkey, Account], int | None]:
    """Accounts from snapshot files (later files win) and the highest snapshot slot."""
    from rebalancer.localnet.solana_snapshot import load_snapshot, snapshot_accounts

    accounts: dict[Pubkey, Account] = {}
    slot: int | None = None
    for path in paths:
        snap = load_snapshot(path)
        accounts.update(snapshot_accounts(snap, str(path)))
        meta_slot = snap.get("meta", {}).get("slot")
        if isinstance(meta_slot, int):
            slot = max(slot or 0, meta_slot)
    return accounts, slot
