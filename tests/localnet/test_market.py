"""The moving market on real local worlds: after a step every oracle (Chainlink and Pyth), every
Uniswap pool and the Jupiter stand-in's quotes agree with the path's prices within the pools'
fees, and every chain's clock is at the step's time. The market runs on worlds of its own
(time cannot be reverted, so the session's shared worlds stay frozen)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from rebalancer.chains.oracles import (
    OracleKind,
    decode_round,
    feeds_on,
    load_feeds,
    parse_price_update,
)
from rebalancer.chains.registry import Registry
from rebalancer.core.errors import ConfigError
from rebalancer.core.resources import fixture_path
from rebalancer.localnet import manager
from rebalancer.localnet.market import (
    Market,
    PricePath,
    StepReport,
    default_story,
    from_iso,
    load_path,
    random_walk,
    start_after,
)
from rebalancer.localnet.rpc import Rpc
from tests.conftest import rpc_call

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def market_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Worlds of this module's own, as `rebalancer localnet up` starts them."""
    path = tmp_path_factory.mktemp("market-localnet")
    try:
        manager.up(path)
    except Exception:
        for log in path.glob("*.log"):
            print(f"--- {log.name}\n{log.read_text()[-2000:]}")
        manager.down(path)
        raise
    try:
        yield path
    finally:
        manager.down(path)


def _step(state_dir: Path, moves: dict[str, Decimal]) -> StepReport:
    async def go() -> StepReport:
        market = await Market.open(state_dir)
        try:
            at = start_after(await market.now()) + timedelta(hours=6)
            prices = {a: market.prices[a] * m for a, m in moves.items()}
            return await market.step(at, prices)
        finally:
            await market.aclose()

    return asyncio.run(go())


def _worlds(state_dir: Path) -> dict[str, dict[str, Any]]:
    manifest = manager.read_manifest(state_dir)
    assert manifest is not None
    return {w["name"]: w for w in manifest["worlds"]}


def test_a_step_moves_clocks_oracles_pools_and_quotes_together(market_dir: Path) -> None:
    moves = {
        "ETH": Decimal("1.12"),
        "BTC": Decimal("0.9"),
        "SOL": Decimal("1.3"),
        "AVAX": Decimal("0.8"),
        "LINK": Decimal("1.05"),
        "JUP": Decimal("0.7"),
        "BONK": Decimal("1.5"),
    }
    report = _step(market_dir, moves)
    at = int(report.at.timestamp())
    prices = report.prices
    worlds = _worlds(market_dir)
    manifest = manager.read_manifest(market_dir)
    assert manifest is not None
    assert manifest["market"]["simulated"] is True
    assert manifest["market"]["now"] == report.at.isoformat().replace("+00:00", "Z")

    registry = Registry.load()
    for chain in ("ethereum", "avalanche"):
        url = worlds[chain]["url"]
        block = rpc_call(url, "eth_getBlockByNumber", "latest", False)
        assert int(block["timestamp"], 16) == at
        rpc = Rpc(url)
        try:
            for feed in feeds_on(chain):
                latest = decode_round(rpc.read(feed.address, "latestRoundData()"))
                assert latest is not None
                _round, answer, _started, updated = latest
                assert updated == at
                assert Decimal(answer).scaleb(-feed.decimals) == prices[feed.asset].quantize(
                    Decimal(1).scaleb(-feed.decimals), rounding="ROUND_DOWN"
                )
            world = json.loads(fixture_path("evm", f"{chain}.world.json").read_text())
            for pool in world["pools"]:
                t0 = registry.by_symbol(chain, pool["token0"])
                t1 = registry.by_symbol(chain, pool["token1"])
                assert t0 is not None and t1 is not None
                if pool["kind"] == "v3":
                    sqrt_p = int.from_bytes(rpc.read(pool["address"], "slot0()")[:32], "big")
                    raw = Decimal(sqrt_p) ** 2 / Decimal(2**192)
                    fee = Decimal(pool["fee"]) / 10**6
                else:
                    out = rpc.read(pool["address"], "getReserves()")
                    r0 = int.from_bytes(out[:32], "big")
                    r1 = int.from_bytes(out[32:64], "big")
                    raw = Decimal(r1) / Decimal(r0)
                    fee = Decimal("0.003")
                spot = raw * Decimal(10) ** (t0.decimals - t1.decimals)  # token1 per token0
                want = prices[t0.asset] / prices[t1.asset]
                assert abs(spot / want - 1) <= fee, (chain, pool, spot, want)
        finally:
            rpc.close()

    # Solana: the clock and every Pyth account
    sol = worlds["solana"]["url"]
    slot = rpc_call(sol, "getSlot")
    assert at <= rpc_call(sol, "getBlockTime", slot) <= at + 5
    pyth = [f for f in load_feeds() if f.kind == OracleKind.PYTH]
    got = rpc_call(sol, "getMultipleAccounts", [f.address for f in pyth], {"encoding": "base64"})
    for feed, acc in zip(pyth, got["value"], strict=True):
        update = parse_price_update(base64.b64decode(acc["data"][0]))
        assert update.publish_time == at
        usd = Decimal(update.price).scaleb(update.exponent)
        assert abs(usd / prices[feed.asset] - 1) < Decimal("0.000001"), feed

    # Jupiter: 1 SOL quoted in USDC at the new price, within the maker's fee and impact
    jup = worlds["jupiter"]["url"].rsplit("/swap/", 1)[0] + "/swap/v1"  # the manifest names v2
    sol_mint = registry.by_symbol("solana", "wSOL")
    usdc = registry.by_symbol("solana", "USDC")
    assert sol_mint is not None and usdc is not None
    r = httpx.get(
        f"{jup}/quote",
        params={"inputMint": sol_mint.address, "outputMint": usdc.address, "amount": 10**9},
        headers={"x-api-key": "test"},
    )
    assert r.status_code == 200, r.text
    quoted = Decimal(r.json()["outAmount"]) / 10**6
    assert abs(quoted / prices["SOL"] - 1) < Decimal("0.001"), quoted


def test_time_only_moves_forward(market_dir: Path) -> None:
    async def go() -> None:
        market = await Market.open(market_dir)
        try:
            now = await market.now()
            with pytest.raises(ConfigError, match="only moves forward"):
                await market.step(now - timedelta(hours=1), {})
        finally:
            await market.aclose()

    asyncio.run(go())


# -- paths (no nodes) ---------------------------------------------------------------------------
def test_the_example_csv_loads_as_a_daily_path() -> None:
    path = load_path(EXAMPLES / "prices.csv")
    assert len(path) > 100
    assert path.step == timedelta(days=1)
    assert path.steps[0][1]["BTC"] == Decimal("42000.0")
    quarter = load_path(EXAMPLES / "prices.csv", step=timedelta(hours=6))
    assert quarter.step == timedelta(hours=6)
    assert len(quarter) == (len(path) - 1) * 4 + 1
    assert quarter.steps[4][1] == path.steps[1][1]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("2024-01-01,BTC,100\n2024-01-02,BTC,0\n", "line 3: price_usd = '0'"),
        ("2024-01-01,BTC,100\n2024-01-02,BTC,-5\n", "line 3: price_usd = '-5'"),
        ("2024-01-01,BTC,100\n2024-01-02,DOGE,5\n", "line 3: symbol = 'DOGE': unknown asset"),
        ("2024-01-02,BTC,100\n2024-01-01,BTC,5\n", "line 3: date = '2024-01-01' is before"),
        ("2024-01-01,BTC,100\n2024-01-09,BTC,5\n", "line 3: BTC has no price for 7 days"),
    ],
)
def test_a_bad_csv_is_one_error_naming_the_row(rows: str, message: str, tmp_path: Path) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text("date,symbol,price_usd\n" + rows)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_path(csv)


def test_a_seeded_walk_is_deterministic() -> None:
    a = random_walk(days=10, seed=7)
    b = random_walk(days=10, seed=7)
    c = random_walk(days=10, seed=8)
    assert a.steps == b.steps
    assert a.steps != c.steps
    assert len(a) == 41 and a.step == timedelta(hours=6)
    assert all(isinstance(p, Decimal) and p > 0 for _, ps in a for p in ps.values())


def test_the_default_story_rallies_drops_and_rests() -> None:
    story = default_story()
    assert isinstance(story, PricePath)
    assert len(story) == 481
    eth = [p["ETH"] for _, p in story]
    top = max(eth)
    assert top / eth[0] > Decimal("1.35")  # the rally
    low_after_top = min(eth[eth.index(top) :])
    assert low_after_top / top < Decimal("0.70")  # the sharp drop
    quiet = eth[int(0.4 * 480) : int(0.6 * 480)]
    assert max(quiet) / min(quiet) < Decimal("1.06")  # the quiet stretch


def test_balances_price_from_the_moved_oracles(
    market_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from rebalancer.cli import main

    report = _step(market_dir, {"ETH": Decimal("0.95"), "BTC": Decimal("1.07")})
    monkeypatch.setenv("REBALANCER_LOCALNET_DIR", str(market_dir))
    capsys.readouterr()
    assert main(["balances", "-c", str(EXAMPLES / "local.toml"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    for asset in ("ETH", "BTC"):
        sources = {s["name"]: Decimal(s["usd"]) for s in doc["prices"][asset]["sources"]}
        assert sources["chainlink ethereum"] == report.prices[asset].quantize(Decimal("1e-8"))
        assert abs(Decimal(doc["prices"][asset]["usd"]) / report.prices[asset] - 1) < Decimal(
            "0.0001"
        )


def test_the_arbitrageur_bytecode_is_built_from_its_source() -> None:
    from rebalancer.localnet.build import CONTRACTS, arbitrageur_code

    assert (CONTRACTS / "LocalArbitrageur.bin").read_text() == arbitrageur_code()


# -- the command --------------------------------------------------------------------------------
def _market_cmd(state_dir: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "REBALANCER_LOCALNET_DIR": str(state_dir)}
    return subprocess.Popen(
        [sys.executable, "-c", "from rebalancer.cli import main; raise SystemExit(main())",
         "localnet", "market", "--dir", str(state_dir), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )  # fmt: skip


def _wait_for_step(proc: subprocess.Popen[str], n: int) -> list[str]:
    """Read progress lines until step ``n`` is reported."""
    assert proc.stderr is not None
    lines = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith(f"· step {n}/"):
            return lines
    raise AssertionError("".join(lines))


@pytest.mark.parametrize(
    ("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)]
)
def test_a_signal_finishes_the_step_records_it_and_exits(
    market_dir: Path, sig: signal.Signals, code: int
) -> None:
    # 6 h steps at 72000 simulated seconds per wall second: a step every 0.3 s
    proc = _market_cmd(market_dir, "--seed", "5", "--days", "10", "--speed", "72000")
    try:
        _wait_for_step(proc, 1)
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"stopped by {sig.name} after step "), err
    manifest = manager.read_manifest(market_dir)
    assert manifest is not None
    assert manifest["market"]["now"] in last
    assert manifest["market"]["pid"] is None


@pytest.fixture
def spare_worlds(tmp_path: Path) -> Iterator[Path]:
    """EVM worlds of one test's own (the test stops or kills them)."""
    path = tmp_path / "localnet"
    manager.up(path, services=False)
    try:
        yield path
    finally:
        manager.down(path)


def test_a_world_that_dies_stops_the_market_at_the_step_it_reached(spare_worlds: Path) -> None:
    proc = _market_cmd(spare_worlds, "--seed", "1", "--days", "10", "--speed", "72000")
    try:
        _wait_for_step(proc, 1)
        avalanche = _worlds(spare_worlds)["avalanche"]
        os.kill(int(avalanche["pid"]), signal.SIGKILL)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 4, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: world avalanche"), err
    manifest = manager.read_manifest(spare_worlds)
    assert manifest is not None
    assert f"the market stopped at step {manifest['market']['steps']} " in last


def test_up_with_a_market_runs_it_detached_until_down(spare_worlds: Path) -> None:
    from rebalancer.cli import main

    env_dir = ["--dir", str(spare_worlds)]
    assert main(["localnet", "up", *env_dir, "--market", "story", "--days", "30",
                 "--speed", "43200"]) == 0  # fmt: skip
    deadline = time.monotonic() + 30
    status = manager.market_status(spare_worlds)
    while time.monotonic() < deadline:
        status = manager.market_status(spare_worlds)
        if status is not None and status.get("steps", 0) >= 2:
            break
        time.sleep(0.2)
    assert status is not None and status["running"] and status["simulated"], status
    assert status["path"].startswith("the default story")
    pid = status["pid"]
    manager.down(spare_worlds)
    assert not manager.pid_alive(pid)


def test_a_bad_market_path_starts_nothing(tmp_path: Path) -> None:
    from rebalancer.cli import main

    bad = tmp_path / "bad.csv"
    bad.write_text("date,symbol,price_usd\n2024-01-01,BTC,-1\n")
    state = tmp_path / "localnet"
    assert main(["localnet", "up", "--dir", str(state), "--market", str(bad)]) == 2
    assert not (state / "manifest.json").exists()


def test_the_hand_encoded_step_is_the_abi_encoding() -> None:
    from eth_abi import encode

    from rebalancer.localnet.market import _STEP_SIG, step_calldata
    from rebalancer.localnet.rpc import selector

    feeds = [("0x5f4eC3Df9cbd43714FE2740f5E3616155c5b8419", 320012345678), (f"0x{'ab' * 20}", -5)]
    pools = [("0x88e6A0c2dDD26FEEb64F039a2c41296FcB3f5640", 2**150 + 7, True)]
    for f, p in ((feeds, pools), ([], []), (feeds, [])):
        types = ["uint64", "(address,int256)[]", "(address,uint160,bool)[]"]
        want = "0x" + (selector(_STEP_SIG) + encode(types, [1796124829, f, p])).hex()
        assert step_calldata(1796124829, f, p) == want


def test_warping_the_solana_clock_moves_the_sysvar_and_expires_old_blockhashes() -> None:
    from rebalancer.localnet.solana_node.node import SolanaNode

    node = SolanaNode(slot_ms=400)

    def warp(when: int) -> dict[str, int]:
        request = {"jsonrpc": "2.0", "id": 1, "method": "localnet_warpClock", "params": [when]}
        reply = node.rpc.handle_request(request)
        assert reply is not None and "result" in reply, reply
        return dict(reply["result"])

    old = node.clock.latest_blockhash()["blockhash"]
    slot0 = node.slot
    when = node.clock.block_time(node.slot) + 6 * 3600
    moved = warp(when)
    assert moved["unixTimestamp"] == when
    assert node.svm.get_clock().unix_timestamp == when
    assert moved["slot"] >= slot0 + 6 * 3600 * 1000 // 400
    assert not node.clock.blockhash_ok(old)
    assert node.clock.blockhash_ok(node.clock.latest_blockhash()["blockhash"])
    assert warp(when - 3600)["slot"] >= moved["slot"]  # the past: the clock stays


def test_a_walk_and_the_story_start_where_the_worlds_last_were() -> None:
    from rebalancer.localnet.market import choose_path
    from rebalancer.localnet.worlds import PRICES

    here = {**PRICES, "ETH": Decimal("2000")}
    for seed in (None, 3):
        path = choose_path(None, seed, 2, timedelta(hours=6), here)
        assert path.steps[0][1]["ETH"] == Decimal("2000")
        assert path.steps[0][1]["BTC"] == PRICES["BTC"]


def test_a_second_placing_of_a_path_is_what_a_rerun_continues(market_dir: Path) -> None:
    """The manifest keeps the latest placing of a path, not the first one ever: a second living
    demo on the same worlds that is interrupted continues from its own start on rerun."""
    from rebalancer.commands.living import placed_start

    path = default_story(days=10)

    async def go() -> datetime:
        market = await Market.open(market_dir)
        try:
            now = await market.now()
            market.describe(path, now - timedelta(days=40))  # a first run, long over
            market.describe(path, now - timedelta(hours=1))  # a second one, under way
            return now
        finally:
            await market.aclose()

    now = asyncio.run(go())
    manifest = manager.read_manifest(market_dir)
    assert manifest is not None
    section = manifest["market"]
    assert from_iso(section["start"]) == now - timedelta(hours=1)
    assert placed_start(section, path, now) == now - timedelta(hours=1)
    # that run ended: start afresh
    assert placed_start(section, path, now + timedelta(days=10)) is None
