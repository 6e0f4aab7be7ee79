"""Jupiter Swap API v2 answers (``/build``, ``/order``, ``/execute``) on recorded real-shaped
answers: what the adapter will compile from, parsed strictly where money is."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from rebalancer.dex.jupiter_v2 import BuildResponse, ExecuteResponse, OrderResponse

FIX = Path(__file__).parents[2] / "fixtures" / "aggregators" / "jupiter"


def recorded(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIX / name).read_text())
    return data


def test_build_answer_parses_into_instructions_tables_and_blockhash() -> None:
    b = BuildResponse.model_validate(recorded("v2_build.json")["body"])
    assert (b.inAmount, b.outAmount, b.otherAmountThreshold) == (
        100_000_000,
        18_012_345,
        17_922_283,
    )
    assert b.swapInstruction.programId == "JUP6LkbZbjS1jKKwapdHNy74zcZ3tLUZoi5QNyVTaV4"
    assert [i.programId for i in b.instructions()][-1] == b.swapInstruction.programId
    assert b.addressesByLookupTableAddress is not None and len(b.addressesByLookupTableAddress) == 1
    assert b.blockhashWithMetadata is not None
    assert len(b.blockhashWithMetadata.base58) >= 32
    assert b.blockhashWithMetadata.lastValidBlockHeight == 279_000_150


@pytest.mark.parametrize(
    "path,value",
    [
        (("outAmount",), "12.5"),
        (("blockhashWithMetadata", "blockhash"), [1, 2]),
        (("swapInstruction", "data"), "not base64!"),
        (("swapInstruction",), None),
    ],
)
def test_build_answer_with_a_bad_money_field_is_refused(path: tuple[str, ...], value: Any) -> None:
    body = copy.deepcopy(recorded("v2_build.json")["body"])
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ValidationError):
        BuildResponse.model_validate(body)


def test_build_answer_without_tables_or_price_impact_parses() -> None:
    body = copy.deepcopy(recorded("v2_build.json")["body"])
    body["addressesByLookupTableAddress"] = None
    del body["priceImpactPct"]
    assert BuildResponse.model_validate(body).addressesByLookupTableAddress is None


def test_order_and_execute_answers_parse() -> None:
    o = OrderResponse.model_validate(recorded("v2_order.json")["body"])
    assert o.requestId and o.transaction == "AQID" and o.lastValidBlockHeight == 279_000_150
    empty = {**recorded("v2_order.json")["body"], "transaction": "", "lastValidBlockHeight": ""}
    assert OrderResponse.model_validate(empty).lastValidBlockHeight is None
    e = ExecuteResponse.model_validate(recorded("v2_execute.json")["body"])
    assert e.status == "Success" and e.signature


# -- compiling a /build answer, and its compute budget -------------------------------------------
TAKER = "GkwFnmMDvn3HGMpJpWBg8tgJxr3NxNvg3AXxvXVPbRGJ"
COMPUTE_BUDGET = "ComputeBudget111111111111111111111111111111"


def _ixs(raw: bytes) -> list[tuple[str, bytes]]:
    from solders.transaction import VersionedTransaction

    msg = VersionedTransaction.from_bytes(raw).message
    keys = msg.account_keys
    return [(str(keys[ix.program_id_index]), bytes(ix.data)) for ix in msg.instructions]


def test_a_build_answer_compiles_with_the_tools_own_compute_budget() -> None:
    from solders.signature import Signature
    from solders.transaction import VersionedTransaction

    from rebalancer.dex.jupiter_v2 import compile_build

    body = recorded("v2_build.json")["body"]
    tx = compile_build(body, TAKER, unit_limit=1_400_000, priority_cap_lamports=5_000)
    assert tx.own_budget_cap_lamports == 5_000
    assert tx.last_valid_block_height == body["blockhashWithMetadata"]["lastValidBlockHeight"]
    vtx = VersionedTransaction.from_bytes(tx.raw)
    assert str(vtx.message.account_keys[0]) == TAKER
    assert list(vtx.signatures) == [Signature.default()]
    ixs = _ixs(tx.raw)
    # the tool's placeholders first; Jupiter's own unit price (1,000,000) is left out
    assert ixs[0] == (COMPUTE_BUDGET, b"\x02" + (1_400_000).to_bytes(4, "little"))
    assert ixs[1] == (COMPUTE_BUDGET, b"\x03" + bytes(8))
    assert [p for p, _ in ixs].count(COMPUTE_BUDGET) == 2
    assert [p for p, _ in ixs[2:]] == [
        "ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL",
        "JUP6LkbZbjS1jKKwapdHNy74zcZ3tLUZoi5QNyVTaV4",
    ]


def test_finalizing_the_budget_changes_only_the_two_placeholders() -> None:
    from rebalancer.chains.solana_budget import placeholder_limit, unit_price, with_budget
    from rebalancer.dex.jupiter_v2 import compile_build

    tx = compile_build(
        recorded("v2_build.json")["body"], TAKER, unit_limit=1_400_000, priority_cap_lamports=1
    )
    done = with_budget(tx, 12_345, 678)
    assert placeholder_limit(tx) == 1_400_000 and placeholder_limit(done) == 12_345
    before, after = _ixs(tx.raw), _ixs(done.raw)
    assert after[0][1] == b"\x02" + (12_345).to_bytes(4, "little")
    assert after[1][1] == b"\x03" + (678).to_bytes(8, "little")
    assert after[2:] == before[2:] and len(done.raw) == len(tx.raw)
    assert unit_price([0, 0, 5, 100, 7]) == 7 and unit_price([0, 0]) == 0


def test_a_build_answer_without_a_blockhash_is_an_aggregator_error() -> None:
    from rebalancer.core.errors import AggregatorError
    from rebalancer.dex.jupiter_v2 import compile_build

    body = copy.deepcopy(recorded("v2_build.json")["body"])
    body["blockhashWithMetadata"] = None
    with pytest.raises(AggregatorError, match="blockhashWithMetadata"):
        compile_build(body, TAKER, unit_limit=1_400_000, priority_cap_lamports=1)
    body = copy.deepcopy(recorded("v2_build.json")["body"])
    body["swapInstruction"]["programId"] = "not a key"
    with pytest.raises(AggregatorError, match="do not compile"):
        compile_build(body, TAKER, unit_limit=1_400_000, priority_cap_lamports=1)
