"""The one interface every chain family implements, and the registry of families.

Adapters take an injected ``httpx.AsyncClient`` (tests and bench can count or redirect
requests) and translate every transport or node failure into ``ChainError``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import import_module
from typing import TYPE_CHECKING

from rebalancer.chains.oracles import OracleFeed, OracleReading
from rebalancer.core.types import ChainInfo, Holding, Token

if TYPE_CHECKING:
    import httpx


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


class ChainAdapter(ABC):
    """Reads (and, with the execution issue, simulates and sends) on one chain."""

    def __init__(self, info: ChainInfo, rpc_url: str, client: httpx.AsyncClient) -> None:
        self.info = info
        self.rpc_url = rpc_url
        self.client = client

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

    @abstractmethod
    async def send_raw(self, raw: bytes) -> str:
        """Broadcast a signed transaction; return its id (hash or signature)."""

    @abstractmethod
    async def tx_status(self, tx_id: str) -> str:
        """``confirmed``, ``failed``, or ``unknown`` (not landed, or never seen)."""

    @abstractmethod
    async def fee_paid(self, tx_id: str) -> int | None:
        """The network fee a landed transaction paid, in native base units."""


# family -> "module:Class"; imported lazily so the CLI does not pay for web3 or solders.
ADAPTERS: dict[str, str] = {
    "evm": "rebalancer.chains.evm:EvmChain",
    "solana": "rebalancer.chains.solana:SolanaChain",
}


def adapter_for(info: ChainInfo, rpc_url: str, client: httpx.AsyncClient) -> ChainAdapter:
    """Build the adapter for a chain's family."""
    module_name, class_name = ADAPTERS[info.family].split(":")
    cls = getattr(import_module(module_name), class_name)
    adapter: ChainAdapter = cls(info, rpc_url, client)
    return adapter
