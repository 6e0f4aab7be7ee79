"""Jupiter Swap API v2 (``https://api.jup.ag/swap/v2``): the answers of ``GET /build``,
``GET /order`` and ``POST /execute``, parsed once at the edge.

``/build`` returns the quote and the swap's raw instructions in one answer (ExactIn only, the
taker is ``taker``, no Jupiter fee): compute-budget, setup, swap, cleanup and other
instructions, the lookup tables already resolved (``addressesByLookupTableAddress``, table ->
accounts, or null) and a blockhash as 32 raw bytes with its ``lastValidBlockHeight``.
``/order`` returns a ready transaction (``transaction``, base64; ``""`` when none could be
built) with ``requestId``, landed by ``POST /execute {signedTransaction, requestId}``.

Sources: dev.jup.ag "Migration Guide" Metis -> ``/build`` and ``/order`` (as vendored in
``jup-ag/agent-skills``, ``skills/jupiter-swap-migration/examples``) and public clients' fixtures
shaped from Jupiter's ``swap.yaml`` (``sava-software/idl-clients``, ``JupiterSwapV2TestFixtures``).
``dex.jupiter.Jupiter(api="v2")`` uses ``/order`` (``aggregators.jupiter.mode = "order"``); the
``/build`` path (the tool compiling its own transaction) is not wired yet: v1 stays the default.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from pydantic import Field, field_validator

from rebalancer.dex.jupiter import QuoteResponse, _amount, _Model


class AccountMetaModel(_Model):
    pubkey: str
    isSigner: bool
    isWritable: bool


class InstructionModel(_Model):
    """One instruction as the API writes it: program, accounts, base64 data."""

    programId: str
    accounts: list[AccountMetaModel]
    data: bytes

    @field_validator("data", mode="before")
    @classmethod
    def _b64(cls, v: Any) -> bytes:
        if not isinstance(v, str):
            raise ValueError("must be base64 text")
        try:
            return base64.b64decode(v, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("not base64") from None


class BlockhashWithMetadata(_Model):
    """The blockhash ``/build`` compiled against: 32 raw bytes, not base58."""

    blockhash: bytes
    lastValidBlockHeight: int

    @field_validator("blockhash", mode="before")
    @classmethod
    def _bytes(cls, v: Any) -> bytes:
        if not isinstance(v, list) or len(v) != 32:
            raise ValueError("must be a list of 32 bytes")
        if not all(isinstance(b, int) and not isinstance(b, bool) and 0 <= b < 256 for b in v):
            raise ValueError("must be a list of 32 bytes")
        return bytes(v)

    @property
    def base58(self) -> str:
        from solders.hash import Hash

        return str(Hash(self.blockhash))


class BuildResponse(QuoteResponse):
    """``GET /build``: the v1 quote fields plus the instructions and what compiles them."""

    priceImpactPct: str | None = None  # type: ignore[assignment]  # absent in the docs' shape
    computeBudgetInstructions: list[InstructionModel]
    setupInstructions: list[InstructionModel]
    swapInstruction: InstructionModel
    cleanupInstruction: InstructionModel | None = None
    otherInstructions: list[InstructionModel] = Field(default_factory=list)
    tipInstruction: InstructionModel | None = None
    addressesByLookupTableAddress: dict[str, list[str]] | None = None
    blockhashWithMetadata: BlockhashWithMetadata | None = None

    def instructions(self) -> list[InstructionModel]:
        """In transaction order (compute budget excluded: the tool sets its own). A tip
        instruction is left out: it pays Jupiter's landing service, which the tool does not
        use."""
        tail = [self.cleanupInstruction] if self.cleanupInstruction is not None else []
        return [*self.otherInstructions, *self.setupInstructions, self.swapInstruction, *tail]


class OrderResponse(QuoteResponse):
    """``GET /order``: a quote plus, with a ``taker``, a ready transaction to sign."""

    requestId: str
    transaction: str | None = None
    lastValidBlockHeight: int | None = None
    router: str | None = None
    taker: str | None = None
    gasless: bool | None = None
    errorCode: int | None = None
    errorMessage: str | None = None

    @field_validator("lastValidBlockHeight", mode="before")
    @classmethod
    def _height(cls, v: Any) -> int | None:
        # NOTE: sent as a decimal string, and as "" when no transaction could be built
        if v in (None, ""):
            return None
        return _amount(v) if isinstance(v, str) else int(v)


class ExecuteResponse(_Model):
    """``POST /execute``: whether Jupiter landed the signed transaction."""

    status: str
    signature: str | None = None
    slot: int | str | None = None
    code: int | None = None
    error: str | None = None
    totalInputAmount: str | None = None
    totalOutputAmount: str | None = None
