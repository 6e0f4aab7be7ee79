"""`rebalancer dashboard`: a real rebalance on the local worlds, then the page in a real browser.

The browser test drives Debian's chromium (headless, through selenium and the system
chromedriver) against the `dashboard` command run as its own process: every panel renders, the
trades table has one row per journalled trade, a trade journalled by another process appears
without a reload, and the browser's own network log shows no request beyond 127.0.0.1. The
other tests hold the server to its promises without a browser: read-only, loopback names only,
no secret on the page, no signer loaded, clear exit codes.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from rebalancer.cli import main
from rebalancer.documents.journal import NewTrade, RunSummary
from rebalancer.documents.plan import PlanFile
from rebalancer.documents.status import RunMode, RunStatus, TradeStatus
from rebalancer.journal import Journal
from tests.dashboard.browser import chrome, full_screenshot, missing, requested_urls
from tests.rebalancer.test_execution import write_config

PANELS = ("holdings", "allocation", "drift-history", "trades", "performance", "next-run")
SECRET = "sk-dashboard-test-secret-0123456789"


@contextmanager
def serve(cfg: Path, *extra: str, env: dict[str, str] | None = None) -> Iterator[tuple[str, Any]]:
    """`rebalancer dashboard` as its own process on a free port; stopped with SIGINT."""
    command = [sys.executable, "-m", "rebalancer.cli", "dashboard", "-c", str(cfg)]
    proc = subprocess.Popen(
        [*command, "--port", "0", *extra, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env or dict(os.environ),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("{"), f"no URL: {line!r} {proc.stderr.read() if proc.stderr else ''}"
        yield json.loads(line)["url"], proc
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _journal_trades(cfg: Path) -> list[Any]:
    journal = Journal(cfg.parent / "journal.sqlite")
    try:
        return journal.trades()
    finally:
        journal.close()


def _refreshed_at(driver: Any) -> float:
    from selenium.webdriver.common.by import By

    return float(
        driver.find_element(By.CSS_SELECTOR, "#last-refresh time").get_attribute("data-at")
    )


@pytest.fixture
def rebalanced(
    evm_isolated: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A config whose journal holds one executed rebalance on the local EVM worlds."""
    monkeypatch.setenv("DEMO_PASS", "demo")
    monkeypatch.setenv("ONEINCH_API_KEY", "test-key")
    cfg = write_config(tmp_path)
    assert main(["run", "-c", str(cfg), "--execute", "--yes", "--json"]) == 0
    assert any(t.state == "confirmed" for t in _journal_trades(cfg))
    return cfg


@pytest.mark.slow
def test_every_panel_in_a_real_browser_and_nothing_beyond_loopback(
    rebalanced: Path, evm_worlds: dict[str, Any], tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    assert missing() is None, missing()
    trades = _journal_trades(rebalanced)
    # The dashboard gets no passphrase, and an API key it must never show.
    env = {k: v for k, v in os.environ.items() if k != "DEMO_PASS"}
    env["ONEINCH_API_KEY"] = SECRET
    with serve(rebalanced, "--refresh", "2s", env=env) as (url, _proc), chrome() as driver:
        assert urlsplit(url).hostname == "127.0.0.1"
        requested_urls(driver)  # forget the browser's own start page
        driver.get(url)
        wait = WebDriverWait(driver, 60)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#holdings tbody tr"))
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#allocation img.chart"))
        for pid in PANELS:
            panel = driver.find_element(By.ID, pid)
            assert panel.is_displayed(), pid
            assert panel.find_element(By.TAG_NAME, "h2").text, pid
        rows = driver.find_elements(By.CSS_SELECTOR, "#trades tbody tr")
        assert len(rows) == len(trades)
        shown = driver.find_element(By.ID, "trades").text
        for t in trades:
            if t.tx_hash:
                cell = driver.find_element(By.CSS_SELECTOR, f'#trades code[title="{t.tx_hash}"]')
                assert cell.text.startswith(t.tx_hash[:6])
        assert "confirmed" in shown
        holdings = driver.find_element(By.ID, "holdings").text
        assert "WBTC" in holdings and "$" in holdings
        assert "threshold" in driver.find_element(By.ID, "next-run").text
        assert "time-weighted return" in driver.find_element(By.ID, "performance").text
        wait.until(
            lambda d: d.execute_script(
                "return [...document.images].every(i => i.complete && i.naturalWidth > 0)"
            )
        )

        # live: a trade another process journals appears without a reload, with its reason
        at = _refreshed_at(driver)
        journal = Journal(rebalanced.parent / "journal.sqlite")
        try:
            plan = PlanFile.of({"created_at": "2026-01-01", "trades": []}, "test")
            run_id = journal.start_run(RunMode.SIMULATE, plan)
            t = trades[0]
            journal.add_trade(
                run_id,
                NewTrade(id="late", chain=t.chain, wallet=t.wallet, sell=t.sell,
                         buy=t.buy, amount_in=12345, min_out=None),
            )  # fmt: skip
            journal.update(run_id, "late", TradeStatus.REFUSED, error="policy: refused by the test")
            journal.finish_run(run_id, RunStatus.PARTIAL, RunSummary(trades=[]))
        finally:
            journal.close()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#trades tbody tr")) > len(rows))
        assert "policy: refused by the test" in driver.find_element(By.ID, "trades").text
        assert _refreshed_at(driver) > at

        shot = full_screenshot(driver, tmp_path / "dashboard.png")
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000

        page = driver.page_source
        assert SECRET not in page and "test-key" not in page
        for world in evm_worlds.values():
            assert urlsplit(world["url"]).netloc not in page  # no RPC or API address shown
        urls = requested_urls(driver)
        assert any(u.endswith("/dashboard.js") for u in urls) and any("/charts/" in u for u in urls)
        # chrome:// (the browser's own start page) and data: never touch a network
        network = [u for u in urls if urlsplit(u).scheme not in ("chrome", "data", "about")]
        assert {(urlsplit(u).scheme, urlsplit(u).hostname) for u in network} == {
            ("http", "127.0.0.1")
        }, network
        errors = [x for x in driver.get_log("browser") if x["level"] == "SEVERE"]
        assert not errors, errors


def test_the_dashboard_loads_no_signer(rebalanced: Path) -> None:
    """A live read and the plan, in a fresh process: no engine, no wallet module imported."""
    script = f"""
import json, sys
from rebalancer.dashboard.data import Dashboard
d = Dashboard({str(rebalanced)!r}, 30)
d.refresh_journal()
d.refresh_live()
s = d.state
assert s.live.error is None and s.live.plan is not None, s.live
assert len(s.journal.trades) > 0
print(json.dumps(sorted(m for m in sys.modules if m.startswith("rebalancer."))))
"""
    env = {k: v for k, v in os.environ.items() if k != "DEMO_PASS"}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    modules = json.loads(out.stdout.splitlines()[-1])
    assert "rebalancer.commands.plan" in modules
    loaded = [m for m in modules if m.startswith("rebalancer.wallet") or m == "rebalancer.engine"]
    assert loaded == []


def _get(port: int, path: str, host: str | None = None, method: str = "GET") -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Host": host} if host else {}
    conn.request(method, path, headers=headers)
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp, body


def _offline_config(tmp_path: Path) -> Path:
    """A config whose node is unreachable and whose URL carries a key in its path."""
    cfg = tmp_path / "rebalancer.toml"
    cfg.write_text(
        f"""
journal = "journal.sqlite"
[chains.ethereum]
rpc = "http://127.0.0.1:1/v2/{SECRET}"
[[wallets]]
name = "main"
address = "0x38933fB3600db971A459767D149B492e58e40b76"
chains = ["ethereum"]
[strategy]
targets = {{ BTC = 40, ETH = 30, ALTS = 20, STABLES = 10 }}
band_pp = 5
[prices]
BTC = 95000
ETH = 3200
"""
    )
    return cfg


def test_read_only_loopback_only_and_no_secret_when_the_node_is_down(tmp_path: Path) -> None:
    from rebalancer.dashboard.data import Dashboard
    from rebalancer.dashboard.page import draw
    from rebalancer.dashboard.server import DashboardServer

    cfg = _offline_config(tmp_path)
    dash = Dashboard(str(cfg), 30, draw=draw)
    server = DashboardServer("127.0.0.1", 0, dash, ("127.0.0.1", "localhost"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    dash.start()
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while dash.state.live is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert dash.state.live is not None and dash.state.live.error
        port = server.port
        resp, body = _get(port, "/")
        assert resp.status == 200
        assert "default-src 'none'" in resp.getheader("Content-Security-Policy")
        text = body.decode()
        for pid in PANELS:
            assert f'id="{pid}"' in text
        resp, body = _get(port, "/api/panels")
        panels = json.loads(body)["panels"]
        assert "Live read failed" in panels["status"]
        everything = text + body.decode()
        assert SECRET not in everything and "/v2/" not in everything
        assert _get(port, "/", host=f"rebind.example:{port}")[0].status == 403
        assert _get(port, "/", host=f"localhost:{port}")[0].status == 200
        assert _get(port, "/", method="POST")[0].status == 405
        assert _get(port, "/static/../data.py")[0].status == 404
        resp, body = _get(port, "/static/dashboard.js")
        assert resp.status == 200 and resp.getheader("Content-Type").startswith("text/javascript")
        # server-sent events: the current version at once
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/events")
        events = conn.getresponse()
        assert events.getheader("Content-Type") == "text/event-stream"
        first = b""
        while b"event: update" not in first:
            first += events.fp.readline()
        conn.close()
        assert not (tmp_path / "journal.sqlite").exists()  # a read-only page creates nothing
    finally:
        server.stop()


def test_bad_arguments_are_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _offline_config(tmp_path)
    assert main(["dashboard", "-c", str(tmp_path / "nope.toml")]) == 2
    assert main(["dashboard", "-c", str(cfg), "--host", "my laptop"]) == 2
    assert main(["dashboard", "-c", str(cfg), "--port", "70000"]) == 2
    assert main(["dashboard", "-c", str(cfg), "--refresh", "often"]) == 2
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["dashboard", "-c", str(cfg), "--port", str(port)]) == 2
    assert "cannot listen" in capsys.readouterr().err


def test_any_other_host_is_explicit_and_warned(tmp_path: Path) -> None:
    """Non-loopback addresses are told apart and warned about; served that way, any Host name
    is answered (the user chose to be reachable). Tests never listen beyond loopback."""
    from rebalancer.commands.dashboard import check_host, exposure_warning
    from rebalancer.dashboard.data import Dashboard
    from rebalancer.dashboard.server import DashboardServer

    assert check_host("127.0.0.1") and check_host("localhost") and check_host("::1")
    assert not check_host("0.0.0.0") and not check_host("192.168.1.20") and not check_host("::")
    assert "reachable from other machines" in exposure_warning("0.0.0.0", 8787)
    server = DashboardServer("127.0.0.1", 0, Dashboard(str(_offline_config(tmp_path)), 30), None)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert _get(server.port, "/", host="dashboard.lan:8787")[0].status == 200
    finally:
        server.stop()


def test_numbers_for_people() -> None:
    from decimal import Decimal

    from rebalancer.dashboard.page import amount, e, price, short_id, usd

    assert amount(Decimal("0.008316129")) == "0.008316"
    assert amount(Decimal("150000000")) == "150,000,000"
    assert amount(Decimal("199.74771234")) == "199.7477"
    assert amount(Decimal("1234.5678")) == "1,234.56"
    assert amount(Decimal("0.000000001")) == "0.000000001"
    assert price(Decimal("0.00002")) == "$0.00002" and price(Decimal("95000")) == "$95,000.00"
    assert usd(Decimal("-1.5")) == "-$1.50" and usd(None) == "–"
    assert e("<script>") == "&lt;script&gt;"
    assert short_id("0x" + "ab" * 32, 6) == '<code title="0x' + "ab" * 32 + '">0xabab…abab</code>'


def test_next_run_shows_the_plan_and_the_triggers_before_a_rebalance(
    evm_isolated: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the skewed demo portfolio the threshold fires and the panel lists what `run` would
    trade; the dashboard itself journals nothing."""
    from rebalancer.dashboard.data import Dashboard
    from rebalancer.dashboard.page import draw, panels

    monkeypatch.setenv("ONEINCH_API_KEY", "test-key")
    cfg = write_config(tmp_path)
    dash = Dashboard(str(cfg), 30, draw=draw)
    dash.refresh_journal()
    dash.refresh_live()
    state = dash.state
    assert state.live is not None and state.live.plan is not None and state.live.plan.trades
    html = panels(state, dash.registry, dash.config)
    assert "fired" in html["next-run"] and "estimated cost" in html["next-run"]
    assert html["next-run"].count("<tr>") >= len(state.live.plan.trades) + 1
    assert "out of band" in html["allocation"] and {"allocation", "drift-history"} <= set(
        state.charts
    )
    assert state.charts["allocation"].lstrip().startswith(b"<?xml")
    assert not (tmp_path / "journal.sqlite").exists()
