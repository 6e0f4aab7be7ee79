"""1inch answers beyond the first recordings: ``tx.gas`` 0 with ``disableEstimate=true`` and
``/healthcheck``, on recorded real-shaped answers and on the local stand-in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from rebalancer.dex.oneinch import SwapResponse
from rebalancer.localnet.worlds import demo_evm_address

FIX = Path(__file__).parents[2] / "fixtures" / "aggregators" / "1inch"
WALLET = demo_evm_address()
HEADERS = {"Authorization": "Bearer local"}
USDC = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
WETH = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"


def recorded(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIX / name).read_text())
    return data


def test_recorded_disable_estimate_and_healthcheck_parse() -> None:
    s = SwapResponse.model_validate(recorded("swap_disable_estimate.json")["body"])
    assert s.tx.gas == 0 and s.tx.value == 10**18
    estimated = SwapResponse.model_validate(recorded("swap.json")["body"])
    assert estimated.tx.gas > 0
    assert recorded("healthcheck.json")["body"] == {"status": "OK"}


def test_stand_in_gas_is_zero_without_an_estimate(evm_worlds: dict[str, Any]) -> None:
    base = str(evm_worlds["1inch"]["url"])
    params = {
        "src": USDC,
        "dst": WETH,
        "amount": str(1_000 * 10**6),
        "from": WALLET,
        "origin": WALLET,
        "slippage": "1",
    }
    r = httpx.get(
        f"{base}/1/swap", params={**params, "disableEstimate": "true"}, headers=HEADERS, timeout=30
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) >= set(recorded("swap_disable_estimate.json")["body"])
    assert set(body["tx"]) == set(recorded("swap_disable_estimate.json")["body"]["tx"])
    assert body["tx"]["gas"] == 0 and isinstance(body["tx"]["gas"], int)
    assert SwapResponse.model_validate(body).tx.gas == 0


def test_stand_in_healthcheck(evm_worlds: dict[str, Any]) -> None:
    base = str(evm_worlds["1inch"]["url"])
    for chain in (1, 43114):
        r = httpx.get(f"{base}/{chain}/healthcheck", headers=HEADERS, timeout=10)
        assert r.status_code == 200 and r.json() == recorded("healthcheck.json")["body"]
    assert httpx.get(f"{base}/1/healthcheck", timeout=10).status_code == 401


async def test_an_unestimated_swap_gets_the_quotes_gas_plus_a_margin() -> None:
    """The adapter never hands on gas 0: the quote's figure plus 25% stands in until the
    engine's simulation measures the swap."""
    from rebalancer.chains.registry import Registry
    from rebalancer.dex.base import SwapRequest
    from rebalancer.dex.oneinch import OneInch

    answers = {
        "/1/quote": recorded("quote.json"),
        "/1/approve/allowance": {"status": 200, "body": {"allowance": "0"}},
        "/1/approve/transaction": recorded("approve_transaction.json"),
        "/1/swap": recorded("swap_disable_estimate.json"),
    }
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        a = answers[req.url.path.removeprefix("/swap/v6.0")]
        return httpx.Response(a["status"], json=a["body"])

    reg = Registry.load()
    sell, buy = reg.by_symbol("ethereum", "USDC"), reg.by_symbol("ethereum", "WETH")
    assert sell is not None and buy is not None
    req = SwapRequest("ethereum", 1, WALLET, sell, buy, 10_000 * 10**6, 50)
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        api = OneInch(client, base_url="https://api.1inch.example/swap/v6.0", api_key="K")
        q = await api.quote(req)
        built = await api.build(q)
    assert q.gas and built.tx.gas == q.gas * 125 // 100
    assert dict(seen[-1].url.params)["disableEstimate"] == "true"


def test_recorded_v6_1_swap_parses() -> None:
    rec = recorded("swap_v6_1.json")
    assert "/swap/v6.1/" in rec["request"] and "origin=" in rec["request"]
    assert SwapResponse.model_validate(rec["body"]).tx.gas > 0


def test_stand_in_v6_1_takes_slippage_or_min_return(evm_worlds: dict[str, Any]) -> None:
    base = str(evm_worlds["1inch"]["url"])
    assert base.endswith("/swap/v6.1")  # the manifest's base is the current version
    params = {
        "src": USDC,
        "dst": WETH,
        "amount": str(1_000 * 10**6),
        "from": WALLET,
        "origin": WALLET,
        "disableEstimate": "true",
    }

    def swap(root: str, **extra: str) -> httpx.Response:
        q = {**params, **extra}
        return httpx.get(f"{root}/1/swap", params=q, headers=HEADERS, timeout=30)

    assert swap(base, slippage="1").status_code == 200
    assert swap(base, slippage="1", minReturn="1").status_code == 400
    assert swap(base).status_code == 400
    ok = swap(base, minReturn="1")
    assert ok.status_code == 200, ok.text
    # v6.0 is still served, with its own rule: slippage required
    v60 = base.removesuffix("/swap/v6.1") + "/swap/v6.0"
    assert swap(v60, slippage="1").status_code == 200
    assert swap(v60, minReturn="1").status_code == 400
