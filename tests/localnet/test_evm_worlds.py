"""The local EVM worlds: rebuilt identically, started and stopped cleanly, forkable."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from rebalancer.chains.anvil import fork, pid_alive
from rebalancer.cli import main
from rebalancer.localnet import build
from rebalancer.localnet.rpc import Rpc
from tests.conftest import rpc_call

FIXTURES = Path(__file__).parents[2] / "fixtures" / "evm"


@pytest.mark.slow
def test_rebuild_is_byte_identical(tmp_path: Path) -> None:
    assert build.main(["--out", str(tmp_path)]) == 0
    for f in FIXTURES.glob("*.*"):
        rebuilt = (tmp_path / f.name).read_bytes()
        assert hashlib.sha256(rebuilt).digest() == hashlib.sha256(f.read_bytes()).digest(), f.name


def test_tokens_sit_at_real_addresses_with_real_metadata(
    evm_worlds: dict[str, Any], world_info: dict[str, Any]
) -> None:
    rpc = Rpc(evm_worlds["avalanche"]["url"])
    try:
        wavax = "0xB31f66AA3C1e785363F0875A1B74E27b85FD66c7"
        symbol = rpc.read(wavax, "symbol()")
        assert b"WAVAX" in symbol
        btcb = world_info["avalanche"]["tokens"]["BTC.b"]
        assert btcb == "0x152b9d0FdC40C096757F570A51E494bd4b943E50"
        assert int.from_bytes(rpc.read(btcb, "decimals()"), "big") == 8
        assert (
            rpc.call("eth_getCode", "0xcA11bde05977b3631167028862bE2a173976CA11", "latest") != "0x"
        )
    finally:
        rpc.close()


def test_ten_thousand_dollars_has_realistic_impact(
    evm_worlds: dict[str, Any], world_info: dict[str, Any]
) -> None:
    """$10k through the deep WETH/USDC 0.05% pool costs well under 0.2%; through a thin
    Avalanche pair it costs about a percent, as on mainnet."""

    def quote(chain: str, a: str, b: str, amount: int, fee: int) -> int:
        info = world_info[chain]
        rpc = Rpc(evm_worlds[chain]["url"])
        try:
            out = rpc.read(
                info["contracts"]["QuoterV2"],
                "quoteExactInputSingle((address,address,uint256,uint24,uint160))",
                (info["tokens"][a], info["tokens"][b], amount, fee, 0),
            )
        finally:
            rpc.close()
        return int.from_bytes(out[:32], "big")

    weth = quote("ethereum", "USDC", "WETH", 10_000 * 10**6, 500)
    cost = 1 - (weth / 10**18 * 3200) / 10_000
    assert 0.0005 < cost < 0.002
    link = quote("avalanche", "WAVAX", "LINK.e", 400 * 10**18, 3000)
    cost = 1 - (link / 10**18 * 15) / 10_000
    assert 0.005 < cost < 0.03


def test_up_is_idempotent_and_down_leaves_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = str(tmp_path)
    assert main(["localnet", "up", "--dir", d, "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    pids = [w["pid"] for w in first["worlds"]]
    try:
        names = {w["name"]: w for w in first["worlds"]}
        assert names["ethereum"]["chain_id"] == 1 and names["avalanche"]["chain_id"] == 43114
        assert all(w["url"].startswith("http://127.0.0.1:") for w in first["worlds"])
        assert main(["localnet", "up", "--dir", d, "--json"]) == 0
        assert [w["pid"] for w in json.loads(capsys.readouterr().out)["worlds"]] == pids
        assert main(["localnet", "status", "--dir", d]) == 0
        assert "up" in capsys.readouterr().out
    finally:
        assert main(["localnet", "down", "--dir", d]) == 0
    assert not any(pid_alive(p) for p in pids)
    capsys.readouterr()
    assert main(["localnet", "status", "--dir", d, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["worlds"] == []


def test_fork_leaves_the_base_untouched_and_is_torn_down(
    evm_worlds: dict[str, Any], tmp_path: Path
) -> None:
    base = evm_worlds["ethereum"]["url"]
    wallet = "0x000000000000000000000000000000000000cafe"
    block = int(rpc_call(base, "eth_blockNumber"), 16)
    with fork(base, tmp_path, block=block) as node:
        assert int(rpc_call(node.url, "eth_chainId"), 16) == 1
        rpc_call(node.url, "anvil_setBalance", wallet, hex(10**18))
        assert int(rpc_call(node.url, "eth_getBalance", wallet, "latest"), 16) == 10**18
        pid = node.pid
    assert not pid_alive(pid)
    assert int(rpc_call(base, "eth_getBalance", wallet, "latest"), 16) == 0


def test_fork_log_never_holds_the_rpc_key(evm_worlds: dict[str, Any], tmp_path: Path) -> None:
    keyed = evm_worlds["ethereum"]["url"] + "/?key=SECRETKEY"
    with fork(keyed, tmp_path, name="keyed") as node:
        assert int(rpc_call(node.url, "eth_chainId"), 16) == 1
    log = (tmp_path / "keyed.log").read_text()
    assert "SECRETKEY" not in log
