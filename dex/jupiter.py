"""Jupiter Swap API adapter (v1 ``/quote`` + ``/swap``; v2 ``/build``, or ``/order`` +
``/execute``): quote, build, submit, on Solana.

Real users talk to ``https://api.jup.ag/swap/v1`` with an ``x-api-key`` header; the demo and
the tests talk to the local stand-in (``localnet.jupiter_server``). Only the base URL differs.
Every answer is parsed here into the models below; errors in Jupiter's ``{error, errorCode}``
shape become NoRouteError / AggregatorError. The quote answer is kept verbatim in the
``JupiterQuote`` because ``POST /swap`` wants it back unchanged.

Native SOL (``Token.address is None``) is the wSOL mint with ``wrapAndUnwrapSol``; the wSOL
token itself is the same mint without it (the wallet's wSOL account pays or receives).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, field_validator

from rebalancer.core.errors import AggregatorError, SimulationError, SuspiciousResponseError
from rebalancer.core.tx import SignedSolanaTransaction, SignedTx
from rebalancer.dex.base import (
    BuiltSwap,
    CheckedSwap,
    NoRouteError,
    Quote,
    SolanaTx,
    SwapPolicy,
    SwapRequest,
)
from rebalancer.dex.http import HttpAggregator, amount, parse

WSOL_MINT = "So11111111111111111111111111111111111111112"
DEFAULT_BASE_URL = "https://api.jup.ag/swap/v1"
DEFAULT_MAX_PRIORITY_LAMPORTS = 1_000_000  # 0.001 SOL
MAX_COMPUTE_UNITS = 1_400_000  # the protocol's cap on one transaction
NO_ROUTE_CODES = frozenset({"COULD_NOT_FIND_ANY_ROUTE", "NO_ROUTES_FOUND", "TOKEN_NOT_TRADABLE"})
PriorityLevel = Literal["medium", "high", "veryHigh"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


def _amount(v: Any) -> int:
    """Jupiter sends every amount as a decimal string of a u64."""
    if not isinstance(v, str) or not v.isdigit():
        raise ValueError(f"must be a decimal string, not {v!r}")
    n = int(v)
    if n >= 2**64:
        raise ValueError("out of u64 range")
    return n


class SwapInfo(_Model):
    """One leg of a route; ``feeAmount``/``feeMint`` left the spec in Nov 2025 (optional)."""

    ammKey: str
    label: str | None = None
    inputMint: str
    outputMint: str
    inAmount: int
    outAmount: int
    feeAmount: int | None = None
    feeMint: str | None = None

    @field_validator("inAmount", "outAmount", mode="before")
    @classmethod
    def _amounts(cls, v: Any) -> int:
        return _amount(v)

    @field_validator("feeAmount", mode="before")
    @classmethod
    def _fee(cls, v: Any) -> int | None:
        return None if v is None else _amount(v)


class RoutePlanStep(_Model):
    swapInfo: SwapInfo
    percent: int | None = None  # nullable since Nov 2025
    bps: int | None = None


class PlatformFee(_Model):
    """Taken from the output in ExactIn: ``outAmount`` is already net of ``amount``."""

    amount: int | None = None
    feeBps: int | None = None

    @field_validator("amount", mode="before")
    @classmethod
    def _fee(cls, v: Any) -> int | None:
        return None if v is None else _amount(v)


class QuoteResponse(_Model):
    """``GET /quote`` (``@jup-ag/api`` 6.0.48 ``QuoteResponse``)."""

    inputMint: str
    inAmount: int
    outputMint: str
    outAmount: int
    otherAmountThreshold: int
    swapMode: Literal["ExactIn", "ExactOut"]
    slippageBps: int
    platformFee: PlatformFee | None = None
    priceImpactPct: str
    routePlan: list[RoutePlanStep]
    contextSlot: int | None = None
    timeTaken: float | None = None
    swapUsdValue: str | None = None  # display only: never priced from

    @field_validator("inAmount", "outAmount", "otherAmountThreshold", mode="before")
    @classmethod
    def _amounts(cls, v: Any) -> int:
        return _amount(v)


class SimulationReport(_Model):
    errorCode: str | None = None
    error: str | None = None


class DynamicSlippageReport(_Model):
    """What ``dynamicSlippage`` chose; the tool never asks for it (its minimum is its own)."""

    slippageBps: int | None = None
    otherAmount: int | None = None
    simulatedIncurredSlippageBps: int | None = None
    amplificationRatio: str | None = None
    categoryName: str | None = None
    heuristicMaxSlippageBps: int | None = None


class SwapResponse(_Model):
    """``POST /swap``: the spec's three fields plus what the service returns besides."""

    swapTransaction: str
    lastValidBlockHeight: int
    prioritizationFeeLamports: int | None = None
    computeUnitLimit: int | None = None
    simulationError: SimulationReport | None = None
    dynamicSlippageReport: DynamicSlippageReport | None = None


class ErrorBody(_Model):
    error: str | None = None
    errorCode: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class JupiterQuote(Quote):
    """A quote plus what ``/swap`` and the checks need: the answer verbatim, the slippage
    floor Jupiter computed, and whether SOL is wrapped for the wallet."""

    response: dict[str, Any] = field(compare=False, hash=False)
    other_amount_threshold: int
    wrap_sol: bool


def _versioned(b64: str) -> bytes:
    """A base64 serialized VersionedTransaction, checked to decode as one."""
    from solders.transaction import VersionedTransaction  # NOTE: a quote does not need it

    try:
        raw = base64.b64decode(b64, validate=True)
        VersionedTransaction.from_bytes(raw)
    except (binascii.Error, ValueError):
        raise AggregatorError(
            "Jupiter answered a transaction that is not a base64 versioned transaction"
        ) from None
    return raw


def _mint(token: Any) -> str:
    return WSOL_MINT if token.address is None else str(token.address)


class Jupiter(HttpAggregator):
    """The Jupiter Swap API v1 on Solana."""

    name = "jupiter"
    label = "Jupiter"
    key_env = "JUPITER_API_KEY"
    default_base_url = DEFAULT_BASE_URL

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str | None = None,
        max_priority_lamports: int = DEFAULT_MAX_PRIORITY_LAMPORTS,
        priority_level: PriorityLevel = "medium",
        retries: int = 3,
        backoff: float = 1.0,
        api: Literal["v1", "v2"] = "v1",
        mode: Literal["build", "order"] = "build",
        max_compute_units: int = MAX_COMPUTE_UNITS,
    ) -> None:
        super().__init__(
            client, base_url=base_url, api_key=api_key, retries=retries, backoff=backoff
        )
        self.max_priority_lamports = max_priority_lamports
        self.priority_level = priority_level
        self.api = api
        """``v1``: ``/quote`` + ``/swap``. ``v2``: ``mode`` says which of its two paths."""
        self.mode = mode
        """v2 ``build``: quoted by ``GET /order`` without a taker (a quote only), built from
        ``GET /build`` (its own quote and raw instructions), the v0 transaction compiled here
        with the tool's own compute budget (``SolanaTx.own_budget_cap_lamports``: the chain
        adapter sets the unit limit from the simulation and the price from recent priority
        fees). v2 ``order``: ``GET /order`` (Jupiter's ready transaction, held to the same
        checks), landed through ``POST /execute`` (:meth:`submit`)."""
        self.max_compute_units = max_compute_units
        """The unit limit a compiled transaction is checked and simulated with (the policy's
        cap); finalize lowers it to what the simulation used plus a margin."""
        self._orders: dict[bytes, str] = {}
        """Message bytes of each ``/order`` transaction built in this command -> its
        ``requestId``, so the signed transaction is landed through ``/execute``."""

    def _auth_headers(self, api_key: str) -> dict[str, str]:
        return {"x-api-key": api_key}

    async def _call(
        self,
        method: str,
        endpoint: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any:
        status, data = await self._fetch(
            method, f"{self.base_url}/{endpoint}", params=params, body=body
        )
        if status == 200:
            return data
        err = self._error_body(ErrorBody, status, data)
        text = (err.error or f"HTTP {status}").strip()[:200]
        if err.errorCode in NO_ROUTE_CODES:
            raise NoRouteError(f"Jupiter: no route: {text} ({err.errorCode})")
        code = f" ({err.errorCode})" if err.errorCode else ""
        raise AggregatorError(f"Jupiter answered HTTP {status}: {text}{code}")

    @staticmethod
    def _mints(request: SwapRequest) -> tuple[str, str, bool]:
        if request.chain_id is not None:
            raise AggregatorError(f"Jupiter serves Solana only, not {request.chain}")
        sell, buy = _mint(request.sell), _mint(request.buy)
        if sell == buy:
            raise NoRouteError(
                f"Jupiter: {request.sell.symbol} -> {request.buy.symbol} is the same mint "
                "(wrapping SOL is not a swap)"
            )
        wrap = request.sell.address is None or request.buy.address is None
        return sell, buy, wrap

    async def quote(self, request: SwapRequest) -> JupiterQuote:
        if self.api == "v2":
            # NOTE: in build mode this is a quote only (/order without a taker): /build is asked
            # when the trade is built, so pricing and doctor's probe have no side effects
            return await self._order(request, taker=self.mode == "order")
        sell, buy, wrap = self._mints(request)
        data = await self._call(
            "GET",
            "quote",
            params={
                "inputMint": sell,
                "outputMint": buy,
                "amount": str(request.amount_in),
                "slippageBps": str(request.slippage_bps),
                "swapMode": "ExactIn",
                "restrictIntermediateTokens": "true",
            },
        )
        q = parse(QuoteResponse, data, "Jupiter quote")
        _held_to_request(q, request, sell, buy, "quoted")
        if q.outAmount == 0:
            raise NoRouteError(
                f"Jupiter: quote for {request.sell.symbol} -> {request.buy.symbol} is 0"
            )
        return _jupiter_quote(q, request, data, wrap)

    async def _order(self, request: SwapRequest, *, taker: bool = True) -> JupiterQuote:
        """v2 ``GET /order``: with the wallet as ``taker``, the quote and its transaction;
        without, a quote only (``transaction: ""``)."""
        from rebalancer.dex.jupiter_v2 import OrderResponse

        sell, buy, wrap = self._mints(request)
        params = {
            "inputMint": sell,
            "outputMint": buy,
            "amount": str(request.amount_in),
            "slippageBps": str(request.slippage_bps),
            "swapMode": "ExactIn",
        }
        if taker:
            params["taker"] = request.wallet
        data = await self._call("GET", "order", params=params)
        o = parse(OrderResponse, data, "Jupiter order")
        _held_to_request(o, request, sell, buy, "ordered")
        if o.outAmount == 0 or (taker and not o.transaction):
            why = o.errorMessage or "no transaction in the answer"
            raise NoRouteError(
                f"Jupiter: no order for {request.sell.symbol} -> {request.buy.symbol}: {why[:120]}"
            )
        return _jupiter_quote(o, request, data, wrap)

    async def _build(self, request: SwapRequest) -> JupiterQuote:
        """v2 ``GET /build`` with the wallet as ``taker``: the quote and its instructions."""
        from rebalancer.dex.jupiter_v2 import BuildResponse

        sell, buy, wrap = self._mints(request)
        params = {
            "inputMint": sell,
            "outputMint": buy,
            "amount": str(request.amount_in),
            "slippageBps": str(request.slippage_bps),
            "taker": request.wallet,
        }
        if not wrap and WSOL_MINT in (sell, buy):
            # NOTE: the wSOL token itself (the wallet's wSOL account pays or receives): v1's
            # parameter, not in v2's documented list, sent only then
            params["wrapAndUnwrapSol"] = "false"
        data = await self._call("GET", "build", params=params)
        b = parse(BuildResponse, data, "Jupiter build")
        _held_to_request(b, request, sell, buy, "built")
        if b.outAmount == 0:
            raise NoRouteError(
                f"Jupiter: /build for {request.sell.symbol} -> {request.buy.symbol} is 0"
            )
        return _jupiter_quote(b, request, data, wrap)

    async def build(self, quote: Quote) -> BuiltSwap:
        """The swap transaction for the wallet, co-signed by an RFQ maker where one fills it
        (v1, v2 ``/order``), or compiled here from ``GET /build``, whose own quote then replaces
        ``quote`` in the answer (the checks hold the transaction to it).

        The compute-unit limit is simulated by Jupiter (``dynamicComputeUnitLimit``) and the
        priority fee capped at ``max_priority_lamports``; :meth:`check` verifies both.
        """
        if not isinstance(quote, JupiterQuote):
            raise AggregatorError("Jupiter builds only from its own quotes")
        if self.api == "v2" and self.mode == "build":
            from rebalancer.dex.jupiter_v2 import compile_build

            built = await self._build(quote.request)
            tx = compile_build(
                built.response,
                quote.request.wallet,
                unit_limit=self.max_compute_units,
                priority_cap_lamports=self.max_priority_lamports,
            )
            return BuiltSwap(
                quote=built,
                tx=tx,
                expected_out=built.expected_out,
                notes=("Jupiter v2 /build: transaction compiled by rebalancer",),
            )
        if self.api == "v2":
            from solders.message import to_bytes_versioned
            from solders.transaction import VersionedTransaction

            height = quote.response.get("lastValidBlockHeight")
            raw = _versioned(str(quote.response["transaction"]))
            message = bytes(to_bytes_versioned(VersionedTransaction.from_bytes(raw).message))
            self._orders[message] = str(quote.response["requestId"])
            return BuiltSwap(
                quote=quote,
                tx=SolanaTx(
                    raw=raw,
                    last_valid_block_height=int(str(height)) if str(height).isdigit() else None,
                ),
                expected_out=quote.expected_out,
                notes=("Jupiter v2 /order (landed through /execute)",),
            )
        req = quote.request
        data = await self._call(
            "POST",
            "swap",
            body={
                "userPublicKey": req.wallet,
                "quoteResponse": quote.response,
                "wrapAndUnwrapSol": quote.wrap_sol,
                "dynamicComputeUnitLimit": True,
                "prioritizationFeeLamports": {
                    "priorityLevelWithMaxLamports": {
                        "priorityLevel": self.priority_level,
                        "maxLamports": self.max_priority_lamports,
                    }
                },
            },
        )
        s = parse(SwapResponse, data, "Jupiter swap")
        if s.simulationError is not None:
            why = s.simulationError.error or s.simulationError.errorCode or "no reason given"
            raise SimulationError(f"Jupiter's simulation of the swap failed: {why[:200]}")
        raw = _versioned(s.swapTransaction)
        notes: tuple[str, ...] = ()
        if s.prioritizationFeeLamports is not None:
            notes = (f"priority fee {s.prioritizationFeeLamports} lamports",)
        return BuiltSwap(
            quote=quote,
            tx=SolanaTx(raw=raw, last_valid_block_height=s.lastValidBlockHeight),
            expected_out=quote.expected_out,
            notes=notes,
        )

    async def submit(self, signed: SignedTx) -> str | None:
        """A signed ``/order`` transaction goes to ``POST /execute`` with its ``requestId``
        (Jupiter lands it); anything else is the chain adapter's to send."""
        if not self._orders or not isinstance(signed, SignedSolanaTransaction):
            return None
        from solders.message import to_bytes_versioned
        from solders.transaction import VersionedTransaction

        from rebalancer.core.redact import redact_url
        from rebalancer.dex.jupiter_v2 import ExecuteResponse

        try:
            vtx = VersionedTransaction.from_bytes(signed.raw)
        except ValueError:
            return None
        request_id = self._orders.pop(bytes(to_bytes_versioned(vtx.message)), None)
        if request_id is None:
            return None
        data = await self._call(
            "POST",
            "execute",
            body={
                "signedTransaction": base64.b64encode(signed.raw).decode(),
                "requestId": request_id,
            },
        )
        r = parse(ExecuteResponse, data, "Jupiter execute")
        if r.status != "Success":
            why = (r.error or r.status or "no reason given").strip()[:160]
            raise AggregatorError(f"Jupiter /execute did not land the swap: {why} (code {r.code})")
        if r.signature is not None and r.signature != signed.tx_id:
            raise AggregatorError(
                f"Jupiter /execute answered signature {r.signature[:20]}..., not the signed "
                f"transaction's {signed.tx_id[:20]}..."
            )
        return f"Jupiter /execute at {redact_url(self.base_url)} (requestId {request_id})"

    def check(
        self,
        built: BuiltSwap,
        policy: SwapPolicy,
        lookup_tables: Mapping[str, Sequence[str]] | None = None,
    ) -> CheckedSwap:
        """The Solana family checks with Jupiter's routes decoded (``dex.jupiter_checks``)."""
        from rebalancer.dex.jupiter_checks import check_jupiter_swap

        return check_jupiter_swap(built, policy, lookup_tables)


def _held_to_request(answer: Any, request: SwapRequest, sell: str, buy: str, verb: str) -> None:
    """A v1 quote or v2 order must be for exactly the mints, amount and mode asked for."""
    asked = (sell, buy, request.amount_in, "ExactIn")
    got = (answer.inputMint, answer.outputMint, answer.inAmount, answer.swapMode)
    if got != asked:
        raise SuspiciousResponseError(
            f"Jupiter {verb} {answer.inAmount} {answer.inputMint} -> {answer.outputMint} "
            f"({answer.swapMode}), not {request.amount_in} {sell} -> {buy} (ExactIn)"
        )


def _jupiter_quote(
    answer: Any, request: SwapRequest, data: dict[str, Any], wrap: bool
) -> JupiterQuote:
    """The quote the build step works from, whichever API answered."""
    amount(answer.outAmount, "Jupiter quote: outAmount", request.buy)
    amount(answer.otherAmountThreshold, "Jupiter quote: otherAmountThreshold", request.buy)
    return JupiterQuote(
        request=request,
        expected_out=answer.outAmount,
        route=tuple(step.swapInfo.label or step.swapInfo.ammKey for step in answer.routePlan),
        response=data,
        other_amount_threshold=answer.otherAmountThreshold,
        wrap_sol=wrap,
    )
