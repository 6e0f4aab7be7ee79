"""The one interface every chain family implements, and the registry of families.

A chain adapter carries a trade's whole lifecycle on its chain, so the engine never asks which
family it holds:

    balances -> lookup_tables (what a proposal's accounts resolve to) -> simulate
             -> finalize (nonce, gas, fees / as proposed) -> max_network_fee (the fee budget)
             -> send_raw -> wait -> fee_paid;  after a crash: can_still_land

Adapters take an injected ``httpx.AsyncClient`` (tests and bench can count or redirect
requests) and translate every transport or node failure into ``ChainError``.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING

from rebalancer.chains.oracles import OracleFeed, OracleReading
from rebalancer.core.errors import ChainError
from rebalancer.core.tx import Proposal, UnsignedTx
from rebalancer.core.types import DEFAULT_RPC_TIMEOUT_S, ChainInfo, Holding, Token

if TYPE_CHECKING:
    import httpx

CONFIRM_TIMEOUT_S = 180.0


@dataclass(frozen=True, slots=True)
class ReadFailure:
    """A balance that could not be read (token reverted, not a contract, bad account data)."""

    chain: str
    wallet: str
    token: Token
    reason: str


@dataclass(slots=True)
class Balances:
    """The result of one balance refresh on one chain: every holding read, what failed, and
    what the chain's price oracles said in the same request."""

    chain: str
    holdings: list[Holding] = field(default_factory=list)
    failures: list[ReadFailure] = field(default_factory=list)
    oracles: list[OracleReading] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SwapLegs:
    """What a simulation runs: the swap proposed for ``wallet`` selling ``sell`` for ``buy``,
    and the transactions that must land first (an EVM approval, and before it the reset of a
    leftover allowance to 0 on tokens that approve only from zero), if any."""

    wallet: str
    sell: Token
    buy: Token
    swap: Proposal
    approval: Proposal | None = None
    approval_reset: Proposal | None = None

    @property
    def proposals(self) -> tuple[Proposal, ...]:
        """In the order they are sent."""
        first = (p for p in (self.approval_reset, self.approval) if p is not None)
        return (*first, self.swap)


@dataclass(frozen=True)
class SimResult:
    """What the simulation showed the wallet would get, and what it cost (gas or units)."""

    method: str
    out: int
    gas_used: int = 0
    approval_gas_used: int = 0
    reset_gas_used: int = 0

    def gas_per_proposal(self, legs: SwapLegs) -> list[int]:
        """Gas each of ``legs.proposals`` used, in their order."""
        before = [
            used
            for leg, used in (
                (legs.approval_reset, self.reset_gas_used),
                (legs.approval, self.approval_gas_used),
            )
            if leg is not None
        ]
        return [*before, self.gas_used]


def node_amount(where: str, wallet: str, token: Token, raw: int) -> int:
    """A balance a node answered, within ``core.bounds`` (not negative, at most 10^15 whole
    tokens): anything else is a node answering garbage, ChainError (exit 4)."""
    from rebalancer.core import bounds

    what = f"{where}: balance of {token.symbol} of {wallet}"
    return bounds.raw_amount(raw, what, token.decimals, error=ChainError)


class ChainAdapter(ABC):
    """One chain: reads, simulates, finalizes, sends and follows a trade's transactions."""

    def __init__(
        self,
        info: ChainInfo,
        rpc_url: str,
        client: httpx.AsyncClient,
        *,
        work_dir: Path | None = None,
        simulation: str = "auto",
        send_url: str | None = None,
    ) -> None:
        self.info = info
        self.rpc_url = rpc_url
        self.client = client
        self.work_dir = work_dir
        """Where throwaway simulation nodes write their logs (a temporary folder if None)."""
        self.send_url = send_url
        """``[chains.X] send_rpc``: where ``send_raw`` broadcasts (None: ``rpc_url``)."""
        self.simulation = simulation
        """How this chain simulates (``policy.evm_simulation`` on EVM; ``auto`` picks the
        fewest round trips)."""

    async def aclose(self) -> None:
        """Release what the adapter started for its command (a kept simulation node)."""
        return None

    @property
    def sent_via(self) -> str:
        """Where signed transactions go, redacted (scheme, host and port): for the journal."""
        from rebalancer.core.redact import redact_url

        return redact_url(self.send_url or self.rpc_url)

    @abstractmethod
    async def balances(
        self,
        wallets: Sequence[str],
        tokens: Sequence[Token],
        feeds: Sequence[OracleFeed] = (),
    ) -> Balances:
        """Every wallet's balance of every token (native included), and the reading of every
        feed, in as few requests as the chain allows (feeds add none). Checks the node is the
        configured chain first."""

    async def past_rounds(
        self, feed: OracleFeed, latest_round: int, count: int
    ) -> list[tuple[int, Decimal]]:
        """Up to ``count`` past rounds of an oracle before ``latest_round`` as (time, USD),
        oldest first (price history backfill); a chain whose oracles keep none has none."""
        return []

    async def balance(self, wallet: str, token: Token) -> int:
        """One balance, read directly (around a trade, to measure what it did)."""
        got = await self.balances([wallet], [token])
        if got.failures:
            raise ChainError(
                f"{self.info.name}: cannot read {token.symbol}: {got.failures[0].reason}"
            )
        return int(got.holdings[0].raw)

    async def last_activity(self, wallet: str) -> str | None:
        """What the chain says the wallet sent last, as an opaque mark (EVM: its pending nonce;
        Solana: its newest signature): a mark that moved since the balances were read means
        someone else (another machine, another journal) sent from it. None: not known here."""
        return None

    async def chain_time(self) -> int:
        """The latest block's timestamp (unix seconds): the clock of simulated local worlds."""
        raise ChainError(f"{self.info.name}: this chain cannot say its time")

    async def lookup_tables_for(self, tx: Proposal) -> dict[str, list[str]] | None:
        """The accounts of the lookup tables ``tx`` uses, read from the chain, so a check sees
        every account the runtime will load; None where the chain has no such thing.

        Raises ``LookupTableError`` when a table is missing or not a table (the proposal is
        at fault) and ``ChainError`` when the node fails."""
        return None

    @abstractmethod
    async def simulate(self, legs: SwapLegs) -> SimResult:
        """Run the legs without signing and measure what ``legs.wallet`` receives of
        ``legs.buy``. ``SimulationUnavailable`` when this chain offers no way to simulate,
        ``SimulationError`` when the swap fails in simulation."""

    @abstractmethod
    async def finalize(
        self, wallet: str, legs: SwapLegs, sim: SimResult, *, queued: int = 0
    ) -> list[UnsignedTx]:
        """The unsigned transactions to sign for ``legs`` (in sending order), finalized for this
        chain: EVM nonce, gas limit from the simulation, EIP-1559 fees; Solana as proposed.
        ``queued`` counts the wallet's transactions finalized earlier and not yet sent (an
        export of several trades), which come first."""

    def max_network_fee(self, txs: Sequence[UnsignedTx]) -> int | None:
        """The most ``txs`` can pay the network, in native base units, for the fee budget;
        None where it is bounded by the aggregator's checked limits instead."""
        return None

    @abstractmethod
    async def send_raw(self, raw: bytes) -> str:
        """Broadcast a signed transaction; return its id (hash or signature). A node that
        already has it raises ``AlreadyKnownError`` (or the adapter answers the id)."""

    @abstractmethod
    async def tx_status(self, tx_id: str) -> str:
        """``confirmed``, ``failed``, or ``unknown`` (not landed, or never seen)."""

    async def wait(self, tx_id: str, timeout: float = CONFIRM_TIMEOUT_S) -> str:
        """``confirmed`` or ``failed`` once it landed, ``pending`` if not within ``timeout``."""
        deadline = time.monotonic() + timeout
        delay = 0.01
        while time.monotonic() < deadline:
            status = str(await self.tx_status(tx_id))
            if status in ("confirmed", "failed"):
                return status
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
        return "pending"

    @abstractmethod
    async def fee_paid(self, tx_id: str) -> int | None:
        """The network fee a landed transaction paid, in native base units."""

    async def block_time(self, tx_id: str) -> int | None:
        """Unix time of the block that included a landed transaction (the chain's clock, which
        dates tax lots); None when the chain cannot say."""
        return None

    @abstractmethod
    async def can_still_land(self, raw: bytes, wallet: str) -> bool:
        """Whether journalled signed bytes could still be included (EVM: their nonce is not
        mined yet; Solana: their blockhash has not expired)."""

    @abstractmethod
    async def landing_problem(
        self, wallet: str, txs: Sequence[UnsignedTx], *, what: str = "these transactions"
    ) -> str | None:
        """Why ``txs`` (one wallet's, in order; ``what`` names them in the answer) cannot be
        sent now, or None: EVM, their nonces are not the wallet's next ones; Solana, a
        blockhash expired."""


# family -> "module:Class"; imported lazily so the CLI does not pay for web3 or solders.
ADAPTERS: dict[str, str] = {
    "evm": "rebalancer.chains.evm:EvmChain",
    "solana": "rebalancer.chains.solana:SolanaChain",
}


def adapter_for(
    info: ChainInfo,
    rpc_url: str,
    client: httpx.AsyncClient,
    *,
    work_dir: Path | None = None,
    simulation: str = "auto",
    send_url: str | None = None,
    rpc_timeout: float = DEFAULT_RPC_TIMEOUT_S,
) -> ChainAdapter:
    """Build the adapter for a chain's family (``send_url``: where it broadcasts, if not
    ``rpc_url``; ``rpc_timeout``: seconds one call may take in all)."""
    module_name, class_name = ADAPTERS[info.family].split(":")
    cls = getattr(import_module(module_name), class_name)
    adapter: ChainAdapter = cls(
        info, rpc_url, client, work_dir=work_dir, send_url=send_url, rpc_timeout=rpc_timeout
    )
    if info.family == "evm":
        adapter.simulation = simulation
    return adapter
