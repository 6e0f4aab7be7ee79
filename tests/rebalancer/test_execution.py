"""The engine on the local worlds: dry runs, execution, the journal, and the faults of issue 7.

Every test runs `rebalancer` in-process against real anvil worlds and the 1inch stand-in, with
its own journal; the worlds are reverted after each test.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from rebalancer.chains.evm import EvmChain
from rebalancer.cli import main
from rebalancer.journal import Journal
from rebalancer.services import injected
from tests.conftest import rpc_call
from tests.market import pump

KEYS = Path(__file__).parents[2] / "examples" / "keys"
WALLET = "0x38933fB3600db971A459767D149B492e58e40b76"


def around(cls: type, **methods: Any) -> Any:
    """A ``wrap`` for ``injected``: every part of class ``cls`` Services builds gets ``methods``
    run in front of its own (each called with the real part first)."""

    class Around:
        def __init__(self, inner: Any) -> None:
            self._inner = inner

        def __getattr__(self, name: str) -> Any:
            if name in methods:
                return lambda *a, **kw: methods[name](self._inner, *a, **kw)
            return getattr(self._inner, name)

    return lambda part: Around(part) if isinstance(part, cls) else part


def write_config(tmp_path: Path, policy: str = "") -> Path:
    text = f"""
journal = "{tmp_path / "journal.sqlite"}"

[chains.ethereum]
rpc = "localnet:ethereum"
[chains.avalanche]
rpc = "localnet:avalanche"

[[wallets]]
name = "demo"
address = "{WALLET}"
chains = ["ethereum", "avalanche"]
signer = {{ kind = "keyfile", file = "{KEYS / "demo-evm.json"}", passphrase_env = "DEMO_PASS" }}

[strategy]
targets = {{ BTC = 40, ETH = 30, ALTS = 20, STABLES = 10 }}
band_pp = 5

[prices]
BTC = 95000
ETH = 3200
SOL = 180
JUP = 0.8
BONK = 0.00002
AVAX = 25
LINK = 15
UNI = 8
AAVE = 250
USDC = 1
USDT = 1

[aggregators."1inch"]
base_url = "localnet:1inch"
api_key_env = "ONEINCH_API_KEY"

[policy]
max_slippage_bps = 100
max_price_deviation_pct = 3
{policy}
"""
    path = tmp_path / "rebalancer.toml"
    path.write_text(text)
    return path


@pytest.fixture
def cfg(evm_isolated: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DEMO_PASS", "demo")
    monkeypatch.setenv("ONEINCH_API_KEY", "test-key")
    return write_config(tmp_path)


def nonce(worlds: dict[str, Any], chain: str) -> int:
    return int(rpc_call(worlds[chain]["url"], "eth_getTransactionCount", WALLET, "latest"), 16)


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = main([*argv, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else {}


def journal_txs(path: Path) -> dict[str, int]:
    """Journal rows that hold a signed transaction, per chain."""
    j = Journal(path)
    try:
        rows = [t for t in j.trades() if t.tx_hash is not None]
    finally:
        j.close()
    out: dict[str, int] = {}
    for t in rows:
        out[t.chain] = out.get(t.chain, 0) + 1
    return out


def test_dry_run_signs_nothing(
    cfg: Path, evm_isolated: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    before = {c: nonce(evm_isolated, c) for c in ("ethereum", "avalanche")}
    code, out = run_json(capsys, "run", "-c", str(cfg))
    assert code == 0
    assert out["mode"] == "simulate" and out["trades"]
    for t in out["trades"]:
        assert t["status"] == "simulated" and t["tx"] is None
        assert int(t["simulated_out"]) >= int(t["min_out"]) > 0
        assert t["simulation"] == "anvil fork"
    assert {c: nonce(evm_isolated, c) for c in before} == before


def test_execute_rebalances_and_a_second_run_finds_nothing(
    cfg: Path, evm_isolated: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run_json(capsys, "run", "-c", str(cfg), "--execute", "--yes")
    assert code == 0 and out["status"] == "ok"
    for t in out["trades"]:
        assert t["status"] == "confirmed"
        assert int(t["realised_out"]) >= int(t["min_out"])
    code, drift = run_json(capsys, "drift", "-c", str(cfg))
    assert code == 0
    for row in drift["rows"]:
        if row["kind"] == "class":
            assert abs(Decimal(row["drift_pp"])) <= Decimal(5), row
    code, again = run_json(capsys, "run", "-c", str(cfg), "--execute", "--yes")
    assert code == 0 and again["trades"] == []
    code, hist = run_json(capsys, "history", "-c", str(cfg))
    assert [r["mode"] for r in hist["runs"]] == ["execute", "execute"]
    confirmed = [t for t in hist["runs"][1]["trades"] if t["state"] == "confirmed"]
    assert len(confirmed) >= len(out["trades"])
    # every landed transaction's network fee is recorded (reports use it)
    j = Journal(cfg.parent / "journal.sqlite")
    try:
        landed = [t for t in j.trades() if t.state == "confirmed"]
    finally:
        j.close()
    assert landed and all(t.fee_native is not None and t.fee_native > 0 for t in landed)
    # every transaction on chain is in the journal exactly once
    assert journal_txs(cfg.parent / "journal.sqlite") == {
        c: nonce(evm_isolated, c) for c in journal_txs(cfg.parent / "journal.sqlite")
    }


def test_killed_after_send_is_recovered_not_resent(
    cfg: Path,
    evm_isolated: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_send = EvmChain.send_raw
    sends = {"n": 0}

    async def send_then_die(self: EvmChain, raw: bytes) -> str:
        await real_send(self, raw)
        sends["n"] += 1
        raise KeyboardInterrupt  # the process dies after the node took the transaction

    monkeypatch.setattr(EvmChain, "send_raw", send_then_die)
    assert main(["run", "-c", str(cfg), "--execute", "--yes"]) == 130
    monkeypatch.setattr(EvmChain, "send_raw", real_send)
    capsys.readouterr()
    j = Journal(cfg.parent / "journal.sqlite")
    try:
        left = j.unfinished()
    finally:
        j.close()
    assert left and all(t.state == "signed" for t in left)
    code, out = run_json(capsys, "run", "-c", str(cfg), "--execute", "--yes")
    assert code == 0 and out["recovered"] >= 1
    j = Journal(cfg.parent / "journal.sqlite")
    try:
        assert not j.unfinished()
        settled = [t for t in j.trades() if t.tx_hash == left[0].tx_hash]
    finally:
        j.close()
    assert [t.state for t in settled] == ["confirmed"]
    txs = journal_txs(cfg.parent / "journal.sqlite")
    for chain, count in txs.items():
        assert nonce(evm_isolated, chain) == count, chain  # nothing sent twice, nothing lost


def test_simulation_below_min_out_is_refused_and_nothing_signed(
    cfg: Path,
    evm_isolated: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def front_run_then_simulate(chain: EvmChain, legs: Any) -> Any:
        name = chain.info.name
        pump(evm_isolated[name]["url"], name, legs.buy.symbol, Decimal(4))
        return await chain.simulate(legs)

    before = {c: nonce(evm_isolated, c) for c in ("ethereum", "avalanche")}
    with injected(wrap=around(EvmChain, simulate=front_run_then_simulate)):
        code, out = run_json(capsys, "run", "-c", str(cfg), "--execute", "--yes")
    assert code == 3
    assert {t["status"] for t in out["trades"]} == {"refused"}
    reasons = [t["reason"] for t in out["trades"]]
    assert any("reverts on the fork" in r for r in reasons)
    # a later trade of the same chain sees the moved market already at the quote
    assert all("reverts on the fork" in r or "below the independent price" in r for r in reasons)
    assert {c: nonce(evm_isolated, c) for c in before} == before


def test_reverted_transaction_is_recorded_failed_and_next_run_replans(
    cfg: Path,
    evm_isolated: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bought: list[str] = []  # what the first ethereum trade buys, read from its simulation

    async def note_simulate(chain: EvmChain, legs: Any) -> Any:
        if chain.info.name == "ethereum":
            bought.append(legs.buy.symbol)
        return await chain.simulate(legs)

    async def front_run_then_send(chain: EvmChain, raw: bytes) -> Any:
        if chain.info.name == "ethereum" and not sent:
            sent.append(raw)
            # past the 1% slippage limit, but within what a re-plan may accept (the guaranteed
            # minimum at most 3% under the independent price): the first ethereum trade's
            # transactions are the first this chain sends
            pump(evm_isolated["ethereum"]["url"], "ethereum", bought[0], Decimal("1.5"))
        return await chain.send_raw(raw)

    sent: list[bytes] = []
    wrap = around(EvmChain, simulate=note_simulate, send_raw=front_run_then_send)
    with injected(wrap=wrap):
        code, out = run_json(capsys, "run", "-c", str(cfg), "--execute", "--yes")
    moved = {next(t["id"] for t in out["trades"] if t["chain"] == "ethereum")}
    assert code == 0 and out["status"] == "partial"
    failed = [t for t in out["trades"] if t["status"] == "failed"]
    assert [t["id"] for t in failed] == sorted(moved)
    code, again = run_json(capsys, "run", "-c", str(cfg), "--execute", "--yes")
    assert code == 0 and again["trades"]
    assert all(t["status"] == "confirmed" for t in again["trades"])
    assert any(t["chain"] == "ethereum" for t in again["trades"])


@pytest.mark.parametrize("on_refusal", ["continue", "stop"])
def test_a_suspicious_answer_is_refused_and_the_rest_follows_the_policy(
    evm_isolated: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    on_refusal: str,
) -> None:
    import dataclasses

    from rebalancer.dex.oneinch import OneInch
    from tests.dex.test_oneinch import _retarget

    monkeypatch.setenv("DEMO_PASS", "demo")
    monkeypatch.setenv("ONEINCH_API_KEY", "test-key")
    cfg = write_config(tmp_path, f'on_refusal = "{on_refusal}"')
    real = OneInch.build
    seen: list[str] = []

    async def hostile_first(self: OneInch, quote: Any) -> Any:
        built = await real(self, quote)
        if quote.request.chain == "avalanche" and not seen:
            seen.append(quote.request.sell.symbol)
            return _retarget(built, dst_receiver="0x000000000000000000000000000000000000dEaD")
        return dataclasses.replace(built)

    monkeypatch.setattr(OneInch, "build", hostile_first)
    code, out = run_json(capsys, "run", "-c", str(cfg), "--execute", "--yes")
    statuses = [(t["chain"], t["status"]) for t in out["trades"]]
    avalanche = [s for c, s in statuses if c == "avalanche"]
    assert avalanche[0] == "refused"
    assert "not the wallet" in out["trades"][[c for c, _ in statuses].index("avalanche")]["reason"]
    if on_refusal == "continue":
        assert all(s == "confirmed" for s in avalanche[1:])
    else:
        assert all(s == "skipped" for s in avalanche[1:])
    assert code == 0


def test_apply_refuses_a_stale_plan(
    cfg: Path, evm_isolated: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    plan = tmp_path / "plan.json"
    assert main(["plan", "-c", str(cfg), "-o", str(plan), "--json"]) == 0
    doc = json.loads(plan.read_text())
    doc["created_at"] = "2020-01-01T00:00:00+00:00"
    old = tmp_path / "old.json"
    old.write_text(json.dumps(doc))
    capsys.readouterr()
    assert main(["apply", str(old), "-c", str(cfg), "--yes"]) == 3
    assert "old" in capsys.readouterr().err
    # a plan that sells more than the wallet holds is stale too
    fresh = json.loads(plan.read_text())
    fresh["trades"][0]["amount_in"] = str(10**40)
    big = tmp_path / "big.json"
    big.write_text(json.dumps(fresh))
    assert main(["apply", str(big), "-c", str(cfg), "--yes"]) == 3
    assert "stale plan" in capsys.readouterr().err
    # the fresh plan itself applies
    code, out = run_json(capsys, "apply", str(plan), "-c", str(cfg), "--yes")
    assert code == 0 and all(t["status"] == "confirmed" for t in out["trades"])


def test_apply_without_yes_and_without_a_terminal_is_refused(
    cfg: Path, evm_isolated: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    plan = tmp_path / "plan.json"
    assert main(["plan", "-c", str(cfg), "-o", str(plan), "--json"]) == 0
    before = nonce(evm_isolated, "ethereum")
    assert main(["apply", str(plan), "-c", str(cfg)]) == 2
    assert "--yes" in capsys.readouterr().err
    assert nonce(evm_isolated, "ethereum") == before


def test_a_node_dying_mid_run_exits_4_and_the_rerun_completes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from rebalancer.chains.anvil import stop_pid
    from rebalancer.dex.oneinch import OneInch
    from rebalancer.localnet import manager

    worlds_dir = tmp_path / "worlds"
    monkeypatch.setenv("REBALANCER_LOCALNET_DIR", str(worlds_dir))
    monkeypatch.setenv("DEMO_PASS", "demo")
    monkeypatch.setenv("ONEINCH_API_KEY", "test-key")
    manifest = manager.up(worlds_dir, services=False)
    try:
        cfg = write_config(tmp_path)
        avalanche = next(w for w in manifest["worlds"] if w["name"] == "avalanche")

        async def kill_then_quote(agg: OneInch, request: Any) -> Any:
            if request.chain == "avalanche":  # the avalanche trades start: its node dies
                stop_pid(int(avalanche["pid"]))
            return await agg.quote(request)

        with injected(wrap=around(OneInch, quote=kill_then_quote)):
            assert main(["run", "-c", str(cfg), "--execute", "--yes"]) == 4
        err = capsys.readouterr().err.splitlines()[-1]
        # the aggregator (or the node itself) reports the dead node: one line, exit 4
        assert err.startswith("error: ") and "failed after" in err
        j = Journal(cfg.parent / "journal.sqlite")
        try:
            assert not j.unfinished()  # ethereum finished cleanly; avalanche never signed
            assert {t.state for t in j.trades() if t.chain == "avalanche"} == {"planned"}
        finally:
            j.close()
        manager.up(worlds_dir, services=False)  # the dead world comes back
        code, out = run_json(capsys, "run", "-c", str(cfg), "--execute", "--yes")
        assert code == 0 and all(t["status"] == "confirmed" for t in out["trades"])
    finally:
        manager.down(worlds_dir)


def test_without_anvil_eth_simulate_v1_is_used_and_says_so(
    cfg: Path,
    evm_isolated: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REBALANCER_ANVIL", "/nonexistent/anvil")
    code, out = run_json(capsys, "run", "-c", str(cfg))
    assert code == 0 and out["trades"]
    for t in out["trades"]:
        assert t["simulation"] == "eth_simulateV1"
        assert int(t["simulated_out"]) >= int(t["min_out"]) > 0


def test_with_no_way_to_simulate_nothing_is_signed_unless_policy_allows(
    evm_isolated: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import rebalancer.chains.evm_sim as sim
    from rebalancer.core.errors import SimulationUnavailable

    async def no_rpc_simulation(*_a: Any, **_kw: Any) -> Any:
        raise SimulationUnavailable("ethereum: the RPC has no eth_simulateV1")

    monkeypatch.setenv("REBALANCER_ANVIL", "/nonexistent/anvil")
    monkeypatch.setattr(sim, "simulate_rpc", no_rpc_simulation)
    monkeypatch.setenv("DEMO_PASS", "demo")
    monkeypatch.setenv("ONEINCH_API_KEY", "test-key")
    strict = write_config(tmp_path)
    before = nonce(evm_isolated, "ethereum")
    code, out = run_json(capsys, "run", "-c", str(strict), "--execute", "--yes")
    assert code == 3 and {t["status"] for t in out["trades"]} == {"refused"}
    assert all("require_simulation" in t["reason"] for t in out["trades"])
    assert nonce(evm_isolated, "ethereum") == before
    lax_dir = tmp_path / "lax"
    lax_dir.mkdir()
    lax = write_config(lax_dir, "require_simulation = false")
    code, out = run_json(capsys, "run", "-c", str(lax), "--execute", "--yes")
    assert code == 0 and all(t["status"] == "confirmed" for t in out["trades"])
    assert all(t["simulation"].startswith("none") for t in out["trades"])


def test_a_fee_over_budget_is_refused_before_signing(
    evm_isolated: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEMO_PASS", "demo")
    monkeypatch.setenv("ONEINCH_API_KEY", "test-key")
    cfg = write_config(tmp_path, "max_fee_pct = 0.0001")
    before = nonce(evm_isolated, "ethereum")
    code, out = run_json(capsys, "run", "-c", str(cfg), "--execute", "--yes")
    assert code == 3
    assert all("max_fee_pct" in t["reason"] for t in out["trades"])
    assert nonce(evm_isolated, "ethereum") == before


def test_a_trade_still_in_flight_blocks_the_next_plan_until_it_lands(
    cfg: Path,
    evm_isolated: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = evm_isolated["ethereum"]["url"]
    rpc_call(url, "evm_setAutomine", False)  # ethereum stops mining: sends stay in the pool
    with injected(confirm_timeout_s=0.3):
        try:
            code, out = run_json(capsys, "run", "-c", str(cfg), "--execute", "--yes")
            eth = [t for t in out["trades"] if t["chain"] == "ethereum"]
            # the first ethereum transaction (here the approval) is left in flight, journalled
            # "sent"; its swap is not sent and the chain's later trades are not attempted
            assert eth and eth[0]["status"] == "pending"
            assert all(t["status"] == "skipped" for t in eth[1:])
            j = Journal(cfg.parent / "journal.sqlite")
            try:
                assert [t.state for t in j.unfinished()] == ["sent"]
            finally:
                j.close()
            # the next run recovers nothing new (not mined yet) and refuses to plan
            assert main(["run", "-c", str(cfg), "--execute", "--yes"]) == 3
            assert "still in flight" in capsys.readouterr().err
        finally:
            rpc_call(url, "evm_setAutomine", True)
    rpc_call(url, "evm_mine")
    code, out = run_json(capsys, "run", "-c", str(cfg), "--execute", "--yes")
    assert code == 0 and out["recovered"] >= 1
    txs = journal_txs(cfg.parent / "journal.sqlite")
    assert nonce(evm_isolated, "ethereum") == txs["ethereum"]  # nothing sent twice


def test_one_run_at_a_time(
    cfg: Path, evm_isolated: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    import fcntl

    with open(str(cfg.parent / "journal.sqlite") + ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert main(["run", "-c", str(cfg), "--execute", "--yes"]) == 3
    assert "one run at a time" in capsys.readouterr().err


def test_an_edited_plan_cannot_switch_the_policy_off(
    evm_isolated: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEMO_PASS", "demo")
    monkeypatch.setenv("ONEINCH_API_KEY", "test-key")
    # NOTE: the planner plans within max_trade_usd (slices), so the plan is made under the
    # default limit and applied under a config whose limit it breaks
    planning = write_config(tmp_path)
    plan = tmp_path / "plan.json"
    assert main(["plan", "-c", str(planning), "-o", str(plan), "--json"]) == 0
    cfg = write_config(tmp_path, "max_trade_usd = 100")
    doc = json.loads(plan.read_text())
    for t in doc["trades"]:
        t["value_usd"] = "0"  # the file lies about what the trades are worth
        t["expected_out"] = "1"
    plan.write_text(json.dumps(doc))
    capsys.readouterr()
    before = nonce(evm_isolated, "ethereum")
    code, out = run_json(capsys, "apply", str(plan), "-c", str(cfg), "--yes")
    assert code == 3 and all("max_trade_usd" in t["reason"] for t in out["trades"])
    assert nonce(evm_isolated, "ethereum") == before
    doc["trades"][0]["id"] = "../../escape"
    plan.write_text(json.dumps(doc))
    assert main(["apply", str(plan), "-c", str(cfg), "--yes"]) == 2
    assert "letters, digits" in capsys.readouterr().err


def test_a_trade_over_max_trade_usd_is_planned_and_executed_as_slices(
    evm_isolated: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A $60k move under a $50k policy.max_trade_usd: two trades, each within the limit, both
    executed on the local world (before issue 16 the engine refused the one $60k trade)."""
    monkeypatch.setenv("DEMO_PASS", "demo")
    monkeypatch.setenv("ONEINCH_API_KEY", "test-key")
    url = evm_isolated["ethereum"]["url"]
    rpc_call(url, "anvil_setBalance", WALLET, hex(25 * 10**18))  # 25 ETH = $80k
    rpc_call(url, "evm_mine")  # so that forks at the latest block see it
    text = write_config(tmp_path, "max_trade_usd = 50000").read_text()
    text = text.replace('[chains.avalanche]\nrpc = "localnet:avalanche"\n', "")
    text = text.replace('chains = ["ethereum", "avalanche"]', 'chains = ["ethereum"]')
    text = text.replace(
        "targets = { BTC = 40, ETH = 30, ALTS = 20, STABLES = 10 }",
        "targets = { ETH = 25, BTC = 8, ALTS = 7, STABLES = 60 }\n"
        'tradable = { ethereum = ["ETH", "USDC"] }',
    )
    cfg = tmp_path / "sliced.toml"
    cfg.write_text(text)
    unlimited = tmp_path / "unlimited.toml"
    unlimited.write_text(text.replace("max_trade_usd = 50000", "max_trade_usd = 100000"))
    code, one = run_json(capsys, "plan", "-c", str(unlimited))
    assert code == 0 and len(one["trades"]) == 1
    assert Decimal(one["trades"][0]["value_usd"]) > 55_000
    before = nonce(evm_isolated, "ethereum")
    code = main(["run", "-c", str(cfg), "--execute", "--yes", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    out = json.loads(captured.out)
    assert out["status"] == "ok", out
    trades = out["plan"]["trades"]
    assert len(trades) == 2
    assert all(t["sell"]["symbol"] == "ETH" and t["buy"]["symbol"] == "USDC" for t in trades)
    assert all(Decimal(t["value_usd"]) <= 50_000 for t in trades)
    assert sum(Decimal(t["value_usd"]) for t in trades) > 55_000
    assert [t["status"] for t in out["trades"]] == ["confirmed", "confirmed"]
    assert nonce(evm_isolated, "ethereum") == before + 2
