"""Family-wide checks on an aggregator's transaction, before anything can be signed.

An aggregator's answer is an unsigned transaction written by someone else. Each aggregator's
``check`` decodes what only it writes (``dex.oneinch_checks``: 1inch calldata;
``dex.jupiter_checks``: Jupiter routes) and uses the checks here for what every transaction
of its family must satisfy: on EVM the chain id, sender, router allow-list, value, minimum
return and approvals; on Solana the fee payer, signers, program allow-list, lookup tables,
System/Token/ATA movements and the compute budget. Any mismatch raises
SuspiciousResponseError (exit 3) naming the field.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from eth_abi import decode
from eth_abi.exceptions import DecodingError
from solders.message import MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.token.associated import get_associated_token_address
from solders.transaction import VersionedTransaction

from rebalancer.core.errors import SuspiciousResponseError
from rebalancer.dex.base import (
    DEFAULT_EVM_ROUTERS,
    ONEINCH_V6,
    BuiltSwap,
    CheckedSwap,
    EvmTx,
    SolanaTx,
    SwapPolicy,
)

__all__ = [
    "DEFAULT_EVM_ROUTERS",
    "ONEINCH_V6",
    "SOLANA_PROGRAMS",
    "CheckedSwap",
    "Flows",
    "ProgramCheck",
    "SolanaSide",
    "SwapPolicy",
    "check_evm_approval",
    "check_evm_call",
    "check_min_return",
    "check_solana_flows",
    "refuse",
    "solana_flows",
    "unpack",
]

APPROVE_SELECTOR = bytes.fromhex("095ea7b3")


def refuse(what: str) -> SuspiciousResponseError:
    """The one error every check raises: the transaction is refused, naming ``what``."""
    return SuspiciousResponseError(f"aggregator transaction refused: {what}")


def _addr(word: str) -> str:
    return word.lower()


# -- EVM ---------------------------------------------------------------------------------------
def check_evm_call(built: BuiltSwap, policy: SwapPolicy) -> EvmTx:
    """The swap call's envelope: an EVM transaction on the request's chain, from the wallet,
    to an allowed router, sending the native coin only when it is what is sold."""
    req = built.quote.request
    tx = built.tx
    if not isinstance(tx, EvmTx):
        raise refuse(f"expected an EVM transaction for {req.chain}")
    if req.chain_id is None or tx.chain_id != req.chain_id:
        raise refuse(f"chain id {tx.chain_id} is not {req.chain}'s ({req.chain_id})")
    if tx.sender.lower() != req.wallet.lower():
        raise refuse(f"from {tx.sender} is not the wallet {req.wallet}")
    routers = policy.evm_routers.get(tx.chain_id, frozenset())
    if tx.to.lower() not in routers:
        raise refuse(f"router {tx.to} is not on the allow-list for {req.chain}")
    expected_value = req.amount_in if req.sell.address is None else 0
    if tx.value != expected_value:
        raise refuse(f"value {tx.value} wei, expected {expected_value}")
    return tx


def check_min_return(built: BuiltSwap, policy: SwapPolicy, min_return: int) -> None:
    """The least the call guarantees must be above the quote less the allowed slippage and
    at most what the aggregator expects."""
    if min_return == 0:
        raise refuse("minReturn is 0")
    floor = built.quote.expected_out * (10_000 - policy.max_slippage_bps) // 10_000
    if min_return < floor:
        raise refuse(
            f"minReturn {min_return} is below the quote {built.quote.expected_out} less "
            f"{policy.max_slippage_bps} bps ({floor})"
        )
    if min_return > built.expected_out:
        raise refuse(f"minReturn {min_return} is above the expected {built.expected_out}")


def check_evm_approval(built: BuiltSwap, policy: SwapPolicy) -> None:
    """An approval must be ``approve(router on the allow-list, exactly amount_in)`` on the
    sold token, from the wallet, with no value (unlimited only if the policy says so); a reset
    before it must be ``approve(the same router, 0)`` on the same token."""
    req = built.quote.request
    a = built.approval
    if a is None:
        raise refuse("an approval reset without the approval it prepares")
    spender, amount = _approve_call(built, a, "approval", policy)
    if amount != req.amount_in and not policy.unlimited_approval:
        raise refuse(f"approval for {amount}, not exactly {req.amount_in}")
    reset = built.approval_reset
    if reset is not None:
        reset_spender, reset_amount = _approve_call(built, reset, "approval reset", policy)
        if reset_spender != spender or reset_amount != 0:
            raise refuse(f"approval reset is approve({reset_spender}, {reset_amount}), not 0")


def _approve_call(built: BuiltSwap, a: EvmTx, what: str, policy: SwapPolicy) -> tuple[str, int]:
    """``(spender, amount)`` of an ``approve`` on the sold token from the wallet."""
    req = built.quote.request
    if req.sell.address is None:
        raise refuse(f"an {what} for the native coin")
    if a.to.lower() != str(req.sell.address).lower():
        raise refuse(f"{what} goes to {a.to}, not the token {req.sell.symbol}")
    if a.sender.lower() != req.wallet.lower() or a.value != 0 or a.chain_id != req.chain_id:
        raise refuse(f"{what} sender, value or chain id is wrong")
    if a.data[:4] != APPROVE_SELECTOR:
        raise refuse(f"{what} calldata is not approve(address,uint256)")
    try:
        spender, amount = decode(["address", "uint256"], a.data[4:])
    except (DecodingError, ValueError, OverflowError):
        raise refuse(f"{what} calldata does not decode") from None
    if _addr(spender) not in policy.evm_routers.get(a.chain_id, frozenset()):
        raise refuse(f"{what} spender {spender} is not an allowed router")
    return _addr(spender), int(amount)


# -- Solana ------------------------------------------------------------------------------------
SYSTEM_PROGRAM = "11111111111111111111111111111111"
TOKEN_PROGRAM = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"
TOKEN_2022_PROGRAM = "TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb"
ATA_PROGRAM = "ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL"
COMPUTE_BUDGET_PROGRAM = "ComputeBudget111111111111111111111111111111"
WSOL_MINT = "So11111111111111111111111111111111111111112"
SOLANA_PROGRAMS = frozenset(
    {SYSTEM_PROGRAM, TOKEN_PROGRAM, TOKEN_2022_PROGRAM, ATA_PROGRAM, COMPUTE_BUDGET_PROGRAM}
)
"""The programs any Solana swap may invoke; an aggregator adds its own with their decoders."""
_DEFAULT_UNITS_PER_IX = 200_000
_MAX_UNITS = 1_400_000


@dataclass
class Flows:
    """What a Solana swap moves for the wallet, summed over its instructions."""

    sent: int = 0
    received: int = 0
    unit_limit: int | None = None
    unit_price: int = 0
    other_ixs: int = 0


@dataclass(frozen=True)
class SolanaSide:
    """The wallet's side of a Solana swap, as an instruction decoder needs it."""

    wallet: Pubkey
    sell_mint: str
    buy_mint: str
    amount_in: int


ProgramCheck = Callable[[bytes, list[Pubkey], SolanaSide, Flows], None]
"""Decodes one instruction of an aggregator's program (data, resolved accounts), refuses what
it does not understand and adds what it moves for the wallet to the flows."""


def solana_flows(
    built: BuiltSwap,
    policy: SwapPolicy,
    lookup_tables: Mapping[str, Sequence[str]] | None = None,
    programs: Mapping[str, ProgramCheck] | None = None,
) -> Flows:
    """Decode a Solana swap transaction, hold its signers and programs to the policy and sum
    what it moves for the wallet, which must send exactly ``amount_in`` of the sold token.

    The wallet must be the fee payer and the only missing signature; any other signer must
    be a known RFQ maker whose signature verifies. Every instruction must be one this check
    understands: compute budget, token-account creation for the wallet, System and SPL token
    transfers (an RFQ fill), wSOL sync/close, or one of the aggregator's ``programs``, whose
    decoder reads its amounts. Programs the policy adds are trusted as configured.

    A v0 transaction's address lookup tables are resolved from ``lookup_tables`` (table ->
    addresses, as read from the chain) and every check runs on the resolved accounts; a
    table not given or an index out of range refuses the transaction.
    """
    req = built.quote.request
    decoders = programs or {}
    if not isinstance(built.tx, SolanaTx):
        raise refuse(f"expected a Solana transaction for {req.chain}")
    try:
        vtx = VersionedTransaction.from_bytes(built.tx.raw)
        wallet = Pubkey.from_string(req.wallet)
    except ValueError:
        raise refuse("the Solana transaction or the wallet address does not decode") from None
    msg = vtx.message
    static = list(msg.account_keys)
    keys = static + _loaded_keys(msg, lookup_tables)
    if not static or static[0] != wallet:
        raise refuse(f"fee payer {static[0] if static else None} is not the wallet {req.wallet}")
    n_signers = msg.header.num_required_signatures
    if len(vtx.signatures) != n_signers or n_signers > len(static):
        raise refuse("signature count does not match the message header")
    message_bytes = to_bytes_versioned(msg)
    empty = Signature.default()
    for key, sig in zip(static[:n_signers], vtx.signatures, strict=True):
        if key == wallet:
            if sig != empty:
                raise refuse("the wallet's signature slot is already filled")
        elif str(key) not in policy.rfq_makers:
            raise refuse(f"extra signer {key} is not a known RFQ maker")
        elif sig == empty:
            raise refuse(f"half-signed: the RFQ maker {key} has not signed")
        elif not sig.verify(key, message_bytes):
            raise refuse(f"the RFQ maker {key}'s signature does not verify")

    side = SolanaSide(
        wallet=wallet,
        sell_mint=WSOL_MINT if req.sell.address is None else str(req.sell.address),
        buy_mint=WSOL_MINT if req.buy.address is None else str(req.buy.address),
        amount_in=req.amount_in,
    )
    allowed = SOLANA_PROGRAMS | frozenset(decoders) | policy.extra_programs
    pulls = _delegated_sources(policy, side.buy_mint)
    flows = Flows()
    for ix in msg.instructions:
        try:
            program = str(keys[ix.program_id_index])
            accounts = [keys[i] for i in bytes(ix.accounts)]
        except IndexError:
            raise refuse("an instruction names an account the message does not have") from None
        data = bytes(ix.data)
        if program not in allowed:
            raise refuse(f"program {program} is not on the allow-list")
        if program == COMPUTE_BUDGET_PROGRAM:
            _compute_budget(data, flows)
            continue
        flows.other_ixs += 1
        if program == SYSTEM_PROGRAM:
            _system(
                data, accounts, wallet, req.sell.address is None, req.buy.address is None, flows
            )
        elif program in (TOKEN_PROGRAM, TOKEN_2022_PROGRAM):
            _token(program, data, accounts, wallet, side.sell_mint, side.buy_mint, flows, pulls)
        elif program == ATA_PROGRAM:
            _ata(data, accounts, wallet)
        elif program in decoders:
            decoders[program](data, accounts, side, flows)
        # NOTE: programs the policy adds are trusted as configured; their effects on the
        # wallet are not decoded here (simulation still sees them).

    if flows.sent != req.amount_in:
        raise refuse(f"the wallet sends {flows.sent} of {req.sell.symbol}, not {req.amount_in}")
    return flows


def check_solana_flows(
    built: BuiltSwap, policy: SwapPolicy, flows: Flows, min_out: int
) -> CheckedSwap:
    """The wallet's own account receives at least ``min_out``, and the compute budget (unit
    limit, priority fee) stays within the policy."""
    req = built.quote.request
    if flows.received < min_out:
        raise refuse(
            f"the wallet's own account receives {flows.received} of {req.buy.symbol}, "
            f"less than min_out {min_out}"
        )
    limit = flows.unit_limit
    if limit is None:
        limit = min(_DEFAULT_UNITS_PER_IX * flows.other_ixs, _MAX_UNITS)
    if limit > policy.max_compute_units:
        raise refuse(f"compute unit limit {limit} is above {policy.max_compute_units}")
    fee = -(-flows.unit_price * limit // 1_000_000)
    if fee > policy.max_priority_fee_lamports:
        raise refuse(
            f"priority fee {fee} lamports ({flows.unit_price} micro-lamports x {limit} units) "
            f"is above {policy.max_priority_fee_lamports}"
        )
    return CheckedSwap(built=built, min_out=min_out)


def _loaded_keys(msg: object, lookup_tables: Mapping[str, Sequence[str]] | None) -> list[Pubkey]:
    """The accounts a v0 message loads from lookup tables, in the runtime's order: every
    table's writable indexes, then every table's readonly ones (after the static keys)."""
    if not isinstance(msg, MessageV0) or not msg.address_table_lookups:
        return []
    writable: list[Pubkey] = []
    readonly: list[Pubkey] = []
    for lookup in msg.address_table_lookups:
        key = str(lookup.account_key)
        table = None if lookup_tables is None else lookup_tables.get(key)
        if table is None:
            raise refuse(f"it uses address lookup tables that were not provided ({key})")
        for indexes, out in (
            (bytes(lookup.writable_indexes), writable),
            (bytes(lookup.readonly_indexes), readonly),
        ):
            for i in indexes:
                if i >= len(table):
                    raise refuse(
                        f"address lookup table {key} has {len(table)} entries; index {i} "
                        "is out of range"
                    )
                try:
                    out.append(Pubkey.from_string(table[i]))
                except ValueError:
                    raise refuse(f"address lookup table {key} holds a bad address") from None
    return [*writable, *readonly]


def unpack(data: bytes, offset: int, fmt: str, what: str) -> int:
    """One little-endian integer of instruction data; short data is refused, not an error."""
    try:
        return int(struct.unpack_from(fmt, data, offset)[0])
    except struct.error:
        raise refuse(f"{what} instruction data is too short") from None


def _compute_budget(data: bytes, flows: Flows) -> None:
    tag = data[0] if data else -1
    if tag == 2:
        if flows.unit_limit is not None:
            raise refuse("two compute unit limits")
        flows.unit_limit = unpack(data, 1, "<I", "SetComputeUnitLimit")
    elif tag == 3:
        if flows.unit_price:
            raise refuse("two compute unit prices")
        flows.unit_price = unpack(data, 1, "<Q", "SetComputeUnitPrice")
    elif tag not in (1, 4):  # RequestHeapFrame, SetLoadedAccountsDataSizeLimit
        raise refuse(f"compute budget instruction {tag} is not allowed")


def _system(
    data: bytes,
    accounts: list[Pubkey],
    wallet: Pubkey,
    native_in: bool,
    native_out: bool,
    f: Flows,
) -> None:
    tag = unpack(data, 0, "<I", "System")
    if tag != 2 or len(accounts) < 2:
        raise refuse(f"System instruction {tag} is not allowed (only transfers)")
    lamports = unpack(data, 4, "<Q", "System transfer")
    source, dest = accounts[0], accounts[1]
    wsol = get_associated_token_address(wallet, Pubkey.from_string(WSOL_MINT))
    if source == wallet and dest != wallet:
        if dest == wsol:
            return  # wrapping SOL into the wallet's own wSOL account
        if not native_in:
            raise refuse(f"the wallet sends {lamports} lamports to {dest} while selling a token")
        f.sent += lamports
    elif dest == wallet and native_out:
        f.received += lamports


def _delegated_sources(policy: SwapPolicy, buy_mint: str) -> frozenset[Pubkey]:
    """The makers' own accounts of the bought token that the wallet may debit as their
    delegate (``SwapPolicy.delegated_makers``, local stand-in only; empty elsewhere)."""
    mint = Pubkey.from_string(buy_mint)
    return frozenset(
        get_associated_token_address(Pubkey.from_string(maker), mint, Pubkey.from_string(p))
        for maker in policy.delegated_makers & policy.rfq_makers
        for p in (TOKEN_PROGRAM, TOKEN_2022_PROGRAM)
    )


def _token(
    program: str,
    data: bytes,
    accounts: list[Pubkey],
    wallet: Pubkey,
    sell_mint: str,
    buy_mint: str,
    f: Flows,
    pulls: frozenset[Pubkey] = frozenset(),
) -> None:
    tag = data[0] if data else -1
    prog = Pubkey.from_string(program)
    if tag == 17:  # SyncNative
        return
    if tag == 9:  # CloseAccount: only the wallet's wSOL account, back to the wallet
        wsol = get_associated_token_address(wallet, Pubkey.from_string(WSOL_MINT), prog)
        if len(accounts) < 3 or accounts[0] != wsol or accounts[1] != wallet:
            raise refuse("a token account is closed to someone other than the wallet")
        return
    if tag == 3 and len(accounts) >= 3:
        source, mint, dest, authority = accounts[0], None, accounts[1], accounts[2]
    elif tag == 12 and len(accounts) >= 4:
        source, mint, dest, authority = accounts[0], accounts[1], accounts[2], accounts[3]
    else:
        raise refuse(f"token instruction {tag} is not allowed (only transfers)")
    amount = unpack(data, 1, "<Q", "token transfer")
    sell_account = get_associated_token_address(wallet, Pubkey.from_string(sell_mint), prog)
    buy_account = get_associated_token_address(wallet, Pubkey.from_string(buy_mint), prog)
    if authority == wallet and source in pulls:
        # NOTE: a delegated fill (the local stand-in's /build): the maker approved the wallet
        # on its own account of the bought token; accepted only as TransferChecked of that
        # mint into the wallet's own account, which is what the wallet receives.
        if tag != 12 or str(mint) != buy_mint or dest != buy_account:
            raise refuse(f"a delegated transfer from {source} that is not the fill to the wallet")
        f.received += amount
        return
    if authority == wallet:
        if source != sell_account or (mint is not None and str(mint) != sell_mint):
            raise refuse(f"the wallet sends tokens from {source}, not its {sell_mint} account")
        f.sent += amount
    elif source in (sell_account, buy_account):
        raise refuse(f"{authority} moves tokens out of the wallet's account {source}")
    elif dest == buy_account:
        if mint is not None and str(mint) != buy_mint:
            raise refuse(f"the wallet receives mint {mint}, not {buy_mint}")
        f.received += amount
    elif mint is not None and str(mint) == buy_mint:
        raise refuse(f"the bought token goes to {dest}, not the wallet's account {buy_account}")


def _ata(data: bytes, accounts: list[Pubkey], wallet: Pubkey) -> None:
    if data not in (b"", b"\x00", b"\x01") or len(accounts) < 4:
        raise refuse("associated token account instruction is not create")
    payer, owner = accounts[0], accounts[2]
    if payer == wallet and owner != wallet:
        raise refuse(f"the wallet pays to create a token account for {owner}")
