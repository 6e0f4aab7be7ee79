"""`rebalancer watch` on the local worlds: runs when a trigger fires, notifies, stops cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from rebalancer.cli import main
from rebalancer.commands.watch import parse_interval
from tests.rebalancer.test_execution import write_config


def test_interval_parsing() -> None:
    assert parse_interval("15m") == 900 and parse_interval("1h") == 3600
    assert parse_interval("30s") == 30 and parse_interval("2") == 2
    assert main(["watch", "--interval", "soon", "-c", "x.toml"]) == 2


@pytest.fixture
def webhook() -> Any:
    got: list[dict[str, Any]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook?token=SECRET", got
    finally:
        server.shutdown()
        server.server_close()


def test_watch_trades_when_triggered_then_rests_and_notifies(
    evm_isolated: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    webhook: Any,
) -> None:
    url, got = webhook
    monkeypatch.setenv("DEMO_PASS", "demo")
    monkeypatch.setenv("ONEINCH_API_KEY", "test-key")
    monkeypatch.setenv("HOOK_URL", url)
    cfg = write_config(tmp_path, '\n[notify]\nwebhook_env = "HOOK_URL"\n')
    code = main(
        ["watch", "-c", str(cfg), "--interval", "0", "--count", "2", "--execute", "--yes", "--json"]
    )
    assert code == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert [x["check"] for x in lines] == [1, 2]
    assert lines[0]["trades"] and all(t["status"] == "confirmed" for t in lines[0]["trades"])
    assert lines[1]["trades"] == []
    assert len(got) == 1 and got[0]["check"] == 1 and got[0]["status"] == "ok"


def test_watch_stops_cleanly_on_sigterm(evm_worlds: dict[str, Any], tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    env = {**os.environ, "DEMO_PASS": "demo", "ONEINCH_API_KEY": "test-key"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rebalancer.cli", "watch", "-c", str(cfg), "--interval", "1h"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        assert proc.stderr is not None
        seen = ""
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            seen += line
            if "check 1:" in line:
                break
        assert "check 1:" in seen, seen
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert "watch stopped after 1 check" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
