"""Token accounts by owner, for ``getTokenAccountsByOwner``: LiteSVM can only list a program's
accounts, so the node keeps an index per token program, rebuilt only after the state changed."""

from __future__ import annotations

from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey

from rebalancer.localnet.solana_accounts import is_token_account, token_account_fields


class TokenIndex:
    """Token accounts of each token program by owner; ``changed`` marks the index stale."""

    def __init__(self, svm: LiteSVM) -> None:
        self.svm = svm
        self._version = 0
        self._index: dict[Pubkey, tuple[int, dict[Pubkey, list[Pubkey]]]] = {}

    def changed(self) -> None:
        self._version += 1

    def by_owner(self, program: Pubkey, owner: Pubkey) -> list[Pubkey]:
        return self._owners(program).get(owner, [])

    def _owners(self, program: Pubkey) -> dict[Pubkey, list[Pubkey]]:
        cached = self._index.get(program)
        if cached is not None and cached[0] == self._version:
            return cached[1]
        index: dict[Pubkey, list[Pubkey]] = {}
        for key, account in self.svm.get_program_accounts(program):
            data = bytes(account.data)
            if account.lamports > 0 and is_token_account(data):
                fields = token_account_fields(data)
                assert fields is not None
                index.setdefault(fields[1], []).append(key)
        for keys in index.values():
            keys.sort(key=str)
        self._index[program] = (self._version, index)
        return index
