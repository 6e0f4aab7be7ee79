"""1inch adapter: parsers on recorded real-shaped answers, transport faults, and end-to-end
quote -> build -> check -> sign -> send on the local worlds through the local stand-in."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_abi import decode, encode
from eth_account import Account

from rebalancer.chains.registry import Registry
from rebalancer.core.errors import AggregatorError, SuspiciousResponseError
from rebalancer.dex.base import (
    AllowanceError,
    BuiltSwap,
    EvmTx,
    NoRouteError,
    SwapPolicy,
    SwapRequest,
)
from rebalancer.dex.oneinch import OneInch
from rebalancer.dex.oneinch_checks import check_oneinch_swap
from rebalancer.localnet.worlds import demo_evm_address, demo_evm_key
from tests.conftest import rpc_call

REG = Registry.load()
WALLET = demo_evm_address()
FIX = Path(__file__).parents[2] / "fixtures" / "aggregators" / "1inch"


def recorded(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIX / name).read_text())
    return data


def request(chain: str, sell: str, buy: str, amount: int, slippage_bps: int = 50) -> SwapRequest:
    s, b = REG.by_symbol(chain, sell), REG.by_symbol(chain, buy)
    assert s is not None and b is not None
    return SwapRequest(chain, REG.chains[chain].chain_id, WALLET, s, b, amount, slippage_bps)


def mock(handler: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


# -- parsers and transport --------------------------------------------------------------------
async def test_recorded_quote_and_errors_parse() -> None:
    answers = {
        "/1/quote": recorded("quote.json"),
        "/1/approve/allowance": {"status": 200, "body": {"allowance": "0"}},
        "/1/approve/transaction": recorded("approve_transaction.json"),
        "/1/swap": recorded("error_allowance.json"),
    }
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        a = answers[req.url.path.removeprefix("/swap/v6.0")]
        return httpx.Response(a["status"], json=a["body"])

    async with mock(handler) as client:
        api = OneInch(client, base_url="https://api.1inch.example/swap/v6.0", api_key="KEY123")
        q = await api.quote(request("ethereum", "USDC", "WETH", 10_000 * 10**6))
        assert q.expected_out == 3122657226025646400 and q.route == ("UNISWAP_V3",)
        approval = await api.approval(q.request)
        assert approval is not None and approval.to.lower() == str(q.request.sell.address).lower()
        with pytest.raises(AllowanceError, match="Not enough allowance"):
            await api.build(q)
    assert all(r.headers["Authorization"] == "Bearer KEY123" for r in seen)
    assert "KEY123" not in repr(api)


async def test_recorded_swap_parses() -> None:
    body = recorded("swap.json")["body"]
    from rebalancer.dex.oneinch import SwapResponse

    s = SwapResponse.model_validate(body)
    assert s.tx.from_ == WALLET.lower() and s.tx.value == 10**18 and s.tx.gas == 302095


@pytest.mark.parametrize(
    ("status", "content", "ctype", "error", "message"),
    [
        (400, b"<html><body>Bad gateway</body></html>", "text/html", AggregatorError, "non-JSON"),
        (200, b"{not json", "application/json", AggregatorError, "non-JSON"),
        (200, b'{"gas": 1}', "application/json", AggregatorError, "dstAmount: Field required"),
        (200, b'{"dstAmount": 5}', "application/json", AggregatorError, "decimal string"),
        (
            400,
            json.dumps(recorded("error_liquidity.json")["body"]).encode(),
            "application/json",
            NoRouteError,
            "insufficient liquidity",
        ),
        (
            401,
            b'{"error":"Unauthorized","statusCode":401}',
            "application/json",
            AggregatorError,
            "refused the API key",
        ),
    ],
)
async def test_bad_answers_are_clear_errors(
    status: int, content: bytes, ctype: str, error: type[Exception], message: str
) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=content, headers={"Content-Type": ctype})

    async with mock(handler) as client:
        api = OneInch(client, base_url="https://api.1inch.example/swap/v6.0", api_key="K")
        with pytest.raises(error, match=message):
            await api.quote(request("ethereum", "USDC", "WETH", 10**6))


async def test_429_storm_gives_up_and_429_then_ok_retries() -> None:
    def storm(req: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "0"}, json={"error": "Too Many"})

    async with mock(storm) as client:
        api = OneInch(client, base_url="https://x/swap/v6.0", retries=3, backoff=0.001)
        with pytest.raises(AggregatorError, match="failed after 4 tries: HTTP 429"):
            await api.quote(request("ethereum", "USDC", "WETH", 10**6))

    calls = iter([429, 429, 200])

    def flaky(req: httpx.Request) -> httpx.Response:
        code = next(calls)
        if code == 429:
            return httpx.Response(429, headers={"Retry-After": "0.01"})
        return httpx.Response(200, json={"dstAmount": "7"})

    async with mock(flaky) as client:
        api = OneInch(client, base_url="https://x/swap/v6.0", backoff=0.001)
        assert (await api.quote(request("ethereum", "USDC", "WETH", 10**6))).expected_out == 7


# -- end to end on the local worlds -----------------------------------------------------------
def sign_and_send(url: str, tx: EvmTx) -> dict[str, Any]:
    nonce = int(rpc_call(url, "eth_getTransactionCount", tx.sender, "pending"), 16)
    signed = Account.sign_transaction(
        {
            "chainId": tx.chain_id,
            "nonce": nonce,
            "to": tx.to,
            "data": tx.data,
            "value": tx.value,
            "gas": tx.gas,
            "gasPrice": tx.gas_price,
        },
        demo_evm_key(),
    )
    tx_hash = rpc_call(url, "eth_sendRawTransaction", "0x" + signed.raw_transaction.hex())
    receipt: dict[str, Any] = rpc_call(url, "eth_getTransactionReceipt", tx_hash)
    return receipt


def holding(url: str, token: Any) -> int:
    if token.address is None:
        return int(rpc_call(url, "eth_getBalance", WALLET, "latest"), 16)
    data = "0x70a08231" + "00" * 12 + WALLET[2:].lower()
    return int(rpc_call(url, "eth_call", {"to": token.address, "data": data}, "latest"), 16)


@pytest.fixture
def oneinch_url(evm_isolated: dict[str, Any]) -> str:
    return str(evm_isolated["1inch"]["url"])


@pytest.mark.parametrize(
    ("chain", "sell", "buy", "amount"),
    [
        ("ethereum", "ETH", "WBTC", 10**18),
        ("ethereum", "USDC", "WETH", 2_000 * 10**6),
        ("ethereum", "LINK", "WBTC", 100 * 10**18),
        ("avalanche", "AVAX", "BTC.b", 50 * 10**18),
        ("avalanche", "USDC", "AVAX", 500 * 10**6),
    ],
)
async def test_swap_end_to_end(
    evm_isolated: dict[str, Any], oneinch_url: str, chain: str, sell: str, buy: str, amount: int
) -> None:
    node = evm_isolated[chain]["url"]
    req = request(chain, sell, buy, amount)
    async with httpx.AsyncClient() as client:
        api = OneInch(client, base_url=oneinch_url, api_key="local")
        q = await api.quote(req)
        built = await api.build(q)
        checked = api.check(built, SwapPolicy(max_slippage_bps=100))
        before = holding(node, req.buy)
        if built.approval is not None:
            assert sign_and_send(node, built.approval)["status"] == "0x1"
            assert await api.approval(req) is None  # the exact amount is now allowed
        receipt = sign_and_send(node, built.tx)
        assert receipt["status"] == "0x1"
        gained = holding(node, req.buy) - before
        if req.buy.address is None:
            gained += int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16)
        assert gained >= checked.min_out > 0
        assert checked.min_out >= q.expected_out * 99 // 100


def _retarget(built: BuiltSwap, **desc_changes: Any) -> BuiltSwap:
    """The same swap with fields of its SwapDescription replaced (a hostile answer)."""
    assert isinstance(built.tx, EvmTx)
    executor, desc, data = decode(
        ["address", "(address,address,address,address,uint256,uint256,uint256)", "bytes"],
        built.tx.data[4:],
    )
    names = ["src", "dst", "src_receiver", "dst_receiver", "amount", "min_return", "flags"]
    fields = dict(zip(names, desc, strict=True)) | desc_changes
    new = built.tx.data[:4] + encode(
        ["address", "(address,address,address,address,uint256,uint256,uint256)", "bytes"],
        [executor, tuple(fields[n] for n in names), data],
    )
    return dataclasses.replace(built, tx=dataclasses.replace(built.tx, data=new))


async def test_hostile_answers_are_refused(evm_isolated: dict[str, Any], oneinch_url: str) -> None:
    req = request("ethereum", "ETH", "WBTC", 10**18)
    async with httpx.AsyncClient() as client:
        api = OneInch(client, base_url=oneinch_url, api_key="local")
        built = await api.build(await api.quote(req))
    policy = SwapPolicy(max_slippage_bps=100)
    check_oneinch_swap(built, policy)
    tx = built.tx
    assert isinstance(tx, EvmTx)
    attacker = "0x000000000000000000000000000000000000dEaD"
    hostile = {
        "unknown router": dataclasses.replace(built, tx=dataclasses.replace(tx, to=attacker)),
        "not the wallet": dataclasses.replace(built, tx=dataclasses.replace(tx, sender=attacker)),
        "value": dataclasses.replace(built, tx=dataclasses.replace(tx, value=2 * 10**18)),
        "chain id": dataclasses.replace(built, tx=dataclasses.replace(tx, chain_id=43114)),
        "method": dataclasses.replace(built, tx=dataclasses.replace(tx, data=b"\x83\x80\x0a\x8e")),
        "receiver": _retarget(built, dst_receiver=attacker),
        "sells": _retarget(built, src="0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"),
        "buys": _retarget(built, dst="0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"),
        "amount": _retarget(built, amount=10**19),
        "minReturn is 0": _retarget(built, min_return=0),
        "below the quote": _retarget(built, min_return=built.quote.expected_out // 2),
        "partial fill": _retarget(built, flags=1),
    }
    for what, answer in hostile.items():
        with pytest.raises(SuspiciousResponseError) as err:
            check_oneinch_swap(answer, policy)
        assert err.value.exit_code == 3, what


async def test_unlimited_approval_is_refused_unless_allowed(
    evm_isolated: dict[str, Any], oneinch_url: str
) -> None:
    req = request("ethereum", "USDC", "WETH", 1_000 * 10**6)
    async with httpx.AsyncClient() as client:
        api = OneInch(client, base_url=oneinch_url, api_key="local")
        built = await api.build(await api.quote(req))
        unlimited = await api.approval(req, unlimited=True)
    assert built.approval is not None and unlimited is not None
    hostile = dataclasses.replace(built, approval=unlimited)
    with pytest.raises(SuspiciousResponseError, match="not exactly"):
        check_oneinch_swap(hostile, SwapPolicy())
    check_oneinch_swap(hostile, SwapPolicy(unlimited_approval=True))


async def test_stand_in_speaks_1inch_errors(oneinch_url: str) -> None:
    async with httpx.AsyncClient() as client:
        api = OneInch(client, base_url=oneinch_url)  # no key
        with pytest.raises(AggregatorError, match="refused the API key"):
            await api.quote(request("ethereum", "USDC", "WETH", 10**6))
        api = OneInch(client, base_url=oneinch_url, api_key="local")
        with pytest.raises(AggregatorError, match="must be different"):
            await api.quote(request("ethereum", "USDC", "USDC", 10**6))
        unknown = dataclasses.replace(
            request("ethereum", "USDC", "WETH", 1).sell,
            address="0x00000000000000000000000000000000DeaDBeef",
        )
        req = dataclasses.replace(request("ethereum", "USDC", "WETH", 10**6), sell=unknown)
        with pytest.raises(NoRouteError, match="Cannot sync token"):
            await api.quote(req)
