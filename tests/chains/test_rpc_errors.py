"""A node's JSON-RPC error becomes the ChainError subclass that says what it means; a garbled
answer from a real node (through a loopback proxy) is retried like a 5xx, then one typed error."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from rebalancer.chains.rpc_errors import rpc_error
from rebalancer.core.errors import (
    AlreadyKnownError,
    ChainError,
    MalformedAnswerError,
    MethodNotFoundError,
)
from tests.rpc_proxy import fault_proxy


@pytest.mark.parametrize(
    ("code", "message", "data", "kind"),
    [
        (-32000, "already known", None, AlreadyKnownError),  # geth
        (-32003, "transaction already imported", None, AlreadyKnownError),  # anvil
        (
            -32002,
            "Transaction simulation failed: This transaction has already been processed",
            {"err": "AlreadyProcessed"},
            AlreadyKnownError,
        ),  # Solana preflight
        (-32002, "Transaction simulation failed", {"err": "AlreadyProcessed"}, AlreadyKnownError),
        (-32601, "Method not found", None, MethodNotFoundError),
        (
            -32000,
            "the method eth_simulateV1 does not exist/is not available",
            None,
            MethodNotFoundError,
        ),
        (-32000, "eth_simulateV1 is not supported", None, MethodNotFoundError),
        (-32000, "nonce too low", None, ChainError),
        (3, "execution reverted", None, ChainError),
    ],
)
def test_errors_are_typed_where_they_enter(
    code: int, message: str, data: object, kind: type[ChainError]
) -> None:
    err = rpc_error("node at http://x", "m", code, message, data)
    assert type(err) is kind
    assert err.message == f"node at http://x: m failed: {message}"


# -- garbled answers from a real node: retried like a 5xx, then one typed error ---------------
def _garble(kind: str, request: Any, real: bytes) -> bytes:
    """The node's real answer to ``request``, spoiled the way ``kind`` says."""
    answers = json.loads(real)
    many = answers if isinstance(answers, list) else [answers]
    if kind == "not JSON":
        return b"<html>502 Bad Gateway</html>"
    if kind == "no result":
        for a in many:
            a.pop("result", None)
            a.pop("error", None)
    elif kind == "wrong id":
        for a in many:
            a["id"] = 7 + int(a["id"]) * 3
    elif kind == "wrong type":
        many[0]["result"] = 12345
    elif kind == "truncated batch":
        many = many[:-1] if len(many) > 1 else []
        answers = many
    return json.dumps(answers if isinstance(answers, dict) else many).encode()


KINDS = ["not JSON", "no result", "wrong id", "wrong type", "truncated batch"]


def _adapter(chain: str, url: str, client: httpx.AsyncClient) -> Any:
    from rebalancer.chains.evm import EvmChain
    from rebalancer.chains.registry import Registry
    from rebalancer.chains.solana import SolanaChain

    info = Registry.load().chains[chain]
    cls = SolanaChain if chain == "solana" else EvmChain
    return cls(info, url, client, retries=3, backoff=0.001)


def _wallet(chain: str) -> str:
    from rebalancer.localnet.solana_fixtures import demo_keypair

    return str(demo_keypair().pubkey()) if chain == "solana" else WALLET_EVM


WALLET_EVM = "0x38933fB3600db971A459767D149B492e58e40b76"


@pytest.mark.parametrize("chain", ["ethereum", "solana"])
@pytest.mark.parametrize("kind", KINDS)
async def test_garbled_answers_are_retried_like_5xx_then_succeed(
    evm_worlds: dict[str, Any], chain: str, kind: str
) -> None:
    from rebalancer.chains.registry import Registry

    def answer(n: int, request: Any, forward: Any) -> bytes:
        return _garble(kind, request, forward()) if n < 2 else forward()

    tokens = Registry.load().tokens_on(chain)
    with fault_proxy(evm_worlds[chain]["url"], answer) as proxy:
        async with httpx.AsyncClient() as client:
            got = await _adapter(chain, proxy.url, client).balances([_wallet(chain)], tokens)
    assert len(got.holdings) == len(tokens)
    assert len(proxy.bodies) == 3  # two garbled, then the real answer


@pytest.mark.parametrize("chain", ["ethereum", "solana"])
@pytest.mark.parametrize("kind", KINDS)
async def test_garbled_answers_every_time_are_one_typed_error_naming_node_and_method(
    evm_worlds: dict[str, Any], chain: str, kind: str
) -> None:
    from rebalancer.chains.registry import Registry

    def answer(n: int, request: Any, forward: Any) -> bytes:
        return _garble(kind, request, forward())

    tokens = Registry.load().tokens_on(chain)
    with fault_proxy(evm_worlds[chain]["url"], answer) as proxy:
        keyed = f"{proxy.url}/v2/SECRETKEY"
        async with httpx.AsyncClient() as client:
            with pytest.raises(MalformedAnswerError) as err:
                await _adapter(chain, keyed, client).balances([_wallet(chain)], tokens)
    assert len(proxy.bodies) == 4  # like a 5xx: the first try and 3 retries
    assert err.value.exit_code == 4
    text = str(err.value)
    assert f"{chain} node at {proxy.url}/***" in text and "SECRET" not in text
    first = "eth_chainId" if chain == "ethereum" else "getGenesisHash"
    assert first in text and text.endswith("(4 tries)"), text


async def test_a_wrong_result_type_on_a_single_call_is_retried_then_refused(
    evm_worlds: dict[str, Any],
) -> None:
    def answer(n: int, request: Any, forward: Any) -> bytes:
        real = json.loads(forward())
        real["result"] = {"nonce": real["result"]}
        return json.dumps(real).encode()

    with fault_proxy(evm_worlds["ethereum"]["url"], answer) as proxy:
        async with httpx.AsyncClient() as client:
            adapter = _adapter("ethereum", proxy.url, client)
            with pytest.raises(MalformedAnswerError, match="eth_getTransactionCount") as err:
                await adapter.nonce(WALLET_EVM)
    assert len(proxy.bodies) == 4
    assert "wrong type (object, not string)" in str(err.value)
