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
