"""The EVM adapter against real anvil worlds (no mocked chain), plus transport failures."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from eth_account import Account

from rebalancer.chains.evm import EvmChain
from rebalancer.chains.registry import Registry
from rebalancer.core.errors import ChainError, WrongChainError
from rebalancer.localnet.worlds import demo_evm_address
from tests.conftest import rpc_call

REG = Registry.load()


def counting_client() -> tuple[httpx.AsyncClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    async def hook(request: httpx.Request) -> None:
        seen.append(request)

    return httpx.AsyncClient(event_hooks={"request": [hook]}, timeout=10), seen


def balance_of(url: str, token: str, wallet: str) -> int:
    data = "0x70a08231" + "00" * 12 + wallet[2:].lower()
    return int(rpc_call(url, "eth_call", {"to": token, "data": data}, "latest"), 16)


@pytest.mark.parametrize("chain", ["ethereum", "avalanche"])
async def test_balances_match_the_node(evm_worlds: dict[str, Any], chain: str) -> None:
    url = evm_worlds[chain]["url"]
    wallet = demo_evm_address()
    tokens = REG.tokens_on(chain)
    client, seen = counting_client()
    async with client:
        got = await EvmChain(REG.chains[chain], url, client).balances([wallet], tokens)
    assert len(seen) == 1
    assert not got.failures
    assert len(got.holdings) == len(tokens)
    for h in got.holdings:
        if h.token.is_native:
            assert h.raw == int(rpc_call(url, "eth_getBalance", wallet, "latest"), 16)
        else:
            assert h.raw == balance_of(url, str(h.token.address), wallet)
    by_symbol = {h.token.symbol: h.raw for h in got.holdings}
    if chain == "ethereum":
        assert by_symbol["WBTC"] == 10_000_000 and by_symbol["ETH"] == 6 * 10**18
    else:
        assert by_symbol["AVAX"] == 400 * 10**18 and by_symbol["USDC"] == 2000 * 10**6


async def test_many_wallets_many_tokens_one_request_per_refresh(
    evm_isolated: dict[str, Any],
) -> None:
    url = evm_isolated["ethereum"]["url"]
    wallets = [Account.create().address for _ in range(20)]
    rpc_call(url, "anvil_setBalance", wallets[3], hex(12345))
    tokens = (REG.tokens_on("ethereum") * 7)[:50]
    client, seen = counting_client()
    async with client:
        adapter = EvmChain(REG.chains["ethereum"], url, client, chunk_size=300)
        first = await adapter.balances(wallets, tokens)
        second = await adapter.balances(wallets, tokens)
    assert len(seen) == 2  # one HTTP request per refresh, though 1000 calls span 4 chunks
    assert len(first.holdings) == 20 * 50 == len(second.holdings)
    assert [h for h in first.holdings if h.raw] == [
        h for h in first.holdings if h.wallet == wallets[3] and h.token.is_native
    ]


async def test_a_broken_token_does_not_spoil_the_rest(evm_isolated: dict[str, Any]) -> None:
    url = evm_isolated["ethereum"]["url"]
    reverting = "0x000000000000000000000000000000000000bEEF"
    rpc_call(url, "anvil_setCode", reverting, "0x60006000fd")  # PUSH 0 PUSH 0 REVERT
    not_a_contract = "0x000000000000000000000000000000000000dEaD"
    extra = Registry.load(
        [
            {
                "chain": "ethereum",
                "symbol": "BAD",
                "asset": "BAD",
                "class": "ALTS",
                "address": reverting,
                "decimals": 18,
            },
            {
                "chain": "ethereum",
                "symbol": "EOA",
                "asset": "EOA",
                "class": "ALTS",
                "address": not_a_contract,
                "decimals": 18,
            },
        ]
    )
    tokens = extra.tokens_on("ethereum")
    async with httpx.AsyncClient() as client:
        got = await EvmChain(extra.chains["ethereum"], url, client).balances(
            [demo_evm_address()], tokens
        )
    reasons = {f.token.symbol: f.reason for f in got.failures}
    assert reasons == {"BAD": "call reverted", "EOA": "not a token contract"}
    assert len(got.holdings) == len(tokens) - 2


async def test_wrong_chain_id_is_refused(evm_worlds: dict[str, Any]) -> None:
    url = evm_worlds["avalanche"]["url"]  # chain id 43114, configured as ethereum
    async with httpx.AsyncClient() as client:
        with pytest.raises(
            WrongChainError, match=r"is chain id 43114, but the config says ethereum"
        ):
            await EvmChain(REG.chains["ethereum"], url, client).balances(
                [demo_evm_address()], REG.tokens_on("ethereum")
            )


async def test_unreachable_node_names_it_without_secrets() -> None:
    url = "http://127.0.0.1:9/v2/SECRETKEY"
    async with httpx.AsyncClient() as client:
        adapter = EvmChain(REG.chains["ethereum"], url, client, retries=2, backoff=0.001)
        with pytest.raises(ChainError) as err:
            await adapter.balances([demo_evm_address()], REG.tokens_on("ethereum"))
    assert "ethereum node at http://127.0.0.1:9/*** failed after 3 tries" in str(err.value)
    assert "SECRET" not in str(err.value)


def _mock(handler: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


async def test_malformed_json_is_a_chain_error() -> None:
    async with _mock(lambda req: httpx.Response(200, content=b"{not json")) as client:
        adapter = EvmChain(REG.chains["ethereum"], "https://rpc.example/key", client)
        with pytest.raises(ChainError, match="malformed JSON"):
            await adapter.balances([demo_evm_address()], REG.tokens_on("ethereum"))


async def test_5xx_and_429_are_retried_then_succeed(evm_worlds: dict[str, Any]) -> None:
    real = evm_worlds["ethereum"]["url"]
    statuses = iter([503, 429])

    async def handler(request: httpx.Request) -> httpx.Response:
        code = next(statuses, None)
        if code is not None:
            return httpx.Response(code, headers={"Retry-After": "0"})
        async with httpx.AsyncClient() as inner:
            r = await inner.post(
                real, content=request.content, headers={"Content-Type": "application/json"}
            )
        return httpx.Response(200, content=r.content)

    async with _mock(handler) as client:
        adapter = EvmChain(REG.chains["ethereum"], "https://rpc.example", client, backoff=0.001)
        got = await adapter.balances([demo_evm_address()], REG.tokens_on("ethereum"))
    assert len(got.holdings) == len(REG.tokens_on("ethereum"))


async def test_node_error_and_lying_answers_are_chain_errors() -> None:
    def rpc_error(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json=[
                {"jsonrpc": "2.0", "id": 0, "result": "0x1"},
                {"jsonrpc": "2.0", "id": 1, "error": {"code": -32000, "message": "out of gas"}},
            ],
        )

    async with _mock(rpc_error) as client:
        adapter = EvmChain(REG.chains["ethereum"], "https://rpc.example", client)
        with pytest.raises(ChainError, match="eth_call failed: out of gas"):
            await adapter.balances([demo_evm_address()], REG.tokens_on("ethereum"))

    def empty(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json=[
                {"jsonrpc": "2.0", "id": 0, "result": "0x1"},
                {"jsonrpc": "2.0", "id": 1, "result": "0x"},
            ],
        )

    async with _mock(empty) as client:
        adapter = EvmChain(REG.chains["ethereum"], "https://rpc.example", client)
        with pytest.raises(ChainError, match="is Multicall3 deployed"):
            await adapter.balances([demo_evm_address()], REG.tokens_on("ethereum"))


async def test_single_call_on_the_same_provider(evm_worlds: dict[str, Any]) -> None:
    async with httpx.AsyncClient() as client:
        adapter = EvmChain(REG.chains["avalanche"], evm_worlds["avalanche"]["url"], client)
        assert int(await adapter.call("eth_chainId", []), 16) == 43114
        with pytest.raises(ChainError, match="eth_noSuchMethod failed"):
            await adapter.call("eth_noSuchMethod", [])
