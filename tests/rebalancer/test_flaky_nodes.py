"""A run under a flaky or dead Solana node (issue 14): every RPC call has an overall deadline
(``[chains.solana] rpc_timeout``), so the run ends (done, or exit 4) within a bound the README
documents, and a send whose answer was lost is settled from the journal and the node, never
signed again.

A loopback proxy in front of the real local Solana node drops requests: some before they reach
the node, some after (the node took them, the answer is lost). The trade is a fresh wallet's
own (the Solana node is shared by the session), as in tests/rebalancer/test_jupiter_v2_order.py.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import rpc_call
from tests.dex.test_jupiter import holding
from tests.rebalancer.test_execution import run_json
from tests.rpc_proxy import fault_proxy
from tests.solana_config import write_solana_config
from tests.solana_trade import apply_signed, journal_trades, sol_to_usdc

RPC_TIMEOUT_S = 6.0


def _config(tmp_path: Path, node: str, jupiter: str, wallet: str) -> Path:
    return write_solana_config(
        tmp_path,
        node,
        wallet,
        # NOTE: node faults, not the /build path (its delegated fills need localnet:)
        jupiter=jupiter.rsplit("/swap/", 1)[0] + "/swap/v1",
        name="flaky",
        chain=f"rpc_timeout = {RPC_TIMEOUT_S}",
        aggregator='api = "v1"',
    )


def _signatures(node: str, wallet: str) -> list[str]:
    return [s["signature"] for s in rpc_call(node, "getSignaturesForAddress", wallet)]


def test_a_dead_solana_node_ends_the_run_with_exit_4_within_rpc_timeout(
    evm_worlds: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    t = sol_to_usdc(
        evm_worlds, tmp_path, monkeypatch, name="dead node", trade_id="dead", lamports=3 * 10**9
    )
    node, wallet = t.node, t.wallet
    before = _signatures(node, wallet)
    with fault_proxy(node, lambda n, request, forward: None) as proxy:
        cfg = _config(tmp_path, proxy.url, t.jupiter, wallet)
        start = time.monotonic()
        code, out = apply_signed(capsys, t.signer, t.plan, cfg)
        elapsed = time.monotonic() - start
    assert code == 4, out
    assert out["error"]["exit_code"] == 4
    assert f"within {RPC_TIMEOUT_S:g} s" in out["error"]["message"]
    assert proxy.url in out["error"]["message"]
    # the documented bound: rpc_timeout per call, and the first call already fails
    assert elapsed < 4 * RPC_TIMEOUT_S, elapsed
    assert proxy.count("sendTransaction") == 0
    assert _signatures(node, wallet) == before


def test_a_run_under_30pct_lost_solana_requests_ends_in_bounded_time_and_trades_once(
    evm_worlds: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    t = sol_to_usdc(
        evm_worlds, tmp_path, monkeypatch, name="flaky node", trade_id="flaky", lamports=3 * 10**9
    )
    node, jupiter, wallet = t.node, t.jupiter, t.wallet
    usdc_before = holding(node, t.key, "USDC")
    rng = random.Random(14)
    sends: list[int] = []

    def answer(n: int, request: Any, forward: Any) -> bytes | None:
        calls = request if isinstance(request, list) else [request]
        if any(isinstance(c, dict) and c.get("method") == "sendTransaction" for c in calls):
            sends.append(n)
            if len(sends) == 1:
                forward()  # the node takes the first send; its answer is lost
                return None
            return bytes(forward())
        roll = rng.random()
        if roll < 0.15:
            return None  # lost before the node sees it
        if roll < 0.30:
            forward()
            return None  # the node took it, the answer is lost
        return bytes(forward())

    with fault_proxy(node, answer) as proxy:
        cfg = _config(tmp_path, proxy.url, jupiter, wallet)
        start = time.monotonic()
        code, out = apply_signed(capsys, t.signer, t.plan, cfg)
        elapsed = time.monotonic() - start
    assert proxy.dropped > 0, out
    assert code in (0, 4), json.dumps(out)[:3000]
    first_code = code
    # far under the two minutes the issue saw: a handful of calls, each within rpc_timeout
    assert elapsed < 60, elapsed
    if code == 4:
        # what was cut short is settled by the rerun from the journal, on a healthy node
        cfg = _config(tmp_path, node, jupiter, wallet)
        code, out = apply_signed(capsys, t.signer, t.plan, cfg)
        assert code == 0, out
    signed = [r for r in journal_trades(tmp_path / "journal.sqlite") if r.tx_hash is not None]
    confirmed = [r for r in signed if r.state == "confirmed"]
    # signed once, landed once: the lost answer was settled by the signature, not a new trade
    assert len(signed) == 1 and len(confirmed) == 1, [(r.trade_id, r.state) for r in signed]
    swaps = [s for s in _signatures(node, wallet) if s == signed[0].tx_hash]
    assert len(swaps) == 1
    assert holding(node, t.key, "USDC") - usdc_before == int(confirmed[0].realised_out or 0) > 0
    # the lost send was tried again with the very same bytes, and settled
    assert len(sends) >= 2 and len({proxy.bodies[n] for n in sends}) == 1, (first_code, sends)


def test_an_evm_send_whose_answer_was_lost_is_sent_once_and_confirmed(
    evm_isolated: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """anvil mines the first send at once; the retry of the same bytes is "nonce too low"
    (or "already known"): the node has the transaction, so it is sent, not failed."""
    from tests.rebalancer.test_execution import journal_txs, nonce, write_config

    monkeypatch.setenv("DEMO_PASS", "demo")
    monkeypatch.setenv("ONEINCH_API_KEY", "test-key")
    sends: list[int] = []

    def answer(n: int, request: Any, forward: Any) -> bytes | None:
        calls = request if isinstance(request, list) else [request]
        if any(isinstance(c, dict) and c.get("method") == "eth_sendRawTransaction" for c in calls):
            sends.append(n)
            if len(sends) == 1:
                forward()  # the node takes it; its answer is lost
                return None
        return bytes(forward())

    before = nonce(evm_isolated, "ethereum")
    with fault_proxy(evm_isolated["ethereum"]["url"], answer) as proxy:
        cfg = write_config(tmp_path)
        text = cfg.read_text().replace(
            'rpc = "localnet:ethereum"', f'rpc = "{proxy.url}"\nrpc_timeout = 8'
        )
        cfg.write_text(text)
        code, out = run_json(capsys, "run", "-c", str(cfg), "--execute", "--yes")
    assert code == 0, out
    eth = [t for t in out["trades"] if t["chain"] == "ethereum"]
    assert eth and all(t["status"] == "confirmed" for t in eth)
    assert len(sends) >= 2 and proxy.bodies[sends[0]] == proxy.bodies[sends[1]]
    # every transaction on chain is one the journal signed, once
    assert (
        nonce(evm_isolated, "ethereum") - before
        == journal_txs(tmp_path / "journal.sqlite")["ethereum"]
    )
