"""The runtime's checks before a transaction executes (blockhash age, status cache) and how a
validator renders a TransactionError: as JSON, as the text after "simulation failed:", and
whether a failed transaction still lands (fee charged)."""

from __future__ import annotations

import json
from typing import Any

from solders.rpc.responses import RpcSimulateTransactionResult
from solders.transaction import VersionedTransaction

from rebalancer.localnet.solana_node.clock import SlotClock
from rebalancer.localnet.solana_node.history import History


def precheck(clock: SlotClock, history: History, tx: VersionedTransaction) -> Any:
    """The runtime's age and status-cache checks, in its order; None if both pass."""
    if not clock.blockhash_ok(str(tx.message.recent_blockhash)):
        return "BlockhashNotFound"
    if str(tx.signatures[0]) in history:
        return "AlreadyProcessed"
    return None


def err_json(err: Any) -> Any:
    """A solders TransactionError as the validator serialises it (via solders' own serde)."""
    return json.loads(RpcSimulateTransactionResult(err=err).to_json())["err"]


def err_text(err: Any) -> str:
    """The validator's Display text for a TransactionError (as shown after "simulation failed:")."""
    simple = {
        "BlockhashNotFound": "Blockhash not found",
        "AlreadyProcessed": "This transaction has already been processed",
        "AccountNotFound": "Attempt to debit an account but found no record of a prior credit.",
        "InsufficientFundsForFee": "Insufficient funds for fee",
        "SignatureFailure": "Transaction did not pass signature verification",
        "InvalidAccountForFee": "This account may not be used to pay transaction fees",
        "ProgramAccountNotFound": "Attempt to load a program that does not exist",
        "AccountInUse": "Account in use",
    }
    if isinstance(err, str):
        return simple.get(err, err)
    if isinstance(err, dict) and "InstructionError" in err:
        index, inner = err["InstructionError"]
        if isinstance(inner, dict) and "Custom" in inner:
            text = f"custom program error: {inner['Custom']:#x}"
        else:
            text = {
                "InsufficientFunds": "insufficient funds for instruction",
                "InvalidAccountData": "invalid account data for instruction",
                "InvalidInstructionData": "invalid instruction data",
                "MissingRequiredSignature": "missing required signature for instruction",
            }.get(str(inner), str(inner))
        return f"Error processing Instruction {index}: {text}"
    if isinstance(err, dict) and "InsufficientFundsForRent" in err:
        index = err["InsufficientFundsForRent"].get("account_index")
        return f"Transaction results in an account ({index}) with insufficient funds for rent"
    return json.dumps(err)


def lands(err: Any) -> bool:
    """Whether a failed transaction is still recorded (fee charged) like on a validator."""
    return isinstance(err, dict) and (
        "InstructionError" in err or "InsufficientFundsForRent" in err
    )
