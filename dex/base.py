"""The one interface every DEX aggregator implements, and the swap types it trades in.

An aggregator turns a ``SwapRequest`` into a ``Quote`` and then into a ``BuiltSwap``: an
unsigned transaction written by someone else. Nothing built is trusted until the same
aggregator's ``check`` has decoded it and compared it with the request: its own decoding
(``dex.oneinch_checks``, ``dex.jupiter_checks``) on top of the family checks in ``dex.checks``.
Only the ``CheckedSwap`` it returns goes on to simulation and signing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from rebalancer.core.errors import AggregatorError
from rebalancer.core.tx import EvmCall, SignedTx, SolanaTx
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
    approval_reset: EvmTx | None = None
    """``approve(router, 0)``, sent before ``approval`` when the token refuses to change a
    non-zero allowance to another non-zero value (mainnet USDT) and one is left over."""


# The real AggregationRouterV6, the same on Ethereum and Avalanche (aggregators.md).
ONEINCH_V6 = "0x111111125421ca6dc452d289314280a0f8842a65"
DEFAULT_EVM_ROUTERS: dict[int, frozenset[str]] = {
    1: frozenset({ONEINCH_V6}),
    43114: frozenset({ONEINCH_V6}),
}


@dataclass(frozen=True)
class SwapPolicy:
    """What an aggregator's transaction may do."""

    evm_routers: Mapping[int, frozenset[str]] = field(
        default_factory=lambda: dict(DEFAULT_EVM_ROUTERS)
    )
    max_slippage_bps: int = 100
    unlimited_approval: bool = False
    extra_programs: frozenset[str] = frozenset()
    """Programs a Solana swap may invoke besides System, Token, Token-2022, ATA, Compute
    Budget and the aggregator's own (Jupiter v6) (base58 ids)."""
    rfq_makers: frozenset[str] = frozenset()
    """Co-signers allowed next to the wallet: RFQ market makers (base58 public keys)."""
    delegated_makers: frozenset[str] = frozenset()
    """RFQ makers (of ``rfq_makers``) whose own associated token account of the bought token
    the wallet may debit as their SPL Token delegate: the local Jupiter stand-in's ``/build``
    fills, where the maker approved the wallet beforehand instead of co-signing. Set only
    where the aggregator is a ``localnet:`` stand-in; empty for every real API."""
    max_compute_units: int = 1_400_000
    """The highest compute-unit limit a Solana swap may set (1.4M is the protocol's cap)."""
    max_priority_fee_lamports: int = 1_000_000
    """The most a Solana swap may pay in priority fee (unit price x unit limit), lamports."""


@dataclass(frozen=True)
class CheckedSwap:
    """A swap whose transaction was decoded and matched the request; ``min_out`` is the
    least the transaction itself guarantees (it reverts below it)."""

    built: BuiltSwap
    min_out: int
    simulation_must_show: str | None = None
    """What only a simulation can prove (the token bought, for 1inch ``unoswap`` routes whose
    calldata names pools, not tokens); the engine refuses such a swap unsimulated."""


class SwapAggregator(ABC):
    """Quotes and builds swaps on the chains it serves."""

    name: str = "aggregator"

    @abstractmethod
    async def quote(self, request: SwapRequest) -> Quote:
        """The expected output of the swap; NoRouteError when there is none."""

    @abstractmethod
    async def build(self, quote: Quote) -> BuiltSwap:
        """The transaction (and an exact-amount approval where one is needed)."""

    @abstractmethod
    def check(
        self,
        built: BuiltSwap,
        policy: SwapPolicy,
        lookup_tables: Mapping[str, Sequence[str]] | None = None,
    ) -> CheckedSwap:
        """Decode what this aggregator built and hold every money field to the request;
        SuspiciousResponseError names the first field that does not match.

        ``lookup_tables`` (table -> addresses, read from the chain) resolves the accounts of
        a Solana v0 transaction; aggregators on other families ignore it.
        """

    async def submit(self, signed: SignedTx) -> str | None:
        """Land a signed swap through the aggregator's own service, where this transaction
        came with one (Jupiter v2 ``/order`` -> ``POST /execute``), and say where it went (for
        the journal); None: the chain adapter sends it. AggregatorError if the service
        refused it."""
        return None
