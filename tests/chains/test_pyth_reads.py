"""Pyth price accounts read in the Solana balance batch, on a real local node: the good ones
parsed (price, confidence, exponent, publish time), the bad ones (wrong owner, wrong feed id,
too short, partially verified, non-positive) named with their reason; one request in all."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from rebalancer.chains.anvil import NodeProcess
from rebalancer.chains.oracles import (
    PRICE_UPDATE_V2_DISCRIMINATOR,
    OracleKind,
    encode_price_update,
    load_feeds,
)
from rebalancer.chains.registry import Registry
from rebalancer.chains.solana import SolanaChain
from rebalancer.localnet.pyth_fixtures import build_pyth_snapshot
from rebalancer.localnet.solana_fixtures import demo_keypair
from tests.solana_node_fixture import running_solana_node

REGISTRY = Registry.load()
PYTH = {f.asset: f for f in load_feeds() if f.kind == OracleKind.PYTH}
PUBLISHED = 1_790_000_000


def entry(data: bytes, owner: str) -> dict[str, object]:
    return {
        "data": [base64.b64encode(data).decode(), "base64"],
        "executable": False,
        "lamports": 10**7,
        "owner": owner,
        "rentEpoch": 0,
        "space": len(data),
    }


@pytest.fixture(scope="module")
def node_with_bad_feeds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    tmp = tmp_path_factory.mktemp("pyth")
    snap = build_pyth_snapshot(PUBLISHED, 350_000_000)
    accounts = snap["accounts"]
    good = base64.b64decode(accounts[PYTH["BTC"].address]["data"][0])
    receiver = accounts[PYTH["BTC"].address]["owner"]
    # ETH: someone else's account at the right address
    accounts[PYTH["ETH"].address]["owner"] = "11111111111111111111111111111111"
    # USDC: the account holds another feed (BTC's id)
    usdc = PYTH["USDC"]
    other = encode_price_update(
        PYTH["BTC"].feed_id, 10**8, 1, -8, PUBLISHED, write_authority=b"\0" * 32, posted_slot=1
    )
    accounts[usdc.address] = entry(other, receiver)
    # USDT: too short to parse
    accounts[PYTH["USDT"].address] = entry(good[:100], receiver)
    # JUP: a negative price
    neg = encode_price_update(
        PYTH["JUP"].feed_id, -5, 1, -8, PUBLISHED, write_authority=b"\0" * 32, posted_slot=1
    )
    accounts[PYTH["JUP"].address] = entry(neg, receiver)
    # BONK: only partially verified (tag 0 + number of signatures)
    full = base64.b64decode(accounts[PYTH["BONK"].address]["data"][0])
    partial = full[:40] + b"\x00\x05" + full[41:133]
    accounts[PYTH["BONK"].address] = entry(partial, receiver)
    assert partial[:8] == PRICE_UPDATE_V2_DISCRIMINATOR
    path = tmp / "bad-pyth.json"
    path.write_text(json.dumps(snap))
    with running_solana_node(tmp, "--snapshot", str(path), name="solana-pyth") as node:
        yield node


async def test_pyth_accounts_ride_in_the_balance_batch(node_with_bad_feeds: NodeProcess) -> None:
    sent: list[httpx.Request] = []

    async def hook(request: httpx.Request) -> None:
        sent.append(request)

    async with httpx.AsyncClient(event_hooks={"request": [hook]}) as client:
        chain = SolanaChain(REGISTRY.chains["solana"], node_with_bad_feeds.url, client)
        got = await chain.balances(
            [str(demo_keypair().pubkey())], REGISTRY.tokens_on("solana"), list(PYTH.values())
        )
    assert len(sent) == 1  # balances and oracles: one HTTP request
    assert got.holdings
    by = {r.feed.asset: r for r in got.oracles}
    assert by["SOL"].usd == Decimal(180) and by["SOL"].updated_at == PUBLISHED
    assert by["SOL"].conf_usd == Decimal("0.09") and by["SOL"].reason is None
    assert by["BTC"].usd == Decimal(95000)
    assert by["ETH"].usd is None and "is owned by 11111111111111111111111111111111" in str(
        by["ETH"].reason
    )
    assert "holds feed e62df6c8b4a85fe1" in str(by["USDC"].reason)
    assert "100 bytes, a PriceUpdateV2 has at least 133" in str(by["USDT"].reason)
    assert by["JUP"].reason == "price -5 <= 0"
    assert by["BONK"].reason == "update only partially verified"
    for asset in ("ETH", "USDC", "USDT"):
        assert PYTH[asset].address in str(by[asset].reason)
