"""Plain value types that cross package boundaries: chains, tokens, holdings.

Amounts are integers in base units; identifiers follow CAIP-2/CAIP-19 so one asset has one
name on every chain (``eip155:1/erc20:0x…``, ``solana:5eykt…/token:EPjF…``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Literal

Family = Literal["evm", "solana"]


class TokenQuirk(StrEnum):
    """Ways a real token departs from the ERC-20 a client expects (mainnet USDT has both)."""

    NO_RETURN_DATA = "no-return-data"  # transfer/approve/transferFrom return no bool
    APPROVE_FROM_ZERO = "approve-from-zero"  # approve(non-zero) reverts over a non-zero allowance


DEFAULT_RPC_TIMEOUT_S = 30.0
"""How long one JSON-RPC call may take in all (connect, read, every retry and its backoff)
unless ``[chains.X] rpc_timeout`` says otherwise, so a run under a dead node ends (exit 4)."""


class EvmSimulation(StrEnum):
    """How an EVM trade is simulated before signing (``policy.evm_simulation``)."""

    AUTO = "auto"  # eth_simulateV1 where the RPC has it, else a warm local copy, else a fork
    SIMULATE_V1 = "eth_simulateV1"  # one call on the RPC: approvals and swap in one block
    WARM = "warm"  # access lists + one batched state fetch, replayed on a local anvil
    FORK = "fork"  # anvil --fork-url: fetches each account and slot as the swap touches it


@dataclass(frozen=True, slots=True)
class ChainInfo:
    """A chain the tool knows: how to name it, what its native coin is."""

    name: str
    family: Family
    caip2: str
    chain_id: int | None
    native_symbol: str
    native_asset: str
    native_decimals: int
    native_slip44: int


@dataclass(frozen=True, slots=True)
class Token:
    """One token on one chain, mapped to the asset it represents (WBTC, cbBTC, BTC.b are all BTC).

    ``address`` is None for the chain's native coin.
    """

    chain: str
    caip2: str
    symbol: str
    asset: str
    address: str | None
    decimals: int
    native_slip44: int | None = None
    quirks: frozenset[TokenQuirk] = frozenset()
    # NOTE: the id is computed once: planners and adapters look it up hundreds of thousands
    # of times per plan.
    _id: str = field(init=False, repr=False, compare=False, default="")

    def __post_init__(self) -> None:
        if self.address is None:
            ident = f"{self.caip2}/slip44:{self.native_slip44}"
        else:
            namespace = "erc20" if self.caip2.startswith("eip155:") else "token"
            ident = f"{self.caip2}/{namespace}:{self.address}"
        object.__setattr__(self, "_id", ident)

    @property
    def is_native(self) -> bool:
        return self.address is None

    @property
    def id(self) -> str:
        """CAIP-19 asset id: the one name this token has everywhere in the tool."""
        return self._id


@dataclass(frozen=True, slots=True)
class Holding:
    """What one wallet holds of one token, in base units."""

    chain: str
    wallet: str
    token: Token
    raw: int

    @property
    def amount(self) -> Decimal:
        """The amount in token units, exact (Decimal scaling, never float)."""
        return Decimal(self.raw).scaleb(-self.token.decimals)
