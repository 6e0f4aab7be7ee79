"""Money safety from outside (issue 14): signals, partial results, resumes, one writer per
wallet, numbers. Every test runs on the real local worlds, in-process or as a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from rebalancer.journal import Journal
from tests.rebalancer.test_execution import write_config


def _start_run(cfg: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "DEMO_PASS": "demo", "ONEINCH_API_KEY": "test-key"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rebalancer.cli",
            "run",
            "-c",
            str(cfg),
            "--execute",
            "--yes",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _wait_for(proc: subprocess.Popen[str], needle: str, timeout: float = 90) -> str:
    assert proc.stderr is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            break
        seen += line
        if needle in line:
            return seen
    raise AssertionError(f"{needle!r} never printed:\n{seen}")


def test_sigterm_during_run_exits_143_with_one_line_and_closes_the_run(
    evm_isolated: dict[str, Any], tmp_path: Path
) -> None:
    cfg = write_config(tmp_path)
    proc = _start_run(cfg)
    try:
        _wait_for(proc, "simulated")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 143
        assert proc.stderr is not None
        rest = proc.stderr.read()
        assert "Traceback" not in rest
        stopped = [line for line in rest.splitlines() if "stopped by" in line]
        assert len(stopped) == 1 and stopped[0].startswith("stopped by SIGTERM"), rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    j = Journal(tmp_path / "journal.sqlite")
    try:
        runs = j.runs()
        assert [r.status for r in runs] == ["interrupted"]
        assert not j.trades(states=("planned",))
    finally:
        j.close()


def test_json_document_is_printed_whatever_the_exit_code(
    evm_isolated: dict[str, Any],
    tmp_path: Path,
    capsys: Any,
    monkeypatch: Any,
) -> None:
    from rebalancer.core.errors import AggregatorError
    from rebalancer.dex.oneinch import OneInch
    from rebalancer.services import injected
    from tests.rebalancer.test_execution import around, run_json

    monkeypatch.setenv("DEMO_PASS", "demo")
    monkeypatch.setenv("ONEINCH_API_KEY", "test-key")
    cfg = write_config(tmp_path)

    async def avalanche_api_down(agg: OneInch, request: Any) -> Any:
        if request.chain == "avalanche":
            raise AggregatorError("1inch API at http://127.0.0.1:1: failed after 3 attempts")
        return await agg.quote(request)

    with injected(wrap=around(OneInch, quote=avalanche_api_down)):
        code, out = run_json(capsys, "run", "-c", str(cfg), "--execute", "--yes")
    assert code == 4
    assert out["status"] == "error" and out["error"]["exit_code"] == 4
    assert "http://127.0.0.1:1:" in out["error"]["message"]
    by_chain = {(t["chain"], t["status"]) for t in out["trades"]}
    assert ("ethereum", "confirmed") in by_chain
    assert {s for c, s in by_chain if c == "avalanche"} == {"not_executed"}
    assert all(t["reason"] for t in out["trades"] if t["status"] != "confirmed")


def _all_chains_config(tmp_path: Path) -> Path:
    """examples/local.toml (ethereum, avalanche and solana) with its paths made absolute."""
    examples = Path(__file__).parents[2] / "examples"
    text = (examples / "local.toml").read_text()
    text = text.replace('journal = ".demo-journal.sqlite"', f'journal = "{tmp_path / "j.sqlite"}"')
    text = text.replace('file = "keys/', f'file = "{examples / "keys"}/')
    path = tmp_path / "all.toml"
    path.write_text(text)
    return path


def _solana_signatures(worlds: dict[str, Any], address: str) -> int:
    from tests.conftest import rpc_call

    return len(rpc_call(worlds["solana"]["url"], "getSignaturesForAddress", address))


def test_a_wrong_evm_passphrase_ends_the_run_before_any_chain_moves(
    evm_isolated: dict[str, Any],
    tmp_path: Path,
    capsys: Any,
    monkeypatch: Any,
) -> None:
    from tests.rebalancer.test_execution import nonce, run_json

    monkeypatch.setenv("REBALANCER_DEMO_PASSPHRASE", "not the passphrase")
    cfg = _all_chains_config(tmp_path)
    sol = "6mEAPbHcy66wK4T2iyhJnZhaZuY4mjqa3P8rBZSU18td"
    before = (nonce(evm_isolated, "ethereum"), nonce(evm_isolated, "avalanche"))
    sigs = _solana_signatures(evm_isolated, sol)
    code, out = run_json(capsys, "run", "-c", str(cfg), "--execute", "--yes")
    assert code == 2, out
    assert out["error"]["exit_code"] == 2
    chains = {t["chain"] for t in out["trades"]}
    assert "solana" in chains and chains & {"ethereum", "avalanche"}
    assert {t["status"] for t in out["trades"]} == {"not_executed"}
    assert (nonce(evm_isolated, "ethereum"), nonce(evm_isolated, "avalanche")) == before
    assert _solana_signatures(evm_isolated, sol) == sigs


def test_two_runs_on_two_journals_for_one_wallet_trade_once(
    evm_isolated: dict[str, Any], tmp_path: Path
) -> None:
    """Started at the same moment: one run executes the plan, the other refuses (the wallet
    lock on this machine, or the on-chain freshness check); no trade lands twice."""
    from tests.rebalancer.test_execution import nonce

    before = {c: nonce(evm_isolated, c) for c in ("ethereum", "avalanche")}
    procs = []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        procs.append(_start_run(write_config(folder), "--json"))
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=240)
        outs.append((p.returncode, json.loads(out) if out.strip() else {}, err))
    codes = sorted(code for code, _, _ in outs)
    assert codes[0] == 0 and codes[1] in (3, 6), [(c, e[-400:]) for c, _, e in outs]
    winner = next(doc for code, doc, _ in outs if code == 0)
    loser = next((doc, err) for code, doc, err in outs if code != 0)
    assert "in use by another rebalancer run" in loser[1] or "stale" in json.dumps(loser[0])
    sent = {c: nonce(evm_isolated, c) - before[c] for c in before}
    # every transaction on chain is one of the winner's (an approval and a swap at most per
    # trade); the loser signed nothing that landed
    landed = [t for t in winner["trades"] if t["status"] == "confirmed"]
    assert landed and sum(sent.values()) <= 2 * len(landed)
    assert not [t for t in loser[0].get("trades", []) if t["status"] == "confirmed"]


def test_a_wallet_that_sent_from_elsewhere_since_the_read_is_refused_as_stale(
    evm_isolated: dict[str, Any], tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    """Another machine sends from the wallet between the balance read and the signature
    (anvil_setNonce stands for its transaction): nothing is signed, exit 3 names the wallet."""
    from rebalancer.chains.evm import EvmChain
    from rebalancer.services import injected
    from tests.conftest import rpc_call
    from tests.rebalancer.test_execution import WALLET, around, nonce, run_json

    monkeypatch.setenv("DEMO_PASS", "demo")
    monkeypatch.setenv("ONEINCH_API_KEY", "test-key")
    cfg = write_config(tmp_path)
    moved: list[str] = []

    async def elsewhere_then_simulate(chain: EvmChain, legs: Any) -> Any:
        if not moved:
            moved.append(chain.info.name)
            url = evm_isolated[chain.info.name]["url"]
            rpc_call(url, "anvil_setNonce", WALLET, hex(nonce(evm_isolated, chain.info.name) + 1))
        return await chain.simulate(legs)

    before = {c: nonce(evm_isolated, c) for c in ("ethereum", "avalanche")}
    with injected(wrap=around(EvmChain, simulate=elsewhere_then_simulate)):
        code, out = run_json(capsys, "run", "-c", str(cfg), "--execute", "--yes")
    chain = moved[0]
    stale = [t for t in out["trades"] if t["chain"] == chain]
    assert stale and all(t["status"] == "refused" and "stale" in t["reason"] for t in stale)
    assert WALLET in stale[0]["reason"] and "nonce" in stale[0]["reason"]
    assert nonce(evm_isolated, chain) == before[chain] + 1  # only the foreign transaction
    assert code in (3, 6)


@pytest.mark.parametrize("kill_after", ["simulated", "confirmed in", "signing the swap"])
def test_a_killed_run_is_finished_by_the_rerun_with_no_extra_trade(
    evm_isolated: dict[str, Any], tmp_path: Path, capsys: Any, monkeypatch: Any, kill_after: str
) -> None:
    from tests.rebalancer.test_execution import nonce, run_json

    monkeypatch.setenv("DEMO_PASS", "demo")
    monkeypatch.setenv("ONEINCH_API_KEY", "test-key")
    cfg = write_config(tmp_path)
    before = {c: nonce(evm_isolated, c) for c in ("ethereum", "avalanche")}
    proc = _start_run(cfg)
    try:
        _wait_for(proc, kill_after)
        proc.kill()  # SIGKILL: no handler runs; the run stays "running" in the journal
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    j = Journal(tmp_path / "journal.sqlite")
    try:
        (first,) = j.runs_with_plans()
        assert first.plan is not None
        planned = {t.id for t in first.plan.trades}
    finally:
        j.close()
    code, out = run_json(capsys, "run", "-c", str(cfg), "--execute", "--yes")
    assert code == 0, out
    j = Journal(tmp_path / "journal.sqlite")
    try:
        runs = {r.id: r for r in j.runs()}
        summary = runs[first.id].summary
        assert runs[first.id].status == "interrupted"
        assert summary is not None and getattr(summary, "resumed_by", None)
        confirmed = [
            t for t in j.trades(states=("confirmed",)) if not t.trade_id.endswith("-approve")
        ]
        with_tx = [t for t in j.trades() if t.tx_hash is not None and t.state == "confirmed"]
        assert not j.trades(states=("planned",))
    finally:
        j.close()
    # every trade of the first plan landed exactly once; nothing else was traded
    assert sorted(t.trade_id for t in confirmed) == sorted(planned)
    sent = sum(nonce(evm_isolated, c) - before[c] for c in before)
    assert sent == len(with_tx)
