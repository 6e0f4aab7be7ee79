"""What only a Jupiter transaction holds: its v6 route instructions and its slippage floor.

``Jupiter.check`` runs :func:`check_jupiter_swap`: the Solana family checks of ``dex.checks``
(fee payer, signers, programs, lookup tables, transfers, compute budget) with the Jupiter v6
program allowed and its ExactIn routes decoded, and the wallet's minimum output taken from the
quote's ``otherAmountThreshold``.

The four ExactIn routes, as the program's Anchor IDL (``JUP6LkbZ…``, ``instructions``)
describes them; discriminators are ``sha256("global:<name>")[:8]`` (computed again here):

- ``route`` / ``shared_accounts_route`` (v1 ``/swap``): ``route_plan`` vec first, then
  ``in_amount u64, quoted_out_amount u64, slippage_bps u16, platform_fee_bps u8`` (read from
  the end); accounts ``token_program, user_transfer_authority, user_source_token_account,
  user_destination_token_account, destination_token_account?, destination_mint,
  platform_fee_account?, …`` and ``token_program, program_authority, user_transfer_authority,
  source_token_account, program_source_token_account, program_destination_token_account,
  destination_token_account, source_mint, destination_mint, platform_fee_account?, …``.
- ``route_v2`` / ``shared_accounts_route_v2`` (v2 ``/build``): the scalars first
  (``shared_accounts_route_v2`` after an ``id u8``): ``in_amount u64, quoted_out_amount u64,
  slippage_bps u16, platform_fee_bps u16, positive_slippage_bps u16``, then the
  ``Vec<RoutePlanStepV2>`` (``swap`` enum, ``bps u16``, ``input_index u8``,
  ``output_index u8``); accounts ``user_transfer_authority, user_source_token_account,
  user_destination_token_account, source_mint, destination_mint, source_token_program,
  destination_token_program, destination_token_account?, event_authority, program`` and
  ``program_authority, user_transfer_authority, source_token_account,
  program_source_token_account, program_destination_token_account, destination_token_account,
  source_mint, destination_mint, source_token_program, destination_token_program,
  event_authority, program``. No platform-fee account: a fee is refused by its bps.

An optional account the caller leaves out is the Jupiter program id in its slot. The ExactOut
routes (``exact_out_route``, ``exact_out_route_v2``, …) are refused: the tool only sells exact
amounts and ``/build`` is ExactIn only.

Source: the program's IDL as published in ``sava-software/idl-clients``
(``idl-clients-jupiter/…/jupiter/swap/gen/idl.json``); the v2 discriminators and the
"scalars before the route plan" order agree with independent parsers found with the search
tool (``debridge-finance/solana-tx-parser-public`` for v1, several for v2).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

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
JUPITER_EVENT_AUTHORITY = "D8cy77BBepLMngZx6ZukaTff5hCt1HrWyKk3Hnd9oitf"


@dataclass(frozen=True)
class _Route:
    """Where one ExactIn route instruction keeps what the check reads (account indices)."""

    name: str
    authority: int
    source: int
    dests: tuple[int, ...]
    v2: bool = False
    args: int = 8  # v2: where in_amount starts (after the discriminator and any id u8)
    mints: tuple[int, int] | None = None  # v2: (source_mint, destination_mint)
    token_programs: tuple[int, ...] = ()
    event_authority: int | None = None


_JUPITER_ROUTES: dict[bytes, _Route] = {
    bytes([229, 23, 203, 151, 122, 227, 173, 42]): _Route("route", 1, 2, (3, 4)),
    bytes([193, 32, 155, 51, 65, 214, 156, 129]): _Route("shared_accounts_route", 2, 3, (6,)),
    bytes([187, 100, 250, 204, 49, 196, 175, 20]): _Route(
        "route_v2", 0, 1, (2, 7), True, 8, (3, 4), (5, 6), 8
    ),
    bytes([209, 152, 83, 147, 124, 254, 216, 233]): _Route(
        "shared_accounts_route_v2", 1, 2, (5,), True, 9, (6, 7), (8, 9), 10
    ),
}
_V2_HEAD = 8 + 8 + 2 + 2 + 2 + 4  # the scalars and the route plan's u32 length


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
    """A v6 ExactIn route (v1 or v2): the wallet's authority, its own source and destination
    accounts (v2: and the traded mints), and the amounts read from its arguments (no platform
    fee, no positive-slippage fee)."""
    r = _JUPITER_ROUTES.get(data[:8])
    if r is None:
        raise refuse("a Jupiter instruction that is not an ExactIn route")
    named = (r.authority, r.source, *r.dests, *(r.mints or ()), *r.token_programs)
    if len(accounts) <= max(*named, r.event_authority or 0):
        raise refuse(f"Jupiter {r.name} has too few accounts")
    if r.v2:
        if len(data) < r.args + _V2_HEAD:
            raise refuse(f"Jupiter {r.name} instruction data is too short")
        in_amount = unpack(data, r.args, "<Q", r.name)
        quoted_out = unpack(data, r.args + 8, "<Q", r.name)
        slippage_bps = unpack(data, r.args + 16, "<H", r.name)
        platform_fee_bps = unpack(data, r.args + 18, "<H", r.name)
        positive_slippage_bps = unpack(data, r.args + 20, "<H", r.name)
        if unpack(data, r.args + 22, "<I", r.name) == 0:
            raise refuse(f"Jupiter {r.name} has an empty route plan")
    else:
        if len(data) < 8 + 19:
            raise refuse(f"Jupiter {r.name} instruction data is too short")
        tail = data[-19:]
        in_amount = unpack(tail, 0, "<Q", r.name)
        quoted_out = unpack(tail, 8, "<Q", r.name)
        slippage_bps = unpack(tail, 16, "<H", r.name)
        platform_fee_bps, positive_slippage_bps = tail[18], 0
    wallet = side.wallet
    owned = {
        get_associated_token_address(wallet, Pubkey.from_string(mint), Pubkey.from_string(p)): mint
        for mint in (side.sell_mint, side.buy_mint)
        for p in (TOKEN_PROGRAM, TOKEN_2022_PROGRAM)
    }
    if accounts[r.authority] != wallet:
        raise refuse(f"Jupiter {r.name} spends for {accounts[r.authority]}, not the wallet")
    if owned.get(accounts[r.source]) != side.sell_mint:
        raise refuse(f"Jupiter {r.name} sells from {accounts[r.source]}, not the wallet's account")
    for i in r.dests:
        dest = accounts[i]
        if str(dest) != JUPITER_V6 and owned.get(dest) != side.buy_mint:
            raise refuse(f"Jupiter {r.name} pays {dest}, not the wallet's account")
    if r.mints is not None:
        sold, bought = (str(accounts[i]) for i in r.mints)
        if (sold, bought) != (side.sell_mint, side.buy_mint):
            raise refuse(f"Jupiter {r.name} trades {sold} for {bought}, not the request's mints")
    for i in r.token_programs:
        if str(accounts[i]) not in (TOKEN_PROGRAM, TOKEN_2022_PROGRAM):
            raise refuse(f"Jupiter {r.name} names {accounts[i]} as a token program")
    if r.event_authority is not None and str(accounts[r.event_authority]) != (
        JUPITER_EVENT_AUTHORITY
    ):
        raise refuse(f"Jupiter {r.name} names {accounts[r.event_authority]} as event authority")
    if in_amount != side.amount_in or platform_fee_bps != 0 or positive_slippage_bps != 0:
        raise refuse(
            f"Jupiter {r.name} takes {in_amount} (fee {platform_fee_bps} bps, positive-slippage "
            f"fee {positive_slippage_bps} bps), not {side.amount_in}"
        )
    if slippage_bps > 10_000:
        raise refuse(f"Jupiter {r.name} allows {slippage_bps} bps of slippage")
    f.sent += in_amount
    f.received += quoted_out * (10_000 - slippage_bps) // 10_000


JUPITER_PROGRAMS: Mapping[str, ProgramCheck] = {JUPITER_V6: _route}
"""The programs a Jupiter swap may invoke besides the family's, with their decoders."""
