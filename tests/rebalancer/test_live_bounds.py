"""Numbers read live (issue 14) pass the same ``core/bounds.py`` limits as files: an oracle
answer out of bounds drops that source with its reason (the others still price the asset, or
the plan is refused, exit 3), an aggregator's amount or price out of bounds is a corrupt answer
(exit 3), a node's balance out of bounds is the node failing (exit 4). The absurd numbers come
from the real local worlds: a Chainlink round pushed on anvil, a balance set on anvil, and
loopback proxies rewriting the Solana node's and the aggregator stand-ins' answers."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from rebalancer.chains.oracles import encode_price_update, feeds_on, parse_price_update
from rebalancer.chains.registry import Registry
from rebalancer.chains.solana import SolanaChain
from rebalancer.cli import main
from rebalancer.core.errors import ChainError, CorruptResponseError
from rebalancer.dex.base import SwapRequest
from rebalancer.dex.jupiter import Jupiter
from rebalancer.localnet.solana_fixtures import demo_keypair
from tests.conftest import rpc_call
from tests.rebalancer.test_market_prices import ETH_USD, WALLET, eth_only, local_config, push
from tests.rpc_proxy import fault_proxy

REG = Registry.load()
ABSURD = 10**40  # a Chainlink int256 answer: 10^32 USD at 8 decimals


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONEINCH_API_KEY", "test-key")
    monkeypatch.setenv("JUPITER_API_KEY", "test-key")
    monkeypatch.setenv("REBALANCER_DEMO_PASSPHRASE", "demo")


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    return lines[0]


# -- oracles --------------------------------------------------------------------------------
def test_an_absurd_chainlink_answer_drops_that_source_and_the_others_price_the_asset(
    evm_isolated: dict[str, Any], tmp_path: Path, keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    push(evm_isolated["ethereum"]["url"], ETH_USD, ABSURD, int(time.time()))
    assert main(["balances", "-c", str(local_config(tmp_path)), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    eth = out["prices"]["ETH"]
    dropped = next(s for s in eth["sources"] if s["name"] == "chainlink ethereum")
    assert dropped["usd"] is None
    assert "latestRoundData answer" in dropped["reason"] and "per token" in dropped["reason"]
    assert eth["source"] == "median of 2 oracles" and eth["usd"] == "3200"


def test_an_absurd_chainlink_answer_alone_refuses_to_plan(
    evm_isolated: dict[str, Any], tmp_path: Path, keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    push(evm_isolated["ethereum"]["url"], ETH_USD, ABSURD, int(time.time()))
    assert main(["plan", "-c", str(eth_only(tmp_path)), "--json"]) == 3
    line = _one_line(capsys)
    assert "price of ETH" in line and "latestRoundData answer" in line


async def test_an_absurd_pyth_account_is_dropped_with_its_reason(
    evm_worlds: dict[str, Any],
) -> None:
    feeds = feeds_on("solana")
    target = feeds[0]

    def answer(n: int, request: Any, forward: Any) -> bytes:
        answers = json.loads(forward())
        for call, got in zip(request, answers, strict=True):
            if call["method"] == "getMultipleAccounts" and target.address in call["params"][0]:
                i = call["params"][0].index(target.address)
                account = got["result"]["value"][i]
                u = parse_price_update(base64.b64decode(account["data"][0]))
                absurd = encode_price_update(
                    u.feed_id, 2**62, 1, -2, u.publish_time,
                    write_authority=u.write_authority, posted_slot=u.posted_slot,
                )  # fmt: skip
                account["data"][0] = base64.b64encode(absurd).decode()
        return json.dumps(answers).encode()

    with fault_proxy(evm_worlds["solana"]["url"], answer) as proxy:
        async with httpx.AsyncClient() as client:
            chain = SolanaChain(REG.chains["solana"], proxy.url, client)
            got = await chain.balances(
                [str(demo_keypair().pubkey())], REG.tokens_on("solana"), feeds
            )
    reading = next(r for r in got.oracles if r.feed == target)
    assert reading.usd is None and reading.reason is not None
    assert f"account {target.address}: price" in reading.reason and "per token" in reading.reason
    assert all(r.usd for r in got.oracles if r.feed != target)


# -- node balances ----------------------------------------------------------------------------
def test_an_absurd_evm_balance_is_the_node_failing_exit_4(
    evm_isolated: dict[str, Any], tmp_path: Path, keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    rpc_call(evm_isolated["ethereum"]["url"], "anvil_setBalance", WALLET, hex(2**255))
    assert main(["balances", "-c", str(eth_only(tmp_path)), "--json"]) == 4
    line = _one_line(capsys)
    assert f"balance of ETH of {WALLET}" in line and "whole tokens" in line


async def test_a_negative_solana_balance_is_the_node_failing(evm_worlds: dict[str, Any]) -> None:
    def answer(n: int, request: Any, forward: Any) -> bytes:
        answers = json.loads(forward())
        for call, got in zip(request, answers, strict=True):
            if call["method"] == "getMultipleAccounts" and "dataSlice" in call["params"][1]:
                for account in got["result"]["value"]:
                    if account is not None:
                        account["lamports"] = -1
        return json.dumps(answers).encode()

    wallet = str(demo_keypair().pubkey())
    with fault_proxy(evm_worlds["solana"]["url"], answer) as proxy:
        async with httpx.AsyncClient() as client:
            chain = SolanaChain(REG.chains["solana"], proxy.url, client)
            with pytest.raises(ChainError, match=f"balance of SOL of {wallet} = -1: negative"):
                await chain.balances([wallet], REG.tokens_on("solana"))


# -- aggregator answers -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("dst", "words"),
    [
        (str(10**70), "1inch quote: dstAmount"),  # more USDC than 10^15 whole tokens
        (str(10**20), "ethereum aggregator's quote price of"),  # 10^14 USDC: a price over $10^9
    ],
)
def test_an_absurd_1inch_quote_is_a_corrupt_answer_exit_3(
    evm_isolated: dict[str, Any],
    tmp_path: Path,
    keys: None,
    capsys: pytest.CaptureFixture[str],
    dst: str,
    words: str,
) -> None:
    def answer(n: int, path: Any, forward: Any) -> bytes:
        body = json.loads(forward())
        if "/quote" in str(path):
            assert "dstAmount" in body, (path, body)
            body["dstAmount"] = dst
        return json.dumps(body).encode()

    upstream = str(evm_isolated["1inch"]["url"])
    with fault_proxy(upstream, answer) as proxy:
        base = proxy.url + httpx.URL(upstream).path
        cfg = eth_only(tmp_path).read_text()
        cfg = cfg.replace('"localnet:1inch"', f'"{base}"\napi_key_env = "ONEINCH_API_KEY"')
        (tmp_path / "proxied.toml").write_text(cfg)
        code = main(["plan", "-c", str(tmp_path / "proxied.toml"), "--json"])
    line = _one_line(capsys)
    assert code == 3, line
    assert words in line


async def test_an_absurd_jupiter_quote_is_a_corrupt_answer(evm_worlds: dict[str, Any]) -> None:
    def answer(n: int, path: Any, forward: Any) -> bytes:
        body = json.loads(forward())
        body["outAmount"] = str(2**64 * 10**9)
        return json.dumps(body).encode()

    upstream = str(evm_worlds["jupiter"]["url"])
    sol, usdc = REG.native("solana"), REG.by_symbol("solana", "USDC")
    assert sol is not None and usdc is not None
    req = SwapRequest("solana", None, str(demo_keypair().pubkey()), sol, usdc, 10**9, 50)
    with fault_proxy(upstream, answer) as proxy:
        base = proxy.url + httpx.URL(upstream).path
        async with httpx.AsyncClient() as client:
            corrupt = r"Jupiter (quote|order).*outAmount"  # v2 quotes by /order
            with pytest.raises(CorruptResponseError, match=corrupt) as err:
                await Jupiter(client, base_url=base, api_key="test-key", api="v2").quote(req)
    assert err.value.exit_code == 3
