"""sendTransaction and requestAirdrop: transactions that change the state, recorded in the
history if they land. Like a validator, a transaction that cannot land (expired, duplicate,
bad signature, unfunded payer) is dropped silently after skipPreflight; its status stays null."""

from __future__ import annotations

from typing import Any

from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata, TransactionMetadata

from rebalancer.localnet.solana_node import rpc
from rebalancer.localnet.solana_node.accounts import Accounts
from rebalancer.localnet.solana_node.clock import SlotClock
from rebalancer.localnet.solana_node.encoding import inner_json, return_data_json
from rebalancer.localnet.solana_node.history import History, TxRecord
from rebalancer.localnet.solana_node.precheck import err_json, err_text, lands, precheck
from rebalancer.localnet.solana_node.rpc import COMMITMENTS, Method, RpcError
from rebalancer.localnet.solana_node.simulate import Simulator
from rebalancer.localnet.solana_node.transactions import decode_tx, loaded_addresses

MEMO_PROGRAM = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")


class Sender:
    """Executes transactions for real and records those that land."""

    def __init__(
        self,
        accounts: Accounts,
        clock: SlotClock,
        history: History,
        simulator: Simulator,
        faucet: Keypair,
    ) -> None:
        self.accounts = accounts
        self.clock = clock
        self.history = history
        self.simulator = simulator
        self.faucet = faucet
        self._airdrops = 0

    def methods(self) -> dict[str, Method]:
        return {
            "sendTransaction": self.send_transaction,
            "requestAirdrop": self.request_airdrop,
        }

    def send_transaction(self, params: list[Any]) -> str:
        text = rpc.arg(params, 0, "transaction")
        cfg = rpc.config(params, 1, self.clock.slot)
        if cfg.get("preflightCommitment") not in (None, *COMMITMENTS):
            raise rpc.invalid(f"Invalid params: unknown variant `{cfg['preflightCommitment']}`")
        tx = decode_tx(text, cfg)
        signature = str(tx.signatures[0])
        if not cfg.get("skipPreflight"):
            if not all(tx.verify_with_results()):
                raise RpcError(-32003, "Transaction signature verification failure")
            value = self.simulator.value(tx)
            if value["err"] is not None:
                raise RpcError(
                    -32002, f"Transaction simulation failed: {err_text(value['err'])}", value
                )
        self.execute(tx)
        return signature

    def execute(self, tx: VersionedTransaction) -> TxRecord | None:
        """Run a transaction for real; record it if it lands. Returns None if dropped."""
        if precheck(self.clock, self.history, tx) is not None:
            return None
        writable, readonly = loaded_addresses(self.accounts, tx)
        keys = [*tx.message.account_keys, *writable, *readonly]
        pre = [self.accounts.lamports(k) for k in keys]
        pre_token = self.accounts.token_balances(keys)
        result = self.accounts.svm.send_transaction(tx)
        meta: TransactionMetadata
        if isinstance(result, FailedTransactionMetadata):
            err = err_json(result.err())
            if not lands(err):
                return None
            meta = result.meta()
        else:
            err, meta = None, result
        self.accounts.changed()
        record = TxRecord(
            slot=self.clock.slot,
            block_time=self.clock.block_time(self.clock.slot),
            tx=tx,
            err=err,
            fee=meta.fee(),
            logs=list(meta.logs()),
            units=meta.compute_units_consumed(),
            inner=inner_json(meta),
            return_data=return_data_json(meta),
            pre_balances=pre,
            post_balances=[self.accounts.lamports(k) for k in keys],
            pre_token=pre_token,
            post_token=self.accounts.token_balances(keys),
            loaded=([str(k) for k in writable], [str(k) for k in readonly]),
        )
        self.history.add(record)
        return record

    def request_airdrop(self, params: list[Any]) -> str:
        to = rpc.pubkey(rpc.arg(params, 0, "pubkey"))
        lamports = rpc.int_arg(rpc.arg(params, 1, "lamports"), "lamports")
        rpc.config(params, 2, self.clock.slot)
        self._airdrops += 1
        # NOTE: the memo makes every airdrop a distinct transaction, so two equal airdrops in
        # one slot are not deduplicated as a replay.
        memo = Instruction(
            MEMO_PROGRAM,
            f"airdrop {self._airdrops}".encode(),
            [AccountMeta(self.faucet.pubkey(), True, False)],
        )
        ixs = [
            transfer(
                TransferParams(from_pubkey=self.faucet.pubkey(), to_pubkey=to, lamports=lamports)
            ),
            memo,
        ]
        blockhash = Hash.from_string(self.clock.blockhash_at(self.clock.slot))
        msg = Message.new_with_blockhash(ixs, self.faucet.pubkey(), blockhash)
        tx = VersionedTransaction(msg, [self.faucet])
        record = self.execute(tx)
        if record is None or record.err is not None:
            raise RpcError(-32603, "airdrop request failed")
        return str(tx.signatures[0])
