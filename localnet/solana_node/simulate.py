"""simulateTransaction and getFeeForMessage: what a transaction would do and cost, without
changing the state. The same simulation is the preflight of sendTransaction."""

from __future__ import annotations

from typing import Any

from solders.account import Account
from solders.hash import Hash
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata

from rebalancer.localnet.solana_node import rpc
from rebalancer.localnet.solana_node.accounts import Accounts
from rebalancer.localnet.solana_node.clock import SlotClock
from rebalancer.localnet.solana_node.encoding import inner_json, return_data_json
from rebalancer.localnet.solana_node.history import History
from rebalancer.localnet.solana_node.precheck import err_json, precheck
from rebalancer.localnet.solana_node.rpc import Method, RpcError
from rebalancer.localnet.solana_node.transactions import (
    all_keys,
    decode_message,
    decode_tx,
    fee_for_message,
    with_blockhash,
)


class Simulator:
    """Runs transactions on LiteSVM without committing them."""

    def __init__(self, accounts: Accounts, clock: SlotClock, history: History) -> None:
        self.accounts = accounts
        self.clock = clock
        self.history = history

    def methods(self) -> dict[str, Method]:
        return {
            "simulateTransaction": self.simulate_transaction,
            "getFeeForMessage": self.get_fee_for_message,
        }

    def _simulate(self, tx: VersionedTransaction) -> Any:
        """LiteSVM simulation without signature checks (callers decide about signatures)."""
        svm = self.accounts.svm
        svm.with_sigverify(False)
        try:
            return svm.simulate_transaction(tx)
        finally:
            svm.with_sigverify(True)

    def value(
        self,
        tx: VersionedTransaction,
        *,
        addresses: list[Pubkey] | None = None,
        accounts_encoding: str = "base64",
        inner: bool = False,
        replacement: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """simulateTransaction's ``value`` (also the data of a -32002 preflight failure)."""
        keys = all_keys(self.accounts, tx)
        loaded_size = sum(len(a.data) for a in map(self.accounts.get, keys) if a is not None)
        value: dict[str, Any] = {
            "err": None,
            "logs": [],
            "accounts": None,
            "unitsConsumed": 0,
            "loadedAccountsDataSize": 0,
            "returnData": None,
            "innerInstructions": None,
            "replacementBlockhash": replacement,
        }
        pre_err = precheck(self.clock, self.history, tx) if replacement is None else None
        if replacement is not None and str(tx.signatures[0]) in self.history:
            pre_err = "AlreadyProcessed"
        if pre_err is not None:
            value["err"] = pre_err
            return value
        result = self._simulate(tx)
        post: dict[Pubkey, Account] = {}
        if isinstance(result, FailedTransactionMetadata):
            value["err"] = err_json(result.err())
            meta = result.meta()
        else:
            meta = result.meta()
            post = dict(result.post_accounts())
        value["logs"] = list(meta.logs())
        value["unitsConsumed"] = meta.compute_units_consumed()
        value["loadedAccountsDataSize"] = loaded_size
        value["returnData"] = return_data_json(meta)
        if inner:
            value["innerInstructions"] = inner_json(meta)
        if addresses is not None:
            if value["err"] is not None:
                value["accounts"] = [None] * len(addresses)
            else:
                shown = []
                for key in addresses:
                    account = post.get(key) or self.accounts.get(key)
                    if account is not None and account.lamports == 0:
                        account = None
                    shown.append(self.accounts.encode(account, accounts_encoding, None))
                value["accounts"] = shown
        return value

    def simulate_transaction(self, params: list[Any]) -> dict[str, Any]:
        text = rpc.arg(params, 0, "transaction")
        cfg = rpc.config(params, 1, self.clock.slot)
        tx = decode_tx(text, cfg)
        sig_verify = bool(cfg.get("sigVerify"))
        replace = bool(cfg.get("replaceRecentBlockhash"))
        if sig_verify and replace:
            raise rpc.invalid("sigVerify may not be used with replaceRecentBlockhash")
        addresses: list[Pubkey] | None = None
        accounts_encoding = "base64"
        accounts_cfg = cfg.get("accounts")
        if accounts_cfg is not None:
            if not isinstance(accounts_cfg, dict) or not isinstance(
                accounts_cfg.get("addresses"), list
            ):
                raise rpc.invalid("Invalid params: accounts needs an addresses array")
            accounts_encoding = accounts_cfg.get("encoding") or "base64"
            if accounts_encoding in ("base58", "binary"):
                raise rpc.invalid(f"Invalid params: {accounts_encoding} encoding not supported")
            if accounts_encoding not in ("base64", "jsonParsed"):
                raise rpc.invalid(f"Invalid params: unsupported encoding {accounts_encoding!r}")
            addresses = [rpc.pubkey(a) for a in accounts_cfg["addresses"]]
            n_keys = len(all_keys(self.accounts, tx))
            if len(addresses) > n_keys:
                raise rpc.invalid(f"Too many accounts provided; max {n_keys}")
        if sig_verify and not all(tx.verify_with_results()):
            raise RpcError(-32003, "Transaction signature verification failure")
        replacement = None
        if replace:
            replacement = self.clock.latest_blockhash()
            tx = with_blockhash(tx, Hash.from_string(replacement["blockhash"]))
        value = self.value(
            tx,
            addresses=addresses,
            accounts_encoding=accounts_encoding,
            inner=bool(cfg.get("innerInstructions")),
            replacement=replacement,
        )
        return self.clock.wrap(value)

    def get_fee_for_message(self, params: list[Any]) -> dict[str, Any]:
        text = rpc.arg(params, 0, "message")
        rpc.config(params, 1, self.clock.slot)
        message = decode_message(text)
        if not self.clock.blockhash_ok(str(message.recent_blockhash)):
            return self.clock.wrap(None)
        return self.clock.wrap(fee_for_message(message))
