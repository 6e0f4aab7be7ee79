"""``manifest.json``: what ``export --unsigned DIR`` wrote, and ``submit DIR`` checks against.

One entry per transaction to sign (an EVM approval and swap, or a Solana swap), with the
hashes of the exact bytes its wallet signs. The journal records the hash of the whole file,
so ``submit`` only reads a manifest this tool exported (:func:`rebalancer.external.read_manifest`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from rebalancer.core.documents import Document, Int, IntText, IsoTime, Str

FORMAT = "rebalancer-unsigned/1"


class ManifestChain(Document):
    family: Literal["evm", "solana"]
    chain_id: Int | None


class _Entry(Document):
    id: Str
    """The transaction's id: the trade's, or ``<trade>-approve``; its files start with it."""
    trade: Str
    chain: Str
    family: Literal["evm", "solana"]
    wallet: Str
    sell: Str
    """CAIP-19 token ids."""
    buy: Str
    amount_in: IntText
    kind: Literal["approve", "swap"]


class EvmFiles(Document):
    unsigned: Str
    payload: Str
    signed: Str


class EvmEntry(_Entry):
    family: Literal["evm"]
    min_out: IntText | None
    simulated_out: IntText | None
    simulation: Str
    nonce: Annotated[Int, Field(ge=0)]
    expiry: None
    files: EvmFiles
    sha256: Str
    """Of the EIP-2718 payload the wallet signs (keccak of it)."""


class SolanaExpiry(Document):
    last_valid_block_height: Int


class SolanaFiles(Document):
    unsigned: Str
    message: Str
    signed: Str
    signature: Str


class SolanaEntry(_Entry):
    family: Literal["solana"]
    min_out: IntText | None
    simulated_out: IntText | None
    simulation: Str
    expiry: SolanaExpiry
    files: SolanaFiles
    sha256: Str
    """Of the message bytes the wallet signs."""
    unsigned_sha256: Str
    """Of the whole transaction, co-signed by the market maker."""


ManifestEntry = Annotated[EvmEntry | SolanaEntry, Field(discriminator="family")]


class ExportSkip(Document):
    id: Str
    reason: Str


class Manifest(Document):
    union_tags = frozenset({"evm", "solana"})

    format: Literal["rebalancer-unsigned/1"]
    """``FORMAT``; ``submit`` names another one before reading further."""
    created_at: IsoTime
    plan_created_at: Str
    chains: dict[str, ManifestChain]
    transactions: list[ManifestEntry]
    skipped: list[ExportSkip]
