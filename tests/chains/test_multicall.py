"""The hand-rolled aggregate3 codec must agree with eth_abi byte for byte."""

from __future__ import annotations

import pytest
from eth_abi import decode, encode
from hypothesis import given
from hypothesis import strategies as st

from rebalancer.chains.multicall import (
    AGGREGATE3,
    DecodeError,
    decode_aggregate3,
    encode_aggregate3,
    uint_result,
)

addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())


@given(st.lists(st.tuples(addresses, st.binary(max_size=80)), max_size=20))
def test_encode_matches_eth_abi(calls: list[tuple[str, bytes]]) -> None:
    ours = encode_aggregate3(calls)
    ref = AGGREGATE3 + encode(["(address,bool,bytes)[]"], [[(a, True, d) for a, d in calls]])
    assert ours == ref


@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=70)), max_size=20))
def test_decode_matches_eth_abi(results: list[tuple[bool, bytes]]) -> None:
    payload = encode(["(bool,bytes)[]"], [results])
    assert decode_aggregate3(payload, len(results)) == results
    assert decode(["(bool,bytes)[]"], payload)[0] == tuple(results)


def test_decode_refuses_lies() -> None:
    payload = encode(["(bool,bytes)[]"], [[(True, b"\x00" * 32)]])
    with pytest.raises(DecodeError, match="1 results for 2 calls"):
        decode_aggregate3(payload, 2)
    with pytest.raises(DecodeError):
        decode_aggregate3(payload[:-40], 1)
    with pytest.raises(DecodeError):
        decode_aggregate3(b"\xff" * 32, 1)


def test_uint_result() -> None:
    assert uint_result(True, (5).to_bytes(32, "big")) == 5
    assert uint_result(False, (5).to_bytes(32, "big")) is None
    assert uint_result(True, b"") is None
