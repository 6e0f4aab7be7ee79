"""The compute budget of a Solana transaction the tool compiled itself (Jupiter v2 ``/build``).

Such a transaction starts with two placeholder instructions (``SetComputeUnitLimit`` at the
policy's cap, ``SetComputeUnitPrice`` 0), with which it was checked and simulated. Finalizing
replaces only their data: the limit becomes the units the simulation used plus 20% (Jupiter's
own advice for ``/build``), never above the placeholder; the price comes from
``getRecentPrioritizationFees`` over the transaction's writable accounts (the median of the
recent slots that paid any), lowered until limit x price stays within the cap. Accounts,
programs, amounts and blockhash are left exactly as checked.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from rebalancer.core.errors import ChainError
from rebalancer.core.tx import SolanaTx

if TYPE_CHECKING:
    from rebalancer.chains.solana import SolanaChain

COMPUTE_BUDGET_PROGRAM = "ComputeBudget111111111111111111111111111111"
CU_MARGIN_PCT = 20
MAX_FEE_ACCOUNTS = 128  # getRecentPrioritizationFees takes at most 128 addresses


class _Fee(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    slot: int
    prioritizationFee: int


_FEES = TypeAdapter(list[_Fee])


def unit_price(fees: list[int]) -> int:
    """Micro-lamports per unit: the median of the recent slots' fees that were not 0 (0 on a
    quiet chain)."""
    paid = sorted(f for f in fees if f > 0)
    return paid[len(paid) // 2] if paid else 0


def with_budget(tx: SolanaTx, limit: int, price: int) -> SolanaTx:
    """``tx`` with its two placeholder compute-budget instructions set to ``limit`` and
    ``price``; nothing else of the message changes."""
    from solders.instruction import CompiledInstruction
    from solders.message import MessageV0
    from solders.signature import Signature
    from solders.transaction import VersionedTransaction

    vtx = VersionedTransaction.from_bytes(tx.raw)
    msg = vtx.message
    if not isinstance(msg, MessageV0) or any(s != Signature.default() for s in vtx.signatures):
        raise ChainError("solana: only an unsigned v0 transaction takes the tool's compute budget")
    ixs = list(msg.instructions)
    keys = list(msg.account_keys)
    tags = [(str(keys[ix.program_id_index]), bytes(ix.data)[:1]) for ix in ixs[:2]]
    if tags != [(COMPUTE_BUDGET_PROGRAM, b"\x02"), (COMPUTE_BUDGET_PROGRAM, b"\x03")]:
        raise ChainError("solana: the compiled transaction does not start with its compute budget")
    first, second = ixs[0], ixs[1]
    ixs[0] = CompiledInstruction(
        first.program_id_index, b"\x02" + struct.pack("<I", limit), bytes(first.accounts)
    )
    ixs[1] = CompiledInstruction(
        second.program_id_index, b"\x03" + struct.pack("<Q", price), bytes(second.accounts)
    )
    message = MessageV0(
        msg.header, keys, msg.recent_blockhash, ixs, list(msg.address_table_lookups)
    )
    raw = bytes(VersionedTransaction.populate(message, list(vtx.signatures)))
    return SolanaTx(
        raw=raw,
        last_valid_block_height=tx.last_valid_block_height,
        own_budget_cap_lamports=tx.own_budget_cap_lamports,
    )


def placeholder_limit(tx: SolanaTx) -> int:
    """The unit limit the transaction was checked and simulated with."""
    from solders.transaction import VersionedTransaction

    data = bytes(VersionedTransaction.from_bytes(tx.raw).message.instructions[0].data)
    return int(struct.unpack_from("<I", data, 1)[0])


def writable_keys(tx: SolanaTx) -> list[str]:
    """The static accounts the transaction write-locks (what its priority competes for)."""
    from solders.transaction import VersionedTransaction

    msg = VersionedTransaction.from_bytes(tx.raw).message
    h = msg.header
    keys = [str(k) for k in msg.account_keys]
    signed = h.num_required_signatures
    out = keys[: signed - h.num_readonly_signed_accounts]
    out += keys[signed : len(keys) - h.num_readonly_unsigned_accounts]
    return out[:MAX_FEE_ACCOUNTS]


async def finalize_budget(adapter: SolanaChain, tx: SolanaTx, units_used: int) -> SolanaTx:
    """The transaction with its unit limit from the simulation and its price from recent
    priority fees, the fee (limit x price) within ``tx.own_budget_cap_lamports``."""
    cap = tx.own_budget_cap_lamports
    assert cap is not None
    ceiling = placeholder_limit(tx)
    limit = ceiling
    if units_used > 0:
        limit = min(ceiling, units_used * (100 + CU_MARGIN_PCT) // 100)
    result = await adapter.call("getRecentPrioritizationFees", [writable_keys(tx)])
    try:
        fees = _FEES.validate_python(result)
    except ValidationError:
        raise ChainError(
            f"{adapter.where}: getRecentPrioritizationFees answered {result!r:.80}"
        ) from None
    price = min(unit_price([f.prioritizationFee for f in fees]), cap * 1_000_000 // limit)
    return with_budget(tx, limit, price)
