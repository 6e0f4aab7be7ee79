"""Notifications on loopback stand-ins of Telegram, Discord, Slack, ntfy and the generic webhook:
a trade refused during ``watch --execute`` on the local worlds reaches every one, with its
reason and without any secret."""

from __future__ import annotations

import json
import re
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


TRADES = [
    {"id": "t1", "chain": "ethereum", "sell": "ETH", "buy": "WBTC", "status": "confirmed",
     "amount_in": "1500000000000000000", "quoted_out": "5213456", "realised_out": "5210999",
     "sell_decimals": 18, "buy_decimals": 8, "tx": "0xabc", "reason": None},
    {"id": "t2", "chain": "avalanche", "sell": "AVAX", "buy": "USDC", "status": "refused",
     "amount_in": "89140596492857137142", "quoted_out": "3120456789", "sell_decimals": 18,
     "buy_decimals": 6, "tx": None,
     "reason": "over policy.max_trade_usd (node https://avax.example/ext/bc/C/rpc?key=RPCKEY)"},
    {"id": "t3", "chain": "ethereum", "sell": "ETH", "buy": "USDC", "status": "pending",
     "amount_in": "250000000000000000", "quoted_out": "800000000", "sell_decimals": 18,
     "buy_decimals": 6, "tx": "0xdef", "reason": None},
]  # fmt: skip
TRADING = {"check": 1, "mode": "execute", "triggered": True, "before_max_drift_pp": "7.5",
           "after_max_drift_pp": "0.4", "trades": TRADES}  # fmt: skip
FAILED = {"check": 2, "error": "node at https://x.example/v3/RPCKEY down", "exit_code": 4}
TITLES = {
    Event.TRIGGER_FIRED: "rebalancer: trigger fired",
    Event.PLAN_MADE: "rebalancer: plan made",
    Event.TRADES_LANDED: "rebalancer: trades landed",
    Event.TRADE_REFUSED: "rebalancer: trade refused",
    Event.RUN_FAILED: "rebalancer: run failed",
    Event.TX_STUCK: "rebalancer: transaction stale or stuck",
}


def test_notices_from_summaries() -> None:
    events = [n.event for n in notices({"check": 1, "triggered": True, "trades": TRADES})]
    assert events == [
        Event.TRIGGER_FIRED,
        Event.PLAN_MADE,
        Event.TRADES_LANDED,
        Event.TRADE_REFUSED,
        Event.TX_STUCK,
    ]
    failed = notices(FAILED)
    assert [n.event for n in failed] == [Event.RUN_FAILED] and "KEY" not in failed[0].text


def test_notices_carry_token_units_and_symbols() -> None:
    text = {n.event: n.text for n in notices(TRADING)}
    assert text[Event.TRIGGER_FIRED] == "check 1: max drift 7.5 pp, 0.4 pp after the plan"
    assert "t1 on ethereum: 1.5 ETH for 0.0521345 WBTC" in text[Event.PLAN_MADE]
    assert "t2 on avalanche: 89.1405 AVAX for 3,120.45 USDC" in text[Event.PLAN_MADE]
    assert text[Event.TRADES_LANDED] == "t1 on ethereum: 1.5 ETH for 0.0521099 WBTC, tx 0xabc"
    assert text[Event.TRADE_REFUSED].startswith(
        "t2 on avalanche: 89.1405 AVAX for 3,120.45 USDC: over policy.max_trade_usd"
    )
    assert "RPCKEY" not in text[Event.TRADE_REFUSED]
    assert text[Event.TX_STUCK] == "t3 on ethereum: 0.25 ETH for 800 USDC: pending, tx 0xdef"
    # a summary without decimals says base units rather than guessing
    bare = {**TRADES[2], "sell_decimals": None, "buy_decimals": None}
    (stuck,) = [n for n in notices({"trades": [bare]}) if n.event is Event.TX_STUCK]
    assert "250000000000000000 base units of ETH" in stuck.text


def test_each_event_reaches_each_channel_readable_and_without_secrets(
    standin: tuple[str, list[dict[str, Any]]],
) -> None:
    from rebalancer.config import NotifyConfig
    from rebalancer.notify import channels, send

    base, got = standin
    env = {
        "HOOK_URL": f"{base}/hook?token=HOOK-SECRET",
        "TG_TOKEN": TOKEN,
        "TG_CHAT": "4242",
        "DISCORD_URL": f"{base}/discord/api/webhooks/1/DISCORD-SECRET",
        "SLACK_URL": f"{base}/slack/services/T/B/SLACK-SECRET",
        "NTFY_URL": f"{base}/ntfy/topic-NTFY-SECRET",
        "NTFY_TOKEN": "tk_NTFYTOKEN",
    }
    spec = NOTIFY.format(base=base).split("\n")[2:]
    fields = {k.strip(): v.strip().strip('"') for k, _, v in (ln.partition("=") for ln in spec)}
    chans = channels(NotifyConfig(**{k: v for k, v in fields.items() if k}), env)
    warnings: list[str] = []
    assert send(chans, TRADING, warnings.append) + send(chans, FAILED, warnings.append) > 0
    assert warnings == []
    texts: dict[str, list[str]] = {}
    for post in got:
        service = post["path"].split("/")[1].split("?")[0]
        body = post["body"]
        if service == "ntfy":
            body = f"{post['headers']['Title']}\n{body}"
        elif service != "hook":
            body = json.loads(body)[{"discord": "content"}.get(service, "text")]
        texts.setdefault(service, []).append(body)
        for secret in ("HOOK-SECRET", "TELEGRAM-SECRET", "DISCORD-SECRET", "SLACK-SECRET",
                       "NTFY", "RPCKEY"):  # fmt: skip
            assert secret not in post["body"], (post["path"], secret)
    assert len(texts.pop("hook")) == 2  # the JSON summary, once per check
    assert set(texts) == {"telegram", "discord", "slack", "ntfy"}
    for service, bodies in texts.items():
        joined = "\n".join(bodies)
        for event, title in TITLES.items():
            assert title in joined, (service, event)
        assert "1.5 ETH for 0.0521099 WBTC" in joined and "89.1405 AVAX" in joined, service
        assert "base units" not in joined and "1500000000000000000" not in joined, service


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
    # in token units with symbols, rounded as the tables are
    units = re.compile(r"trade refused\n\S+ on \w+: [\d,.]+ [A-Z]+ for ([\d,.]+ )?[A-Z]+: ")
    assert any(units.search(m["text"]) for m in tg), [m["text"] for m in tg]
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
