"""A ``Signer`` for transactions signed elsewhere: an air-gapped wallet's files, brought back.

It holds no key. It hands back a signed transaction that was already proven
(:mod:`rebalancer.wallet.unsigned`) to be its wallet's signature of a given payload, and only
for a transaction whose ``payload()`` is exactly that one, so the engine's own
record-before-send path can send it and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping

from rebalancer.core.errors import RefusedError
from rebalancer.core.tx import SignedTx, UnsignedTx
from rebalancer.core.types import Family


class PresignedSigner:
    """Signs nothing: returns what was signed elsewhere for the same payload, else refuses."""

    def __init__(self, family: Family, identity: str, signed: Mapping[bytes, SignedTx]) -> None:
        self._family: Family = family
        self._identity = identity
        self._signed = dict(signed)

    @property
    def family(self) -> Family:
        return self._family

    @property
    def identity(self) -> str:
        return self._identity

    async def sign(self, tx: UnsignedTx) -> SignedTx:
        got = self._signed.get(tx.payload())
        if got is None:
            raise RefusedError(
                f"{self._identity}: the transaction to send differs from the one signed "
                "elsewhere; nothing was sent"
            )
        return got

    def __repr__(self) -> str:
        return f"PresignedSigner({self._identity}, {len(self._signed)} transaction(s))"
