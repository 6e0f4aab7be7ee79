"""The engine with mainnet USDT's rules on the local Ethereum world: a wallet that holds USDT
and has a leftover allowance to the router still rebalances, directly and through an export.
The allowance is reset to 0 first (approve from non-zero to non-zero reverts), both approvals
are checked, simulated and journalled, and nothing is sent twice."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from rebalancer.intents import approval_id, reset_id
from rebalancer.journal import Journal
from rebalancer.localnet.rpc import calldata
from tests.conftest import rpc_call
from tests.rebalancer.test_execution import KEYS, WALLET, journal_txs, nonce, run_json
from tests.rebalancer.test_external import sign_evm, trade, write_plan

USDT = "0xdAC17F958D2ee523a2206206994597C13D831ec7"
ROUTER = "0x111111125421cA6dc452d289314280a0f8842A65"
DEPLOYER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
LEFTOVER = 1_000_000  # 1 USDT the router may still spend from an earlier, unfinished swap


def config(tmp_path: Path) -> Path:
    path = tmp_path / "rebalancer.toml"
    path.write_text(
        f"""
journal = "{tmp_path / "journal.sqlite"}"

[chains.ethereum]
rpc = "localnet:ethereum"

[[wallets]]
name = "demo"
address = "{WALLET}"
chains = ["ethereum"]
signer = {{ kind = "keyfile", file = "{KEYS / "demo-evm.json"}", passphrase_env = "DEMO_PASS" }}

[strategy]
targets = {{ BTC = 40, ETH = 30, ALTS = 20, STABLES = 10 }}
band_pp = 5

[prices]
BTC = 95000
ETH = 3200
LINK = 15
UNI = 8
AAVE = 250
USDC = 1
USDT = 1

[aggregators."1inch"]
base_url = "localnet:1inch"
api_key_env = "ONEINCH_API_KEY"

[policy]
max_slippage_bps = 100
max_price_deviation_pct = 3
"""
    )
    return path


def send_as(url: str, sender: str, to: str, signature: str, *args: Any) -> None:
    rpc_call(url, "anvil_impersonateAccount", sender)
    tx = {"from": sender, "to": to, "data": calldata(signature, *args), "gas": hex(200_000)}
    receipt = rpc_call(url, "eth_getTransactionReceipt", rpc_call(url, "eth_sendTransaction", tx))
    assert receipt["status"] == "0x1"
    rpc_call(url, "anvil_stopImpersonatingAccount", sender)


def allowance(url: str) -> int:
    data = calldata("allowance(address,address)", WALLET, ROUTER)
    return int(rpc_call(url, "eth_call", {"to": USDT, "data": data}, "latest"), 16)


def test_usdt_with_a_leftover_allowance_is_reset_then_approved_then_sold(
    evm_isolated: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEMO_PASS", "demo")
    monkeypatch.setenv("ONEINCH_API_KEY", "test-key")
    url = evm_isolated["ethereum"]["url"]
    # 60k USDT makes stables far over target: the plan must sell USDT.
    send_as(url, DEPLOYER, USDT, "mint(address,uint256)", WALLET, 60_000 * 10**6)
    # NOTE: the wallet's own leftover approval is not a transaction of this tool's journal.
    send_as(url, WALLET, USDT, "approve(address,uint256)", ROUTER, LEFTOVER)
    assert allowance(url) == LEFTOVER
    start = nonce(evm_isolated, "ethereum")
    cfg = config(tmp_path)

    code, dry = run_json(capsys, "run", "-c", str(cfg))
    assert code == 0, dry
    sells = [t for t in dry["trades"] if t["sell"] == "USDT"]
    assert sells and all(t["status"] == "simulated" for t in dry["trades"]), [
        (t["sell"], t["status"], t.get("reason")) for t in dry["trades"]
    ]

    code, out = run_json(capsys, "run", "-c", str(cfg), "--execute", "--yes")
    assert code == 0, out
    assert all(t["status"] == "confirmed" for t in out["trades"])
    usdt = [t for t in out["trades"] if t["sell"] == "USDT"]
    assert usdt
    assert allowance(url) == 0  # exact approval, spent by the swap
    j = Journal(tmp_path / "journal.sqlite")
    try:
        rows = {t.trade_id: t for t in j.trades()}
    finally:
        j.close()
    # Only the first USDT sell meets the leftover: its swap spends its exact approval, so the
    # next one approves from zero.
    resets = [rows[reset_id(t["id"])] for t in usdt if reset_id(t["id"]) in rows]
    assert len(resets) == 1
    reset = resets[0]
    approve = rows[approval_id(reset.trade_id.removesuffix("-approve-reset"))]
    assert reset.state == approve.state == "confirmed"
    assert reset.nonce is not None and approve.nonce == reset.nonce + 1
    assert all(rows[approval_id(t["id"])].state == "confirmed" for t in usdt)
    # every transaction the tool sent is in the journal exactly once
    assert sum(journal_txs(tmp_path / "journal.sqlite").values()) == (
        nonce(evm_isolated, "ethereum") - start
    )


def test_usdt_reset_is_exported_signed_elsewhere_and_submitted_in_order(
    evm_isolated: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Air-gapped signing meets the same rule: the export holds the reset, the approval and
    the swap at consecutive nonces; submit sends them in that order."""
    monkeypatch.delenv("DEMO_PASS", raising=False)
    monkeypatch.setenv("ONEINCH_API_KEY", "test-key")
    url = evm_isolated["ethereum"]["url"]
    send_as(url, DEPLOYER, USDT, "mint(address,uint256)", WALLET, 10_000 * 10**6)
    send_as(url, WALLET, USDT, "approve(address,uint256)", ROUTER, LEFTOVER)
    cfg = config(tmp_path)
    plan = write_plan(
        tmp_path / "plan.json",
        [trade("usdt-out", "ethereum", WALLET, "USDT", "WETH", Decimal(1000))],
    )
    out = tmp_path / "unsigned"
    start = nonce(evm_isolated, "ethereum")
    code, _doc = run_json(capsys, "export", str(plan), "--unsigned", str(out), "-c", str(cfg))
    assert code == 0, capsys.readouterr().err
    txs = json.loads((out / "manifest.json").read_text())["transactions"]
    assert [(t["id"], t["kind"], t["nonce"]) for t in txs] == [
        (reset_id("usdt-out"), "approve", start),
        (approval_id("usdt-out"), "approve", start + 1),
        ("usdt-out", "swap", start + 2),
    ]
    for t in txs:
        sign_evm(out, t)
    code, report = run_json(capsys, "submit", str(out), "-c", str(cfg), "--yes")
    assert code == 0, capsys.readouterr().err
    assert [t["status"] for t in report["trades"]] == ["confirmed"]
    assert nonce(evm_isolated, "ethereum") == start + 3
    assert allowance(url) == 0
