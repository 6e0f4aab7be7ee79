"""Money safety from outside (issue 14): signals, partial results, resumes, one writer per
wallet, numbers. Every test runs on the real local worlds, in-process or as a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

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
        assert [r["status"] for r in runs] == ["interrupted"]
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
