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
