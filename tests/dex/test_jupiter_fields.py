"""Jupiter fields beyond the route: the platform fee (taken from the output, as the real API
does), ``swapUsdValue`` and ``dynamicSlippage``'s report, on recorded real-shaped answers and
on the local stand-in, which must answer the same shapes."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from solders.pubkey import Pubkey
from solders.token.associated import get_associated_token_address
from solders.transaction import VersionedTransaction

from rebalancer.dex.jupiter import QuoteResponse, SwapResponse
from rebalancer.wallet.base import sign_versioned_transaction
from tests.conftest import rpc_call
from tests.dex.test_jupiter import fresh_wallet, fund, holding, send, token, urls

__all__ = ["urls"]  # the stand-in fixture, shared with test_jupiter

FIX = Path(__file__).parents[2] / "fixtures" / "aggregators" / "jupiter"
SOL = 10**9
HEADERS = {"x-api-key": "local"}


def recorded(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIX / name).read_text())
    return data


def test_recorded_platform_fee_usd_value_and_dynamic_slippage_parse() -> None:
    body = recorded("quote_platform_fee.json")["body"]
    q = QuoteResponse.model_validate(body)
    assert q.platformFee is not None and (q.platformFee.amount, q.platformFee.feeBps) == (
        360246,
        20,
    )
    gross = q.routePlan[-1].swapInfo.outAmount
    assert q.outAmount + q.platformFee.amount == gross  # the fee came out of the output
    assert q.platformFee.amount == gross * q.platformFee.feeBps // 10_000
    assert q.otherAmountThreshold == -(-q.outAmount * (10_000 - q.slippageBps) // 10_000)
    assert q.swapUsdValue is not None and Decimal(q.swapUsdValue) > 0
    s = SwapResponse.model_validate(recorded("swap_dynamic_slippage.json")["body"])
    report = s.dynamicSlippageReport
    assert report is not None and report.slippageBps == 79 and report.categoryName == "verified"
    assert report.otherAmount == -(-10392472 * (10_000 - 79) // 10_000)
    plain = SwapResponse.model_validate(recorded("swap.json")["body"])
    assert plain.dynamicSlippageReport is None


def _quote(jupiter: str, **params: Any) -> dict[str, Any]:
    base = {
        "inputMint": str(token("USDC").address),
        "outputMint": str(token("JUP").address),
        "amount": str(100 * 10**6),
        "slippageBps": "50",
    }
    r = httpx.get(f"{jupiter}/quote", params={**base, **params}, headers=HEADERS, timeout=10)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_stand_in_quotes_have_the_recorded_shape(urls: tuple[str, str]) -> None:
    _node, jupiter = urls
    plain = _quote(jupiter)
    with_fee = _quote(jupiter, platformFeeBps="25")
    shape = set(recorded("quote_platform_fee.json")["body"]) - {
        "simplerRouteUsed",
        "mostReliableAmmsQuoteReport",
        "useIncurredSlippageForQuoting",
        "otherRoutePlans",
    }
    assert shape <= set(with_fee) and shape <= set(plain)
    assert plain["platformFee"] is None
    gross = int(with_fee["routePlan"][-1]["swapInfo"]["outAmount"])
    assert int(plain["outAmount"]) == gross
    fee = gross * 25 // 10_000
    assert with_fee["platformFee"] == {"amount": str(fee), "feeBps": 25}
    assert int(with_fee["outAmount"]) == gross - fee
    net = gross - fee
    assert int(with_fee["otherAmountThreshold"]) == -(-net * 9_950 // 10_000)
    assert Decimal(plain["swapUsdValue"]) == Decimal("100.0000000000")  # 100 USDC in
    QuoteResponse.model_validate(with_fee)


async def test_stand_in_fills_a_platform_fee_into_the_fee_account(urls: tuple[str, str]) -> None:
    node, jupiter = urls
    signer = fresh_wallet("platform-fee")
    wallet = Pubkey.from_string(signer.identity)
    owner = fresh_wallet("platform-fee-collector")
    collector = Pubkey.from_string(owner.identity)
    fund(node, wallet, 10 * SOL, {"USDC": 100 * 10**6})
    fund(node, collector, SOL, {"JUP": 0})  # the fee account: the collector's JUP account
    fee_account = get_associated_token_address(
        collector, Pubkey.from_string(str(token("JUP").address))
    )
    quote = _quote(jupiter, platformFeeBps="30")
    body = {"userPublicKey": str(wallet), "quoteResponse": quote}
    refused = httpx.post(f"{jupiter}/swap", json=body, headers=HEADERS, timeout=10)
    assert refused.status_code == 400 and "feeAccount" in refused.json()["error"]
    body["feeAccount"] = str(fee_account)
    r = httpx.post(f"{jupiter}/swap", json=body, headers=HEADERS, timeout=30)
    assert r.status_code == 200, r.text
    answer = SwapResponse.model_validate(r.json())
    assert answer.dynamicSlippageReport is None
    tx = VersionedTransaction.from_bytes(base64.b64decode(answer.swapTransaction))
    before = holding(node, wallet, "JUP")
    sig = send(node, await sign_versioned_transaction(signer, tx))
    fee = int(quote["platformFee"]["amount"])
    assert fee > 0
    assert holding(node, wallet, "JUP") - before == int(quote["outAmount"])
    assert holding(node, collector, "JUP") == fee
    # The fill as an explorer reads it: jsonParsed, keys from the maker's lookup table.
    got = rpc_call(
        node, "getTransaction", sig, {"encoding": "jsonParsed", "maxSupportedTransactionVersion": 0}
    )
    message = got["transaction"]["message"]
    assert {k["source"] for k in message["accountKeys"]} == {"transaction", "lookupTable"}
    legs = [
        ix["parsed"]["info"]
        for ix in message["instructions"]
        if ix.get("program") == "spl-token" and ix["parsed"]["type"] == "transferChecked"
    ]
    paid = {leg["destination"]: int(leg["tokenAmount"]["amount"]) for leg in legs}
    assert paid[str(fee_account)] == fee


def test_stand_in_reports_dynamic_slippage(urls: tuple[str, str]) -> None:
    _node, jupiter = urls
    signer = fresh_wallet("dynamic-slippage")
    quote = _quote(jupiter)
    body = {"userPublicKey": signer.identity, "quoteResponse": quote, "dynamicSlippage": True}
    r = httpx.post(f"{jupiter}/swap", json=body, headers=HEADERS, timeout=30)
    assert r.status_code == 200, r.text
    report = r.json()["dynamicSlippageReport"]
    assert set(report) == set(
        recorded("swap_dynamic_slippage.json")["body"]["dynamicSlippageReport"]
    )
    assert isinstance(report["slippageBps"], int) and isinstance(report["otherAmount"], int)
    assert 0 < report["slippageBps"] <= report["heuristicMaxSlippageBps"]
    assert report["otherAmount"] == -(
        -int(quote["outAmount"]) * (10_000 - report["slippageBps"]) // 10_000
    )
    assert SwapResponse.model_validate(r.json()).dynamicSlippageReport is not None
