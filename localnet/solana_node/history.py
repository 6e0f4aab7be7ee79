"""The transactions that landed on the local Solana node: by signature (statuses, replay
protection), by slot (blocks) and by account (wallet history)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from solders.transaction import VersionedTransaction


@dataclass
class TxRecord:
    """A transaction that landed: what getSignatureStatuses and getTransaction report."""

    slot: int
    block_time: int
    tx: VersionedTransaction
    err: Any
    fee: int
    logs: list[str]
    units: int
    inner: list[dict[str, Any]]
    return_data: dict[str, Any] | None
    pre_balances: list[int]
    post_balances: list[int]
    pre_token: list[dict[str, Any]]
    post_token: list[dict[str, Any]]
    loaded: tuple[list[str], list[str]] = field(default_factory=lambda: ([], []))

    @property
    def signature(self) -> str:
        return str(self.tx.signatures[0])

    def account_keys(self) -> list[str]:
        """Every account the transaction referenced, loaded ones included."""
        return [str(k) for k in self.tx.message.account_keys] + [*self.loaded[0], *self.loaded[1]]


class History:
    """Landed transactions in landing order, indexed by signature, slot and account."""

    def __init__(self) -> None:
        self._by_sig: dict[str, TxRecord] = {}
        self._by_slot: dict[int, list[TxRecord]] = {}
        self._by_account: dict[str, list[TxRecord]] = {}

    def __len__(self) -> int:
        return len(self._by_sig)

    def __contains__(self, signature: object) -> bool:
        return signature in self._by_sig

    def add(self, record: TxRecord) -> None:
        self._by_sig[record.signature] = record
        self._by_slot.setdefault(record.slot, []).append(record)
        for key in dict.fromkeys(record.account_keys()):
            self._by_account.setdefault(key, []).append(record)

    def get(self, signature: str) -> TxRecord | None:
        return self._by_sig.get(signature)

    def in_slot(self, slot: int) -> list[TxRecord]:
        return list(self._by_slot.get(slot, []))

    def of_account(self, key: str) -> list[TxRecord]:
        """Transactions that referenced ``key``, oldest first."""
        return list(self._by_account.get(key, []))
