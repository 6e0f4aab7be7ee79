"""The Solana adapter against the local node (and against broken nodes)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import httpx
import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solana.rpc.models import TxOpts
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction
from spl.token.instructions import (
    create_idempotent_associated_token_account,
    get_associated_token_address,
    transfer_checked,
)
from spl.token.models import TransferCheckedParams

from rebalancer.chains.anvil import NodeProcess
from rebalancer.chains.base import adapter_for
from rebalancer.chains.registry import Registry
from rebalancer.chains.solana import SolanaChain
from rebalancer.core.errors import ChainError, ConfigError, WrongChainError
from rebalancer.core.types import Token
from rebalancer.localnet.solana_accounts import TOKEN_2022_PROGRAM, TOKEN_PROGRAM
from rebalancer.localnet.solana_fixtures import PYUSD_MINT, demo_keypair, maker_keypair
from rebalancer.localnet.solana_node import MAINNET_GENESIS_HASH
from tests.solana_node_fixture import solana_node

__all__ = ["solana_node"]  # the session fixture, started once for this module

SOL = 10**9
DEMO = str(demo_keypair().pubkey())
REGISTRY = Registry.load()
INFO = REGISTRY.chains["solana"]
TOKENS = REGISTRY.tokens_on("solana")
PYUSD = Token("solana", INFO.caip2, "PYUSD", "PYUSD", str(PYUSD_MINT), 6)


def counting_client(counter: list[httpx.Request]) -> httpx.AsyncClient:
    async def hook(request: httpx.Request) -> None:
        counter.append(request)

    return httpx.AsyncClient(event_hooks={"request": [hook]}, timeout=10)


def by_symbol(holdings: Any, wallet: str) -> dict[str, int]:
    return {h.token.symbol: h.raw for h in holdings if h.wallet == wallet}


async def test_demo_wallet_is_read_whole(solana_node: NodeProcess) -> None:
    async with httpx.AsyncClient() as client:
        adapter = adapter_for(INFO, solana_node.url, client)
        assert isinstance(adapter, SolanaChain)
        got = await adapter.balances([DEMO], [*TOKENS, PYUSD])
    assert by_symbol(got.holdings, DEMO) == {
        "SOL": 95 * SOL,
        "wSOL": 5 * SOL,  # a token of asset SOL, not folded into native lamports
        "USDC": 500 * 10**6,  # two token accounts of one mint, summed
        "USDT": 250 * 10**6,
        "cbBTC": 2_000_000,
        "WBTC": 500_000,
        "WETH": 30_000_000,
        "JUP": 6_000 * 10**6,
        "BONK": 150_000_000 * 10**5,
        "PYUSD": 100 * 10**6,  # Token-2022
    }
    assert got.failures == []
    assert {h.token.asset for h in got.holdings if h.token.symbol in ("SOL", "wSOL")} == {"SOL"}


async def test_only_requested_tokens_are_reported(solana_node: NodeProcess) -> None:
    usdc = REGISTRY.by_symbol("solana", "USDC")
    assert usdc is not None
    async with httpx.AsyncClient() as client:
        got = await SolanaChain(INFO, solana_node.url, client).balances([DEMO], [usdc])
    assert [(h.token.symbol, h.raw) for h in got.holdings] == [("USDC", 500 * 10**6)]


@pytest.mark.parametrize("n_wallets", [1, 10, 100])
async def test_one_http_request_per_refresh(solana_node: NodeProcess, n_wallets: int) -> None:
    wallets = [DEMO, *(str(Keypair().pubkey()) for _ in range(n_wallets - 1))]
    seen: list[httpx.Request] = []
    async with counting_client(seen) as client:
        adapter = SolanaChain(INFO, solana_node.url, client)
        first = await adapter.balances(wallets, TOKENS)  # includes the genesis check
        assert len(seen) == 1
        assert len(seen[0].content) < 50 * 1024  # a validator's default request-body limit
        await adapter.balances(wallets, TOKENS)
        assert len(seen) == 2
    assert len(first.holdings) == n_wallets * len(TOKENS)
    assert by_symbol(first.holdings, DEMO)["JUP"] == 6_000 * 10**6
    assert all(h.raw == 0 for h in first.holdings if h.wallet != DEMO)


async def test_more_than_100_wallets_take_one_request_per_100(solana_node: NodeProcess) -> None:
    wallets = [str(Keypair().pubkey()) for _ in range(150)]
    seen: list[httpx.Request] = []
    async with counting_client(seen) as client:
        got = await SolanaChain(INFO, solana_node.url, client).balances(wallets, TOKENS)
    assert len(seen) == 2 and len(got.holdings) == 150 * len(TOKENS)


async def test_balances_follow_transfers(solana_node: NodeProcess) -> None:
    maker = maker_keypair()
    bob = Keypair()
    usdc = REGISTRY.by_symbol("solana", "USDC")
    assert usdc is not None and usdc.address is not None
    async with AsyncClient(solana_node.url) as sol:
        sig = (await sol.request_airdrop(bob.pubkey(), 2 * SOL)).value
        await sol.confirm_transaction(sig, Confirmed, sleep_seconds=0.02)
        ixs = []
        for mint, program, amount in (
            (Pubkey.from_string(usdc.address), TOKEN_PROGRAM, 1_500_000),
            (PYUSD_MINT, TOKEN_2022_PROGRAM, 2_500_000),
        ):
            src = get_associated_token_address(maker.pubkey(), mint, program)
            dst = get_associated_token_address(bob.pubkey(), mint, program)
            params = TransferCheckedParams(
                program_id=program,
                source=src,
                mint=mint,
                dest=dst,
                owner=maker.pubkey(),
                amount=amount,
                decimals=6,
            )
            ixs += [
                create_idempotent_associated_token_account(
                    bob.pubkey(), bob.pubkey(), mint, program
                ),
                transfer_checked(params),
            ]
        blockhash = (await sol.get_latest_blockhash()).value.blockhash
        msg = Message.new_with_blockhash(ixs, bob.pubkey(), blockhash)
        tx = VersionedTransaction(msg, [bob, maker])
        await sol.send_transaction(tx, TxOpts(skip_confirmation=False))
    async with httpx.AsyncClient() as client:
        got = await SolanaChain(INFO, solana_node.url, client).balances(
            [str(bob.pubkey())], [*TOKENS, PYUSD]
        )
    held = {k: v for k, v in by_symbol(got.holdings, str(bob.pubkey())).items() if v}
    rent = 2_039_280 + 2_074_080  # the two token accounts bob paid for
    assert held == {"SOL": 2 * SOL - rent - 10_000, "USDC": 1_500_000, "PYUSD": 2_500_000}


# -- the wrong node, or a broken one ------------------------------------------------------------
async def test_wrong_chain_is_refused(solana_node: NodeProcess) -> None:
    devnet = replace(INFO, caip2="solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1")
    async with httpx.AsyncClient() as client:
        with pytest.raises(WrongChainError, match="genesis hash"):
            await SolanaChain(devnet, solana_node.url, client).balances([DEMO], TOKENS)


def mock_client(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


async def test_malformed_json_is_a_chain_error() -> None:
    async with mock_client(lambda r: httpx.Response(200, content=b"{not json")) as client:
        adapter = SolanaChain(INFO, "https://rpc.example/v1/SECRETKEY", client, backoff=0)
        with pytest.raises(ChainError, match="malformed JSON") as err:
            await adapter.balances([DEMO], TOKENS)
    assert "SECRETKEY" not in str(err.value) and "rpc.example" in str(err.value)


async def test_unexpected_shape_is_a_chain_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        answers = []
        for c in json.loads(request.content):
            result: Any = MAINNET_GENESIS_HASH if c["method"] == "getGenesisHash" else {"value": 7}
            answers.append({"jsonrpc": "2.0", "id": c["id"], "result": result})
        return httpx.Response(200, json=answers)

    async with mock_client(handler) as client:
        adapter = SolanaChain(INFO, "http://127.0.0.1:1", client, backoff=0)
        with pytest.raises(ChainError, match="unexpected shape"):
            await adapter.balances([DEMO], TOKENS)


async def test_unreachable_node_is_a_chain_error_after_retries() -> None:
    tries: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        tries.append(request)
        raise httpx.ConnectError("refused", request=request)

    async with mock_client(handler) as client:
        adapter = SolanaChain(INFO, "http://127.0.0.1:9", client, retries=2, backoff=0)
        with pytest.raises(ChainError, match="unreachable") as err:
            await adapter.balances([DEMO], TOKENS)
    assert len(tries) == 3 and err.value.exit_code == 4
    async with httpx.AsyncClient() as real:  # and a real closed port
        with pytest.raises(ChainError, match=r"127\.0\.0\.1:9"):
            await SolanaChain(INFO, "http://127.0.0.1:9", real, backoff=0).balances([DEMO], TOKENS)


async def test_5xx_is_retried(solana_node: NodeProcess) -> None:
    seen: list[int] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(1)
        if len(seen) == 1:
            return httpx.Response(503)
        async with httpx.AsyncClient() as upstream:
            answer = await upstream.post(solana_node.url, content=request.content)
        return httpx.Response(200, content=answer.content)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        got = await SolanaChain(INFO, solana_node.url, client, backoff=0).balances([DEMO], TOKENS)
    assert len(seen) == 2 and by_symbol(got.holdings, DEMO)["SOL"] == 95 * SOL


async def test_bad_wallet_address_is_a_config_error() -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(ConfigError, match="not-a-key"):
            await SolanaChain(INFO, "http://127.0.0.1:9", client).balances(["not-a-key"], TOKENS)


async def test_block_time_of_a_landed_transaction(solana_node: NodeProcess) -> None:
    """The chain's clock for the tax book: getTransaction's blockTime, None for unknown ids."""
    from solders.system_program import TransferParams, transfer

    alice, bob = Keypair(), Keypair()
    async with AsyncClient(solana_node.url) as sol:
        sig = (await sol.request_airdrop(alice.pubkey(), 2 * SOL)).value
        await sol.confirm_transaction(sig, Confirmed, sleep_seconds=0.02)
        ix = transfer(
            TransferParams(from_pubkey=alice.pubkey(), to_pubkey=bob.pubkey(), lamports=SOL)
        )
        blockhash = (await sol.get_latest_blockhash()).value.blockhash
        tx = VersionedTransaction(
            Message.new_with_blockhash([ix], alice.pubkey(), blockhash), [alice]
        )
        sent = (await sol.send_transaction(tx, TxOpts(skip_confirmation=False))).value
    async with httpx.AsyncClient() as client:
        chain = SolanaChain(INFO, solana_node.url, client)
        at = await chain.block_time(str(sent))
        assert await chain.block_time(str(Keypair().sign_message(b"never sent"))) is None
    assert isinstance(at, int) and at > 1_600_000_000  # the node's clock, not the machine's


async def test_last_activity_moves_only_with_the_wallets_own_transactions(
    solana_node: NodeProcess,
) -> None:
    """Others naming the wallet (an airdrop to it, a maker approving it as a delegate) leave
    its mark as it was, whether it had any history or none; its own transaction moves it."""
    from solders.system_program import TransferParams, transfer

    alice = Keypair()
    async with httpx.AsyncClient() as client, AsyncClient(solana_node.url) as sol:
        adapter = SolanaChain(INFO, solana_node.url, client)
        empty = await adapter.last_activity(str(alice.pubkey()))
        sig = (await sol.request_airdrop(alice.pubkey(), 2 * SOL)).value
        await sol.confirm_transaction(sig, Confirmed, sleep_seconds=0.02)
        assert await adapter.last_activity(str(alice.pubkey())) == empty
        blockhash = (await sol.get_latest_blockhash()).value.blockhash
        own = transfer(
            TransferParams(from_pubkey=alice.pubkey(), to_pubkey=Keypair().pubkey(), lamports=SOL)
        )
        tx = VersionedTransaction(
            Message.new_with_blockhash([own], alice.pubkey(), blockhash), [alice]
        )
        sent = (await sol.send_transaction(tx, TxOpts(skip_confirmation=False))).value
        assert await adapter.last_activity(str(alice.pubkey())) == f"transaction {sent}"
