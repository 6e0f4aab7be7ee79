"""1inch Swap API v6.1 (or v6.0) adapter: quote, swap, exact-amount approvals, on EVM chains.

Real users talk to ``https://api.1inch.com/swap/v6.1`` with ``Authorization: Bearer <key>``;
the demo and the tests talk to the local stand-in (``localnet.oneinch_server``). Only the base
URL differs. v6.1 keeps v6.0's endpoints and answers; on ``/swap`` it takes ``slippage`` *or*
``minReturn`` (never both) and requires ``origin`` (the EOA that starts the transaction). The
tool sends ``slippage`` and ``origin`` on both versions, so one request fits either. Every
answer is parsed here into the models below; errors in 1inch's five-field shape become
NoRouteError / AllowanceError / BalanceError / AggregatorError.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rebalancer.core.errors import AggregatorError
from rebalancer.core.types import TokenQuirk
from rebalancer.dex.base import (
    AllowanceError,
    BalanceError,
    BuiltSwap,
    CheckedSwap,
    EvmTx,
    NoRouteError,
    Quote,
    SwapPolicy,
    SwapRequest,
)
from rebalancer.dex.http import HttpAggregator, amount, parse

NATIVE = "0xEeeeeEeeeEeEeeEeEeEeeEEEeeeeEeeeeeeeEEeE"
DEFAULT_BASE_URL = "https://api.1inch.com/swap/v6.1"
API_VERSIONS = ("v6.1", "v6.0")
# NOTE: with disableEstimate the API answers tx.gas 0 (it did not simulate); the quote's own
# gas figure plus a margin stands in until the engine's simulation measures the real one.
UNESTIMATED_GAS_MARGIN_PCT = 25
UNESTIMATED_GAS_DEFAULT = 1_000_000


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


def _uint(v: Any) -> int:
    """A non-negative integer from a decimal string (1inch's amounts) or a JSON number."""
    if isinstance(v, bool):
        raise ValueError("not an integer")
    if isinstance(v, int):
        n = v
    elif isinstance(v, str) and v.isdigit():
        n = int(v)
    else:
        raise ValueError(f"not a non-negative integer: {v!r}")
    if n < 0:
        raise ValueError("negative")
    return n


class TxData(_Model):
    """``SwapResponse.tx``: six required fields; ``value``/``gasPrice`` decimal strings."""

    from_: str = Field(alias="from")
    to: str
    data: str
    value: int
    gasPrice: int
    gas: int

    @field_validator("value", "gasPrice", "gas", mode="before")
    @classmethod
    def _ints(cls, v: Any) -> int:
        return _uint(v)

    @field_validator("data")
    @classmethod
    def _hex(cls, v: str) -> str:
        if not v.startswith("0x") or len(v) % 2:
            raise ValueError("not 0x-hex")
        bytes.fromhex(v[2:])
        return v


class QuoteResponse(_Model):
    dstAmount: int
    gas: int | None = None
    protocols: list[Any] | None = None

    @field_validator("dstAmount", mode="before")
    @classmethod
    def _amount(cls, v: Any) -> int:
        if not isinstance(v, str):
            raise ValueError("dstAmount must be a decimal string")
        return _uint(v)


class SwapResponse(QuoteResponse):
    tx: TxData


class ApproveTransaction(_Model):
    data: str
    to: str
    value: int
    gasPrice: int

    @field_validator("value", "gasPrice", mode="before")
    @classmethod
    def _ints(cls, v: Any) -> int:
        return _uint(v)


class Allowance(_Model):
    allowance: int

    @field_validator("allowance", mode="before")
    @classmethod
    def _int(cls, v: Any) -> int:
        return _uint(v)


class Spender(_Model):
    address: str


class ErrorBody(_Model):
    error: str | None = None
    description: str | None = None
    statusCode: int | None = None


def _token_address(token: Any) -> str:
    return NATIVE if token.address is None else str(token.address)


class OneInch(HttpAggregator):
    """The 1inch Swap API v6.1 (v6.0 still selectable) on the EVM chains of the config."""

    name = "1inch"
    label = "1inch"
    key_env = "ONEINCH_API_KEY"
    default_base_url = DEFAULT_BASE_URL

    def _auth_headers(self, api_key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {api_key}"}

    async def _get(self, chain_id: int, endpoint: str, params: dict[str, str]) -> Any:
        status, data = await self._fetch(
            "GET", f"{self.base_url}/{chain_id}/{endpoint}", params=params
        )
        if status == 200:
            return data
        err = self._error_body(ErrorBody, status, data)
        text = (err.description or err.error or f"HTTP {status}").strip()
        low = text.lower()
        if "liquidity" in low or "no route" in low or "cannot sync token" in low:
            raise NoRouteError(f"1inch: no route on chain {chain_id}: {text}")
        if "allowance" in low:
            raise AllowanceError(f"1inch: {text}")
        if "balance" in low:
            raise BalanceError(f"1inch: {text}")
        raise AggregatorError(f"1inch answered HTTP {status}: {text[:200]}")

    def _chain_id(self, request: SwapRequest) -> int:
        if request.chain_id is None:
            raise AggregatorError(f"1inch serves EVM chains only, not {request.chain}")
        return request.chain_id

    async def quote(self, request: SwapRequest) -> Quote:
        chain_id = self._chain_id(request)
        data = await self._get(
            chain_id,
            "quote",
            {
                "src": _token_address(request.sell),
                "dst": _token_address(request.buy),
                "amount": str(request.amount_in),
                "includeGas": "true",
                "includeProtocols": "true",
            },
        )
        q = parse(QuoteResponse, data, "1inch quote")
        amount(q.dstAmount, "1inch quote: dstAmount", request.buy)
        if q.dstAmount == 0:
            raise NoRouteError(
                f"1inch: quote for {request.sell.symbol} -> {request.buy.symbol} is 0"
            )
        return Quote(
            request=request, expected_out=q.dstAmount, route=_route(q.protocols), gas=q.gas
        )

    async def build(self, quote: Quote) -> BuiltSwap:
        """The swap transaction, plus an exact-amount approval if the allowance is short.

        With an approval pending the API cannot simulate the swap, so it is asked with
        ``disableEstimate``; the engine simulates both on a fork before anything is signed.
        """
        req = quote.request
        chain_id = self._chain_id(req)
        reset, approval = await self.approvals(req)
        params = {
            "src": _token_address(req.sell),
            "dst": _token_address(req.buy),
            "amount": str(req.amount_in),
            "from": req.wallet,
            "origin": req.wallet,
            "receiver": req.wallet,
            "slippage": str(Decimal(req.slippage_bps) / 100),
            "includeProtocols": "true",
        }
        if approval is not None:
            params["disableEstimate"] = "true"
        s = parse(SwapResponse, await self._get(chain_id, "swap", params), "1inch swap")
        amount(s.dstAmount, "1inch swap: dstAmount", req.buy)
        tx = EvmTx(
            chain_id=chain_id,
            sender=_checksum(s.tx.from_, "tx.from"),
            to=_checksum(s.tx.to, "tx.to"),
            data=bytes.fromhex(s.tx.data[2:]),
            value=s.tx.value,
            gas=s.tx.gas or _unestimated_gas(quote.gas),
            gas_price=s.tx.gasPrice,
        )
        return BuiltSwap(
            quote=quote, tx=tx, expected_out=s.dstAmount, approval=approval, approval_reset=reset
        )

    def check(
        self,
        built: BuiltSwap,
        policy: SwapPolicy,
        lookup_tables: Mapping[str, Sequence[str]] | None = None,
    ) -> CheckedSwap:
        """The EVM family checks and the router calldata decoded (``dex.oneinch_checks``)."""
        from rebalancer.dex.oneinch_checks import check_oneinch_swap

        return check_oneinch_swap(built, policy)

    async def spender(self, chain_id: int) -> str:
        return parse(Spender, await self._get(chain_id, "approve/spender", {}), "1inch").address

    async def allowance(self, request: SwapRequest) -> int:
        if request.sell.address is None:
            return 2**256 - 1
        data = await self._get(
            self._chain_id(request),
            "approve/allowance",
            {"tokenAddress": str(request.sell.address), "walletAddress": request.wallet},
        )
        return parse(Allowance, data, "1inch allowance").allowance

    async def approval(self, request: SwapRequest, *, unlimited: bool = False) -> EvmTx | None:
        """The approval the swap needs, for exactly ``amount_in`` unless ``unlimited``;
        None when the allowance already covers it or the native coin is sold."""
        return (await self.approvals(request, unlimited=unlimited))[1]

    async def approvals(
        self, request: SwapRequest, *, unlimited: bool = False
    ) -> tuple[EvmTx | None, EvmTx | None]:
        """``(reset, approval)``: the approval the swap needs, and before it ``approve(router,
        0)`` when a non-zero allowance is left over on a token that refuses to change one to
        another non-zero value (registry quirk ``approve-from-zero``, mainnet USDT)."""
        if request.sell.address is None:
            return None, None
        allowance = await self.allowance(request)
        if allowance >= request.amount_in:
            return None, None
        approval = await self._approve_tx(request, None if unlimited else request.amount_in)
        reset = None
        if allowance > 0 and TokenQuirk.APPROVE_FROM_ZERO in request.sell.quirks:
            reset = await self._approve_tx(request, 0)
        return reset, approval

    async def _approve_tx(self, request: SwapRequest, amount: int | None) -> EvmTx:
        """``/approve/transaction`` for ``amount`` (None: unlimited) as an unsigned call."""
        chain_id = self._chain_id(request)
        params = {"tokenAddress": str(request.sell.address)}
        if amount is not None:
            params["amount"] = str(amount)
        a = parse(
            ApproveTransaction,
            await self._get(chain_id, "approve/transaction", params),
            "1inch approve",
        )
        return EvmTx(
            chain_id=chain_id,
            sender=request.wallet,
            to=_checksum(a.to, "approve.to"),
            data=bytes.fromhex(a.data.removeprefix("0x")),
            value=a.value,
            gas=80_000,
            gas_price=a.gasPrice,
        )


def _unestimated_gas(quoted: int | None) -> int:
    """A gas limit for a swap the API did not estimate: the quote's figure plus a margin."""
    if not quoted:
        return UNESTIMATED_GAS_DEFAULT
    return quoted * (100 + UNESTIMATED_GAS_MARGIN_PCT) // 100


def _checksum(address: str, field: str) -> str:
    """Addresses are parsed at the edge: a malformed one is the API's fault."""
    from eth_utils import is_hex_address, to_checksum_address

    if not is_hex_address(address):
        raise AggregatorError(f"1inch answered a malformed address in {field}: {address!r}")
    return str(to_checksum_address(address))


def _route(protocols: list[Any] | None) -> tuple[str, ...]:
    names: list[str] = []
    try:
        for route in protocols or []:
            for hop in route:
                for part in hop:
                    names.append(str(part.get("name")))
    except (TypeError, AttributeError):
        return ()
    return tuple(names)
