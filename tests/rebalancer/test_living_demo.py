"""The living demo on real local worlds of its own: ``demo --days 10`` runs the market's story
with a watch check every 6 simulated hours, on the chains' clock, and agrees with the backtest of
the same path and rules (TWR within 1.5 pp, the same rebalances within one check interval).
Time cannot be reverted, so the worlds are this module's own and are stopped at the end."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from rebalancer.cli import main
from rebalancer.journal import Journal
from rebalancer.localnet import manager


@pytest.fixture(scope="module")
def living_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The module's own worlds folder, as REBALANCER_LOCALNET_DIR; stopped in ``finally``."""
    path = tmp_path_factory.mktemp("living-localnet")
    old = os.environ.get("REBALANCER_LOCALNET_DIR")
    os.environ["REBALANCER_LOCALNET_DIR"] = str(path)
    try:
        yield path
    finally:
        try:
            manager.down(path)
        finally:
            if old is None:
                os.environ.pop("REBALANCER_LOCALNET_DIR", None)
            else:
                os.environ["REBALANCER_LOCALNET_DIR"] = old


@pytest.fixture(scope="module")
def ten_days(living_dir: Path) -> dict[str, Any]:
    """One ``demo --days 10 --json`` run, and what it printed last."""
    import contextlib
    import io

    out = io.StringIO()
    started = time.time()
    with contextlib.redirect_stdout(out):
        code = main(["demo", "--days", "10", "--json"])
    if code != 0:
        for log in living_dir.glob("*.log"):
            print(f"--- {log.name}\n{log.read_text()[-2000:]}")
    assert code == 0
    doc: dict[str, Any] = json.loads(out.getvalue().strip().splitlines()[-1])
    doc["_wall_started"] = started
    return doc


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_ten_days_rebalance_inside_the_band_on_the_chains_clock(ten_days: dict[str, Any]) -> None:
    doc = ten_days
    assert doc["days"] == 10
    assert doc["checks"] == 41  # every 6 h from the first step to the last, both included
    assert set(doc) >= {
        "rebalances",
        "prices",
        "after_max_drift_pp",
        "band_pp",
        "twr_pct",
        "buy_and_hold_pct",
        "backtest",
    }
    assert doc["rebalances"], "the demo wallets start skewed: the first check rebalances"
    band = Decimal(doc["band_pp"])
    for r in doc["rebalances"]:
        assert set(r) == {
            "at",
            "triggers",
            "trades",
            "before_max_drift_pp",
            "after_max_drift_pp",
            "cost_usd",
        }
        assert r["triggers"] and r["trades"]
        assert all(t["status"] == "confirmed" for t in r["trades"])
        assert Decimal(r["after_max_drift_pp"]) <= band
        assert Decimal(r["cost_usd"]) >= 0
    assert Decimal(doc["after_max_drift_pp"]) <= band
    # the story's rally moves ETH and BTC up over the ten days
    assert Decimal(doc["prices"]["BTC"][1]) > Decimal(doc["prices"]["BTC"][0])
    # the checks ran on the chains' clock: the last rebalance-free day is days after the wall's
    times = [_at(r["at"]) for r in doc["rebalances"]]
    assert times == sorted(times)


def test_live_agrees_with_the_backtest(ten_days: dict[str, Any]) -> None:
    doc = ten_days
    live, bt = Decimal(doc["twr_pct"]), Decimal(doc["backtest"]["twr_pct"])
    assert abs(live - bt) <= Decimal("1.5"), (live, bt)
    live_at = [_at(r["at"]) for r in doc["rebalances"]]
    bt_at = [_at(r["at"]) for r in doc["backtest"]["rebalances"]]
    assert len(live_at) == len(bt_at), (live_at, bt_at)
    for a, b in zip(live_at, bt_at, strict=True):
        assert abs(a - b) <= timedelta(hours=6), (a, b)


def test_the_journal_is_dated_on_the_simulated_clock(
    ten_days: dict[str, Any], data_dir: Path
) -> None:
    """Every check is a journalled run dated on the chains' clock: the last one is about ten
    simulated days after the first, though the demo took minutes of wall time."""
    journal = Journal(data_dir / "living" / ".living-journal.sqlite")
    try:
        runs = journal.runs(limit=100)
    finally:
        journal.close()
    assert len(runs) >= 41
    span = max(r.started_at for r in runs) - min(r.started_at for r in runs)
    assert span >= 9.9 * 86400
    assert max(r.started_at for r in runs) > time.time() + 9 * 86400


def test_a_bad_price_file_is_one_line_naming_the_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], living_dir: Path
) -> None:
    bad = tmp_path / "prices.csv"
    bad.write_text("date,symbol,price_usd\n2026-01-01,BTC,90000\n2026-01-02,BTC,-5\n")
    assert main(["demo", "--days", "2", "--prices", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "line 3" in err and "error:" in err


def _start(days: int) -> Any:
    """``demo --days N --json`` in a process of its own, once it has placed the path."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "rebalancer.cli", "demo", "--days", str(days), "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if "a watch check every" in line:
            break
    time.sleep(1.0)  # a few steps and checks
    return proc


def _settled(data_dir: Path) -> int:
    """Nothing half-done in the journal (no trade in flight, no run left open); its run count."""
    journal = Journal(data_dir / "living" / ".living-journal.sqlite")
    try:
        assert not journal.unfinished() and not journal.unfinished_runs()
        return len(journal.runs(limit=10_000))
    finally:
        journal.close()


def test_an_interrupted_demo_continues_from_the_chains_clock(
    ten_days: dict[str, Any], living_dir: Path, data_dir: Path
) -> None:
    """Ctrl-C stops the demo between steps (130) with the journal consistent; the same command
    again plays on from the chains' clock, not from the start."""
    import signal
    import subprocess
    import sys

    proc = _start(20)
    try:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    before = _settled(data_dir)
    cmd = [sys.executable, "-m", "rebalancer.cli", "demo", "--days", "20", "--json"]
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "continuing" in again.stderr
    doc = json.loads(again.stdout.strip().splitlines()[-1])
    assert doc["checks"] == _settled(data_dir) - before
    assert 0 < doc["checks"] < 81 - 41  # the steps already played are not played again


def test_a_world_that_dies_is_exit_4_with_the_journal_consistent(
    ten_days: dict[str, Any], living_dir: Path, data_dir: Path
) -> None:
    """The Jupiter stand-in killed while the demo runs: the market stops at that step, exit 4,
    one line naming the world, nothing half-done in the journal. (`localnet up`, and so the
    next demo, restarts every world when one is down: that rerun starts afresh.)"""
    import signal

    proc = _start(30)
    try:
        manifest = manager.read_manifest(living_dir)
        assert manifest is not None
        (jupiter,) = [w for w in manifest["worlds"] if w["name"] == "jupiter"]
        os.kill(int(jupiter["pid"]), signal.SIGTERM)
        _out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 4, err
    assert "error: " in err and "jupiter" in err.lower()
    _settled(data_dir)
