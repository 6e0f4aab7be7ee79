"""``rebalancer doctor`` on the local worlds: a config written by ``init`` passes; each injected
failure (a bad config, a dead or wrong node, an aggregator down or keyless, a wrong passphrase,
a locked journal, a stale oracle feed, a feed address with no contract) gets its own line and
exit code."""

from __future__ import annotations

import fcntl
import json
import time
from pathlib import Path
from typing import Any

import pytest

from rebalancer.chains.oracles import feeds_on
from rebalancer.cli import main
from rebalancer.localnet.rpc import Rpc
from tests.rebalancer.test_init import KEYS, LOCAL
from tests.rebalancer.test_market_prices import ETH_USD, push

PASS_ENV = "DOCTOR_TEST_PASS"


@pytest.fixture
def cfg(evm_worlds: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config made the way a user would: ``rebalancer init`` in an empty folder."""
    monkeypatch.setenv(PASS_ENV, "demo")
    monkeypatch.chdir(tmp_path)
    flags = [
        "--evm-keyfile", str(KEYS / "demo-evm.json"), "--evm-passphrase-env", PASS_ENV,
        "--solana-keyfile", str(KEYS / "demo-solana.json"),
        "--journal", "journal.sqlite",
    ]  # fmt: skip
    assert main(["init", "--no-input", *flags, *LOCAL]) == 0
    cfg = tmp_path / "rebalancer.toml"
    local_feeds(cfg)
    return cfg


def local_feeds(cfg: Path) -> None:
    """NOTE: the local Solana node publishes its Pyth updates once, when it starts, so they are
    older than their 60 s heartbeat after a minute or two of a test session; as in
    examples/local.toml, the freshness limit is a day here (the stale-feed test pushes a round
    two days old)."""
    with cfg.open("a") as f:
        f.write("\n[oracles]\nmax_age_s = 86400\n")


def doctor(capsys: pytest.CaptureFixture[str], cfg: Path) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    code = main(["doctor", "-c", str(cfg), "--json", "--timeout", "5"])
    out, err = capsys.readouterr()
    assert "· " not in err  # no progress lines with --json
    return code, json.loads(out)


def failed(doc: dict[str, Any]) -> list[str]:
    return [c["name"] for c in doc["checks"] if c["status"] == "fail"]


def test_init_then_doctor_passes(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = doctor(capsys, cfg)
    assert code == 0 and doc["ok"], doc
    names = [c["name"] for c in doc["checks"]]
    assert names[:4] == ["config", "chain ethereum", "chain avalanche", "chain solana"]
    assert {"aggregator 1inch", "aggregator jupiter", "signer evm", "signer solana"} <= set(names)
    assert {"journal", "simulation"} <= set(names)
    assert all(c["status"] == "ok" for c in doc["checks"]), doc
    # the text form: one line per check
    capsys.readouterr()
    assert main(["doctor", "-c", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "all checks passed" in out and out.count("\nok  ") >= len(names) - 1


def edit(cfg: Path, old: str, new: str) -> None:
    text = cfg.read_text()
    assert old in text
    cfg.write_text(text.replace(old, new))


def test_bad_config_exits_2(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit(cfg, "band_pp = 5", "band_pp = 5\nbogus = 1")
    code, doc = doctor(capsys, cfg)
    assert code == 2 and failed(doc) == ["config"]


def test_unreachable_node_exits_4_and_names_it(
    cfg: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEAD_RPC", "http://127.0.0.1:9/v3/TOPSECRET")
    edit(cfg, 'rpc = "localnet:avalanche"', 'rpc = "env:DEAD_RPC"')
    code, doc = doctor(capsys, cfg)
    assert code == 4 and failed(doc) == ["chain avalanche"]
    assert "TOPSECRET" not in json.dumps(doc)


def test_wrong_chain_exits_2(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit(cfg, 'rpc = "localnet:avalanche"', 'rpc = "localnet:ethereum"')
    code, doc = doctor(capsys, cfg)
    assert code == 2 and failed(doc) == ["chain avalanche"]
    assert "chain id" in next(c for c in doc["checks"] if c["status"] == "fail")["detail"]


def test_unset_rpc_variable_exits_2(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit(cfg, 'rpc = "localnet:ethereum"', 'rpc = "env:DOCTOR_UNSET_RPC"')
    code, doc = doctor(capsys, cfg)
    assert code == 2 and failed(doc) == ["chain ethereum"]


def test_aggregator_down_or_keyless(
    cfg: Path,
    capsys: pytest.CaptureFixture[str],
    evm_worlds: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    edit(cfg, 'base_url = "localnet:1inch"', 'base_url = "http://127.0.0.1:9"')
    edit(cfg, 'api_key_env = "ONEINCH_API_KEY"', 'api_key_env = "DOCTOR_1INCH_KEY"')
    monkeypatch.setenv("DOCTOR_1INCH_KEY", "k")
    code, doc = doctor(capsys, cfg)
    assert code == 4 and failed(doc) == ["aggregator 1inch"]
    monkeypatch.delenv("DOCTOR_1INCH_KEY")
    code, doc = doctor(capsys, cfg)
    assert code == 2 and failed(doc) == ["aggregator 1inch"]
    assert "DOCTOR_1INCH_KEY" in json.dumps(doc)


def test_signer_passphrase(
    cfg: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PASS_ENV)
    code, doc = doctor(capsys, cfg)
    assert code == 2 and failed(doc) == ["signer evm"]
    monkeypatch.setenv(PASS_ENV, "not-the-passphrase")
    code, doc = doctor(capsys, cfg)
    assert code != 0 and failed(doc) == ["signer evm"]
    assert "not-the-passphrase" not in json.dumps(doc)


def test_journal_locked_exits_3(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with open(cfg.parent / "journal.sqlite.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        code, doc = doctor(capsys, cfg)
    assert code == 3 and failed(doc) == ["journal"]


def test_no_anvil_is_a_warning_naming_the_fallback(
    cfg: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REBALANCER_ANVIL", str(cfg.parent / "no-anvil"))
    code, doc = doctor(capsys, cfg)
    sim = next(c for c in doc["checks"] if c["name"] == "simulation")
    assert code == 0 and sim["status"] == "warn" and "eth_simulateV1" in sim["detail"]


def test_every_feed_answers_and_is_fresh(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = doctor(capsys, cfg)
    feeds = [c for c in doc["checks"] if c["name"].startswith("oracle ")]
    assert code == 0 and {"oracle ethereum ETH", "oracle solana SOL"} <= {c["name"] for c in feeds}
    assert all(c["status"] == "ok" and "s ago (limit" in c["detail"] for c in feeds), feeds


def test_stale_feed_exits_3_with_its_age(
    cfg: Path, capsys: pytest.CaptureFixture[str], evm_isolated: dict[str, Any]
) -> None:
    push(evm_isolated["ethereum"]["url"], ETH_USD, 320_000_000_000, int(time.time()) - 200_000)
    code, doc = doctor(capsys, cfg)
    assert code == 3 and failed(doc) == ["oracle ethereum ETH"], doc
    bad = next(c for c in doc["checks"] if c["status"] == "fail")
    assert "stale: updated 2000" in bad["detail"] and "max_age_s" in bad["hint"]
    capsys.readouterr()
    assert main(["doctor", "-c", str(cfg)]) == 3
    out, err = capsys.readouterr()
    assert "FAIL  oracle ethereum ETH" in out and "\n      fix: " in out
    assert "· doctor: reading 3 chain(s) and their oracle feeds" in err  # progress, not --json


def test_feed_without_a_contract_exits_4(
    cfg: Path, capsys: pytest.CaptureFixture[str], evm_isolated: dict[str, Any]
) -> None:
    rpc = Rpc(evm_isolated["avalanche"]["url"])
    feed = next(f for f in feeds_on("avalanche") if f.asset == "AVAX")
    try:
        rpc.call("anvil_setCode", feed.address, "0x")
    finally:
        rpc.close()
    code, doc = doctor(capsys, cfg)
    assert code == 4 and failed(doc) == ["oracle avalanche AVAX"], doc
    bad = next(c for c in doc["checks"] if c["status"] == "fail")
    assert feed.address in bad["detail"] and "enabled = false" in bad["hint"]


def test_oracles_off_is_one_skipped_line(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit(cfg, "max_age_s = 86400", "enabled = false")
    code, doc = doctor(capsys, cfg)
    names = [c["name"] for c in doc["checks"]]
    assert code == 0 and "oracles" in names and not any(n.startswith("oracle ") for n in names)
