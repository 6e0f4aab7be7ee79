"""The one interface every DEX aggregator implements, and the swap types it trades in.

An aggregator turns a ``SwapRequest`` into a ``Quote`` and then into a ``BuiltSwap``: an
unsigned transaction written by someone else. Nothing built here is trusted until
``dex.checks`` has decoded it and compared it with the request.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from rebalancer.core.errors import AggregatorError
from rebalancer.core.tx import EvmCall, SolanaTx
from rebalancer.core.types import Token


class NoRouteError(AggregatorError):
    """The aggregator found no route (no liquidity, token not tradable)."""


class AllowanceError(AggregatorError):
    """The router may not spend enough of the token yet: approve first."""


class BalanceError(AggregatorError):
    """The wallet holds less than the amount to sell."""


@dataclass(frozen=True, slots=True)
class SwapRequest:
    """Sell exactly ``amount_in`` base units of ``sell`` for ``buy`` from ``wallet``."""

    chain: str
    chain_id: int | None
    wallet: str
    sell: Token
    buy: Token
    amount_in: int
    slippage_bps: int


@dataclass(frozen=True, slots=True)
class Quote:
    """What the aggregator expects the swap to return, before any transaction exists."""

    request: SwapRequest
    expected_out: int
    route: tuple[str, ...] = ()
    gas: int | None = None


EvmTx = EvmCall
"""The name this module used for an EVM proposal; the type is ``core.tx.EvmCall``."""


@dataclass(frozen=True, slots=True)
class BuiltSwap:
    """A swap transaction ready for checks: ``min_out`` is what the transaction promises."""

    quote: Quote
    tx: EvmCall | SolanaTx
    expected_out: int
    approval: EvmCall | None = None
    notes: tuple[str, ...] = field(default=())


class SwapAggregator(ABC):
    """Quotes and builds swaps on the chains it serves."""

    name: str = "aggregator"

    @abstractmethod
    async def quote(self, request: SwapRequest) -> Quote:
        """The expected output of the swap; NoRouteError when there is none."""

    @abstractmethod
    async def build(self, quote: Quote) -> BuiltSwap:
        """The transaction (and an exact-amount approval where one is needed)."""
