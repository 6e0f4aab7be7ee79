"""Holding periods on the chains' clock: after the local market has run the worlds more than a
year ahead of the wall clock, ``lots import`` accepts a lot dated between the two and refuses one
after the chains' time, and a lot bought a month before the wall clock's today is sold ``long``
term in ``tax`` (the wall clock would say short). Time cannot be reverted, so the worlds are
this module's own and are stopped at the end."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from rebalancer.cli import main
from rebalancer.commands.demo import DEMO_ENV, packaged_config
from rebalancer.localnet import manager
from rebalancer.localnet.market import Market


def _cli(*argv: str) -> tuple[int, Any]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(argv))
    text = out.getvalue().strip()
    return code, json.loads(text) if code == 0 and text else None


@pytest.fixture(scope="module")
def ahead(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, datetime]]:
    """The demo config on worlds of their own, stepped twice by 200 days (prices unchanged):
    the config and the chains' time."""
    state = tmp_path_factory.mktemp("taxclock-localnet")
    data = tmp_path_factory.mktemp("taxclock-data")
    saved = {k: os.environ.get(k) for k in ("REBALANCER_LOCALNET_DIR", *DEMO_ENV)}
    os.environ["REBALANCER_LOCALNET_DIR"] = str(state)
    os.environ.update(DEMO_ENV)

    async def forward() -> datetime:
        market = await Market.open(state)
        try:
            at = await market.now()
            for _ in range(2):
                at += timedelta(days=200)
                await market.step(at, dict(market.prices))
            return await market.now()
        finally:
            await market.aclose()

    try:
        manager.up(state)
        chain_now = asyncio.run(forward())
        yield packaged_config(data), chain_now
    except Exception:
        for log in state.glob("*.log"):
            print(f"--- {log.name}\n{log.read_text()[-2000:]}")
        raise
    finally:
        try:
            manager.down(state)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def _lots_csv(path: Path, rows: list[tuple[date, str, str, str]]) -> Path:
    path.write_text(
        "date,asset,amount,cost_basis_usd\n"
        + "".join(f"{d.isoformat()},{a},{n},{c}\n" for d, a, n, c in rows)
    )
    return path


def test_lot_dates_and_terms_follow_the_chains_clock(
    ahead: tuple[Path, datetime], tmp_path: Path
) -> None:
    cfg, chain_now = ahead
    wall = datetime.now(UTC).date()
    assert (chain_now.date() - wall).days > 365
    # after the chains' time: refused, one line, nothing imported
    late = _lots_csv(
        tmp_path / "late.csv", [(chain_now.date() + timedelta(days=2), "ETH", "1", "1")]
    )
    assert main(["lots", "import", str(late), "-c", str(cfg)]) == 2
    # after the wall clock but before the chains' time: accepted on simulated worlds
    mid = wall + timedelta(days=100)
    # lots of an asset the rebalance will sell (the plan is deterministic: run makes it again)
    code, proposed = _cli("plan", "-c", str(cfg), "--json")
    assert code == 0 and proposed["trades"], proposed
    sold_assets = sorted({t["sell"]["asset"] for t in proposed["trades"]})
    asset = "ETH" if "ETH" in sold_assets else sold_assets[0]
    symbols = {t["sell"]["symbol"] for t in proposed["trades"] if t["sell"]["asset"] == asset}
    ok = _lots_csv(
        tmp_path / "ok.csv",
        [(wall - timedelta(days=30), asset, "0.5", "1000"), (mid, asset, "0.01", "30")],
    )
    code, doc = _cli("lots", "import", str(ok), "-c", str(cfg), "--json")
    assert code == 0 and doc["imported"] == 2
    code, book = _cli("lots", "-c", str(cfg), "--json")
    assert code == 0
    assert {x["acquired"] for x in book["lots"] if x["source"] == "import"} >= {
        (wall - timedelta(days=30)).isoformat(),
        mid.isoformat(),
    }
    # the rebalance sells that asset; the month-old lot goes first
    code, run = _cli("run", "-c", str(cfg), "--execute", "--yes", "--json")
    assert code == 0
    sold = [t for t in run["trades"] if t["status"] == "confirmed" and t["sell"] in symbols]
    assert sold, run["trades"]
    code, tax = _cli("tax", "-c", str(cfg), "--json")
    assert code == 0
    month_old = [
        d for d in tax["disposals"] if d["acquired"] == (wall - timedelta(days=30)).isoformat()
    ]
    assert month_old, tax["disposals"]
    for d in month_old:
        assert d["term"] == "long"  # the wall clock: 30 days, short
        assert date.fromisoformat(d["disposed"]) >= chain_now.date()
