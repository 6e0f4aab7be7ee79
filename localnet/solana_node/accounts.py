"""Accounts as the local Solana node shows them, and the JSON-RPC methods that read them
(balances, account infos, token accounts, supplies, rent)."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from solders.account import Account
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey

from rebalancer.localnet.solana_accounts import (
    TOKEN_PROGRAMS,
    EncodingError,
    account_to_json,
    is_token_account,
    mint_decimals_of,
    token_account_fields,
    token_amount_json,
)
from rebalancer.localnet.solana_node import rpc
from rebalancer.localnet.solana_node.clock import SlotClock
from rebalancer.localnet.solana_node.rpc import Method
from rebalancer.localnet.solana_node.token_index import TokenIndex

MAX_MULTIPLE_ACCOUNTS = 100


class Accounts:
    """Reads of the LiteSVM state with a validator's conventions (zero lamports: no account)."""

    def __init__(self, svm: LiteSVM) -> None:
        self.svm = svm
        self.tokens = TokenIndex(svm)

    def get(self, key: Pubkey) -> Account | None:
        """An account as the validator sees it: zero lamports means it does not exist."""
        account = self.svm.get_account(key)
        return account if account is not None and account.lamports > 0 else None

    def set(self, key: Pubkey, account: Account) -> None:
        self.svm.set_account(key, account)
        self.changed()

    def changed(self) -> None:
        """The state changed (a transaction landed, an account was written)."""
        self.tokens.changed()

    def lamports(self, key: Pubkey) -> int:
        account = self.get(key)
        return 0 if account is None else account.lamports

    def mint_decimals(self, mint: Pubkey) -> int | None:
        account = self.get(mint)
        if account is None or account.owner not in TOKEN_PROGRAMS:
            return None
        return mint_decimals_of(bytes(account.data))

    def encode(
        self, account: Account | None, encoding: str, data_slice: tuple[int, int] | None
    ) -> dict[str, Any] | None:
        if account is None:
            return None
        try:
            return account_to_json(account, encoding, data_slice, self.mint_decimals)
        except EncodingError as exc:
            raise rpc.invalid(str(exc)) from None

    def token_balances(self, keys: Sequence[Pubkey]) -> list[dict[str, Any]]:
        """pre/postTokenBalances of a transaction over its account ``keys``."""
        out = []
        for i, key in enumerate(keys):
            account = self.get(key)
            if account is None or account.owner not in TOKEN_PROGRAMS:
                continue
            data = bytes(account.data)
            fields = token_account_fields(data)
            if not is_token_account(data) or fields is None:
                continue
            decimals = self.mint_decimals(fields[0])
            if decimals is None:
                continue
            out.append(
                {
                    "accountIndex": i,
                    "mint": str(fields[0]),
                    "uiTokenAmount": token_amount_json(fields[2], decimals),
                    "owner": str(fields[1]),
                    "programId": str(account.owner),
                }
            )
        return out

    def token_account(self, key: Pubkey) -> tuple[Account, tuple[Pubkey, Pubkey, int], int]:
        """A token account, its (mint, owner, amount) and its mint's decimals."""
        account = self.get(key)
        if account is None:
            raise rpc.invalid("Invalid param: could not find account")
        data = bytes(account.data)
        fields = token_account_fields(data)
        if account.owner not in TOKEN_PROGRAMS or not is_token_account(data) or fields is None:
            raise rpc.invalid("Invalid param: not a Token account")
        decimals = self.mint_decimals(fields[0])
        if decimals is None:
            raise rpc.invalid("Invalid param: could not find mint")
        return account, fields, decimals


class AccountMethods:
    """The JSON-RPC methods that read accounts."""

    def __init__(self, accounts: Accounts, clock: SlotClock) -> None:
        self.accounts = accounts
        self.clock = clock

    def methods(self) -> dict[str, Method]:
        return {
            "getBalance": self.get_balance,
            "getAccountInfo": self.get_account_info,
            "getMultipleAccounts": self.get_multiple_accounts,
            "getTokenAccountsByOwner": self.get_token_accounts_by_owner,
            "getTokenAccountBalance": self.get_token_account_balance,
            "getTokenSupply": self.get_token_supply,
            "getMinimumBalanceForRentExemption": self.get_min_rent,
        }

    def _config(self, params: list[Any], index: int) -> dict[str, Any]:
        return rpc.config(params, index, self.clock.slot)

    def get_balance(self, params: list[Any]) -> dict[str, Any]:
        key = rpc.pubkey(rpc.arg(params, 0, "pubkey"))
        self._config(params, 1)
        return self.clock.wrap(self.accounts.lamports(key))

    def get_account_info(self, params: list[Any]) -> dict[str, Any]:
        key = rpc.pubkey(rpc.arg(params, 0, "pubkey"))
        cfg = self._config(params, 1)
        encoding = rpc.account_encoding(cfg, "binary")
        account = self.accounts.get(key)
        return self.clock.wrap(self.accounts.encode(account, encoding, rpc.data_slice(cfg)))

    def get_multiple_accounts(self, params: list[Any]) -> dict[str, Any]:
        keys = rpc.arg(params, 0, "pubkeys")
        if not isinstance(keys, list):
            raise rpc.invalid("Invalid params: pubkeys must be an array")
        if len(keys) > MAX_MULTIPLE_ACCOUNTS:
            raise rpc.invalid(f"Too many inputs provided; max {MAX_MULTIPLE_ACCOUNTS}")
        pubkeys = [rpc.pubkey(k) for k in keys]
        cfg = self._config(params, 1)
        encoding = rpc.account_encoding(cfg, "base64")
        data_slice = rpc.data_slice(cfg)
        return self.clock.wrap(
            [self.accounts.encode(self.accounts.get(k), encoding, data_slice) for k in pubkeys]
        )

    def get_token_accounts_by_owner(self, params: list[Any]) -> dict[str, Any]:
        owner = rpc.pubkey(rpc.arg(params, 0, "owner"))
        flt = rpc.arg(params, 1, "mint or programId filter")
        cfg = self._config(params, 2)
        encoding = rpc.account_encoding(cfg, "binary")
        data_slice = rpc.data_slice(cfg)
        if not isinstance(flt, dict) or len(flt) != 1 or not ({"mint", "programId"} & set(flt)):
            raise rpc.invalid("Invalid params: expected an object with one of mint, programId")
        mint: Pubkey | None = None
        if "mint" in flt:
            mint = rpc.pubkey(flt["mint"])
            mint_account = self.accounts.get(mint)
            if mint_account is None or mint_account.owner not in TOKEN_PROGRAMS:
                raise rpc.invalid("Invalid param: could not find mint")
            program = mint_account.owner
        else:
            program = rpc.pubkey(flt["programId"])
            if program not in TOKEN_PROGRAMS:
                raise rpc.invalid("Invalid param: unrecognized Token program id")
        out = []
        for key in self.accounts.tokens.by_owner(program, owner):
            account = self.accounts.get(key)
            if account is None:
                continue
            fields = token_account_fields(bytes(account.data))
            if mint is not None and (fields is None or fields[0] != mint):
                continue
            encoded = self.accounts.encode(account, encoding, data_slice)
            out.append({"pubkey": str(key), "account": encoded})
        return self.clock.wrap(out)

    def get_token_account_balance(self, params: list[Any]) -> dict[str, Any]:
        key = rpc.pubkey(rpc.arg(params, 0, "pubkey"))
        self._config(params, 1)
        _, (_, _, amount), decimals = self.accounts.token_account(key)
        return self.clock.wrap(token_amount_json(amount, decimals))

    def get_token_supply(self, params: list[Any]) -> dict[str, Any]:
        key = rpc.pubkey(rpc.arg(params, 0, "mint"))
        self._config(params, 1)
        account = self.accounts.get(key)
        decimals = self.accounts.mint_decimals(key)
        if account is None or decimals is None:
            raise rpc.invalid("Invalid param: not a Token mint")
        (supply,) = struct.unpack_from("<Q", bytes(account.data), 36)
        return self.clock.wrap(token_amount_json(supply, decimals))

    def get_min_rent(self, params: list[Any]) -> int:
        size = rpc.int_arg(rpc.arg(params, 0, "data length"), "data length")
        self._config(params, 1)
        return int(self.accounts.svm.minimum_balance_for_rent_exemption(size))
