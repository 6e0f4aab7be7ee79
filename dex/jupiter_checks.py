"""What only a Jupiter transaction holds: its v6 route instructions and its slippage floor.

``Jupiter.check`` runs :func:`check_jupiter_swap`: the Solana family checks of ``dex.checks``
(fee payer, signers, programs, lookup tables, transfers, compute budget) with the Jupiter v6
program allowed and its ``route`` / ``shared_accounts_route`` arguments decoded, and the
wallet's minimum output taken from the quote's ``otherAmountThreshold``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from solders.pubkey import Pubkey
from solders.token.associated import get_associated_token_address

from rebalancer.dex.base import BuiltSwap, CheckedSwap, SwapPolicy
from rebalancer.dex.checks import (
    TOKEN_2022_PROGRAM,
    TOKEN_PROGRAM,
    Flows,
    ProgramCheck,
    SolanaSide,
    check_solana_flows,
    refuse,
    solana_flows,
    unpack,
)

JUPITER_V6 = "JUP6LkbZbjS1jKKwapdHNy74zcZ3tLUZoi5QNyVTaV4"
# Jupiter v6 `route` and `shared_accounts_route` (anchor discriminators, sha256("global:…")):
# (index of user_transfer_authority, of the user's source account, of the destination(s)).
# Both end with in_amount u64, quoted_out_amount u64, slippage_bps u16, platform_fee_bps u8.
_JUPITER_ROUTES: dict[bytes, tuple[str, int, int, tuple[int, ...]]] = {
    bytes([229, 23, 203, 151, 122, 227, 173, 42]): ("route", 1, 2, (3, 4)),
    bytes([193, 32, 155, 51, 65, 214, 156, 129]): ("shared_accounts_route", 2, 3, (6,)),
}


def check_jupiter_swap(
    built: BuiltSwap,
    policy: SwapPolicy,
    lookup_tables: Mapping[str, Sequence[str]] | None = None,
) -> CheckedSwap:
    """Decode a Jupiter swap transaction (a v6 route or an RFQ fill) and hold its signers,
    programs, compute budget and money movements to the request: the wallet sends exactly
    ``amount_in`` and its own account receives at least the quote's slippage floor."""
    flows = solana_flows(built, policy, lookup_tables, JUPITER_PROGRAMS)
    return check_solana_flows(built, policy, flows, jupiter_min_out(built, policy))


def jupiter_min_out(built: BuiltSwap, policy: SwapPolicy) -> int:
    """The least the wallet must receive: Jupiter's slippage floor (``otherAmountThreshold``),
    which must match the quote less the allowed slippage."""
    req = built.quote.request
    expected = built.quote.expected_out
    slippage = min(req.slippage_bps, policy.max_slippage_bps)
    floor = expected * (10_000 - slippage) // 10_000
    threshold = getattr(built.quote, "other_amount_threshold", floor)
    if not isinstance(threshold, int) or threshold <= 0:
        raise refuse("the minimum output is 0")
    if threshold < floor:
        raise refuse(
            f"otherAmountThreshold {threshold} is below the quote {expected} less "
            f"{slippage} bps ({floor})"
        )
    if threshold > expected:
        raise refuse(f"otherAmountThreshold {threshold} is above the quote {expected}")
    return threshold


def _route(data: bytes, accounts: list[Pubkey], side: SolanaSide, f: Flows) -> None:
    """A v6 ExactIn route: the wallet's authority, its own source and destination accounts,
    and the amounts read from the trailing arguments (no platform fee)."""
    shape = _JUPITER_ROUTES.get(data[:8])
    if shape is None or len(data) < 8 + 19:
        raise refuse("a Jupiter instruction that is not an ExactIn route")
    name, authority_i, source_i, dest_is = shape
    if len(accounts) <= max(authority_i, source_i, *dest_is):
        raise refuse(f"Jupiter {name} has too few accounts")
    tail = data[-19:]
    in_amount = unpack(tail, 0, "<Q", name)
    quoted_out = unpack(tail, 8, "<Q", name)
    slippage_bps = unpack(tail, 16, "<H", name)
    platform_fee_bps = tail[18]
    wallet = side.wallet
    owned = {
        get_associated_token_address(wallet, Pubkey.from_string(mint), Pubkey.from_string(p)): mint
        for mint in (side.sell_mint, side.buy_mint)
        for p in (TOKEN_PROGRAM, TOKEN_2022_PROGRAM)
    }
    if accounts[authority_i] != wallet:
        raise refuse(f"Jupiter {name} spends for {accounts[authority_i]}, not the wallet")
    if owned.get(accounts[source_i]) != side.sell_mint:
        raise refuse(f"Jupiter {name} sells from {accounts[source_i]}, not the wallet's account")
    for i in dest_is:
        dest = accounts[i]
        if str(dest) != JUPITER_V6 and owned.get(dest) != side.buy_mint:
            raise refuse(f"Jupiter {name} pays {dest}, not the wallet's account")
    if in_amount != side.amount_in or platform_fee_bps != 0 or slippage_bps > 10_000:
        raise refuse(
            f"Jupiter {name} takes {in_amount} (fee {platform_fee_bps} bps), not {side.amount_in}"
        )
    f.sent += in_amount
    f.received += quoted_out * (10_000 - slippage_bps) // 10_000


JUPITER_PROGRAMS: Mapping[str, ProgramCheck] = {JUPITER_V6: _route}
"""The programs a Jupiter swap may invoke besides the family's, with their decoders."""
