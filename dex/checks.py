"""Checks on what an aggregator returns, in one place, before anything can be signed.

An aggregator's answer is an unsigned transaction written by someone else. ``check_evm_swap``
decodes it and compares every field that moves money with what was asked; only the
``CheckedSwap`` it returns can go on to simulation and signing. Any mismatch raises
SuspiciousResponseError (exit 3) naming the field.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from eth_abi import decode
from eth_abi.exceptions import DecodingError
from solders.message import MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.token.associated import get_associated_token_address
from solders.transaction import VersionedTransaction

from rebalancer.core.errors import SuspiciousResponseError
from rebalancer.dex.base import BuiltSwap, EvmTx, SolanaTx

ONEINCH_V6 = "0x111111125421ca6dc452d289314280a0f8842a65"
NATIVE = "0xeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
SWAP_SELECTOR = bytes.fromhex("07ed2379")
APPROVE_SELECTOR = bytes.fromhex("095ea7b3")
SWAP_DESC = "(address,address,address,address,uint256,uint256,uint256)"
_PARTIAL_FILL = 1 << 0
_REQUIRES_EXTRA_ETH = 1 << 1

# The real AggregationRouterV6, the same on Ethereum and Avalanche (aggregators.md).
DEFAULT_EVM_ROUTERS: dict[int, frozenset[str]] = {
    1: frozenset({ONEINCH_V6}),
    43114: frozenset({ONEINCH_V6}),
}


@dataclass(frozen=True)
class SwapPolicy:
    """What an aggregator's transaction may do."""

    evm_routers: Mapping[int, frozenset[str]] = field(
        default_factory=lambda: dict(DEFAULT_EVM_ROUTERS)
    )
    max_slippage_bps: int = 100
    unlimited_approval: bool = False
    extra_programs: frozenset[str] = frozenset()
    """Programs a Solana swap may invoke besides System, Token, Token-2022, ATA, Compute
    Budget and Jupiter v6 (base58 ids)."""
    rfq_makers: frozenset[str] = frozenset()
    """Co-signers allowed next to the wallet: RFQ market makers (base58 public keys)."""
    max_compute_units: int = 1_400_000
    """The highest compute-unit limit a Solana swap may set (1.4M is the protocol's cap)."""
    max_priority_fee_lamports: int = 1_000_000
    """The most a Solana swap may pay in priority fee (unit price x unit limit), lamports."""


@dataclass(frozen=True)
class CheckedSwap:
    """A swap whose transaction was decoded and matched the request; ``min_out`` is the
    least the transaction itself guarantees (it reverts below it)."""

    built: BuiltSwap
    min_out: int
    simulation_must_show: str | None = None
    """What only a simulation can prove (the token bought, for 1inch ``unoswap`` routes whose
    calldata names pools, not tokens); the engine refuses such a swap unsimulated."""


# 1inch v6 "unoswap" entry points: name -> (selector, has `to`, sells the native coin, pools).
# Their arguments are all uint256 words (1inch's packed ``Address`` type for tokens).
_UNOSWAPS: dict[bytes, tuple[str, bool, bool, int]] = {
    bytes.fromhex(sel): (name, to, eth, pools)
    for sel, name, to, eth, pools in [
        ("83800a8e", "unoswap", False, False, 1),
        ("8770ba91", "unoswap2", False, False, 2),
        ("19367472", "unoswap3", False, False, 3),
        ("e2c95c82", "unoswapTo", True, False, 1),
        ("ea76dddf", "unoswapTo2", True, False, 2),
        ("f7a70056", "unoswapTo3", True, False, 3),
        ("a76dfc3b", "ethUnoswap", False, True, 1),
        ("89af926a", "ethUnoswap2", False, True, 2),
        ("188ac35d", "ethUnoswap3", False, True, 3),
        ("175accdc", "ethUnoswapTo", True, True, 1),
        ("0f449d71", "ethUnoswapTo2", True, True, 2),
        ("493189f0", "ethUnoswapTo3", True, True, 3),
    ]
}
_LOW160 = (1 << 160) - 1


def _refuse(what: str) -> SuspiciousResponseError:
    return SuspiciousResponseError(f"aggregator transaction refused: {what}")


def _addr(word: str) -> str:
    return word.lower()


def check_evm_swap(built: BuiltSwap, policy: SwapPolicy) -> CheckedSwap:
    """Decode a 1inch ``swap`` transaction and hold every money field to the request."""
    req = built.quote.request
    tx = built.tx
    if not isinstance(tx, EvmTx):
        raise _refuse(f"expected an EVM transaction for {req.chain}")
    wallet = req.wallet.lower()
    if req.chain_id is None or tx.chain_id != req.chain_id:
        raise _refuse(f"chain id {tx.chain_id} is not {req.chain}'s ({req.chain_id})")
    if tx.sender.lower() != wallet:
        raise _refuse(f"from {tx.sender} is not the wallet {req.wallet}")
    routers = policy.evm_routers.get(tx.chain_id, frozenset())
    if tx.to.lower() not in routers:
        raise _refuse(f"router {tx.to} is not on the allow-list for {req.chain}")
    selling_native = req.sell.address is None
    expected_value = req.amount_in if selling_native else 0
    if tx.value != expected_value:
        raise _refuse(f"value {tx.value} wei, expected {expected_value}")
    if tx.data[:4] in _UNOSWAPS:
        return _check_unoswap(built, tx, policy)
    if tx.data[:4] != SWAP_SELECTOR:
        raise _refuse(
            f"router method 0x{tx.data[:4].hex()} is neither swap (0x07ed2379) nor an unoswap"
        )
    try:
        _executor, desc, _data = decode(["address", SWAP_DESC, "bytes"], tx.data[4:])
    except (DecodingError, ValueError, OverflowError):
        raise _refuse("swap calldata does not decode") from None
    src, dst, _src_receiver, dst_receiver, amount, min_return, flags = desc
    want_src = NATIVE if selling_native else str(req.sell.address).lower()
    want_dst = NATIVE if req.buy.address is None else str(req.buy.address).lower()
    if _addr(src) != want_src:
        raise _refuse(f"sells {src}, not {req.sell.symbol} ({want_src})")
    if _addr(dst) != want_dst:
        raise _refuse(f"buys {dst}, not {req.buy.symbol} ({want_dst})")
    if amount != req.amount_in:
        raise _refuse(f"amount {amount}, not {req.amount_in}")
    if _addr(dst_receiver) != wallet:
        raise _refuse(f"pays {dst_receiver}, not the wallet {req.wallet}")
    if flags & (_PARTIAL_FILL | _REQUIRES_EXTRA_ETH):
        raise _refuse(f"flags {flags:#x} allow a partial fill or extra ETH")
    _check_min_return(built, policy, min_return)
    if built.approval is not None:
        check_evm_approval(built, policy)
    return CheckedSwap(built=built, min_out=int(min_return))


def _check_min_return(built: BuiltSwap, policy: SwapPolicy, min_return: int) -> None:
    if min_return == 0:
        raise _refuse("minReturn is 0")
    floor = built.quote.expected_out * (10_000 - policy.max_slippage_bps) // 10_000
    if min_return < floor:
        raise _refuse(
            f"minReturn {min_return} is below the quote {built.quote.expected_out} less "
            f"{policy.max_slippage_bps} bps ({floor})"
        )
    if min_return > built.expected_out:
        raise _refuse(f"minReturn {min_return} is above the expected {built.expected_out}")


def _packed_address(word: int, what: str) -> str:
    """A 1inch packed ``Address`` word that must be a plain address (no flag bits)."""
    if word >> 160:
        raise _refuse(f"{what} carries flag bits {word >> 160:#x}")
    return f"0x{word & _LOW160:040x}"


def _check_unoswap(built: BuiltSwap, tx: EvmTx, policy: SwapPolicy) -> CheckedSwap:
    """The ``unoswap`` family: sold token, amount, receiver and minReturn are in the calldata;
    the token bought is not (the pools decide it), so only a simulation can prove it."""
    req = built.quote.request
    name, has_to, sells_eth, pools = _UNOSWAPS[tx.data[:4]]
    args = tx.data[4:]
    n = int(has_to) + (0 if sells_eth else 2) + 1 + pools
    if len(args) != 32 * n:
        raise _refuse(f"{name} calldata has {len(args)} bytes, not {32 * n}")
    words = [int.from_bytes(args[i : i + 32], "big") for i in range(0, len(args), 32)]
    if has_to:
        to = _packed_address(words.pop(0), f"{name} receiver")
        if to != req.wallet.lower():
            raise _refuse(f"{name} pays {to}, not the wallet {req.wallet}")
    if sells_eth:
        if req.sell.address is not None:
            raise _refuse(f"{name} sells the native coin, not {req.sell.symbol}")
        amount = tx.value
    else:
        token = _packed_address(words.pop(0), f"{name} token")
        if req.sell.address is None or token != str(req.sell.address).lower():
            raise _refuse(f"{name} sells {token}, not {req.sell.symbol}")
        amount = words.pop(0)
    if amount != req.amount_in:
        raise _refuse(f"{name} amount {amount}, not {req.amount_in}")
    min_return = words.pop(0)
    _check_min_return(built, policy, min_return)
    if built.approval is not None:
        check_evm_approval(built, policy)
    return CheckedSwap(
        built=built,
        min_out=min_return,
        simulation_must_show=f"that {name} buys {req.buy.symbol}",
    )


def check_evm_approval(built: BuiltSwap, policy: SwapPolicy) -> None:
    """An approval must be ``approve(router on the allow-list, exactly amount_in)`` on the
    sold token, from the wallet, with no value (unlimited only if the policy says so)."""
    req = built.quote.request
    a = built.approval
    assert a is not None
    if req.sell.address is None:
        raise _refuse("an approval for the native coin")
    if a.to.lower() != str(req.sell.address).lower():
        raise _refuse(f"approval goes to {a.to}, not the token {req.sell.symbol}")
    if a.sender.lower() != req.wallet.lower() or a.value != 0 or a.chain_id != req.chain_id:
        raise _refuse("approval sender, value or chain id is wrong")
    if a.data[:4] != APPROVE_SELECTOR:
        raise _refuse("approval calldata is not approve(address,uint256)")
    try:
        spender, amount = decode(["address", "uint256"], a.data[4:])
    except (DecodingError, ValueError, OverflowError):
        raise _refuse("approval calldata does not decode") from None
    if _addr(spender) not in policy.evm_routers.get(a.chain_id, frozenset()):
        raise _refuse(f"approval spender {spender} is not an allowed router")
    if amount != req.amount_in and not policy.unlimited_approval:
        raise _refuse(f"approval for {amount}, not exactly {req.amount_in}")


# -- Solana ------------------------------------------------------------------------------------
SYSTEM_PROGRAM = "11111111111111111111111111111111"
TOKEN_PROGRAM = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"
TOKEN_2022_PROGRAM = "TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb"
ATA_PROGRAM = "ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL"
COMPUTE_BUDGET_PROGRAM = "ComputeBudget111111111111111111111111111111"
JUPITER_V6 = "JUP6LkbZbjS1jKKwapdHNy74zcZ3tLUZoi5QNyVTaV4"
WSOL_MINT = "So11111111111111111111111111111111111111112"
SOLANA_PROGRAMS = frozenset(
    {SYSTEM_PROGRAM, TOKEN_PROGRAM, TOKEN_2022_PROGRAM, ATA_PROGRAM, COMPUTE_BUDGET_PROGRAM}
    | {JUPITER_V6}
)
_DEFAULT_UNITS_PER_IX = 200_000
_MAX_UNITS = 1_400_000
# Jupiter v6 `route` and `shared_accounts_route` (anchor discriminators, sha256("global:…")):
# (index of user_transfer_authority, of the user's source account, of the destination(s)).
# Both end with in_amount u64, quoted_out_amount u64, slippage_bps u16, platform_fee_bps u8.
_JUPITER_ROUTES: dict[bytes, tuple[str, int, int, tuple[int, ...]]] = {
    bytes([229, 23, 203, 151, 122, 227, 173, 42]): ("route", 1, 2, (3, 4)),
    bytes([193, 32, 155, 51, 65, 214, 156, 129]): ("shared_accounts_route", 2, 3, (6,)),
}


@dataclass
class _Flows:
    """What a Solana swap moves for the wallet, summed over its instructions."""

    sent: int = 0
    received: int = 0
    unit_limit: int | None = None
    unit_price: int = 0
    other_ixs: int = 0


def check_solana_swap(
    built: BuiltSwap,
    policy: SwapPolicy,
    lookup_tables: Mapping[str, Sequence[str]] | None = None,
) -> CheckedSwap:
    """Decode a Solana swap transaction and hold its signers, programs, compute budget and
    money movements to the request.

    The wallet must be the fee payer and the only missing signature; any other signer must
    be a known RFQ maker whose signature verifies. Every instruction must be one this check
    understands: compute budget, token-account creation for the wallet, System and SPL token
    transfers (an RFQ fill), wSOL sync/close, or a Jupiter v6 route whose amounts are read
    from its arguments. The wallet must send exactly ``amount_in`` of the sold token and
    receive at least ``min_out`` of the bought one in its own account.

    A v0 transaction's address lookup tables are resolved from ``lookup_tables`` (table ->
    addresses, as read from the chain) and every check runs on the resolved accounts; a
    table not given or an index out of range refuses the transaction.
    """
    req = built.quote.request
    if not isinstance(built.tx, SolanaTx):
        raise _refuse(f"expected a Solana transaction for {req.chain}")
    try:
        vtx = VersionedTransaction.from_bytes(built.tx.raw)
        wallet = Pubkey.from_string(req.wallet)
    except ValueError:
        raise _refuse("the Solana transaction or the wallet address does not decode") from None
    msg = vtx.message
    static = list(msg.account_keys)
    keys = static + _loaded_keys(msg, lookup_tables)
    if not static or static[0] != wallet:
        raise _refuse(f"fee payer {static[0] if static else None} is not the wallet {req.wallet}")
    n_signers = msg.header.num_required_signatures
    if len(vtx.signatures) != n_signers or n_signers > len(static):
        raise _refuse("signature count does not match the message header")
    message_bytes = to_bytes_versioned(msg)
    empty = Signature.default()
    for key, sig in zip(static[:n_signers], vtx.signatures, strict=True):
        if key == wallet:
            if sig != empty:
                raise _refuse("the wallet's signature slot is already filled")
        elif str(key) not in policy.rfq_makers:
            raise _refuse(f"extra signer {key} is not a known RFQ maker")
        elif sig == empty:
            raise _refuse(f"half-signed: the RFQ maker {key} has not signed")
        elif not sig.verify(key, message_bytes):
            raise _refuse(f"the RFQ maker {key}'s signature does not verify")

    sell_mint = WSOL_MINT if req.sell.address is None else str(req.sell.address)
    buy_mint = WSOL_MINT if req.buy.address is None else str(req.buy.address)
    allowed = SOLANA_PROGRAMS | policy.extra_programs
    flows = _Flows()
    for ix in msg.instructions:
        try:
            program = str(keys[ix.program_id_index])
            accounts = [keys[i] for i in bytes(ix.accounts)]
        except IndexError:
            raise _refuse("an instruction names an account the message does not have") from None
        data = bytes(ix.data)
        if program not in allowed:
            raise _refuse(f"program {program} is not on the allow-list")
        if program == COMPUTE_BUDGET_PROGRAM:
            _compute_budget(data, flows)
            continue
        flows.other_ixs += 1
        if program == SYSTEM_PROGRAM:
            _system(
                data, accounts, wallet, req.sell.address is None, req.buy.address is None, flows
            )
        elif program in (TOKEN_PROGRAM, TOKEN_2022_PROGRAM):
            _token(program, data, accounts, wallet, sell_mint, buy_mint, flows)
        elif program == ATA_PROGRAM:
            _ata(data, accounts, wallet)
        elif program == JUPITER_V6:
            _jupiter_route(data, accounts, wallet, sell_mint, buy_mint, req.amount_in, flows)
        # NOTE: programs the policy adds are trusted as configured; their effects on the
        # wallet are not decoded here (simulation still sees them).

    if flows.sent != req.amount_in:
        raise _refuse(f"the wallet sends {flows.sent} of {req.sell.symbol}, not {req.amount_in}")
    min_out = _solana_min_out(built, policy)
    if flows.received < min_out:
        raise _refuse(
            f"the wallet's own account receives {flows.received} of {req.buy.symbol}, "
            f"less than min_out {min_out}"
        )
    limit = flows.unit_limit
    if limit is None:
        limit = min(_DEFAULT_UNITS_PER_IX * flows.other_ixs, _MAX_UNITS)
    if limit > policy.max_compute_units:
        raise _refuse(f"compute unit limit {limit} is above {policy.max_compute_units}")
    fee = -(-flows.unit_price * limit // 1_000_000)
    if fee > policy.max_priority_fee_lamports:
        raise _refuse(
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
            raise _refuse(f"it uses address lookup tables that were not provided ({key})")
        for indexes, out in (
            (bytes(lookup.writable_indexes), writable),
            (bytes(lookup.readonly_indexes), readonly),
        ):
            for i in indexes:
                if i >= len(table):
                    raise _refuse(
                        f"address lookup table {key} has {len(table)} entries; index {i} "
                        "is out of range"
                    )
                try:
                    out.append(Pubkey.from_string(table[i]))
                except ValueError:
                    raise _refuse(f"address lookup table {key} holds a bad address") from None
    return [*writable, *readonly]


def _solana_min_out(built: BuiltSwap, policy: SwapPolicy) -> int:
    """The least the wallet must receive: the aggregator's slippage floor
    (``otherAmountThreshold``), which must match the quote less the allowed slippage."""
    req = built.quote.request
    expected = built.quote.expected_out
    slippage = min(req.slippage_bps, policy.max_slippage_bps)
    floor = expected * (10_000 - slippage) // 10_000
    threshold = getattr(built.quote, "other_amount_threshold", floor)
    if not isinstance(threshold, int) or threshold <= 0:
        raise _refuse("the minimum output is 0")
    if threshold < floor:
        raise _refuse(
            f"otherAmountThreshold {threshold} is below the quote {expected} less "
            f"{slippage} bps ({floor})"
        )
    if threshold > expected:
        raise _refuse(f"otherAmountThreshold {threshold} is above the quote {expected}")
    return threshold


def _u(data: bytes, offset: int, fmt: str, what: str) -> int:
    try:
        return int(struct.unpack_from(fmt, data, offset)[0])
    except struct.error:
        raise _refuse(f"{what} instruction data is too short") from None


def _compute_budget(data: bytes, flows: _Flows) -> None:
    tag = data[0] if data else -1
    if tag == 2:
        if flows.unit_limit is not None:
            raise _refuse("two compute unit limits")
        flows.unit_limit = _u(data, 1, "<I", "SetComputeUnitLimit")
    elif tag == 3:
        if flows.unit_price:
            raise _refuse("two compute unit prices")
        flows.unit_price = _u(data, 1, "<Q", "SetComputeUnitPrice")
    elif tag not in (1, 4):  # RequestHeapFrame, SetLoadedAccountsDataSizeLimit
        raise _refuse(f"compute budget instruction {tag} is not allowed")


def _system(
    data: bytes,
    accounts: list[Pubkey],
    wallet: Pubkey,
    native_in: bool,
    native_out: bool,
    f: _Flows,
) -> None:
    tag = _u(data, 0, "<I", "System")
    if tag != 2 or len(accounts) < 2:
        raise _refuse(f"System instruction {tag} is not allowed (only transfers)")
    lamports = _u(data, 4, "<Q", "System transfer")
    source, dest = accounts[0], accounts[1]
    wsol = get_associated_token_address(wallet, Pubkey.from_string(WSOL_MINT))
    if source == wallet and dest != wallet:
        if dest == wsol:
            return  # wrapping SOL into the wallet's own wSOL account
        if not native_in:
            raise _refuse(f"the wallet sends {lamports} lamports to {dest} while selling a token")
        f.sent += lamports
    elif dest == wallet and native_out:
        f.received += lamports


def _token(
    program: str,
    data: bytes,
    accounts: list[Pubkey],
    wallet: Pubkey,
    sell_mint: str,
    buy_mint: str,
    f: _Flows,
) -> None:
    tag = data[0] if data else -1
    prog = Pubkey.from_string(program)
    if tag == 17:  # SyncNative
        return
    if tag == 9:  # CloseAccount: only the wallet's wSOL account, back to the wallet
        wsol = get_associated_token_address(wallet, Pubkey.from_string(WSOL_MINT), prog)
        if len(accounts) < 3 or accounts[0] != wsol or accounts[1] != wallet:
            raise _refuse("a token account is closed to someone other than the wallet")
        return
    if tag == 3 and len(accounts) >= 3:
        source, mint, dest, authority = accounts[0], None, accounts[1], accounts[2]
    elif tag == 12 and len(accounts) >= 4:
        source, mint, dest, authority = accounts[0], accounts[1], accounts[2], accounts[3]
    else:
        raise _refuse(f"token instruction {tag} is not allowed (only transfers)")
    amount = _u(data, 1, "<Q", "token transfer")
    sell_account = get_associated_token_address(wallet, Pubkey.from_string(sell_mint), prog)
    buy_account = get_associated_token_address(wallet, Pubkey.from_string(buy_mint), prog)
    if authority == wallet:
        if source != sell_account or (mint is not None and str(mint) != sell_mint):
            raise _refuse(f"the wallet sends tokens from {source}, not its {sell_mint} account")
        f.sent += amount
    elif source in (sell_account, buy_account):
        raise _refuse(f"{authority} moves tokens out of the wallet's account {source}")
    elif dest == buy_account:
        if mint is not None and str(mint) != buy_mint:
            raise _refuse(f"the wallet receives mint {mint}, not {buy_mint}")
        f.received += amount
    elif mint is not None and str(mint) == buy_mint:
        raise _refuse(f"the bought token goes to {dest}, not the wallet's account {buy_account}")


def _ata(data: bytes, accounts: list[Pubkey], wallet: Pubkey) -> None:
    if data not in (b"", b"\x00", b"\x01") or len(accounts) < 4:
        raise _refuse("associated token account instruction is not create")
    payer, owner = accounts[0], accounts[2]
    if payer == wallet and owner != wallet:
        raise _refuse(f"the wallet pays to create a token account for {owner}")


def _jupiter_route(
    data: bytes,
    accounts: list[Pubkey],
    wallet: Pubkey,
    sell_mint: str,
    buy_mint: str,
    amount_in: int,
    f: _Flows,
) -> None:
    shape = _JUPITER_ROUTES.get(data[:8])
    if shape is None or len(data) < 8 + 19:
        raise _refuse("a Jupiter instruction that is not an ExactIn route")
    name, authority_i, source_i, dest_is = shape
    if len(accounts) <= max(authority_i, source_i, *dest_is):
        raise _refuse(f"Jupiter {name} has too few accounts")
    tail = data[-19:]
    in_amount = _u(tail, 0, "<Q", name)
    quoted_out = _u(tail, 8, "<Q", name)
    slippage_bps = _u(tail, 16, "<H", name)
    platform_fee_bps = tail[18]
    owned = {
        get_associated_token_address(wallet, Pubkey.from_string(mint), Pubkey.from_string(p)): mint
        for mint in (sell_mint, buy_mint)
        for p in (TOKEN_PROGRAM, TOKEN_2022_PROGRAM)
    }
    if accounts[authority_i] != wallet:
        raise _refuse(f"Jupiter {name} spends for {accounts[authority_i]}, not the wallet")
    if owned.get(accounts[source_i]) != sell_mint:
        raise _refuse(f"Jupiter {name} sells from {accounts[source_i]}, not the wallet's account")
    for i in dest_is:
        dest = accounts[i]
        if str(dest) != JUPITER_V6 and owned.get(dest) != buy_mint:
            raise _refuse(f"Jupiter {name} pays {dest}, not the wallet's account")
    if in_amount != amount_in or platform_fee_bps != 0 or slippage_bps > 10_000:
        raise _refuse(
            f"Jupiter {name} takes {in_amount} (fee {platform_fee_bps} bps), not {amount_in}"
        )
    f.sent += in_amount
    f.received += quoted_out * (10_000 - slippage_bps) // 10_000
