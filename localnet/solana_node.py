"""A local Solana node: JSON-RPC over HTTP on 127.0.0.1, backed by solders' LiteSVM.

``solana-test-validator`` cannot be installed here, so this node serves what wallets, swappers
and the unmodified solana-py ``AsyncClient`` use, with a validator's JSON shapes and the
semantics that matter for money:

- slots advance with wall time (``--slot-ms``, 400 like mainnet); each slot has a blockhash;
  a blockhash is valid for 150 slots (``lastValidBlockHeight``) and then a transaction using
  it is refused with ``BlockhashNotFound``. LiteSVM only knows one blockhash, so its own check
  is off and this node keeps the window;
- a transaction that landed (even with an instruction error) cannot land again
  (``AlreadyProcessed``); preflight failures answer -32002 with the simulation as ``data``;
- the world is forked from account snapshots (``--snapshot``, see ``localnet.solana_snapshot``).

Not modelled: commitment levels (every landed transaction is ``finalized`` at once; all
commitments are accepted and answer the same slot), skipped slots, leader schedule, rewards,
websockets, durable nonces.

    python -m rebalancer.localnet.solana_node --port 0 --snapshot fixtures/solana/demo.json
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import math
import os
import signal
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from solders.account import Account
from solders.clock import Clock
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message, MessageV0, from_bytes_versioned
from solders.pubkey import Pubkey
from solders.rpc.responses import RpcSimulateTransactionResult
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata, TransactionMetadata

from rebalancer.localnet.solana_accounts import (
    SYSTEM_PROGRAM,
    TOKEN_PROGRAMS,
    EncodingError,
    account_to_json,
    b58decode,
    b58encode,
    is_token_account,
    mint_decimals_of,
    token_account_fields,
    token_amount_json,
)

MAINNET_GENESIS_HASH = "5eykt4UsFv8P8NJdTREpY1vzqKqZKvdpKuc147dw2N9d"
API_VERSION = "2.2.0"
FEATURE_SET = 3294202862
MAX_PROCESSING_AGE = 150  # slots a blockhash stays usable, as on mainnet
BLOCKHASH_QUEUE = 300  # blockhashes remembered (isBlockhashValid still says false past 150)
SLOTS_PER_EPOCH = 432_000
LAMPORTS_PER_SIGNATURE = 5_000
MAX_MULTIPLE_ACCOUNTS = 100
MAX_SIGNATURE_STATUSES = 256
MAX_BODY_BYTES = 10 * 1024 * 1024
COMPUTE_BUDGET_PROGRAM = Pubkey.from_string("ComputeBudget111111111111111111111111111111")
MEMO_PROGRAM = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")
# Programs whose instructions get the 3,000 CU default (SIMD-0170) when pricing priority fees.
_BUILTINS = {
    SYSTEM_PROGRAM,
    COMPUTE_BUDGET_PROGRAM,
    Pubkey.from_string("Vote111111111111111111111111111111111111111"),
    Pubkey.from_string("Stake11111111111111111111111111111111111111"),
    Pubkey.from_string("AddressLookupTab1e1111111111111111111111111"),
    Pubkey.from_string("BPFLoaderUpgradeab1e11111111111111111111111"),
    Pubkey.from_string("BPFLoader2111111111111111111111111111111111"),
    Pubkey.from_string("Config1111111111111111111111111111111111111"),
}
_COMMITMENTS = {
    "processed",
    "confirmed",
    "finalized",
    "recent",
    "single",
    "singleGossip",
    "root",
    "max",
}
_FAUCET_SEED = b"rebalancer localnet solana faucet"
_FAUCET_LAMPORTS = 500_000_000 * 10**9


class RpcError(Exception):
    """A JSON-RPC error answer (code, message, optional data)."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            err["data"] = self.data
        return err


def _invalid(message: str) -> RpcError:
    return RpcError(-32602, message)


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


def _lands(err: Any) -> bool:
    """Whether a failed transaction is still recorded (fee charged) like on a validator."""
    return isinstance(err, dict) and (
        "InstructionError" in err or "InsufficientFundsForRent" in err
    )


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
        if slot_ms <= 0:
            raise ValueError("slot_ms must be positive")
        self.svm = LiteSVM().with_blockhash_check(False)
        self.genesis_hash = genesis_hash
        self.slot_ms = slot_ms
        self._monotonic = monotonic
        self._t0 = monotonic()
        self._wall0 = int(wall())
        self._lock = threading.RLock()
        self._seed = os.urandom(16)
        self.base_slot = start_slot if start_slot is not None else self.svm.get_clock().slot
        # NOTE: mainnet's block height trails its slot (skipped slots); an offset keeps clients
        # honest about which one they compare with lastValidBlockHeight.
        self._height_offset = self.base_slot // 16
        self.slot = self.base_slot - 1
        self._hashes: dict[str, int] = {}
        self._hash_order: deque[str] = deque()
        self._records: dict[str, TxRecord] = {}
        self._version = 0
        self._owner_index: dict[Pubkey, tuple[int, dict[Pubkey, list[Pubkey]]]] = {}
        self._airdrops = 0
        self.faucet = Keypair.from_seed(hashlib.sha256(_FAUCET_SEED).digest())
        self.svm.set_account(self.faucet.pubkey(), Account(_FAUCET_LAMPORTS, b"", SYSTEM_PROGRAM))
        for key, account in (accounts or {}).items():
            self.svm.set_account(key, account)
        self._tick()
        self._methods: dict[str, Callable[[list[Any]], Any]] = {
            "getHealth": lambda p: "ok",
            "getVersion": lambda p: {"solana-core": API_VERSION, "feature-set": FEATURE_SET},
            "getGenesisHash": lambda p: self.genesis_hash,
            "getIdentity": lambda p: {"identity": str(self.faucet.pubkey())},
            "getSlot": self._get_slot,
            "getBlockHeight": self._get_block_height,
            "getEpochInfo": self._get_epoch_info,
            "getBalance": self._get_balance,
            "getAccountInfo": self._get_account_info,
            "getMultipleAccounts": self._get_multiple_accounts,
            "getTokenAccountsByOwner": self._get_token_accounts_by_owner,
            "getTokenAccountBalance": self._get_token_account_balance,
            "getTokenSupply": self._get_token_supply,
            "getLatestBlockhash": self._get_latest_blockhash,
            "isBlockhashValid": self._is_blockhash_valid,
            "getMinimumBalanceForRentExemption": self._get_min_rent,
            "getFeeForMessage": self._get_fee_for_message,
            "getRecentPrioritizationFees": self._get_recent_prioritization_fees,
            "simulateTransaction": self._simulate_transaction,
            "sendTransaction": self._send_transaction,
            "getSignatureStatuses": self._get_signature_statuses,
            "getTransaction": self._get_transaction,
            "requestAirdrop": self._request_airdrop,
        }

    # -- JSON-RPC envelope ----------------------------------------------------------------------
    def handle_body(self, body: bytes) -> Any:
        """Answer one HTTP body: a request, a batch, or garbage. None means "no reply"
        (notifications only)."""
        try:
            request = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return _error_reply(None, RpcError(-32700, "Parse error"))
        if isinstance(request, list):
            if not request:
                return _error_reply(None, RpcError(-32600, "Invalid request"))
            replies = [r for r in (self.handle_request(item) for item in request) if r is not None]
            return replies or None
        return self.handle_request(request)

    def handle_request(self, request: Any) -> dict[str, Any] | None:
        """Answer one JSON-RPC request object."""
        if not isinstance(request, dict):
            return _error_reply(None, RpcError(-32600, "Invalid request"))
        req_id = request.get("id")
        valid_id = req_id is None or (
            isinstance(req_id, str | int) and not isinstance(req_id, bool)
        )
        method = request.get("method")
        params = request.get("params", [])
        if request.get("jsonrpc") != "2.0" or not isinstance(method, str) or not valid_id:
            return _error_reply(req_id if valid_id else None, RpcError(-32600, "Invalid request"))
        fn = self._methods.get(method)
        try:
            if fn is None:
                raise RpcError(-32601, "Method not found")
            if params is None:
                params = []
            if not isinstance(params, list):
                raise _invalid("Invalid params: invalid type: map, expected a sequence")
            with self._lock:
                self._tick()
                result = fn(params)
        except RpcError as exc:
            return None if "id" not in request else _error_reply(req_id, exc)
        except Exception as exc:  # a bug here must not kill the server; say where it was
            print(f"internal error in {method}: {exc!r}", file=sys.stderr, flush=True)
            return (
                None
                if "id" not in request
                else _error_reply(req_id, RpcError(-32603, "Internal error"))
            )
        if "id" not in request:
            return None
        return {"jsonrpc": "2.0", "result": result, "id": req_id}

    # -- time, slots and blockhashes ------------------------------------------------------------
    def _tick(self) -> None:
        """Advance the slot with wall time; issue one blockhash per new slot."""
        elapsed_ms = (self._monotonic() - self._t0) * 1000.0
        slot = self.base_slot + int(elapsed_ms // self.slot_ms)
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

    def blockhash_at(self, slot: int) -> str:
        """The blockhash of ``slot`` (unpredictable per node run, like a real chain)."""
        return str(Hash(hashlib.sha256(self._seed + slot.to_bytes(8, "little")).digest()))

    def block_time(self, slot: int) -> int:
        return self._wall0 + (slot - self.base_slot) * self.slot_ms // 1000

    def block_height(self, slot: int | None = None) -> int:
        return (self.slot if slot is None else slot) - self._height_offset

    def _blockhash_age(self, blockhash: str) -> int | None:
        issued = self._hashes.get(blockhash)
        return None if issued is None else self.slot - issued

    def _blockhash_ok(self, blockhash: str) -> bool:
        age = self._blockhash_age(blockhash)
        return age is not None and age <= MAX_PROCESSING_AGE

    def _context(self) -> dict[str, Any]:
        return {"apiVersion": API_VERSION, "slot": self.slot}

    def _wrap(self, value: Any) -> dict[str, Any]:
        return {"context": self._context(), "value": value}

    # -- parameter parsing --------------------------------------------------------------------
    def _config(self, params: list[Any], index: int) -> dict[str, Any]:
        """The optional config object at ``index``; checks commitment and minContextSlot."""
        cfg = params[index] if len(params) > index else None
        if cfg is None:
            return {}
        if not isinstance(cfg, dict):
            raise _invalid(f"Invalid params: invalid type: {type(cfg).__name__}, expected a map")
        commitment = cfg.get("commitment")
        if commitment is not None and commitment not in _COMMITMENTS:
            raise _invalid(
                f"Invalid params: unknown variant `{commitment}`, expected one of "
                "`processed`, `confirmed`, `finalized`"
            )
        min_slot = cfg.get("minContextSlot")
        if min_slot is not None:
            if not isinstance(min_slot, int) or isinstance(min_slot, bool):
                raise _invalid("Invalid params: minContextSlot must be an integer")
            if min_slot > self.slot:
                raise RpcError(
                    -32016, "Minimum context slot has not been reached", {"contextSlot": self.slot}
                )
        return cfg

    @staticmethod
    def _arg(params: list[Any], index: int, what: str) -> Any:
        if len(params) <= index:
            raise _invalid(f"Invalid params: missing {what}")
        return params[index]

    @staticmethod
    def _pubkey(value: Any) -> Pubkey:
        if not isinstance(value, str):
            raise _invalid("Invalid param: Invalid")
        try:
            return Pubkey.from_string(value)
        except ValueError:
            raise _invalid(
                f"Invalid param: {'WrongSize' if len(value) > 44 else 'Invalid'}"
            ) from None

    @staticmethod
    def _int_arg(value: Any, what: str) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise _invalid(f"Invalid params: {what} must be a non-negative integer")
        return value

    @staticmethod
    def _account_encoding(cfg: dict[str, Any], default: str) -> str:
        encoding = cfg.get("encoding") or default
        if encoding not in ("base58", "base64", "jsonParsed", "binary"):
            raise _invalid(f"Invalid params: unsupported account encoding {encoding!r}")
        return str(encoding)

    @staticmethod
    def _data_slice(cfg: dict[str, Any]) -> tuple[int, int] | None:
        data_slice = cfg.get("dataSlice")
        if data_slice is None:
            return None
        if (
            not isinstance(data_slice, dict)
            or not isinstance(data_slice.get("offset"), int)
            or not isinstance(data_slice.get("length"), int)
            or data_slice["offset"] < 0
            or data_slice["length"] < 0
        ):
            raise _invalid("Invalid params: dataSlice needs non-negative offset and length")
        return data_slice["offset"], data_slice["length"]

    # -- accounts ------------------------------------------------------------------------------
    def _account(self, key: Pubkey) -> Account | None:
        """An account as the validator sees it: zero lamports means it does not exist."""
        account = self.svm.get_account(key)
        return account if account is not None and account.lamports > 0 else None

    def _mint_decimals(self, mint: Pubkey) -> int | None:
        account = self._account(mint)
        if account is None or account.owner not in TOKEN_PROGRAMS:
            return None
        return mint_decimals_of(bytes(account.data))

    def _encode(
        self, account: Account | None, encoding: str, data_slice: tuple[int, int] | None
    ) -> dict[str, Any] | None:
        if account is None:
            return None
        try:
            return account_to_json(account, encoding, data_slice, self._mint_decimals)
        except EncodingError as exc:
            raise _invalid(str(exc)) from None

    def _token_owner_index(self, program: Pubkey) -> dict[Pubkey, list[Pubkey]]:
        """Token accounts of ``program`` by owner, rebuilt only after the state changed."""
        cached = self._owner_index.get(program)
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
        self._owner_index[program] = (self._version, index)
        return index

    def _changed(self) -> None:
        self._version += 1

    def set_account(self, key: Pubkey, account: Account) -> None:
        """Write an account directly (snapshot loading, tests)."""
        with self._lock:
            self.svm.set_account(key, account)
            self._changed()

    # -- read methods ---------------------------------------------------------------------------
    def _get_slot(self, params: list[Any]) -> int:
        self._config(params, 0)
        return self.slot

    def _get_block_height(self, params: list[Any]) -> int:
        self._config(params, 0)
        return self.block_height()

    def _get_epoch_info(self, params: list[Any]) -> dict[str, Any]:
        self._config(params, 0)
        return {
            "absoluteSlot": self.slot,
            "blockHeight": self.block_height(),
            "epoch": self.slot // SLOTS_PER_EPOCH,
            "slotIndex": self.slot % SLOTS_PER_EPOCH,
            "slotsInEpoch": SLOTS_PER_EPOCH,
            "transactionCount": len(self._records),
        }

    def _get_balance(self, params: list[Any]) -> dict[str, Any]:
        key = self._pubkey(self._arg(params, 0, "pubkey"))
        self._config(params, 1)
        account = self._account(key)
        return self._wrap(0 if account is None else account.lamports)

    def _get_account_info(self, params: list[Any]) -> dict[str, Any]:
        key = self._pubkey(self._arg(params, 0, "pubkey"))
        cfg = self._config(params, 1)
        encoding = self._account_encoding(cfg, "binary")
        return self._wrap(self._encode(self._account(key), encoding, self._data_slice(cfg)))

    def _get_multiple_accounts(self, params: list[Any]) -> dict[str, Any]:
        keys = self._arg(params, 0, "pubkeys")
        if not isinstance(keys, list):
            raise _invalid("Invalid params: pubkeys must be an array")
        if len(keys) > MAX_MULTIPLE_ACCOUNTS:
            raise _invalid(f"Too many inputs provided; max {MAX_MULTIPLE_ACCOUNTS}")
        pubkeys = [self._pubkey(k) for k in keys]
        cfg = self._config(params, 1)
        encoding = self._account_encoding(cfg, "base64")
        data_slice = self._data_slice(cfg)
        return self._wrap([self._encode(self._account(k), encoding, data_slice) for k in pubkeys])

    def _get_token_accounts_by_owner(self, params: list[Any]) -> dict[str, Any]:
        owner = self._pubkey(self._arg(params, 0, "owner"))
        flt = self._arg(params, 1, "mint or programId filter")
        cfg = self._config(params, 2)
        encoding = self._account_encoding(cfg, "binary")
        data_slice = self._data_slice(cfg)
        if not isinstance(flt, dict) or len(flt) != 1 or not ({"mint", "programId"} & set(flt)):
            raise _invalid("Invalid params: expected an object with one of mint, programId")
        mint: Pubkey | None = None
        if "mint" in flt:
            mint = self._pubkey(flt["mint"])
            mint_account = self._account(mint)
            if mint_account is None or mint_account.owner not in TOKEN_PROGRAMS:
                raise _invalid("Invalid param: could not find mint")
            program = mint_account.owner
        else:
            program = self._pubkey(flt["programId"])
            if program not in TOKEN_PROGRAMS:
                raise _invalid("Invalid param: unrecognized Token program id")
        out = []
        for key in self._token_owner_index(program).get(owner, []):
            account = self._account(key)
            if account is None:
                continue
            fields = token_account_fields(bytes(account.data))
            if mint is not None and (fields is None or fields[0] != mint):
                continue
            out.append({"pubkey": str(key), "account": self._encode(account, encoding, data_slice)})
        return self._wrap(out)

    def _token_account(self, key: Pubkey) -> tuple[Account, tuple[Pubkey, Pubkey, int], int]:
        account = self._account(key)
        if account is None:
            raise _invalid("Invalid param: could not find account")
        data = bytes(account.data)
        fields = token_account_fields(data)
        if account.owner not in TOKEN_PROGRAMS or not is_token_account(data) or fields is None:
            raise _invalid("Invalid param: not a Token account")
        decimals = self._mint_decimals(fields[0])
        if decimals is None:
            raise _invalid("Invalid param: could not find mint")
        return account, fields, decimals

    def _get_token_account_balance(self, params: list[Any]) -> dict[str, Any]:
        key = self._pubkey(self._arg(params, 0, "pubkey"))
        self._config(params, 1)
        _, (_, _, amount), decimals = self._token_account(key)
        return self._wrap(token_amount_json(amount, decimals))

    def _get_token_supply(self, params: list[Any]) -> dict[str, Any]:
        key = self._pubkey(self._arg(params, 0, "mint"))
        self._config(params, 1)
        account = self._account(key)
        decimals = self._mint_decimals(key)
        if account is None or decimals is None:
            raise _invalid("Invalid param: not a Token mint")
        (supply,) = struct.unpack_from("<Q", bytes(account.data), 36)
        return self._wrap(token_amount_json(supply, decimals))

    def _get_latest_blockhash(self, params: list[Any]) -> dict[str, Any]:
        self._config(params, 0)
        return self._wrap(self._latest_blockhash())

    def _latest_blockhash(self) -> dict[str, Any]:
        return {
            "blockhash": self.blockhash_at(self.slot),
            "lastValidBlockHeight": self.block_height() + MAX_PROCESSING_AGE,
        }

    def _is_blockhash_valid(self, params: list[Any]) -> dict[str, Any]:
        blockhash = self._arg(params, 0, "blockhash")
        self._config(params, 1)
        if not isinstance(blockhash, str):
            raise _invalid("Invalid param: blockhash must be a string")
        try:
            Hash.from_string(blockhash)
        except ValueError:
            raise _invalid("Invalid param: Invalid") from None
        return self._wrap(self._blockhash_ok(blockhash))

    def _get_min_rent(self, params: list[Any]) -> int:
        size = self._int_arg(self._arg(params, 0, "data length"), "data length")
        self._config(params, 1)
        return int(self.svm.minimum_balance_for_rent_exemption(size))

    def _get_fee_for_message(self, params: list[Any]) -> dict[str, Any]:
        text = self._arg(params, 0, "message")
        self._config(params, 1)
        try:
            message = from_bytes_versioned(base64.b64decode(text, validate=True))
        except (TypeError, ValueError, binascii.Error):
            raise _invalid("Invalid params: invalid base64 message") from None
        if not isinstance(message, Message | MessageV0):
            raise _invalid("Invalid params: unsupported message version")
        if not self._blockhash_ok(str(message.recent_blockhash)):
            return self._wrap(None)
        return self._wrap(fee_for_message(message))

    def _get_recent_prioritization_fees(self, params: list[Any]) -> list[dict[str, int]]:
        first = max(self.base_slot, self.slot - MAX_PROCESSING_AGE + 1)
        return [{"slot": s, "prioritizationFee": 0} for s in range(first, self.slot + 1)]

    # -- transactions ---------------------------------------------------------------------------
    @staticmethod
    def _decode_tx(text: Any, cfg: dict[str, Any]) -> VersionedTransaction:
        encoding = cfg.get("encoding") or "base58"
        if encoding not in ("base58", "base64"):
            raise _invalid(
                f"Invalid params: unsupported encoding: {encoding}. "
                "Supported encodings: base58, base64"
            )
        if not isinstance(text, str):
            raise _invalid("Invalid params: transaction must be a string")
        try:
            raw = b58decode(text) if encoding == "base58" else base64.b64decode(text, validate=True)
        except (ValueError, binascii.Error) as exc:
            raise _invalid(f"invalid {encoding} encoding: {exc}") from None
        try:
            tx = VersionedTransaction.from_bytes(raw)
        except ValueError as exc:
            raise _invalid(
                f"failed to deserialize solana_transaction::versioned::VersionedTransaction: {exc}"
            ) from None
        try:
            tx.sanitize()
        except Exception:
            raise _invalid(
                "invalid transaction: Transaction failed to sanitize accounts offsets correctly"
            ) from None
        return tx

    def _precheck(self, tx: VersionedTransaction) -> Any:
        """The runtime's age and status-cache checks, in its order; None if both pass."""
        if not self._blockhash_ok(str(tx.message.recent_blockhash)):
            return "BlockhashNotFound"
        if str(tx.signatures[0]) in self._records:
            return "AlreadyProcessed"
        return None

    def _with_blockhash(self, tx: VersionedTransaction, blockhash: Hash) -> VersionedTransaction:
        msg = tx.message
        new_msg: Message | MessageV0
        if isinstance(msg, MessageV0):
            new_msg = MessageV0(
                msg.header, msg.account_keys, blockhash, msg.instructions, msg.address_table_lookups
            )
        else:
            h = msg.header
            new_msg = Message.new_with_compiled_instructions(
                h.num_required_signatures,
                h.num_readonly_signed_accounts,
                h.num_readonly_unsigned_accounts,
                msg.account_keys,
                blockhash,
                msg.instructions,
            )
        return VersionedTransaction.populate(new_msg, tx.signatures)

    def _loaded_addresses(self, tx: VersionedTransaction) -> tuple[list[Pubkey], list[Pubkey]]:
        """Addresses a v0 transaction loads from lookup tables (writable, then readonly)."""
        msg = tx.message
        if not isinstance(msg, MessageV0):
            return [], []
        writable: list[Pubkey] = []
        readonly: list[Pubkey] = []
        for lookup in msg.address_table_lookups:
            table = self._account(lookup.account_key)
            if table is None:
                return [], []
            data = bytes(table.data)[56:]
            addresses = [Pubkey.from_bytes(data[i : i + 32]) for i in range(0, len(data), 32)]
            try:
                writable += [addresses[i] for i in bytes(lookup.writable_indexes)]
                readonly += [addresses[i] for i in bytes(lookup.readonly_indexes)]
            except IndexError:
                return [], []
        return writable, readonly

    def _all_keys(self, tx: VersionedTransaction) -> list[Pubkey]:
        writable, readonly = self._loaded_addresses(tx)
        return [*tx.message.account_keys, *writable, *readonly]

    def _token_balances(self, keys: Sequence[Pubkey]) -> list[dict[str, Any]]:
        out = []
        for i, key in enumerate(keys):
            account = self._account(key)
            if account is None or account.owner not in TOKEN_PROGRAMS:
                continue
            data = bytes(account.data)
            fields = token_account_fields(data)
            if not is_token_account(data) or fields is None:
                continue
            decimals = self._mint_decimals(fields[0])
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

    def _simulate(self, tx: VersionedTransaction) -> Any:
        """LiteSVM simulation without signature checks (callers decide about signatures)."""
        self.svm.with_sigverify(False)
        try:
            return self.svm.simulate_transaction(tx)
        finally:
            self.svm.with_sigverify(True)

    def _sim_value(
        self,
        tx: VersionedTransaction,
        *,
        addresses: list[Pubkey] | None = None,
        accounts_encoding: str = "base64",
        inner: bool = False,
        replacement: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """simulateTransaction's ``value`` (also the data of a -32002 preflight failure)."""
        keys = self._all_keys(tx)
        loaded_size = sum(len(a.data) for a in map(self._account, keys) if a is not None)
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
        pre_err = self._precheck(tx) if replacement is None else None
        if replacement is not None and str(tx.signatures[0]) in self._records:
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
        value["returnData"] = _return_data_json(meta)
        if inner:
            value["innerInstructions"] = _inner_json(meta)
        if addresses is not None:
            if value["err"] is not None:
                value["accounts"] = [None] * len(addresses)
            else:
                shown = []
                for key in addresses:
                    account = post.get(key) or self._account(key)
                    if account is not None and account.lamports == 0:
                        account = None
                    shown.append(self._encode(account, accounts_encoding, None))
                value["accounts"] = shown
        return value

    def _simulate_transaction(self, params: list[Any]) -> dict[str, Any]:
        text = self._arg(params, 0, "transaction")
        cfg = self._config(params, 1)
        tx = self._decode_tx(text, cfg)
        sig_verify = bool(cfg.get("sigVerify"))
        replace = bool(cfg.get("replaceRecentBlockhash"))
        if sig_verify and replace:
            raise _invalid("sigVerify may not be used with replaceRecentBlockhash")
        addresses: list[Pubkey] | None = None
        accounts_encoding = "base64"
        accounts_cfg = cfg.get("accounts")
        if accounts_cfg is not None:
            if not isinstance(accounts_cfg, dict) or not isinstance(
                accounts_cfg.get("addresses"), list
            ):
                raise _invalid("Invalid params: accounts needs an addresses array")
            accounts_encoding = accounts_cfg.get("encoding") or "base64"
            if accounts_encoding in ("base58", "binary"):
                raise _invalid(f"Invalid params: {accounts_encoding} encoding not supported")
            if accounts_encoding not in ("base64", "jsonParsed"):
                raise _invalid(f"Invalid params: unsupported encoding {accounts_encoding!r}")
            addresses = [self._pubkey(a) for a in accounts_cfg["addresses"]]
            n_keys = len(self._all_keys(tx))
            if len(addresses) > n_keys:
                raise _invalid(f"Too many accounts provided; max {n_keys}")
        if sig_verify and not all(tx.verify_with_results()):
            raise RpcError(-32003, "Transaction signature verification failure")
        replacement = None
        if replace:
            replacement = self._latest_blockhash()
            tx = self._with_blockhash(tx, Hash.from_string(replacement["blockhash"]))
        value = self._sim_value(
            tx,
            addresses=addresses,
            accounts_encoding=accounts_encoding,
            inner=bool(cfg.get("innerInstructions")),
            replacement=replacement,
        )
        return self._wrap(value)

    def _send_transaction(self, params: list[Any]) -> str:
        text = self._arg(params, 0, "transaction")
        cfg = self._config(params, 1)
        if cfg.get("preflightCommitment") not in (None, *_COMMITMENTS):
            raise _invalid(f"Invalid params: unknown variant `{cfg['preflightCommitment']}`")
        tx = self._decode_tx(text, cfg)
        signature = str(tx.signatures[0])
        if not cfg.get("skipPreflight"):
            if not all(tx.verify_with_results()):
                raise RpcError(-32003, "Transaction signature verification failure")
            value = self._sim_value(tx)
            if value["err"] is not None:
                raise RpcError(
                    -32002, f"Transaction simulation failed: {err_text(value['err'])}", value
                )
        # NOTE: like a validator, a transaction that cannot land (expired, duplicate, bad
        # signature, unfunded payer) is silently dropped after skipPreflight; its status
        # stays null.
        self.execute(tx)
        return signature

    def execute(self, tx: VersionedTransaction) -> TxRecord | None:
        """Run a transaction for real; record it if it lands. Returns None if dropped."""
        with self._lock:
            if self._precheck(tx) is not None:
                return None
            writable, readonly = self._loaded_addresses(tx)
            keys = [*tx.message.account_keys, *writable, *readonly]
            pre = [0 if (a := self._account(k)) is None else a.lamports for k in keys]
            pre_token = self._token_balances(keys)
            result = self.svm.send_transaction(tx)
            meta: TransactionMetadata
            if isinstance(result, FailedTransactionMetadata):
                err = err_json(result.err())
                if not _lands(err):
                    return None
                meta = result.meta()
            else:
                err, meta = None, result
            self._changed()
            post = [0 if (a := self._account(k)) is None else a.lamports for k in keys]
            record = TxRecord(
                slot=self.slot,
                block_time=self.block_time(self.slot),
                tx=tx,
                err=err,
                fee=meta.fee(),
                logs=list(meta.logs()),
                units=meta.compute_units_consumed(),
                inner=_inner_json(meta),
                return_data=_return_data_json(meta),
                pre_balances=pre,
                post_balances=post,
                pre_token=pre_token,
                post_token=self._token_balances(keys),
                loaded=([str(k) for k in writable], [str(k) for k in readonly]),
            )
            self._records[str(tx.signatures[0])] = record
            return record

    def _get_signature_statuses(self, params: list[Any]) -> dict[str, Any]:
        sigs = self._arg(params, 0, "signatures")
        self._config(params, 1)
        if not isinstance(sigs, list):
            raise _invalid("Invalid params: signatures must be an array")
        if len(sigs) > MAX_SIGNATURE_STATUSES:
            raise _invalid(f"Too many inputs provided; max {MAX_SIGNATURE_STATUSES}")
        out: list[dict[str, Any] | None] = []
        for sig in sigs:
            _parse_signature(sig)
            record = self._records.get(sig)
            if record is None:
                out.append(None)
                continue
            out.append(
                {
                    "slot": record.slot,
                    "confirmations": None,
                    "err": record.err,
                    "status": {"Ok": None} if record.err is None else {"Err": record.err},
                    "confirmationStatus": "finalized",
                }
            )
        return self._wrap(out)

    def _get_transaction(self, params: list[Any]) -> dict[str, Any] | None:
        sig = self._arg(params, 0, "signature")
        cfg = params[1] if len(params) > 1 else None
        if isinstance(cfg, str):  # the old positional encoding form
            cfg = {"encoding": cfg}
        cfg = self._config([cfg], 0)
        if cfg.get("commitment") == "processed":
            raise _invalid("Method does not support commitment below `confirmed`")
        _parse_signature(sig)
        encoding = cfg.get("encoding") or "json"
        if encoding not in ("json", "base64", "base58"):
            raise _invalid(f"Invalid params: encoding {encoding!r} is not supported by this node")
        max_version = cfg.get("maxSupportedTransactionVersion")
        record = self._records.get(sig)
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
            transaction = _tx_json(record.tx)
        meta: dict[str, Any] = {
            "err": record.err,
            "status": {"Ok": None} if record.err is None else {"Err": record.err},
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

    def _request_airdrop(self, params: list[Any]) -> str:
        to = self._pubkey(self._arg(params, 0, "pubkey"))
        lamports = self._int_arg(self._arg(params, 1, "lamports"), "lamports")
        self._config(params, 2)
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
        blockhash = Hash.from_string(self.blockhash_at(self.slot))
        msg = Message.new_with_blockhash(ixs, self.faucet.pubkey(), blockhash)
        tx = VersionedTransaction(msg, [self.faucet])
        record = self.execute(tx)
        if record is None or record.err is not None:
            raise RpcError(-32603, "airdrop request failed")
        return str(tx.signatures[0])


def fee_for_message(message: Message | MessageV0) -> int:
    """Base fee per signature plus the priority fee, as the runtime charges it."""
    keys = message.account_keys
    price = 0
    limit: int | None = None
    default_limit = 0
    for ix in message.instructions:
        program = keys[ix.program_id_index]
        data = bytes(ix.data)
        if program == COMPUTE_BUDGET_PROGRAM and data[:1] == b"\x02" and len(data) >= 5:
            (limit,) = struct.unpack_from("<I", data, 1)
        elif program == COMPUTE_BUDGET_PROGRAM and data[:1] == b"\x03" and len(data) >= 9:
            (price,) = struct.unpack_from("<Q", data, 1)
        default_limit += 3_000 if program in _BUILTINS else 200_000
    units = min(limit if limit is not None else default_limit, 1_400_000)
    priority = math.ceil(price * units / 1_000_000)
    return LAMPORTS_PER_SIGNATURE * message.header.num_required_signatures + priority


def _parse_signature(sig: Any) -> Signature:
    if not isinstance(sig, str):
        raise _invalid("Invalid param: signature must be a string")
    try:
        return Signature.from_string(sig)
    except ValueError:
        raise _invalid("Invalid param: Invalid") from None


def _error_reply(req_id: Any, err: RpcError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "error": err.to_json(), "id": req_id}


def _return_data_json(meta: TransactionMetadata) -> dict[str, Any] | None:
    data = meta.return_data()
    if not bytes(data.data):
        return None
    return {
        "programId": str(data.program_id),
        "data": [base64.b64encode(bytes(data.data)).decode(), "base64"],
    }


def _inner_json(meta: TransactionMetadata) -> list[dict[str, Any]]:
    out = []
    for index, inner in enumerate(meta.inner_instructions()):
        if not inner:
            continue
        instructions = []
        for item in inner:
            ix = item.instruction()
            instructions.append(
                {
                    "programIdIndex": ix.program_id_index,
                    "accounts": list(bytes(ix.accounts)),
                    "data": b58encode(bytes(ix.data)),
                    "stackHeight": item.stack_height(),
                }
            )
        out.append({"index": index, "instructions": instructions})
    return out


def _tx_json(tx: VersionedTransaction) -> dict[str, Any]:
    """The ``json`` encoding of a transaction (compiled instructions, base58 data)."""
    msg = tx.message
    h = msg.header
    message: dict[str, Any] = {
        "accountKeys": [str(k) for k in msg.account_keys],
        "header": {
            "numReadonlySignedAccounts": h.num_readonly_signed_accounts,
            "numReadonlyUnsignedAccounts": h.num_readonly_unsigned_accounts,
            "numRequiredSignatures": h.num_required_signatures,
        },
        "instructions": [
            {
                "accounts": list(bytes(ix.accounts)),
                "data": b58encode(bytes(ix.data)),
                "programIdIndex": ix.program_id_index,
                "stackHeight": None,
            }
            for ix in msg.instructions
        ],
        "recentBlockhash": str(msg.recent_blockhash),
    }
    if isinstance(msg, MessageV0):
        message["addressTableLookups"] = [
            {
                "accountKey": str(lookup.account_key),
                "readonlyIndexes": list(bytes(lookup.readonly_indexes)),
                "writableIndexes": list(bytes(lookup.writable_indexes)),
            }
            for lookup in msg.address_table_lookups
        ]
    return {"message": message, "signatures": [str(s) for s in tx.signatures]}


# -- HTTP ---------------------------------------------------------------------------------------
class _Server(ThreadingHTTPServer):
    daemon_threads = True
    node: SolanaNode
    quiet: bool


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # NOTE: headers and body go out in two writes; with Nagle on, each answer waits ~40 ms
    # for the client's delayed ACK.
    disable_nagle_algorithm = True
    server: _Server

    def do_POST(self) -> None:
        started = time.perf_counter()
        length_header = self.headers.get("Content-Length")
        if length_header is None or not length_header.isdigit():
            self._send(411, b"Content-Length required", "text/plain")
            return
        length = int(length_header)
        if length > MAX_BODY_BYTES:
            self._send(413, b"Payload Too Large", "text/plain")
            self.close_connection = True
            return
        body = self.rfile.read(length)
        reply = self.server.node.handle_body(body)
        payload = b"" if reply is None else json.dumps(reply, separators=(",", ":")).encode()
        self._send(200, payload, "application/json")
        if not self.server.quiet:
            ms = (time.perf_counter() - started) * 1000
            print(f"{_describe(body)} {ms:.1f}ms", file=sys.stderr, flush=True)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send(200, b"ok", "text/plain")
        else:
            self._send(
                405, b"Used HTTP Method is not allowed. POST or OPTIONS is required", "text/plain"
            )

    def _send(self, status: int, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence http.server's default access log; do_POST logs one terse line instead."""


def _describe(body: bytes) -> str:
    """A short label for the log: the method, or the batch size and first method."""
    try:
        request = json.loads(body)
    except ValueError:
        return "unparseable"
    if isinstance(request, list):
        first = request[0].get("method") if request and isinstance(request[0], dict) else None
        return f"batch[{len(request)}] {first}"
    return str(request.get("method")) if isinstance(request, dict) else "invalid"


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


def serve(
    node: SolanaNode,
    port: int = 0,
    *,
    quiet: bool = False,
    ready: Callable[[int], None] | None = None,
) -> None:
    """Serve ``node`` on 127.0.0.1 until SIGTERM/SIGINT; ``ready`` gets the bound port."""
    server = _Server(("127.0.0.1", port), _Handler)
    server.node = node
    server.quiet = quiet
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        if ready is not None:
            ready(server.server_address[1])
        while not stop.wait(0.05):
            pass
        print("solana node: stopping", file=sys.stderr, flush=True)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m rebalancer.localnet.solana_node --port 0 --snapshot FILE``."""
    parser = argparse.ArgumentParser(
        prog="python -m rebalancer.localnet.solana_node",
        description="A local Solana JSON-RPC node over LiteSVM, on 127.0.0.1.",
    )
    parser.add_argument("--port", type=int, default=8899, help="0 picks a free port")
    parser.add_argument(
        "--snapshot",
        action="append",
        default=[],
        metavar="FILE",
        help="account snapshot to load (repeatable; later files win)",
    )
    parser.add_argument("--slot-ms", type=int, default=400, help="wall milliseconds per slot")
    parser.add_argument(
        "--start-slot", type=int, default=None, help="first slot (default: the snapshots' slot)"
    )
    parser.add_argument(
        "--genesis-hash",
        default=MAINNET_GENESIS_HASH,
        help="what getGenesisHash answers (default: mainnet's)",
    )
    parser.add_argument("--quiet", action="store_true", help="do not log requests")
    args = parser.parse_args(argv)
    from rebalancer.core.errors import ConfigError

    try:
        accounts, snap_slot = load_accounts(args.snapshot)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    start_slot = args.start_slot if args.start_slot is not None else snap_slot
    node = SolanaNode(
        accounts, slot_ms=args.slot_ms, start_slot=start_slot, genesis_hash=args.genesis_hash
    )

    def ready(port: int) -> None:
        print(f"Listening on 127.0.0.1:{port}", flush=True)
        print(
            f"solana node: {len(accounts)} accounts, slot {node.slot}, {args.slot_ms} ms/slot",
            file=sys.stderr,
            flush=True,
        )

    try:
        serve(node, args.port, quiet=args.quiet, ready=ready)
    except OSError as exc:
        print(f"error: cannot listen on 127.0.0.1:{args.port}: {exc.strerror}", file=sys.stderr)
        return 4
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
