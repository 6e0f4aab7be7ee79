"""The local worlds carry the oracles: Chainlink-compatible feeds at the real proxy addresses on
both anvil worlds, Pyth PriceUpdateV2 accounts at the real addresses on the Solana node, all at
the snapshot prices the pools were seeded at."""

from __future__ import annotations

import base64
import time
from decimal import Decimal
from typing import Any

import httpx
import pytest

from rebalancer.chains.oracles import (
    PYTH_RECEIVER,
    OracleKind,
    decode_round,
    feeds_on,
    load_feeds,
    parse_price_update,
)
from rebalancer.core.errors import ChainError
from rebalancer.localnet import pyth_fixtures
from rebalancer.localnet.rpc import Rpc
from rebalancer.localnet.worlds import PRICES

REAL = {
    ("ethereum", "ETH"): "0x5f4eC3Df9cbd43714FE2740f5E3616155c5b8419",
    ("ethereum", "BTC"): "0xF4030086522a5bEEa4988F8cA5B36dbC97BeE88c",
    ("avalanche", "AVAX"): "0x0A77230d17318075983913bC2145DB16C7366156",
    ("solana", "SOL"): "7UVimffxr9ow1uXYxsr4LHAcV58mLzhmwaeKvJ1pjLiE",
}


def test_registry_has_the_issue_feeds_and_every_feed_a_source() -> None:
    feeds = {(f.chain, f.asset): f.address for f in load_feeds()}
    for key, address in REAL.items():
        assert feeds[key] == address
    held = {"BTC", "ETH", "SOL", "AVAX", "LINK", "UNI", "AAVE", "JUP", "BONK", "USDC", "USDT"}
    assert {f.asset for f in load_feeds()} == held


@pytest.mark.parametrize("chain", ["ethereum", "avalanche"])
def test_chainlink_feeds_answer_at_real_addresses(
    chain: str, evm_worlds: dict[str, Any], world_info: dict[str, Any]
) -> None:
    rpc = Rpc(evm_worlds[chain]["url"])
    try:
        for feed in feeds_on(chain):
            assert world_info[chain]["oracles"][feed.asset] == feed.address
            dec = int.from_bytes(rpc.read(feed.address, "decimals()"), "big")
            assert dec == feed.decimals == 8
            assert feed.description.encode() in rpc.read(feed.address, "description()")
            assert int.from_bytes(rpc.read(feed.address, "version()"), "big") == 4
            latest = decode_round(rpc.read(feed.address, "latestRoundData()"))
            assert latest is not None
            round_id, answer, _started, updated = latest
            assert Decimal(answer).scaleb(-dec) == PRICES[feed.asset]
            assert abs(updated - time.time()) < 3600  # `localnet up` dated it now
            assert round_id >> 64 == 1  # phase 1, as a proxy numbers them
            # a few past rounds, walked back with getRoundData
            for back in range(1, 5):
                past = decode_round(rpc.read(feed.address, "getRoundData(uint80)", round_id - back))
                assert past is not None and past[0] == round_id - back and past[1] > 0
                assert past[3] < updated
            with pytest.raises(ChainError, match="No data present"):
                rpc.read(feed.address, "getRoundData(uint80)", round_id + 1)
    finally:
        rpc.close()


def test_pyth_accounts_at_real_addresses_with_real_owner_and_layout(
    evm_worlds: dict[str, Any],
) -> None:
    url = evm_worlds["solana"]["url"]
    feeds = [f for f in load_feeds() if f.kind == OracleKind.PYTH]
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "getMultipleAccounts",
        "params": [[f.address for f in feeds], {"encoding": "base64"}],
    }
    accounts = httpx.post(url, json=body).json()["result"]["value"]
    for feed, account in zip(feeds, accounts, strict=True):
        assert account["owner"] == PYTH_RECEIVER
        data = base64.b64decode(account["data"][0])
        assert len(data) == 134
        update = parse_price_update(data)
        assert update.full and update.feed_id == feed.feed_id
        assert update.exponent == feed.exponent
        assert Decimal(update.price).scaleb(update.exponent) == PRICES[feed.asset]
        assert 0 < update.conf < update.price
        assert abs(update.publish_time - time.time()) < 3600


def test_pyth_fixture_rebuilds_byte_identically() -> None:
    assert pyth_fixtures.main(["--check"]) == 0
