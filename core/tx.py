"""One transaction type per family, from an aggregator's proposal to the signed bytes.

    proposal (dex)           unsigned (chains finalize)        signed (wallet)
    EvmCall         ->       EvmTransaction.payload()   ->     SignedEvmTransaction
    SolanaTx        ->       SolanaTx.payload()         ->     SignedSolanaTransaction

An EVM proposal is a call (to, data, value, a gas estimate); the chain adapter finalizes it into
an :class:`EvmTransaction` (nonce, gas limit, EIP-1559 fees). A Solana proposal is already a
whole versioned transaction (blockhash set, maybe co-signed by a market maker), so it is its own
unsigned form. Whoever signs (a local key, a Ledger, an air-gapped wallet) signs ``payload()``
of this one encoder, and the signed bytes are assembled here, so they are identical for the same
key whoever held it. Encoding libraries (rlp, eth-utils, solders) are imported when used, so the
read-only commands never load them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class EvmCall:
    """An EVM call as an aggregator proposed it: who calls what with which data and value, and
    the aggregator's gas estimate (legacy gas price, informative only)."""

    chain_id: int
    sender: str
    to: str
    data: bytes
    value: int
    gas: int
    gas_price: int


@dataclass(frozen=True, slots=True)
class SolanaTx:
    """A Solana versioned transaction, serialized: unsigned, or partly co-signed (an RFQ maker).

    Solana has no account nonce: ``last_valid_block_height`` (from the blockhash) is its expiry.
    """

    raw: bytes
    last_valid_block_height: int | None = None
    own_budget_cap_lamports: int | None = None
    """Set when the tool compiled this transaction itself (Jupiter v2 ``/build``): its first
    two instructions are the tool's own compute budget (a unit limit and a unit price,
    placeholders until the chain adapter finalizes them from the simulation and recent
    priority fees), and the priority fee may be at most this many lamports. None: the
    compute budget stays as the aggregator proposed it (it may be co-signed)."""

    @property
    def nonce(self) -> int | None:
        """None: a Solana transaction expires with its blockhash instead."""
        return None

    def payload(self) -> bytes:
        """The serialised message (``to_bytes_versioned``): exactly what an ed25519 key signs."""
        from solders.message import to_bytes_versioned
        from solders.transaction import VersionedTransaction

        return bytes(to_bytes_versioned(VersionedTransaction.from_bytes(self.raw).message))


@dataclass(frozen=True, slots=True)
class EvmTransaction:
    """A finalized, unsigned EVM transaction: EIP-1559 (``typed``) or legacy EIP-155."""

    typed: bool
    chain_id: int
    nonce: int
    gas: int
    to: bytes
    value: int
    data: bytes
    gas_price: int = 0
    max_fee_per_gas: int = 0
    max_priority_fee_per_gas: int = 0
    access_list: tuple[tuple[bytes, tuple[bytes, ...]], ...] = ()

    @classmethod
    def eip1559(
        cls, call: EvmCall, *, nonce: int, gas: int, max_fee: int, tip: int
    ) -> EvmTransaction:
        """The type-2 transaction the tool signs for a proposed call."""
        return cls(
            typed=True,
            chain_id=call.chain_id,
            nonce=nonce,
            gas=gas,
            to=bytes.fromhex(call.to.removeprefix("0x")),
            value=call.value,
            data=call.data,
            max_fee_per_gas=max_fee,
            max_priority_fee_per_gas=tip,
        )

    @property
    def max_fee(self) -> int:
        """The most this transaction can pay the network, in wei (gas limit x fee cap)."""
        return self.gas * (self.max_fee_per_gas if self.typed else self.gas_price)

    def _fields(self) -> list[Any]:
        if self.typed:
            access = [[addr, list(keys)] for addr, keys in self.access_list]
            return [
                self.chain_id,
                self.nonce,
                self.max_priority_fee_per_gas,
                self.max_fee_per_gas,
                self.gas,
                self.to,
                self.value,
                self.data,
                access,
            ]
        return [self.nonce, self.gas_price, self.gas, self.to, self.value, self.data]

    def payload(self) -> bytes:
        """The bytes whose keccak is signed: ``0x02 || rlp(...)`` or the EIP-155 legacy RLP."""
        import rlp

        if self.typed:
            return b"\x02" + rlp.encode(self._fields())
        return rlp.encode([*self._fields(), self.chain_id, 0, 0])

    def signing_hash(self) -> bytes:
        from eth_utils import keccak

        return bytes(keccak(self.payload()))

    def eip155_tail_length(self) -> int:
        """Length of the trailing ``chainId, 0, 0`` of a legacy payload (the "EIP-155 marker")."""
        import rlp

        return len(rlp.encode(self.chain_id)) + 2

    def signed(self, parity: int, r: int, s: int) -> SignedEvmTransaction:
        """The signed transaction for a signature of :meth:`signing_hash` with y-parity 0/1."""
        import rlp
        from eth_utils import keccak

        if parity not in (0, 1):
            raise ValueError(f"evm signature: y-parity {parity} is not 0 or 1")
        v = parity if self.typed else self.chain_id * 2 + 35 + parity
        body = rlp.encode([*self._fields(), v, r, s])
        raw = b"\x02" + body if self.typed else body
        return SignedEvmTransaction(raw_transaction=raw, hash=bytes(keccak(raw)), r=r, s=s, v=v)


@dataclass(frozen=True, slots=True)
class SignedEvmTransaction:
    """A signed EVM transaction ready for ``eth_sendRawTransaction``.

    ``v`` is the y-parity (0/1) for typed transactions and the full EIP-155 value for legacy ones.
    """

    raw_transaction: bytes
    hash: bytes
    r: int
    s: int
    v: int

    @property
    def raw(self) -> bytes:
        return self.raw_transaction

    @property
    def tx_id(self) -> str:
        """The transaction hash, ``0x``-hex: what the node and the journal call it by."""
        return "0x" + self.hash.hex()


@dataclass(frozen=True, slots=True)
class SignedSolanaTransaction:
    """A fully signed Solana transaction; its first signature is its id."""

    raw: bytes
    tx_id: str


UnsignedTx = EvmTransaction | SolanaTx
"""What a ``Signer`` signs."""
SignedTx = SignedEvmTransaction | SignedSolanaTransaction
"""What a ``Signer`` returns and a ``ChainAdapter`` sends."""
Proposal = EvmCall | SolanaTx
"""What an aggregator proposes and a ``ChainAdapter`` simulates and finalizes."""
