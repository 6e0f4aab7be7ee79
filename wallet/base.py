"""The one seam between the engine and whatever holds a key: a local file, a Ledger, or an
air-gapped wallet whose signed file came back.

A :class:`Signer` has a family (``evm`` or ``solana``), an identity (EIP-55 address or base58
public key) and signs an unsigned transaction (``rebalancer.core.tx``), returning the signed
one. Every signer signs the ``payload()`` of that one encoder, so the same key gives the same
bytes whoever holds it. Signing is async because a device may take minutes to answer; local
keys answer at once. Handing a key a transaction of the other family is a usage error.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from solders.message import to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from rebalancer.core.errors import ConfigError, DeviceError
from rebalancer.core.tx import (
    EvmTransaction,
    SignedEvmTransaction,
    SignedSolanaTransaction,
    SignedTx,
    SolanaTx,
    UnsignedTx,
)
from rebalancer.core.types import Family

__all__ = ["SignedEvmTransaction", "SignedSolanaTransaction", "Signer"]


@runtime_checkable
class Signer(Protocol):
    """Something that holds one key of one family and signs with it."""

    @property
    def family(self) -> Family:
        """``evm`` or ``solana``: which chains this key signs for."""
        ...

    @property
    def identity(self) -> str:
        """The EIP-55 checksummed address or the base58 Solana public key."""
        ...

    async def sign(self, tx: UnsignedTx) -> SignedTx:
        """Sign ``tx.payload()`` and return the signed transaction (refused for the other
        family, or, for a pre-signed signer, for anything but what was signed elsewhere)."""
        ...


class SolanaMessageSigner(Protocol):
    """A Solana key that signs raw message bytes (local keys and the Ledger's Solana app)."""

    @property
    def family(self) -> Family: ...

    @property
    def identity(self) -> str: ...

    async def sign_solana_message(self, message: bytes) -> bytes:
        """Sign the serialised message (``to_bytes_versioned``) and return the 64-byte signature."""
        ...


_ARTICLE = {"evm": "an EVM", "solana": "a Solana"}


def wrong_family(identity: str, family: Family, wanted: Family) -> ConfigError:
    """The error for asking a key of one family to sign for the other."""
    return ConfigError(
        f"signer {identity}: is {_ARTICLE[family]} key and cannot sign {_ARTICLE[wanted]} "
        "transaction; "
        "check the wallet's chains in the config"
    )


class EvmKey:
    """The EVM side of a ``Signer``: its family, its address, and no Solana transactions.

    Subclasses sign one :class:`EvmTransaction` in ``sign_evm``."""

    __slots__ = ()
    _identity: str

    @property
    def family(self) -> Family:
        return "evm"

    @property
    def identity(self) -> str:
        return self._identity

    async def sign(self, tx: UnsignedTx) -> SignedTx:
        if not isinstance(tx, EvmTransaction):
            raise wrong_family(self._identity, "evm", "solana")
        return await self.sign_evm(tx)

    async def sign_evm(self, tx: EvmTransaction) -> SignedEvmTransaction:
        raise NotImplementedError

    async def sign_solana_message(self, message: bytes) -> bytes:
        raise wrong_family(self._identity, "evm", "solana")


class SolanaKey:
    """The Solana side of a ``Signer``: its family, its public key, and no EVM transactions.

    Subclasses sign message bytes in ``sign_solana_message``; ``sign`` fills the key's slot."""

    __slots__ = ()
    _identity: str

    @property
    def family(self) -> Family:
        return "solana"

    @property
    def identity(self) -> str:
        return self._identity

    async def sign(self, tx: UnsignedTx) -> SignedTx:
        if not isinstance(tx, SolanaTx):
            raise wrong_family(self._identity, "solana", "evm")
        signed = await sign_versioned_transaction(self, VersionedTransaction.from_bytes(tx.raw))
        return SignedSolanaTransaction(bytes(signed), str(signed.signatures[0]))

    async def sign_solana_message(self, message: bytes) -> bytes:
        raise NotImplementedError


def signer_slot(tx: VersionedTransaction, pubkey: Pubkey) -> int:
    """Index of ``pubkey`` among the transaction's required signers (its signature slot)."""
    message = tx.message
    required = message.header.num_required_signatures
    keys = list(message.account_keys)[:required]
    try:
        return keys.index(pubkey)
    except ValueError:
        raise ConfigError(
            f"solana transaction: {pubkey} is not one of its {required} required signers"
        ) from None


def with_signature(
    tx: VersionedTransaction, pubkey: Pubkey, signature: bytes
) -> VersionedTransaction:
    """A copy of ``tx`` with ``signature`` in ``pubkey``'s slot; other slots are kept as they are.

    The signature is verified first, so a device that signed the wrong bytes or with the wrong key
    never produces a transaction that looks complete.
    """
    sig = Signature.from_bytes(signature)
    message_bytes = to_bytes_versioned(tx.message)
    if not sig.verify(pubkey, message_bytes):
        raise DeviceError(f"solana signature for {pubkey} does not verify against the message")
    signatures = list(tx.signatures)
    signatures[signer_slot(tx, pubkey)] = sig
    return VersionedTransaction.populate(tx.message, signatures)


async def sign_versioned_transaction(
    signer: SolanaMessageSigner, tx: VersionedTransaction
) -> VersionedTransaction:
    """Fill ``signer``'s slot of a (possibly partly signed) versioned transaction.

    Other signatures, e.g. an RFQ maker's, are kept: only the signer's own slot changes.
    """
    if signer.family != "solana":
        raise wrong_family(signer.identity, signer.family, "solana")
    pubkey = Pubkey.from_string(signer.identity)
    signer_slot(tx, pubkey)  # fail before bothering a device
    signature = await signer.sign_solana_message(to_bytes_versioned(tx.message))
    return with_signature(tx, pubkey, signature)
