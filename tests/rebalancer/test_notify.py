"""Notifications on loopback stand-ins of Telegram, Discord, Slack, ntfy and the generic webhook:
a trade refused during ``watch --execute`` on the local worlds reaches every one, with its
reason and without any secret."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from rebalancer.cli import main
from rebalancer.notify import Event, notices
from tests.rebalancer.test_execution import write_config

TOKEN = "123456:TELEGRAM-SECRET"
NOTIFY = """
[notify]
webhook_env = "HOOK_URL"
telegram_token_env = "TG_TOKEN"
telegram_chat_env = "TG_CHAT"
telegram_api_url = "{base}/telegram"
discord_webhook_env = "DISCORD_URL"
slack_webhook_env = "SLACK_URL"
ntfy_url_env = "NTFY_URL"
ntfy_token_env = "NTFY_TOKEN"
"""


@pytest.fixture
def standin() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """One loopback server standing in for every service; records each POST."""
    got: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            got.append({"path": self.path, "headers": dict(self.headers), "body": body})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"ok": true}')

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", got
    finally:
        server.shutdown()
        server.server_close()


def test_notices_from_summaries() -> None:
    trades = [
        {"id": "t1", "chain": "ethereum", "sell": "ETH", "buy": "WBTC", "status": "confirmed",
         "tx": "0xabc", "reason": None},
        {"id": "t2", "chain": "avalanche", "sell": "AVAX", "buy": "USDC", "status": "refused",
         "tx": None, "reason": "over policy.max_trade_usd"},
        {"id": "t3", "chain": "ethereum", "sell": "ETH", "buy": "USDC", "status": "pending",
         "tx": "0xdef", "reason": None},
    ]  # fmt: skip
    events = [n.event for n in notices({"check": 1, "triggered": True, "trades": trades})]
    assert events == [
        Event.TRIGGER_FIRED,
        Event.PLAN_MADE,
        Event.TRADES_LANDED,
        Event.TRADE_REFUSED,
        Event.TX_STUCK,
    ]
    failed = notices({"check": 2, "error": "node at https://x.example/v3/KEY down", "exit_code": 4})
    assert [n.event for n in failed] == [Event.RUN_FAILED] and "KEY" not in failed[0].text


def test_refused_trade_in_watch_reaches_every_channel(
    evm_isolated: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    standin: tuple[str, list[dict[str, Any]]],
) -> None:
    base, got = standin
    env = {
        "DEMO_PASS": "demo",
        "ONEINCH_API_KEY": "test-key",
        "HOOK_URL": f"{base}/hook?token=HOOK-SECRET",
        "TG_TOKEN": TOKEN,
        "TG_CHAT": "4242",
        "DISCORD_URL": f"{base}/discord/api/webhooks/1/DISCORD-SECRET",
        "SLACK_URL": f"{base}/slack/services/T/B/SLACK-SECRET",
        "NTFY_URL": f"{base}/ntfy/topic-NTFY-SECRET",
        "NTFY_TOKEN": "tk_NTFYTOKEN",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    cfg = write_config(tmp_path, "max_fee_pct = 0.0001" + NOTIFY.format(base=base))
    code = main(
        ["watch", "-c", str(cfg), "--interval", "0", "--count", "1", "--execute", "--yes", "--json"]
    )
    # NOTE: every trade refused is exit 3 (watch --count tells the truth, issue 14)
    assert code == 3, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert summary["trades"] and all(t["status"] == "refused" for t in summary["trades"])
    by_service: dict[str, list[dict[str, Any]]] = {}
    for post in got:
        by_service.setdefault(post["path"].split("/")[1].split("?")[0], []).append(post)
    assert set(by_service) == {"hook", "telegram", "discord", "slack", "ntfy"}
    assert len(by_service["hook"]) == 1 and json.loads(by_service["hook"][0]["body"])["trades"]
    tg = [json.loads(p["body"]) for p in by_service["telegram"]]
    assert by_service["telegram"][0]["path"] == f"/telegram/bot{TOKEN}/sendMessage"
    assert all(m["chat_id"] == "4242" for m in tg)
    assert any("trade refused" in m["text"] and "max_fee_pct" in m["text"] for m in tg)
    assert any("max_fee_pct" in json.loads(p["body"])["content"] for p in by_service["discord"])
    assert any("max_fee_pct" in json.loads(p["body"])["text"] for p in by_service["slack"])
    ntfy = by_service["ntfy"]
    assert any(p["headers"]["Title"] == "rebalancer: trade refused" for p in ntfy)
    assert all(p["headers"]["Authorization"] == "Bearer tk_NTFYTOKEN" for p in ntfy)
    secrets = ["HOOK-SECRET", "TELEGRAM-SECRET", "DISCORD-SECRET", "SLACK-SECRET", "NTFY"]
    for post in got:
        for secret in secrets:
            assert secret not in post["body"], (post["path"], secret)


def test_unset_channel_variable_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLACK_URL", raising=False)
    cfg = write_config(tmp_path, '\n[notify]\nslack_webhook_env = "SLACK_URL"\n')
    assert main(["watch", "-c", str(cfg), "--count", "1"]) == 2
    assert "notify.slack_webhook_env" in capsys.readouterr().err
