"""A local stand-in for the Jupiter Swap API v1 (Metis), over the local Solana node, with v2's
``GET /swap/v2/order`` (a quote and its RFQ fill in one answer, ``requestId``,
``lastValidBlockHeight`` as a string; no ``taker``: a quote only, ``transaction: ""``) and
``POST /swap/v2/execute`` (lands a signed order once, only the order's own transaction), and
``GET /swap/v2/build`` (instructions the taker alone signs, the maker's side a delegation it
lands first: ``localnet.jupiter_build``).

It serves ``/swap/v1/quote``, ``POST /swap/v1/swap`` and ``/swap/v1/program-id-to-label`` with
the real API's schemas (amounts as strings, ``routePlan`` with ``percent`` and ``bps``,
``{error, errorCode}`` bodies with HTTP 400, 401 without an ``x-api-key``). No swap program
can run on the local node, so every swap is filled the way Jupiter's RFQ venue (JupiterZ)
fills it: one v0 transaction, fee payer the user, holding the compute-budget instructions, an
idempotent creation of the user's output token account, and two transfers (user -> maker
``inAmount``, maker -> user the maker's price), co-signed by the maker with the user's slot
left empty. SOL legs are System transfers when ``wrapAndUnwrapSol`` is on. A quote with
``platformFeeBps`` takes the fee from the output (``platformFee: {amount, feeBps}``, outAmount
net of it) and its fill pays the fee to the swap's ``feeAccount``; ``dynamicSlippage`` answers
a ``dynamicSlippageReport`` and fills against its threshold; quotes carry ``swapUsdValue``.
The maker prices
from the constant-product book of ``localnet.jupiter_amm`` and refuses a fill its inventory
on the node cannot pay. ExactIn only.

Like Jupiter's own transactions, fills load accounts through an address lookup table: at
startup the maker creates and extends a real table on the node (the mints, its token accounts
and the programs fills use) with the Address Lookup Table program, and every fill is compiled
against it. ``--no-lookup-table`` turns that off (static account keys only).

PUBLIC DEMO KEY: the maker is ``localnet.solana_fixtures.maker_keypair()``
(``Keypair.from_seed(sha256(b"rebalancer demo solana maker"))``); anyone can sign for it.

    python -m rebalancer.localnet.jupiter_server --port 0 --rpc http://127.0.0.1:PORT [--amm FILE]
        [--no-lookup-table]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import struct
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
from solders.address_lookup_table_account import (
    AddressLookupTableAccount,
    derive_lookup_table_address,
)
from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.null_signer import NullSigner
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from solders.token.associated import get_associated_token_address
from solders.transaction import VersionedTransaction

from rebalancer.core.errors import ChainError
from rebalancer.localnet.http_server import json_handler, serve
from rebalancer.localnet.jupiter_amm import AMM_PATH, Book, Hop
from rebalancer.localnet.rpc import Rpc
from rebalancer.localnet.solana_accounts import (
    ASSOCIATED_TOKEN_PROGRAM,
    NATIVE_MINT,
    SYSTEM_PROGRAM,
    TOKEN_PROGRAMS,
)
from rebalancer.localnet.solana_fixtures import maker_keypair

JUPITER_V6 = "JUP6LkbZbjS1jKKwapdHNy74zcZ3tLUZoi5QNyVTaV4"
ALT_PROGRAM = Pubkey.from_string("AddressLookupTab1e1111111111111111111111111")
COMPUTE_BUDGET_PROGRAM = Pubkey.from_string("ComputeBudget111111111111111111111111111111")
EXTEND_CHUNK = 20  # addresses per ExtendLookupTable: keeps each transaction under 1232 bytes
TABLE_READY_TIMEOUT_S = 10.0
PREFIX = "/swap/v1"
PREFIX_V2 = "/swap/v2"
ADMIN_PRICES = "/localnet/prices"  # a simulated market reprices the maker (loopback only)
ORDER_PRIORITY = {"priorityLevelWithMaxLamports": {"priorityLevel": "medium", "maxLamports": 10**6}}
DEFAULT_CU_LIMIT = 1_400_000  # what Jupiter sets without dynamicComputeUnitLimit
CU_MARGIN_PCT = 20
# Compute-unit prices (micro-lamports) per priority level on the quiet local chain.
PRIORITY_PRICE = {"medium": 10_000, "high": 50_000, "veryHigh": 200_000}
MAKER_SOL_RESERVE = 10**9  # lamports the maker keeps for fees
_NO_ROUTE = ("Could not find any route", "COULD_NOT_FIND_ANY_ROUTE")
MAX_PLATFORM_FEE_BPS = 10_000
USDC_MINT = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
USDC_DECIMALS = 6
STABLE_MINTS = {USDC_MINT, "Es9vMFrzaCERmJfrF4H2FYD4KCoNkY11McCe8BenwNYB"}
DYNAMIC_SLIPPAGE_MARGIN_BPS = 10
DYNAMIC_SLIPPAGE_FLOOR_BPS = 10


class ApiError(Exception):
    """An answer in Jupiter's ``{error, errorCode}`` shape."""

    def __init__(self, status: int, error: str, code: str | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.code = code

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.error}
        if self.code is not None:
            body["errorCode"] = self.code
        return body


def _bad(message: str) -> ApiError:
    return ApiError(400, message, "INVALID_REQUEST")


# -- instructions (shared with the tests, which build hostile variants) --------------------------
def transfer_checked(
    program: Pubkey,
    source: Pubkey,
    mint: Pubkey,
    dest: Pubkey,
    owner: Pubkey,
    amount: int,
    decimals: int,
) -> Instruction:
    """SPL Token ``TransferChecked`` (tag 12, u64 amount, u8 decimals)."""
    return Instruction(
        program,
        bytes([12]) + struct.pack("<QB", amount, decimals),
        [
            AccountMeta(source, False, True),
            AccountMeta(mint, False, False),
            AccountMeta(dest, False, True),
            AccountMeta(owner, True, False),
        ],
    )


def create_ata_idempotent(
    payer: Pubkey, owner: Pubkey, mint: Pubkey, program: Pubkey
) -> Instruction:
    """Associated Token Account ``CreateIdempotent`` (data ``[1]``)."""
    return Instruction(
        ASSOCIATED_TOKEN_PROGRAM,
        bytes([1]),
        [
            AccountMeta(payer, True, True),
            AccountMeta(get_associated_token_address(owner, mint, program), False, True),
            AccountMeta(owner, False, False),
            AccountMeta(mint, False, False),
            AccountMeta(SYSTEM_PROGRAM, False, False),
            AccountMeta(program, False, False),
        ],
    )


def sol_transfer(source: Pubkey, dest: Pubkey, lamports: int) -> Instruction:
    return transfer(TransferParams(from_pubkey=source, to_pubkey=dest, lamports=lamports))


def create_lookup_table(
    authority: Pubkey, payer: Pubkey, recent_slot: int
) -> tuple[Instruction, Pubkey]:
    """Address Lookup Table ``CreateLookupTable`` (bincode: u32 tag 0, u64 recent_slot, u8 bump)
    at the address derived from the authority and the slot; the authority need not sign."""
    table, bump = derive_lookup_table_address(authority, recent_slot)
    ix = Instruction(
        ALT_PROGRAM,
        struct.pack("<IQB", 0, recent_slot, bump),
        [
            AccountMeta(table, False, True),
            AccountMeta(authority, False, False),
            AccountMeta(payer, True, True),
            AccountMeta(SYSTEM_PROGRAM, False, False),
        ],
    )
    return ix, table


def extend_lookup_table(
    table: Pubkey, authority: Pubkey, payer: Pubkey, addresses: list[Pubkey]
) -> Instruction:
    """``ExtendLookupTable`` (u32 tag 2, then a bincode Vec: u64 length, 32-byte addresses)."""
    data = struct.pack("<IQ", 2, len(addresses)) + b"".join(bytes(a) for a in addresses)
    return Instruction(
        ALT_PROGRAM,
        data,
        [
            AccountMeta(table, False, True),
            AccountMeta(authority, True, False),
            AccountMeta(payer, True, True),
            AccountMeta(SYSTEM_PROGRAM, False, False),
        ],
    )


def pool_key(name: str) -> str:
    """A stable base58 ``ammKey`` for a pool of the book (Jupiter answers pubkeys there)."""
    return str(Pubkey(hashlib.sha256(b"rebalancer local pool " + name.encode()).digest()))


# -- the maker ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class MintInfo:
    program: Pubkey
    decimals: int


class Maker:
    """The RFQ market maker: prices from the book, pays from its inventory on the node."""

    def __init__(self, rpc: Rpc, book: Book, keypair: Keypair) -> None:
        self.rpc = rpc
        self.book = book
        self.keypair = keypair
        self.pubkey = keypair.pubkey()
        self._mints: dict[Pubkey, MintInfo] = {}
        self._lock = threading.Lock()
        self.lookup_table: AddressLookupTableAccount | None = None
        """The table fills are compiled against (None: static account keys only)."""

    def mint(self, mint: Pubkey) -> MintInfo:
        """Token program and decimals of a mint, read once from the node."""
        with self._lock:
            info = self._mints.get(mint)
        if info is not None:
            return info
        acc = self.rpc.call("getAccountInfo", str(mint), {"encoding": "base64"})["value"]
        if acc is None or Pubkey.from_string(acc["owner"]) not in TOKEN_PROGRAMS:
            raise ApiError(400, f"The token {mint} is not tradable", "TOKEN_NOT_TRADABLE")
        data = base64.b64decode(acc["data"][0])
        info = MintInfo(Pubkey.from_string(acc["owner"]), data[44])
        with self._lock:
            self._mints[mint] = info
        return info

    def inventory(self, mint: Pubkey, native: bool) -> int:
        """What the maker can pay out of ``mint`` now (lamports above its reserve for SOL)."""
        if native:
            lamports = int(self.rpc.call("getBalance", str(self.pubkey))["value"])
            return max(lamports - MAKER_SOL_RESERVE, 0)
        ata = get_associated_token_address(self.pubkey, mint, self.mint(mint).program)
        try:
            value = self.rpc.call("getTokenAccountBalance", str(ata))["value"]
        except ChainError:
            return 0
        return int(value["amount"])

    def open_lookup_table(self) -> AddressLookupTableAccount:
        """Create and extend a lookup table owned by the maker on the node, holding what
        fills use (programs, every mint of the book and the maker's token accounts), then
        wait until the node's slot has passed the last extension so lookups may use it."""
        addresses = [SYSTEM_PROGRAM, *TOKEN_PROGRAMS, ASSOCIATED_TOKEN_PROGRAM]
        addresses.append(COMPUTE_BUDGET_PROGRAM)
        for mint in sorted(self.book.mints):
            key = Pubkey.from_string(mint)
            addresses += [
                key,
                get_associated_token_address(self.pubkey, key, self.mint(key).program),
            ]
        slot = int(self.rpc.call("getSlot", {"commitment": "finalized"}))
        create, table = create_lookup_table(self.pubkey, self.pubkey, slot)
        chunks = [addresses[i : i + EXTEND_CHUNK] for i in range(0, len(addresses), EXTEND_CHUNK)]
        for i, chunk in enumerate(chunks):
            extend = extend_lookup_table(table, self.pubkey, self.pubkey, chunk)
            self._send([create, extend] if i == 0 else [extend])
        extended = int(self.rpc.call("getSlot"))
        deadline = time.monotonic() + TABLE_READY_TIMEOUT_S
        while int(self.rpc.call("getSlot")) <= extended:
            if time.monotonic() > deadline:
                raise ChainError(f"the node's slot did not pass {extended}: lookup table unusable")
            time.sleep(0.05)
        return AddressLookupTableAccount(table, addresses)

    def _send(self, ixs: list[Instruction]) -> None:
        """Send a transaction the maker alone signs and pays; ChainError unless it landed."""
        blockhash = self.rpc.call("getLatestBlockhash", {"commitment": "confirmed"})["value"]
        message = MessageV0.try_compile(
            self.pubkey, ixs, [], Hash.from_string(blockhash["blockhash"])
        )
        tx = VersionedTransaction(message, [self.keypair])
        sig = self.rpc.call(
            "sendTransaction", base64.b64encode(bytes(tx)).decode(), {"encoding": "base64"}
        )
        status = self.rpc.call("getSignatureStatuses", [sig])["value"][0]
        if status is None or status.get("err") is not None:
            raise ChainError(f"the maker's lookup table transaction {sig} failed: {status}")

    def route(self, mint_in: Pubkey, mint_out: Pubkey, amount: int) -> list[Hop]:
        for m in (mint_in, mint_out):
            if str(m) not in self.book.mints:
                raise ApiError(400, f"The token {m} is not tradable", "TOKEN_NOT_TRADABLE")
        hops = self.book.best(str(mint_in), str(mint_out), amount)
        if hops is None:
            raise ApiError(400, *_NO_ROUTE)
        return hops


# -- the API ------------------------------------------------------------------------------------
def _one(q: dict[str, list[str]], name: str, default: str | None = None) -> str | None:
    v = q.get(name)
    return v[0] if v else default


def _pubkey(value: Any, name: str) -> Pubkey:
    if not isinstance(value, str):
        raise _bad(f"{name} is required")
    try:
        return Pubkey.from_string(value)
    except ValueError:
        raise _bad(f"{name}: invalid public key {value!r}") from None


def _uint(value: Any, name: str, maximum: int = 2**64 - 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise _bad(f"{name} must be an unsigned integer")
    n = int(value)
    if n > maximum:
        raise _bad(f"{name} is out of range")
    return n


def _flag(q: dict[str, list[str]], name: str, default: bool) -> bool:
    v = _one(q, name)
    if v is None:
        return default
    if v not in ("true", "false"):
        raise _bad(f"{name} must be true or false")
    return v == "true"


class Api:
    """Request dispatch, independent of the HTTP server (tests may call it directly)."""

    def __init__(self, maker: Maker) -> None:
        self.maker = maker
        self._orders: dict[str, str] = {}
        self._orders_lock = threading.Lock()

    def handle(
        self, method: str, path: str, query: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, Any]:
        try:
            if not headers.get("x-api-key"):
                raise ApiError(401, "Unauthorized: missing x-api-key header")
            if method == "POST" and path == ADMIN_PRICES:
                return 200, self.reprice(body)
            if path.startswith(PREFIX_V2 + "/"):
                return 200, self.v2(method, path.removeprefix(PREFIX_V2).rstrip("/"), query, body)
            endpoint = path.removeprefix(PREFIX).rstrip("/")
            if not path.startswith(PREFIX + "/"):
                raise ApiError(404, f"Cannot {method} {path}")
            if method == "GET" and endpoint == "/quote":
                return 200, self.quote(parse_qs(query))
            if method == "POST" and endpoint == "/swap":
                try:
                    request = json.loads(body or b"null")
                except ValueError:
                    raise _bad("Failed to parse the JSON body") from None
                if not isinstance(request, dict):
                    raise _bad("The body must be a JSON object")
                return 200, self.swap(request)
            if method == "GET" and endpoint == "/program-id-to-label":
                return 200, {JUPITER_V6: "Jupiter", str(self.maker.pubkey): "JupiterZ"}
            raise ApiError(404, f"Cannot {method} {path}")
        except ApiError as exc:
            return exc.status, exc.body()

    def reprice(self, body: bytes) -> dict[str, Any]:
        """``POST /localnet/prices`` ``{"usd": {mint: "price"}}``: move the maker's book to
        these USD prices (``localnet.market``'s step), so quotes follow the simulated market."""
        try:
            usd = {str(m): Decimal(str(v)) for m, v in json.loads(body)["usd"].items()}
        except (ValueError, KeyError, TypeError, AttributeError, ArithmeticError):
            raise _bad('the body must be {"usd": {mint: price}}') from None
        if any(not v.is_finite() or v <= 0 for v in usd.values()):
            raise _bad("every price must be a positive number")
        known = {m: v for m, v in usd.items() if m in self.maker.book.mints}
        decimals = {m: self.maker.mint(Pubkey.from_string(m)).decimals for m in known}
        self.maker.book = self.maker.book.repriced(known, decimals)
        return {"repriced": len(known)}

    # -- Swap API v2: /build, /order and /execute ----------------------------------------------
    def v2(self, method: str, endpoint: str, query: str, body: bytes) -> dict[str, Any]:
        """``GET /build`` (a quote and instructions the taker alone signs, filled through the
        maker's delegation: ``localnet.jupiter_build``), ``GET /order`` (a v1 quote and fill
        in one answer, ``requestId``, the transaction co-signed by the maker) and
        ``POST /execute`` (lands a signed order on the node)."""
        if method == "GET" and endpoint == "/build":
            from rebalancer.localnet.jupiter_build import build

            return build(self, parse_qs(query))
        if method == "GET" and endpoint == "/order":
            q = parse_qs(query)
            if _one(q, "swapMode", "ExactIn") != "ExactIn":
                raise _bad("swapMode: /order fills ExactIn only on the local stand-in")
            quote = self.quote(q)
            taker = _one(q, "taker")
            out: dict[str, Any] = {"mode": "ultra", **quote, "router": "jupiterz"}
            out["requestId"] = str(uuid.uuid4())
            if taker is None:  # a quote only: no transaction
                return {**out, "transaction": "", "lastValidBlockHeight": ""}
            fill = self.swap(
                {
                    "userPublicKey": taker,
                    "quoteResponse": quote,
                    "dynamicComputeUnitLimit": True,
                    "prioritizationFeeLamports": ORDER_PRIORITY,
                }
            )
            if "simulationError" in fill:
                raise ApiError(400, "the fill fails in simulation", "SIMULATION_FAILED")
            with self._orders_lock:
                self._orders[out["requestId"]] = fill["swapTransaction"]
            return {
                **out,
                "taker": taker,
                "gasless": False,
                "transaction": fill["swapTransaction"],
                "lastValidBlockHeight": str(fill["lastValidBlockHeight"]),
                "prioritizationFeeLamports": fill["prioritizationFeeLamports"],
            }
        if method == "POST" and endpoint == "/execute":
            try:
                req = json.loads(body or b"null")
            except ValueError:
                raise _bad("Failed to parse the JSON body") from None
            if not isinstance(req, dict) or not isinstance(req.get("signedTransaction"), str):
                raise _bad("signedTransaction and requestId are required")
            with self._orders_lock:
                known = self._orders.pop(str(req.get("requestId")), None)
            if known is None:
                raise _bad("unknown or already executed requestId")
            try:
                signed = VersionedTransaction.from_bytes(base64.b64decode(req["signedTransaction"]))
            except ValueError:
                raise _bad("signedTransaction is not a base64 versioned transaction") from None
            if signed.message != VersionedTransaction.from_bytes(base64.b64decode(known)).message:
                raise _bad("signedTransaction is not the transaction of this requestId")
            try:
                sig = self.maker.rpc.call(
                    "sendTransaction", req["signedTransaction"], {"encoding": "base64"}
                )
            except ChainError as exc:
                return {"status": "Failed", "code": -1, "error": str(exc)[:200]}
            return {"status": "Success", "signature": sig, "code": 0}
        raise ApiError(404, f"Cannot {method} {PREFIX_V2}{endpoint}")

    # -- /quote ---------------------------------------------------------------------------------
    def quote(self, q: dict[str, list[str]]) -> dict[str, Any]:
        started = time.perf_counter()
        mint_in = _pubkey(_one(q, "inputMint"), "inputMint")
        mint_out = _pubkey(_one(q, "outputMint"), "outputMint")
        amount = _uint(_one(q, "amount"), "amount")
        slippage = _uint(_one(q, "slippageBps", "50"), "slippageBps", 10_000)
        mode = _one(q, "swapMode", "ExactIn")
        if mode not in ("ExactIn", "ExactOut"):
            raise _bad(f"swapMode must be ExactIn or ExactOut, not {mode!r}")
        if mode == "ExactOut":
            raise ApiError(
                400, "ExactOut is not supported by the local RFQ maker", "EXACT_OUT_NOT_SUPPORTED"
            )
        _flag(q, "restrictIntermediateTokens", True)
        _flag(q, "onlyDirectRoutes", False)
        fee_bps = _uint(_one(q, "platformFeeBps", "0"), "platformFeeBps", MAX_PLATFORM_FEE_BPS)
        if amount == 0:
            raise _bad("amount must be greater than 0")
        if mint_in == mint_out:
            raise ApiError(400, "Circular arbitrage is disabled", "CIRCULAR_ARBITRAGE_IS_DISABLED")
        hops = self.maker.route(mint_in, mint_out, amount)
        gross = hops[-1].amount_out
        native_out = mint_out == NATIVE_MINT
        if self.maker.inventory(mint_out, native_out) < gross:
            raise ApiError(400, *_NO_ROUTE)
        mid = self.maker.book.mid_out(hops)
        impact = max(Decimal(0), (mid - gross) / mid) if mid else Decimal(0)
        # NOTE: ExactIn takes the platform fee from the output: outAmount and the threshold are
        # what the user gets after it, platformFee.amount is the fee in the output mint.
        fee = gross * fee_bps // 10_000
        out = gross - fee
        # NOTE: rounded up, as in real answers (hummingbot/gateway#499: 10392472 at 100 bps
        # gives 10288548).
        threshold = -(-out * (10_000 - slippage) // 10_000)
        slot = int(self.maker.rpc.call("getSlot"))
        return {
            "inputMint": str(mint_in),
            "inAmount": str(amount),
            "outputMint": str(mint_out),
            "outAmount": str(out),
            "otherAmountThreshold": str(threshold),
            "swapMode": "ExactIn",
            "slippageBps": slippage,
            "platformFee": (None if fee_bps == 0 else {"amount": str(fee), "feeBps": fee_bps}),
            "priceImpactPct": str(impact.quantize(Decimal("1e-16"))),
            "routePlan": [
                {
                    "swapInfo": {
                        "ammKey": pool_key(h.pool.key),
                        "label": h.pool.label,
                        "inputMint": h.mint_in,
                        "outputMint": h.mint_out,
                        "inAmount": str(h.amount_in),
                        "outAmount": str(h.amount_out),
                        "feeAmount": str(h.fee),
                        "feeMint": h.mint_in,
                    },
                    "percent": 100,
                    "bps": 10_000,
                }
                for h in hops
            ],
            "contextSlot": slot,
            "timeTaken": round(time.perf_counter() - started, 6),
            "swapUsdValue": self._usd_value(str(mint_in), amount),
        }

    def _usd_value(self, mint: str, amount: int) -> str:
        """``swapUsdValue``: the input at the book's marginal price in USDC (display only)."""
        if mint == USDC_MINT:
            usdc = Decimal(amount)
        else:
            hops = self.maker.book.best(mint, USDC_MINT, amount)
            if hops is None:
                return "0"
            usdc = self.maker.book.mid_out(hops)
        return str((usdc / Decimal(10**USDC_DECIMALS)).quantize(Decimal("1e-10")))

    # -- /swap ----------------------------------------------------------------------------------
    def swap(self, req: dict[str, Any]) -> dict[str, Any]:
        user = _pubkey(req.get("userPublicKey"), "userPublicKey")
        quote = req.get("quoteResponse")
        if not isinstance(quote, dict):
            raise _bad("quoteResponse is required")
        if quote.get("swapMode", "ExactIn") != "ExactIn":
            raise ApiError(
                400, "ExactOut is not supported by the local RFQ maker", "EXACT_OUT_NOT_SUPPORTED"
            )
        mint_in = _pubkey(quote.get("inputMint"), "quoteResponse.inputMint")
        mint_out = _pubkey(quote.get("outputMint"), "quoteResponse.outputMint")
        amount = _uint(quote.get("inAmount"), "quoteResponse.inAmount")
        threshold = _uint(quote.get("otherAmountThreshold"), "quoteResponse.otherAmountThreshold")
        if amount == 0 or mint_in == mint_out:
            raise _bad("quoteResponse is not a valid quote")
        wrap = req.get("wrapAndUnwrapSol", True)
        dynamic = req.get("dynamicComputeUnitLimit", False)
        dynamic_slippage = req.get("dynamicSlippage", False)
        if not all(isinstance(v, bool) for v in (wrap, dynamic, dynamic_slippage)):
            raise _bad(
                "wrapAndUnwrapSol, dynamicComputeUnitLimit and dynamicSlippage must be booleans"
            )
        fee_bps, fee_account = self._platform_fee(req, quote)
        if req.get("asLegacyTransaction"):
            raise _bad("asLegacyTransaction is not supported by the local stand-in")
        # NOTE: the maker re-prices now and never pays the client's outAmount on trust; it
        # fills at its own price if that still meets the quote's otherAmountThreshold.
        hops = self.maker.route(mint_in, mint_out, amount)
        gross = hops[-1].amount_out
        fee = gross * fee_bps // 10_000
        out = gross - fee
        report = None
        if dynamic_slippage:
            report = self._dynamic_slippage(quote, mint_in, mint_out, out)
            threshold = int(report["otherAmount"])
        if out < threshold:
            raise ApiError(
                400,
                "The quote is stale: the maker's price moved beyond the slippage",
                "STALE_QUOTE",
            )
        native_in = wrap and mint_in == NATIVE_MINT
        native_out = wrap and mint_out == NATIVE_MINT
        if fee and native_out:
            raise _bad("a platform fee on SOL output needs wrapAndUnwrapSol false (a wSOL fee)")
        if self.maker.inventory(mint_out, native_out) < gross:
            raise ApiError(400, *_NO_ROUTE)
        dest = req.get("destinationTokenAccount")
        dest_key = None if dest is None else _pubkey(dest, "destinationTokenAccount")
        if dest_key is not None and native_out:
            raise _bad("destinationTokenAccount needs wrapAndUnwrapSol false for SOL output")

        swap_ixs = self._transfers(
            user, mint_in, mint_out, amount, out, native_in, native_out, dest_key
        )
        if fee:
            info = self.maker.mint(mint_out)
            src = get_associated_token_address(self.maker.pubkey, mint_out, info.program)
            assert fee_account is not None
            swap_ixs.append(
                transfer_checked(
                    info.program, src, mint_out, fee_account, self.maker.pubkey, fee, info.decimals
                )
            )
        blockhash = self.maker.rpc.call("getLatestBlockhash", {"commitment": "confirmed"})["value"]
        recent = Hash.from_string(blockhash["blockhash"])

        simulation_error = None
        limit = DEFAULT_CU_LIMIT
        if dynamic:
            probe = self._sign(user, [set_compute_unit_limit(DEFAULT_CU_LIMIT), *swap_ixs], recent)
            units, simulation_error = self._simulate(probe)
            if units is not None:
                limit = units * (100 + CU_MARGIN_PCT) // 100 + 1_000
        price, fee = self._priority(req, limit)
        ixs = [set_compute_unit_limit(limit)]
        if price:
            ixs.append(set_compute_unit_price(price))
        tx = self._sign(user, [*ixs, *swap_ixs], recent)
        body: dict[str, Any] = {
            "swapTransaction": base64.b64encode(bytes(tx)).decode(),
            "lastValidBlockHeight": int(blockhash["lastValidBlockHeight"]),
            "prioritizationFeeLamports": fee,
            "computeUnitLimit": limit,
            "prioritizationType": {
                "computeBudget": {"microLamports": price, "estimatedMicroLamports": price}
            },
        }
        body["dynamicSlippageReport"] = report
        if simulation_error is not None:
            body["simulationError"] = simulation_error
        return body

    @staticmethod
    def _platform_fee(req: dict[str, Any], quote: dict[str, Any]) -> tuple[int, Pubkey | None]:
        """The quote's platform fee (bps) and the ``feeAccount`` it is paid to: a fee-bearing
        quote needs one, as on Jupiter."""
        fee = quote.get("platformFee")
        if fee is None:
            return 0, None
        if not isinstance(fee, dict):
            raise _bad("quoteResponse.platformFee must be an object or null")
        bps = _uint(fee.get("feeBps"), "quoteResponse.platformFee.feeBps", MAX_PLATFORM_FEE_BPS)
        if bps == 0:
            return 0, None
        account = req.get("feeAccount")
        if account is None:
            raise _bad("feeAccount is required when the quote has a platformFee")
        return bps, _pubkey(account, "feeAccount")

    def _dynamic_slippage(
        self, quote: dict[str, Any], mint_in: Pubkey, mint_out: Pubkey, out: int
    ) -> dict[str, Any]:
        """``dynamicSlippageReport``: the fill is simulated at the maker's price now, and the
        slippage set just above what it incurred against the quote, within the pair's
        heuristic cap (stable pairs 50 bps, others 300)."""
        quoted = _uint(quote.get("outAmount"), "quoteResponse.outAmount")
        incurred = (quoted - out) * 10_000 // quoted if quoted else 0
        stable = {str(mint_in), str(mint_out)} <= STABLE_MINTS
        cap = 50 if stable else 300
        bps = min(cap, max(incurred + DYNAMIC_SLIPPAGE_MARGIN_BPS, DYNAMIC_SLIPPAGE_FLOOR_BPS))
        return {
            "slippageBps": bps,
            "otherAmount": -(-quoted * (10_000 - bps) // 10_000),
            "simulatedIncurredSlippageBps": incurred,
            "amplificationRatio": "1.5",
            "categoryName": "stable" if stable else "bluechip",
            "heuristicMaxSlippageBps": cap,
        }

    def _transfers(
        self,
        user: Pubkey,
        mint_in: Pubkey,
        mint_out: Pubkey,
        amount: int,
        out: int,
        native_in: bool,
        native_out: bool,
        dest: Pubkey | None,
    ) -> list[Instruction]:
        """Create the user's output account if needed, then the two legs of the fill."""
        maker = self.maker.pubkey
        ixs: list[Instruction] = []
        if native_out:
            pay = sol_transfer(maker, user, out)
        else:
            info = self.maker.mint(mint_out)
            if dest is None:
                ixs.append(create_ata_idempotent(user, user, mint_out, info.program))
                dest = get_associated_token_address(user, mint_out, info.program)
            src = get_associated_token_address(maker, mint_out, info.program)
            pay = transfer_checked(info.program, src, mint_out, dest, maker, out, info.decimals)
        if native_in:
            take = sol_transfer(user, maker, amount)
        else:
            info = self.maker.mint(mint_in)
            take = transfer_checked(
                info.program,
                get_associated_token_address(user, mint_in, info.program),
                mint_in,
                get_associated_token_address(maker, mint_in, info.program),
                user,
                amount,
                info.decimals,
            )
        return [*ixs, take, pay]

    def _sign(self, user: Pubkey, ixs: list[Instruction], blockhash: Hash) -> VersionedTransaction:
        """The maker's signature, the user's slot left empty (RFQ co-signing)."""
        table = self.maker.lookup_table
        message = MessageV0.try_compile(user, ixs, [] if table is None else [table], blockhash)
        return VersionedTransaction(message, [NullSigner(user), self.maker.keypair])

    def _simulate(self, tx: VersionedTransaction) -> tuple[int | None, dict[str, str] | None]:
        """Units the swap consumes, or the simulation's error in Jupiter's shape."""
        value = self.maker.rpc.call(
            "simulateTransaction",
            base64.b64encode(bytes(tx)).decode(),
            {"encoding": "base64", "sigVerify": False, "replaceRecentBlockhash": True},
        )["value"]
        if value.get("err") is not None:
            logs = value.get("logs") or []
            return None, {
                "errorCode": "TRANSACTION_SIMULATION_FAILED",
                "error": f"{json.dumps(value['err'])} {' | '.join(logs[-2:])}".strip(),
            }
        return int(value.get("unitsConsumed") or 0), None

    @staticmethod
    def _priority(req: dict[str, Any], limit: int) -> tuple[int, int]:
        """(micro-lamports per unit, total priority fee in lamports) from the request."""
        fee = req.get("prioritizationFeeLamports")
        explicit = req.get("computeUnitPriceMicroLamports")
        if explicit is not None:
            price = _uint(explicit, "computeUnitPriceMicroLamports")
            return price, price * limit // 1_000_000
        if fee is None or fee == "auto":
            price = PRIORITY_PRICE["medium"]
        elif isinstance(fee, int) and not isinstance(fee, bool):
            price = fee * 1_000_000 // limit
        elif isinstance(fee, dict) and isinstance(fee.get("priorityLevelWithMaxLamports"), dict):
            spec = fee["priorityLevelWithMaxLamports"]
            level = spec.get("priorityLevel")
            if level not in PRIORITY_PRICE:
                raise _bad("priorityLevel must be medium, high or veryHigh")
            cap = _uint(spec.get("maxLamports"), "maxLamports")
            price = min(PRIORITY_PRICE[level], cap * 1_000_000 // limit)
        else:
            raise _bad("prioritizationFeeLamports: unsupported form on the local stand-in")
        return price, price * limit // 1_000_000


def _internal_error(exc: Exception) -> dict[str, Any]:
    """A stand-in bug: logged, and answered in Jupiter's error shape."""
    print(f"internal error: {exc!r}", file=sys.stderr, flush=True)
    return {"error": f"internal error: {type(exc).__name__}"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rebalancer.localnet.jupiter_server",
        description="local Jupiter Swap API v1 stand-in (RFQ fills on the local Solana node)",
    )
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rpc", required=True, help="the local Solana node's JSON-RPC URL")
    parser.add_argument("--amm", type=Path, default=AMM_PATH, help="the maker's pool fixture")
    parser.add_argument(
        "--lookup-table",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="compile fills against an address lookup table the maker creates on the node "
        "at startup, as Jupiter's transactions do (default: on)",
    )
    args = parser.parse_args(argv)
    maker = Maker(Rpc(args.rpc), Book.load(args.amm), maker_keypair())
    if args.lookup_table:
        try:
            maker.lookup_table = maker.open_lookup_table()
        except (ChainError, ApiError, httpx.HTTPError) as exc:
            print(f"error: cannot create the maker's lookup table: {exc}", file=sys.stderr)
            return 4
        table = maker.lookup_table
        print(
            f"lookup table {table.key} ({len(table.addresses)} addresses)",
            file=sys.stderr,
            flush=True,
        )
    handler = json_handler(
        "jupiter-standin",
        Api(maker).handle,
        methods=("GET", "POST"),
        internal_error=_internal_error,
    )
    return serve(handler, args.port)


if __name__ == "__main__":
    # NOTE: run the imported module, not this __main__ copy, so localnet.jupiter_build and
    # the server share one ApiError class
    from rebalancer.localnet import jupiter_server

    sys.exit(jupiter_server.main())
