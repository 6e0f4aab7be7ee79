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
dev.jup.ag "Get Swap Instructions" (``/docs/swap/v2/build``): required ``inputMint``,
``outputMint``, ``amount``, ``taker``; ``computeBudgetInstructions`` holds a unit price only
(no limit: the integrator simulates and adds 20%).

``dex.jupiter.Jupiter(api="v2")`` uses ``/build`` by default (:func:`compile_build` makes the
v0 transaction) and ``/order`` + ``/execute`` with ``mode = "order"``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from pydantic import Field, field_validator

from rebalancer.core.errors import AggregatorError
from rebalancer.core.tx import SolanaTx
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


def compile_build(
    response: dict[str, Any], taker: str, *, unit_limit: int, priority_cap_lamports: int
) -> SolanaTx:
    """The unsigned v0 transaction of a ``/build`` answer, fee payer ``taker``.

    Its first two instructions are the tool's own compute budget: ``unit_limit`` and a unit
    price of 0, placeholders that the chain adapter's finalize replaces (the limit from the
    simulation plus a margin, the price from recent priority fees within
    ``priority_cap_lamports``). Jupiter's own compute-budget and tip instructions are left
    out. The accounts are compressed with the answer's ``addressesByLookupTableAddress``; the
    check resolves them again from the tables on the chain, so what is checked is what the
    runtime loads.
    """
    from solders.address_lookup_table_account import AddressLookupTableAccount
    from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
    from solders.hash import Hash
    from solders.instruction import AccountMeta, Instruction
    from solders.message import CompileError, MessageV0
    from solders.pubkey import Pubkey
    from solders.signature import Signature
    from solders.transaction import VersionedTransaction

    b = BuildResponse.model_validate(response)
    if b.blockhashWithMetadata is None:
        raise AggregatorError("Jupiter /build answered no blockhashWithMetadata")
    try:
        ixs = [
            Instruction(
                Pubkey.from_string(ix.programId),
                ix.data,
                [
                    AccountMeta(Pubkey.from_string(a.pubkey), a.isSigner, a.isWritable)
                    for a in ix.accounts
                ],
            )
            for ix in b.instructions()
        ]
        tables = [
            AddressLookupTableAccount(
                Pubkey.from_string(key), [Pubkey.from_string(a) for a in addresses]
            )
            for key, addresses in (b.addressesByLookupTableAddress or {}).items()
        ]
        budget = [set_compute_unit_limit(unit_limit), set_compute_unit_price(0)]
        message = MessageV0.try_compile(
            Pubkey.from_string(taker),
            [*budget, *ixs],
            tables,
            Hash(b.blockhashWithMetadata.blockhash),
        )
    except (CompileError, ValueError, TypeError) as exc:
        raise AggregatorError(
            f"Jupiter /build answered instructions that do not compile: {str(exc)[:120]}"
        ) from None
    signers = message.header.num_required_signatures
    tx = VersionedTransaction.populate(message, [Signature.default()] * signers)
    return SolanaTx(
        raw=bytes(tx),
        last_valid_block_height=b.blockhashWithMetadata.lastValidBlockHeight,
        own_budget_cap_lamports=priority_cap_lamports,
    )
