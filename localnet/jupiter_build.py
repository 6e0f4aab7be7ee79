"""The local Jupiter stand-in's ``GET /swap/v2/build``: a quote and raw instructions that the
taker alone signs, filled by the local RFQ maker through an SPL Token delegation.

A real ``/build`` answers instructions of the Jupiter program, which cannot run on the local
node; the stand-in's maker fills every swap instead, and a fill it co-signs cannot be handed
out as instructions. So, when answering, the maker first lands its own transaction approving
the taker as the delegate of exactly ``outAmount`` on the maker's own associated account of
the output mint (wrapping SOL into it first for a SOL output). The instructions then are, all
signed by the taker alone:

- setup: create the taker's output account (idempotent), and pay the maker ``inAmount``
  (a System transfer for SOL, else ``TransferChecked`` from the taker's own account; the wSOL
  token with ``wrapAndUnwrapSol=false``);
- swap: ``TransferChecked`` of ``outAmount`` from the maker's account to the taker's, the
  taker signing as the delegate (the delegation is used up by the fill: SPL Token clears a
  delegate whose amount reaches 0);
- cleanup (SOL output, unless ``wrapAndUnwrapSol=false``): close the taker's wSOL account
  back to the taker.

The tool's checks accept that delegated transfer only from a maker of ``policy.rfq_makers``
and only where the config's Jupiter is ``localnet:`` (``SwapPolicy.delegated_makers``). An
account has one delegate: a ``/build`` for the same output mint replaces an earlier unfilled
one (whose fill then fails in simulation; nothing is lost). Platform fees are not served.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

from solders.compute_budget import set_compute_unit_price
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.pubkey import Pubkey
from solders.token.associated import get_associated_token_address

from rebalancer.core.errors import ChainError
from rebalancer.localnet.solana_accounts import NATIVE_MINT

if TYPE_CHECKING:
    from rebalancer.localnet.jupiter_server import Api

BUILD_PRICE_MICRO_LAMPORTS = 10_000  # the unit price /build suggests (the tool sets its own)


def approve(
    program: Pubkey, source: Pubkey, delegate: Pubkey, owner: Pubkey, amount: int
) -> Instruction:
    """SPL Token ``Approve`` (tag 4, u64 amount)."""
    return Instruction(
        program,
        bytes([4]) + struct.pack("<Q", amount),
        [
            AccountMeta(source, False, True),
            AccountMeta(delegate, False, False),
            AccountMeta(owner, True, False),
        ],
    )


def sync_native(program: Pubkey, account: Pubkey) -> Instruction:
    """SPL Token ``SyncNative`` (tag 17)."""
    return Instruction(program, bytes([17]), [AccountMeta(account, False, True)])


def close_account(program: Pubkey, account: Pubkey, dest: Pubkey, owner: Pubkey) -> Instruction:
    """SPL Token ``CloseAccount`` (tag 9)."""
    return Instruction(
        program,
        bytes([9]),
        [
            AccountMeta(account, False, True),
            AccountMeta(dest, False, True),
            AccountMeta(owner, True, False),
        ],
    )


def _json(ix: Instruction) -> dict[str, Any]:
    import base64

    return {
        "programId": str(ix.program_id),
        "accounts": [
            {"pubkey": str(a.pubkey), "isSigner": a.is_signer, "isWritable": a.is_writable}
            for a in ix.accounts
        ],
        "data": base64.b64encode(bytes(ix.data)).decode(),
    }


def build(api: Api, q: dict[str, list[str]]) -> dict[str, Any]:
    """Answer ``GET /swap/v2/build`` (after the maker's approval has landed)."""
    from rebalancer.localnet.jupiter_server import (
        ApiError,
        _bad,
        _flag,
        _one,
        _pubkey,
        create_ata_idempotent,
        sol_transfer,
        transfer_checked,
    )

    taker = _pubkey(_one(q, "taker"), "taker")
    if _one(q, "swapMode", "ExactIn") != "ExactIn":
        raise _bad("swapMode: /build is ExactIn only")
    if _one(q, "platformFeeBps", "0") != "0":
        raise _bad("platformFeeBps is not served by the local /build")
    # NOTE: v1's wrapAndUnwrapSol, which the adapter sends (false) only for a wSOL-token leg
    wrap = _flag(q, "wrapAndUnwrapSol", True)
    quote = api.quote(q)
    maker = api.maker
    mint_in = Pubkey.from_string(quote["inputMint"])
    mint_out = Pubkey.from_string(quote["outputMint"])
    amount, out = int(quote["inAmount"]), int(quote["outAmount"])
    info_out = maker.mint(mint_out)
    maker_out = get_associated_token_address(maker.pubkey, mint_out, info_out.program)
    taker_out = get_associated_token_address(taker, mint_out, info_out.program)
    native_out = wrap and mint_out == NATIVE_MINT

    # the maker's side: approve the taker on its own output account (for SOL: wrapped first)
    mine: list[Instruction] = []
    if mint_out == NATIVE_MINT:
        held = _token_amount(api, maker_out)
        mine.append(create_ata_idempotent(maker.pubkey, maker.pubkey, mint_out, info_out.program))
        if held < out:
            mine += [
                sol_transfer(maker.pubkey, maker_out, out - held),
                sync_native(info_out.program, maker_out),
            ]
    mine.append(approve(info_out.program, maker_out, taker, maker.pubkey, out))
    try:
        maker._send(mine)
    except ChainError as exc:
        raise ApiError(500, f"the maker could not approve the fill: {str(exc)[:120]}") from None

    # the taker's side
    setup = [create_ata_idempotent(taker, taker, mint_out, info_out.program)]
    if wrap and mint_in == NATIVE_MINT:
        setup.append(sol_transfer(taker, maker.pubkey, amount))
    else:
        info_in = maker.mint(mint_in)
        setup.append(
            transfer_checked(
                info_in.program,
                get_associated_token_address(taker, mint_in, info_in.program),
                mint_in,
                get_associated_token_address(maker.pubkey, mint_in, info_in.program),
                taker,
                amount,
                info_in.decimals,
            )
        )
    swap = transfer_checked(
        info_out.program, maker_out, mint_out, taker_out, taker, out, info_out.decimals
    )
    cleanup = close_account(info_out.program, taker_out, taker, taker) if native_out else None
    latest = maker.rpc.call("getLatestBlockhash", {"commitment": "confirmed"})["value"]
    table = maker.lookup_table
    body = {k: v for k, v in quote.items() if k not in ("contextSlot", "timeTaken")}
    return {
        **body,
        "computeBudgetInstructions": [_json(set_compute_unit_price(BUILD_PRICE_MICRO_LAMPORTS))],
        "setupInstructions": [_json(ix) for ix in setup],
        "swapInstruction": _json(swap),
        "cleanupInstruction": None if cleanup is None else _json(cleanup),
        "otherInstructions": [],
        "tipInstruction": None,
        "addressesByLookupTableAddress": (
            None if table is None else {str(table.key): [str(a) for a in table.addresses]}
        ),
        "blockhashWithMetadata": {
            "blockhash": list(bytes(Hash.from_string(latest["blockhash"]))),
            "lastValidBlockHeight": int(latest["lastValidBlockHeight"]),
        },
    }


def _token_amount(api: Api, account: Pubkey) -> int:
    try:
        value = api.maker.rpc.call("getTokenAccountBalance", str(account))["value"]
    except ChainError:
        return 0
    return int(value["amount"])
