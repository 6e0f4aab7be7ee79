"""The Solana chain adapter: SOL, SPL Token and Token-2022 balances of many wallets at once.

A refresh is one HTTP request per 100 wallets: a JSON-RPC batch holding ``getGenesisHash``
(checked once per adapter against the config's CAIP-2 reference), one ``getMultipleAccounts``
for the wallets' lamports and two ``getTokenAccountsByOwner`` per wallet (SPL Token and
Token-2022), and one ``getMultipleAccounts`` of the Pyth price accounts asked for (prices
come with the balances they value). Token accounts of one mint are summed; mints map to the
tokens asked for (wSOL token accounts count as the wSOL token); other mints are ignored. Raw
httpx, because solana-py's ``AsyncClient`` has no batch; the same code works against any real
RPC.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from rebalancer.chains.addresses import b58decode
from rebalancer.chains.base import (
    Balances,
    ChainAdapter,
    SimResult,
    SwapLegs,
    node_amount,
)
from rebalancer.chains.oracles import OracleFeed, OracleReading, pyth_reading
from rebalancer.chains.rpc_errors import check_batch, decoded, garbled, rpc_error
from rebalancer.core.errors import (
    AlreadyKnownError,
    ChainError,
    ConfigError,
    LookupTableError,
    WrongChainError,
)
from rebalancer.core.http import post_json
from rebalancer.core.redact import redact_url
from rebalancer.core.tx import Proposal, SolanaTx, UnsignedTx
from rebalancer.core.types import DEFAULT_RPC_TIMEOUT_S, Holding, Token

if TYPE_CHECKING:
    from pathlib import Path

    from rebalancer.core.types import ChainInfo

TOKEN_PROGRAM = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"
TOKEN_2022_PROGRAM = "TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb"
MAX_WALLETS_PER_REQUEST = 100  # getMultipleAccounts takes at most 100 keys
ACTIVITY_WINDOW = 10  # signatures read to find the wallet's own newest transaction
NO_OWN_ACTIVITY = "no transaction of its own"
"""The mark of a wallet that signed none of the transactions that name it (or has none): the
same whether others named it since or not."""
# getTransaction's options wherever a landed transaction is read (v0 too, once confirmed)
TX_JSON = {"encoding": "json", "maxSupportedTransactionVersion": 0, "commitment": "confirmed"}
ALT_PROGRAM = "AddressLookupTab1e1111111111111111111111111"
# An address lookup table account: bincode ProgramState::LookupTable (u32 tag 1), then the meta
# (deactivation slot u64, last extended slot u64, start index u8, Option<authority> 1 + 32,
# padding u16) padded to 56 bytes, then 32-byte addresses (solana-labs/solana,
# sdk/program/src/address_lookup_table/state.rs: LOOKUP_TABLE_META_SIZE = 56).
_ALT_META = 56
# mint (32) + owner (32) + amount (u64): all a balance needs of a token account, on both
# programs (Token-2022 keeps the classic layout first and puts extensions after it).
_TOKEN_HEAD = 72


# -- what the node answers, parsed once at the edge ---------------------------------------------
class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _RpcError(_Model):
    code: int
    message: str
    data: Any = None


class _Answer(_Model):
    id: int
    result: Any = None
    error: _RpcError | None = None


class _Account(_Model):
    lamports: int
    owner: str
    data: tuple[str, str]


class _Context(_Model):
    slot: int


class _MultipleAccounts(_Model):
    context: _Context
    value: list[_Account | None]


class _KeyedAccount(_Model):
    pubkey: str
    account: _Account


class _TokenAccounts(_Model):
    context: _Context
    value: list[_KeyedAccount]


class SolanaChain(ChainAdapter):
    """Reads balances on Solana (mainnet or the local node) through an injected httpx client."""

    def __init__(
        self,
        info: ChainInfo,
        rpc_url: str,
        client: httpx.AsyncClient,
        *,
        work_dir: Path | None = None,
        send_url: str | None = None,
        retries: int = 3,
        backoff: float = 0.25,
        commitment: str | None = "confirmed",
        rpc_timeout: float | None = DEFAULT_RPC_TIMEOUT_S,
    ) -> None:
        super().__init__(info, rpc_url, client, work_dir=work_dir, send_url=send_url)
        self._tables: dict[str, list[str]] = {}
        """Lookup tables read in this command (entries never change once written)."""
        self.retries = retries
        self.backoff = backoff
        self.rpc_timeout = rpc_timeout
        """Seconds one JSON-RPC call may take in all, retries included (None: no limit but
        the client's per-request timeouts)."""
        self.commitment = commitment
        self._chain_checked = False

    @property
    def where(self) -> str:
        return f"{self.info.name} node at {redact_url(self.rpc_url)}"

    def _where(self, send: bool) -> str:
        if send and self.send_url is not None:
            return f"{self.info.name} send_rpc at {redact_url(self.send_url)}"
        return self.where

    async def balances(
        self,
        wallets: Sequence[str],
        tokens: Sequence[Token],
        feeds: Sequence[OracleFeed] = (),
    ) -> Balances:
        out = Balances(chain=self.info.name)
        pairs = [(w, self._key(w, f"wallet {w!r}")) for w in wallets]
        token_keys = [
            None if t.address is None else self._key(t.address, f"token {t.symbol}") for t in tokens
        ]
        want_native = None in token_keys
        want_tokens = any(k is not None for k in token_keys)
        if not pairs or not tokens:
            return out
        chunks = [
            pairs[i : i + MAX_WALLETS_PER_REQUEST]
            for i in range(0, len(pairs), MAX_WALLETS_PER_REQUEST)
        ]
        check = not self._chain_checked
        parts = await asyncio.gather(
            *(
                self._read_chunk(
                    chunk,
                    want_native,
                    want_tokens,
                    check=check and i == 0,
                    feeds=feeds if i == 0 else (),
                )
                for i, chunk in enumerate(chunks)
            )
        )
        raw: dict[str, dict[bytes | None, int]] = {}
        for part, readings in parts:
            raw.update(part)
            out.oracles.extend(readings)
        for wallet, _ in pairs:
            amounts = raw.get(wallet, {})
            for token, key in zip(tokens, token_keys, strict=True):
                raw_amount = node_amount(self.where, wallet, token, amounts.get(key, 0))
                out.holdings.append(Holding(self.info.name, wallet, token, raw_amount))
        return out

    async def _read_chunk(
        self,
        chunk: list[tuple[str, bytes]],
        want_native: bool,
        want_tokens: bool,
        *,
        check: bool = False,
        feeds: Sequence[OracleFeed] = (),
    ) -> tuple[dict[str, dict[bytes | None, int]], list[OracleReading]]:
        """Lamports and token amounts by mint, for up to 100 wallets, and the Pyth accounts
        of ``feeds``, in one HTTP request."""
        calls: list[tuple[str, list[Any]]] = []
        if check:
            calls.append(("getGenesisHash", []))
        names = [w for w, _ in chunk]
        # NOTE: a validator's RPC refuses bodies over 50 KiB by default; 100 wallets' worth of
        # calls stays under it (about 49.4 KiB with the commitment) only without other
        # per-call extras, so token accounts come back whole. The commitment is "confirmed"
        # by default: balances must show the trades this tool just confirmed, or the next
        # plan would trade them again (finalized lags by ~13 s).
        extra = {} if self.commitment is None else {"commitment": self.commitment}
        if want_native and names:
            cfg = {"encoding": "base64", "dataSlice": {"offset": 0, "length": 0}, **extra}
            calls.append(("getMultipleAccounts", [names, cfg]))
        if want_tokens:
            cfg = {"encoding": "base64", **extra}
            for name in names:
                for program in (TOKEN_PROGRAM, TOKEN_2022_PROGRAM):
                    calls.append(("getTokenAccountsByOwner", [name, {"programId": program}, cfg]))
        if feeds:
            cfg = {"encoding": "base64", **extra}
            calls.append(("getMultipleAccounts", [[f.address for f in feeds], cfg]))
        if not calls:
            return {}, []
        answers = await self._batch(calls)
        out: dict[str, dict[bytes | None, int]] = {name: {} for name in names}
        readings: list[OracleReading] = []
        try:
            pos = 0
            if check:
                self._verify_genesis(self._result(answers[0], "getGenesisHash"))
                pos = 1
            if want_native and names:
                accounts = _MultipleAccounts.model_validate(
                    self._result(answers[pos], "getMultipleAccounts")
                )
                if len(accounts.value) != len(names):
                    raise ChainError(f"{self.where}: getMultipleAccounts answered the wrong count")
                for name, account in zip(names, accounts.value, strict=True):
                    out[name][None] = 0 if account is None else account.lamports
                pos += 1
            if want_tokens:
                for name, key in chunk:
                    for _ in (TOKEN_PROGRAM, TOKEN_2022_PROGRAM):
                        listed = _TokenAccounts.model_validate(
                            self._result(answers[pos], "getTokenAccountsByOwner")
                        )
                        pos += 1
                        for keyed in listed.value:
                            mint, amount = self._token_head(keyed, key)
                            out[name][mint] = out[name].get(mint, 0) + amount
            if feeds:
                accounts = _MultipleAccounts.model_validate(
                    self._result(answers[pos], "getMultipleAccounts")
                )
                if len(accounts.value) != len(feeds):
                    raise ChainError(f"{self.where}: getMultipleAccounts answered the wrong count")
                for feed, account in zip(feeds, accounts.value, strict=True):
                    readings.append(self._pyth(feed, account))
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise ChainError(
                f"{self.where} answered an unexpected shape ({loc}: {first['msg']})"
            ) from None
        return out, readings

    @staticmethod
    def _pyth(feed: OracleFeed, account: _Account | None) -> OracleReading:
        if account is None:
            return pyth_reading(feed, None, None)
        encoded, encoding = account.data
        try:
            data = base64.b64decode(encoded, validate=True) if encoding == "base64" else b""
        except binascii.Error:
            data = b""
        return pyth_reading(feed, account.owner, data)

    def _token_head(self, keyed: _KeyedAccount, wallet_key: bytes) -> tuple[bytes, int]:
        """(mint, amount) of a listed token account; refuses one the wallet does not own."""
        encoded, encoding = keyed.account.data
        try:
            head = base64.b64decode(encoded, validate=True) if encoding == "base64" else b""
        except binascii.Error:
            head = b""
        if len(head) < _TOKEN_HEAD or keyed.account.owner not in (
            TOKEN_PROGRAM,
            TOKEN_2022_PROGRAM,
        ):
            raise ChainError(f"{self.where}: token account {keyed.pubkey} is malformed")
        if head[32:64] != wallet_key:
            raise ChainError(f"{self.where}: listed token account {keyed.pubkey} of another owner")
        (amount,) = struct.unpack_from("<Q", head, 64)
        return head[0:32], amount

    def _verify_genesis(self, genesis: Any) -> None:
        reference = self.info.caip2.split(":", 1)[1]
        if not isinstance(genesis, str) or not genesis.startswith(reference):
            raise WrongChainError(
                f"{self.where} has genesis hash {genesis!r}, but the config says "
                f"{self.info.name} ({self.info.caip2}): check chains.{self.info.name}.rpc"
            )
        self._chain_checked = True

    def _result(self, answer: _Answer, method: str) -> Any:
        if answer.error is not None:
            e = answer.error
            raise rpc_error(self.where, method, e.code, e.message[:160], e.data)
        if answer.result is None and method == "getGenesisHash":
            raise ChainError(f"{self.where}: {method} answer has no result")
        return answer.result

    @staticmethod
    def _key(address: str, what: str) -> bytes:
        try:
            raw = b58decode(address)
        except ValueError:
            raw = b""
        if len(raw) != 32:
            raise ConfigError(f"{what}: {address!r} is not a Solana address (base58, 32 bytes)")
        return raw

    # -- transport ---------------------------------------------------------------------------
    async def _batch(
        self, calls: list[tuple[str, list[Any]]], *, send: bool = False
    ) -> list[_Answer]:
        """POST ``calls`` as one JSON-RPC batch (``send``: to ``send_rpc``); answers in call
        order."""
        body = json.dumps(
            [
                {"jsonrpc": "2.0", "id": i, "method": m, "params": p}
                for i, (m, p) in enumerate(calls)
            ],
            separators=(",", ":"),
        ).encode()
        methods = [m for m, _ in calls]
        where = self._where(send)

        def parse(content: bytes) -> list[_Answer]:
            data = decoded(content, where, methods[0] if methods else "batch")
            if isinstance(data, dict) and isinstance(data.get("error"), dict):
                message = str(data["error"].get("message", ""))[:120]
                raise ChainError(f"{where} refused a JSON-RPC batch: {message}")
            answers = check_batch(data, methods, where)
            try:
                return [_Answer.model_validate(a) for a in answers]
            except ValidationError:
                raise garbled(where, methods[0], "with a malformed error object") from None

        return await post_json(
            self.client,
            (self.send_url or self.rpc_url) if send else self.rpc_url,
            body,
            parse,
            where=where,
            error=ChainError,
            retries=self.retries,
            backoff=self.backoff,
            deadline=self.rpc_timeout,
        )

    async def calls(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """Several JSON-RPC calls in one request (a batch); any node error is a ChainError."""
        answers = await self._batch(calls)
        return [self._result(a, m) for a, (m, _) in zip(answers, calls, strict=True)]

    async def call(self, method: str, params: list[Any], *, send: bool = False) -> Any:
        """One JSON-RPC call (in a batch of one; ``send``: to ``send_rpc``); the node's error
        becomes a ChainError."""
        (answer,) = await self._batch([(method, params)], send=send)
        if answer.error is not None:
            e = answer.error
            raise rpc_error(self._where(send), method, e.code, e.message, e.data)
        return answer.result

    async def chain_time(self) -> int:
        slot = await self.call("getSlot", [{"commitment": "confirmed"}])
        when = await self.call("getBlockTime", [slot])
        if not isinstance(when, int):
            raise ChainError(f"{self.info.name}: no block time for slot {slot}")
        return when

    async def lookup_tables(self, keys: list[str]) -> dict[str, list[str]]:
        """The addresses held by address lookup tables, read with one getMultipleAccounts per
        100 tables, so a v0 transaction's accounts can be resolved before it is checked.

        A table that is missing, not owned by the lookup table program or malformed is a
        ChainError. Entries never change once written (tables only grow), so what is read
        here is what the runtime will load for indexes that exist now.
        """
        from solders.pubkey import Pubkey

        wanted = list(dict.fromkeys(keys))
        for key in wanted:
            if len(self._chain_key(key)) != 32:
                raise LookupTableError(
                    f"{self.where}: lookup table key {key!r} is not a public key"
                )
        extra = {} if self.commitment is None else {"commitment": self.commitment}
        out: dict[str, list[str]] = {}
        for i in range(0, len(wanted), MAX_WALLETS_PER_REQUEST):
            chunk = wanted[i : i + MAX_WALLETS_PER_REQUEST]
            result = await self.call(
                "getMultipleAccounts", [chunk, {"encoding": "base64", **extra}]
            )
            try:
                accounts = _MultipleAccounts.model_validate(result)
            except ValidationError:
                raise ChainError(f"{self.where}: getMultipleAccounts answered garbage") from None
            if len(accounts.value) != len(chunk):
                raise ChainError(f"{self.where}: getMultipleAccounts answered the wrong count")
            for key, account in zip(chunk, accounts.value, strict=True):
                data = self._alt_data(key, account)
                out[key] = [
                    str(Pubkey.from_bytes(data[j : j + 32]))
                    for j in range(_ALT_META, len(data), 32)
                ]
        return out

    async def lookup_tables_for(self, tx: Proposal) -> dict[str, list[str]] | None:
        """The tables a v0 transaction loads accounts from (None when it uses none, or does
        not decode: the check refuses what does not decode)."""
        from solders.message import MessageV0
        from solders.transaction import VersionedTransaction

        if not isinstance(tx, SolanaTx):
            return None
        try:
            msg = VersionedTransaction.from_bytes(tx.raw).message
        except ValueError:
            return None
        if not isinstance(msg, MessageV0) or not msg.address_table_lookups:
            return None
        # NOTE: table entries never change once written, so a table read earlier in this
        # command is reused while it holds every index the transaction uses (one round trip
        # less per trade); a table that grew past them, or a new one, is read again.
        used = {
            str(x.account_key): max([*x.writable_indexes, *x.readonly_indexes], default=-1)
            for x in msg.address_table_lookups
        }
        stale = [k for k, top in used.items() if len(self._tables.get(k, ())) <= top]
        if stale:
            self._tables.update(await self.lookup_tables(stale))
        return {k: self._tables[k] for k in used}

    # -- the trade lifecycle -----------------------------------------------------------------
    async def simulate(self, legs: SwapLegs) -> SimResult:
        """``simulateTransaction`` with the receiving account's post-state (chains.solana_sim)."""
        from rebalancer.chains import solana_sim

        return await solana_sim.simulate(self, legs)

    async def finalize(
        self, wallet: str, legs: SwapLegs, sim: SimResult, *, queued: int = 0
    ) -> list[UnsignedTx]:
        """As proposed (the aggregator set the blockhash and compute budget, checked against
        the policy already; a maker may have co-signed), except a transaction the tool
        compiled itself: its unit limit comes from the simulation and its price from recent
        priority fees, within its cap (``chains.solana_budget``)."""
        from rebalancer.chains.solana_budget import finalize_budget

        txs: list[UnsignedTx] = []
        for p in legs.proposals:
            if not isinstance(p, SolanaTx):
                raise ConfigError(f"{self.info.name}: cannot send {type(p).__name__}")
            if p.own_budget_cap_lamports is not None:
                p = await finalize_budget(self, p, sim.gas_used)
            txs.append(p)
        return txs

    async def can_still_land(self, raw: bytes, wallet: str) -> bool:
        """Only while its blockhash is valid."""
        from solders.transaction import VersionedTransaction

        blockhash = str(VersionedTransaction.from_bytes(raw).message.recent_blockhash)
        return await self.blockhash_valid(blockhash)

    async def landing_problem(
        self, wallet: str, txs: Sequence[UnsignedTx], *, what: str = "these transactions"
    ) -> str | None:
        for tx in txs:
            if isinstance(tx, SolanaTx) and not await self.can_still_land(tx.raw, wallet):
                until = tx.last_valid_block_height
                return f"its blockhash expired (valid until block height {until})"
        return None

    def _alt_data(self, key: str, account: _Account | None) -> bytes:
        """The raw data of a lookup table account, its owner, tag and size checked."""
        if account is None:
            raise LookupTableError(f"{self.where}: address lookup table {key} does not exist")
        if account.owner != ALT_PROGRAM:
            raise LookupTableError(
                f"{self.where}: {key} is not an address lookup table (owner {account.owner})"
            )
        encoded, encoding = account.data
        try:
            data = base64.b64decode(encoded, validate=True) if encoding == "base64" else b""
        except binascii.Error:
            data = b""
        malformed = len(data) < _ALT_META or (len(data) - _ALT_META) % 32
        if malformed or struct.unpack_from("<I", data)[0] != 1:  # 1: LookupTable
            raise LookupTableError(f"{self.where}: address lookup table {key} is malformed")
        return data

    @staticmethod
    def _chain_key(address: str) -> bytes:
        try:
            return b58decode(address)
        except ValueError:
            return b""

    async def send_raw(self, raw: bytes) -> str:
        """Broadcast a fully signed transaction through ``send_rpc`` (else ``rpc``); its
        signature is its id. Preflight is on, so a transaction that would fail is refused by
        the node with its reason."""
        import base64

        from solders.transaction import VersionedTransaction

        try:
            sig = await self.call(
                "sendTransaction",
                [
                    base64.b64encode(raw).decode(),
                    {"encoding": "base64", "preflightCommitment": "confirmed"},
                ],
                send=True,
            )
        except AlreadyKnownError:
            # NOTE: a retried send whose first answer was lost: the node has these very bytes
            return str(VersionedTransaction.from_bytes(raw).signatures[0])
        except ChainError:
            signature = str(VersionedTransaction.from_bytes(raw).signatures[0])
            if await self._knows(signature):
                return signature
            raise
        return str(sig)

    async def _knows(self, signature: str) -> bool:
        """Whether the node has seen the transaction; no answer counts as no."""
        try:
            result = await self.call("getSignatureStatuses", [[signature]])
        except ChainError:
            return False
        value = result.get("value") if isinstance(result, dict) else None
        return isinstance(value, list) and bool(value) and value[0] is not None

    async def last_activity(self, wallet: str) -> str | None:
        """The newest transaction the wallet signed, among the newest ``ACTIVITY_WINDOW``
        that touched it (``getSignaturesForAddress``, then their ``getTransaction`` in one
        batch).

        Only the wallet's own signature counts: anyone may send a transaction that merely
        names it (a token sent to it, an RFQ maker approving it as a delegate), which is not
        the wallet trading elsewhere. A transaction the node cannot show counts as its own.
        """
        found = await self.call(
            "getSignaturesForAddress",
            [wallet, {"limit": ACTIVITY_WINDOW, "commitment": "confirmed"}],
        )
        if not isinstance(found, list):
            raise ChainError(f"{self.where}: getSignaturesForAddress answered {found!r:.80}")
        sigs: list[str] = []
        for entry in found:
            sig = entry.get("signature") if isinstance(entry, dict) else None
            if not isinstance(sig, str):
                raise ChainError(f"{self.where}: getSignaturesForAddress answered {entry!r:.80}")
            sigs.append(sig)
        if not sigs:
            return NO_OWN_ACTIVITY
        txs = await self.calls([("getTransaction", [sig, TX_JSON]) for sig in sigs])
        for sig, tx in zip(sigs, txs, strict=True):
            message = ((tx or {}).get("transaction") or {}).get("message") or {}
            keys = message.get("accountKeys") or []
            signers = int((message.get("header") or {}).get("numRequiredSignatures") or 0)
            if tx is None or wallet in keys[:signers]:
                return f"transaction {sig}"
        return NO_OWN_ACTIVITY

    async def tx_status(self, tx_id: str) -> str:
        """``confirmed``, ``failed`` or ``unknown`` (not seen by the node yet)."""
        result = await self.call(
            "getSignatureStatuses", [[tx_id], {"searchTransactionHistory": True}]
        )
        value = (result or {}).get("value") or [None]
        status = value[0]
        if status is None:
            return "unknown"
        if status.get("err") is not None:
            return "failed"
        if status.get("confirmationStatus") in ("confirmed", "finalized"):
            return "confirmed"
        return "unknown"

    async def _transaction(self, tx_id: str) -> Any:
        """The node's ``getTransaction`` answer (JSON encoding, confirmed); None if it has none."""
        return await self.call("getTransaction", [tx_id, TX_JSON])

    async def fee_paid(self, tx_id: str) -> int | None:
        """The fee the transaction paid, in lamports; None if the node does not have it."""
        tx = await self._transaction(tx_id)
        meta = (tx or {}).get("meta") or {}
        fee = meta.get("fee")
        return int(fee) if isinstance(fee, int) else None

    async def block_time(self, tx_id: str) -> int | None:
        """The transaction's ``blockTime`` (getTransaction); None if the node has none."""
        tx = await self._transaction(tx_id)
        at = (tx or {}).get("blockTime") if isinstance(tx, dict) else None
        return at if isinstance(at, int) and not isinstance(at, bool) else None

    async def blockhash_valid(self, blockhash: str) -> bool:
        result = await self.call("isBlockhashValid", [blockhash, {"commitment": "processed"}])
        return bool((result or {}).get("value"))
