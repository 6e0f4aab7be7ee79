"""Jupiter v6 ``route_v2`` / ``shared_accounts_route_v2`` (what ``/build`` answers) held to
the same checks as v1's routes, on the recorded ``/build`` answer and tampered copies of it."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.token.associated import get_associated_token_address

from rebalancer.chains.registry import Registry
from rebalancer.core.errors import RefusedError, SuspiciousResponseError
from rebalancer.core.types import Token
from rebalancer.dex.base import BuiltSwap, SwapPolicy, SwapRequest
from rebalancer.dex.jupiter import JupiterQuote
from rebalancer.dex.jupiter_checks import check_jupiter_swap
from rebalancer.dex.jupiter_v2 import compile_build

FIX = Path(__file__).parents[2] / "fixtures" / "aggregators" / "jupiter"
REG = Registry.load()
TAKER = "GkwFnmMDvn3HGMpJpWBg8tgJxr3NxNvg3AXxvXVPbRGJ"
USDC = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
ATTACKER = Keypair.from_seed(hashlib.sha256(b"jupiter v2 test attacker").digest()).pubkey()
ROUTE_V2 = hashlib.sha256(b"global:route_v2").digest()[:8]


def body() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIX / "v2_build.json").read_text())["body"]
    return copy.deepcopy(data)


def token(symbol: str) -> Token:
    t = REG.by_symbol("solana", symbol)
    assert t is not None
    return t


def built(b: dict[str, Any], amount: int = 100_000_000) -> BuiltSwap:
    """The wSOL -> USDC trade the recorded answer was asked for, its transaction compiled."""
    req = SwapRequest("solana", None, TAKER, token("wSOL"), token("USDC"), amount, 50)
    quote = JupiterQuote(
        request=req,
        expected_out=18_012_345,
        response=b,
        other_amount_threshold=17_922_283,
        wrap_sol=False,
    )
    tx = compile_build(b, TAKER, unit_limit=400_000, priority_cap_lamports=100_000)
    return BuiltSwap(quote=quote, tx=tx, expected_out=18_012_345)


def check(b: dict[str, Any], amount: int = 100_000_000) -> int:
    return check_jupiter_swap(
        built(b, amount), SwapPolicy(), b["addressesByLookupTableAddress"]
    ).min_out


def args(b: dict[str, Any]) -> tuple[int, ...]:
    return struct.unpack_from("<QQHHH", base64.b64decode(b["swapInstruction"]["data"]), 8)


def with_args(b: dict[str, Any], **changes: int) -> dict[str, Any]:
    names = ("in_amount", "quoted_out", "slippage_bps", "platform_fee_bps", "positive_bps")
    values = dict(zip(names, args(b), strict=True)) | changes
    data = base64.b64decode(b["swapInstruction"]["data"])
    data = data[:8] + struct.pack("<QQHHH", *values.values()) + data[30:]
    b["swapInstruction"]["data"] = base64.b64encode(data).decode()
    return b


def with_account(b: dict[str, Any], i: int, key: str) -> dict[str, Any]:
    b["swapInstruction"]["accounts"][i]["pubkey"] = key
    return b


def test_the_recorded_route_v2_is_the_verified_layout_and_passes() -> None:
    b = body()
    data = base64.b64decode(b["swapInstruction"]["data"])
    assert data[:8] == ROUTE_V2 == bytes([187, 100, 250, 204, 49, 196, 175, 20])
    assert args(b) == (100_000_000, 18_012_345, 50, 0, 0)
    assert check(b) == 17_922_283


def test_shared_accounts_route_v2_passes() -> None:
    """The same trade as ``shared_accounts_route_v2`` (an ``id u8`` before the scalars)."""
    b = body()
    jup = b["swapInstruction"]["accounts"]
    data = base64.b64decode(b["swapInstruction"]["data"])
    # NOTE: the program's own accounts (its authority and the accounts it routes through) are
    # the program's business, as in v1: any key here; only the wallet's side is checked
    program_authority = str(Keypair.from_seed(bytes(32)).pubkey())
    via = {
        m: str(
            get_associated_token_address(
                Pubkey.from_string(program_authority), Pubkey.from_string(m)
            )
        )
        for m in (jup[3]["pubkey"], jup[4]["pubkey"])
    }
    metas = [
        {"pubkey": program_authority, "isSigner": False, "isWritable": False},
        jup[0],  # user_transfer_authority
        jup[1],  # source_token_account
        {"pubkey": via[jup[3]["pubkey"]], "isSigner": False, "isWritable": True},
        {"pubkey": via[jup[4]["pubkey"]], "isSigner": False, "isWritable": True},
        jup[2],  # destination_token_account
        jup[3],  # source_mint
        jup[4],  # destination_mint
        jup[5],
        jup[6],  # the two token programs
        jup[8],  # event_authority
        jup[9],  # program
        *jup[10:],
    ]
    disc = hashlib.sha256(b"global:shared_accounts_route_v2").digest()[:8]
    assert disc == bytes([209, 152, 83, 147, 124, 254, 216, 233])
    b["swapInstruction"] = {
        "programId": b["swapInstruction"]["programId"],
        "accounts": metas,
        "data": base64.b64encode(disc + b"\x03" + data[8:]).decode(),
    }
    assert check(b) == 17_922_283
    b["swapInstruction"]["accounts"][5]["pubkey"] = str(
        get_associated_token_address(ATTACKER, Pubkey.from_string(USDC))
    )
    with pytest.raises(SuspiciousResponseError, match="pays"):
        check(b)


def _unsigned(b: dict[str, Any]) -> dict[str, Any]:
    b["swapInstruction"]["accounts"][0]["isSigner"] = False
    return b


def _exact_out() -> dict[str, Any]:
    b = body()
    data = base64.b64decode(b["swapInstruction"]["data"])
    disc = hashlib.sha256(b"global:exact_out_route_v2").digest()[:8]
    b["swapInstruction"]["data"] = base64.b64encode(disc + data[8:]).decode()
    return b


@pytest.mark.parametrize(
    "case,tamper,match",
    [
        (
            "other destination account",
            lambda b: with_account(
                b, 2, str(get_associated_token_address(ATTACKER, Pubkey.from_string(USDC)))
            ),
            "pays",
        ),
        (
            "a second destination",
            lambda b: with_account(
                b, 7, str(get_associated_token_address(ATTACKER, Pubkey.from_string(USDC)))
            ),
            "pays",
        ),
        ("smaller min out", lambda b: with_args(b, quoted_out=17_000_000), "less than min_out"),
        ("looser slippage", lambda b: with_args(b, slippage_bps=500), "less than min_out"),
        ("different input amount", lambda b: with_args(b, in_amount=200_000_000), "takes"),
        ("foreign authority", lambda b: _unsigned(with_account(b, 0, str(ATTACKER))), "spends for"),
        ("foreign signing authority", lambda b: with_account(b, 0, str(ATTACKER)), "extra signer"),
        ("foreign source", lambda b: with_account(b, 1, str(ATTACKER)), "sells from"),
        ("other bought mint", lambda b: with_account(b, 4, str(ATTACKER)), "trades"),
        ("a platform fee", lambda b: with_args(b, platform_fee_bps=20), "fee 20 bps"),
        ("a positive-slippage fee", lambda b: with_args(b, positive_bps=50), "positive-slip"),
        ("a foreign token program", lambda b: with_account(b, 6, str(ATTACKER)), "token program"),
        ("a foreign event authority", lambda b: with_account(b, 8, str(ATTACKER)), "event"),
        ("an ExactOut route", lambda b: _exact_out(), "not an ExactIn route"),
    ],
)
def test_tampered_route_v2_is_refused(case: str, tamper: Any, match: str) -> None:
    with pytest.raises(SuspiciousResponseError, match=match) as err:
        check(tamper(body()))
    assert isinstance(err.value, RefusedError) and err.value.exit_code == 3


def test_a_route_v2_for_another_amount_than_the_request_is_refused() -> None:
    with pytest.raises(SuspiciousResponseError, match="takes 100000000"):
        check(body(), amount=50_000_000)


def test_short_route_v2_data_is_refused() -> None:
    b = body()
    data = base64.b64decode(b["swapInstruction"]["data"])
    b["swapInstruction"]["data"] = base64.b64encode(data[:20]).decode()
    with pytest.raises(SuspiciousResponseError, match="too short"):
        check(b)
    b["swapInstruction"]["data"] = base64.b64encode(data[:30] + bytes(4)).decode()
    with pytest.raises(SuspiciousResponseError, match="empty route plan"):
        check(b)
