"""Slots, blockhashes and block times of the local Solana node.

Slots advance with wall time (``slot_ms``, 400 like mainnet); each slot has a blockhash, valid
for 150 slots (``lastValidBlockHeight``). LiteSVM only knows one blockhash, so its own check is
off and this clock keeps the window, the Clock sysvar and the SlotHashes sysvar.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from solders.clock import Clock
from solders.hash import Hash
from solders.litesvm import LiteSVM

from rebalancer.localnet.solana_node import rpc
from rebalancer.localnet.solana_node.rpc import Method

MAX_PROCESSING_AGE = 150  # slots a blockhash stays usable, as on mainnet
BLOCKHASH_QUEUE = 300  # blockhashes remembered (isBlockhashValid still says false past 150)
SLOTS_PER_EPOCH = 432_000
API_VERSION = "2.2.0"


class SlotClock:
    """The node's notion of time: current slot, block height, blockhash window."""

    def __init__(
        self,
        svm: LiteSVM,
        *,
        slot_ms: int,
        start_slot: int | None,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if slot_ms <= 0:
            raise ValueError("slot_ms must be positive")
        self.svm = svm
        self.slot_ms = slot_ms
        self._monotonic = monotonic
        self._t0 = monotonic()
        self._wall0 = int(wall())
        self._seed = os.urandom(16)
        self.base_slot = start_slot if start_slot is not None else svm.get_clock().slot
        # NOTE: mainnet's block height trails its slot (skipped slots); an offset keeps clients
        # honest about which one they compare with lastValidBlockHeight.
        self._height_offset = self.base_slot // 16
        self.slot = self.base_slot - 1
        self._warped = 0  # slots added by ``warp`` (a simulated market moving time on)
        self._hashes: dict[str, int] = {}
        self._hash_order: deque[str] = deque()

    def tick(self) -> None:
        """Advance the slot with wall time; issue one blockhash per new slot."""
        elapsed_ms = (self._monotonic() - self._t0) * 1000.0
        slot = self.base_slot + self._warped + int(elapsed_ms // self.slot_ms)
        if slot <= self.slot:
            return
        for s in range(max(self.slot + 1, slot - BLOCKHASH_QUEUE + 1), slot + 1):
            h = self.blockhash_at(s)
            self._hashes[h] = s
            self._hash_order.append(h)
        while len(self._hash_order) > BLOCKHASH_QUEUE:
            del self._hashes[self._hash_order.popleft()]
        self.slot = slot
        epoch = slot // SLOTS_PER_EPOCH
        self.svm.set_clock(Clock(slot, self._wall0, epoch, epoch + 1, self.block_time(slot)))
        # NOTE: the SlotHashes sysvar follows the slot as on a validator (newest first), so
        # programs that need a recent slot work: creating an address lookup table does.
        self.svm.set_slot_hashes(
            [(self._hashes[h], Hash.from_string(h)) for h in reversed(self._hash_order)]
        )

    def warp(self, unix_timestamp: int) -> int:
        """Move the clock forward so the Clock sysvar's unix_timestamp is ``unix_timestamp``
        (a simulated market's step); returns the new slot. The slots in between pass as if
        the node had run through them: only the last 150 blockhashes stay valid. A time the
        clock has already passed leaves it where it is (time only moves forward)."""
        # NOTE: the first slot whose block time is unix_timestamp (ceil of seconds / slot length).
        target = self.base_slot - (-(unix_timestamp - self._wall0) * 1000 // self.slot_ms)
        if target > self.slot:
            self._warped += target - self.slot
            self.tick()
        return self.slot

    def blockhash_at(self, slot: int) -> str:
        """The blockhash of ``slot`` (unpredictable per node run, like a real chain)."""
        return str(Hash(hashlib.sha256(self._seed + slot.to_bytes(8, "little")).digest()))

    def block_time(self, slot: int) -> int:
        return self._wall0 + (slot - self.base_slot) * self.slot_ms // 1000

    def block_height(self, slot: int | None = None) -> int:
        return (self.slot if slot is None else slot) - self._height_offset

    def blockhash_age(self, blockhash: str) -> int | None:
        issued = self._hashes.get(blockhash)
        return None if issued is None else self.slot - issued

    def blockhash_ok(self, blockhash: str) -> bool:
        age = self.blockhash_age(blockhash)
        return age is not None and age <= MAX_PROCESSING_AGE

    def latest_blockhash(self) -> dict[str, Any]:
        return {
            "blockhash": self.blockhash_at(self.slot),
            "lastValidBlockHeight": self.block_height() + MAX_PROCESSING_AGE,
        }

    def context(self) -> dict[str, Any]:
        return {"apiVersion": API_VERSION, "slot": self.slot}

    def wrap(self, value: Any) -> dict[str, Any]:
        """A result in the validator's ``{"context", "value"}`` envelope."""
        return {"context": self.context(), "value": value}


class ClockMethods:
    """The JSON-RPC methods that only read the clock."""

    def __init__(self, clock: SlotClock) -> None:
        self.clock = clock

    def methods(self) -> dict[str, Method]:
        return {
            "getSlot": self.get_slot,
            "getBlockHeight": self.get_block_height,
            "getLatestBlockhash": self.get_latest_blockhash,
            "isBlockhashValid": self.is_blockhash_valid,
            "getRecentPrioritizationFees": self.get_recent_prioritization_fees,
        }

    def get_slot(self, params: list[Any]) -> int:
        rpc.config(params, 0, self.clock.slot)
        return self.clock.slot

    def get_block_height(self, params: list[Any]) -> int:
        rpc.config(params, 0, self.clock.slot)
        return self.clock.block_height()

    def get_latest_blockhash(self, params: list[Any]) -> dict[str, Any]:
        rpc.config(params, 0, self.clock.slot)
        return self.clock.wrap(self.clock.latest_blockhash())

    def is_blockhash_valid(self, params: list[Any]) -> dict[str, Any]:
        blockhash = rpc.arg(params, 0, "blockhash")
        rpc.config(params, 1, self.clock.slot)
        if not isinstance(blockhash, str):
            raise rpc.invalid("Invalid param: blockhash must be a string")
        try:
            Hash.from_string(blockhash)
        except ValueError:
            raise rpc.invalid("Invalid param: Invalid") from None
        return self.clock.wrap(self.clock.blockhash_ok(blockhash))

    def get_recent_prioritization_fees(self, params: list[Any]) -> list[dict[str, int]]:
        first = max(self.clock.base_slot, self.clock.slot - MAX_PROCESSING_AGE + 1)
        return [{"slot": s, "prioritizationFee": 0} for s in range(first, self.clock.slot + 1)]
