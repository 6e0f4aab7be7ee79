"""Session-wide real nodes: the local EVM worlds, started once, stopped in finally.

Tests isolate themselves with ``evm_snapshot``/``evm_revert`` (the ``evm_isolated`` fixture).
A missing anvil is a failure, not a skip: `make test` installs it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest


@pytest.fixture(scope="session", autouse=True)
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A throwaway data folder: every live refresh records its prices in the journal, and a
    config without ``journal`` puts it there (never in the user's own)."""
    path = tmp_path_factory.mktemp("data")
    old = os.environ.get("REBALANCER_DATA_DIR")
    os.environ["REBALANCER_DATA_DIR"] = str(path)
    try:
        yield path
    finally:
        if old is None:
            os.environ.pop("REBALANCER_DATA_DIR", None)
        else:
            os.environ["REBALANCER_DATA_DIR"] = old


@pytest.fixture(scope="session")
def localnet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("localnet")


@pytest.fixture(scope="session")
def evm_worlds(localnet_dir: Path) -> Iterator[dict[str, Any]]:
    """Every local world as `rebalancer localnet up` starts it: anvil "ethereum" and
    "avalanche" from the committed states with the demo wallet funded, the 1inch stand-in,
    and the Solana node (worlds by name).

    Also points ``localnet:`` config lookups (REBALANCER_LOCALNET_DIR) at them.
    """
    from rebalancer.localnet import manager

    old = os.environ.get("REBALANCER_LOCALNET_DIR")
    os.environ["REBALANCER_LOCALNET_DIR"] = str(localnet_dir)
    try:
        manifest = manager.up(localnet_dir)
    except Exception:
        for log in localnet_dir.glob("*.log"):
            print(f"--- {log.name}\n{log.read_text()[-2000:]}")
        manager.down(localnet_dir)
        raise
    try:
        yield {w["name"]: w for w in manifest["worlds"]}
    finally:
        manager.down(localnet_dir)
        if old is None:
            os.environ.pop("REBALANCER_LOCALNET_DIR", None)
        else:
            os.environ["REBALANCER_LOCALNET_DIR"] = old


def rpc_call(url: str, method: str, *params: Any) -> Any:
    """One plain JSON-RPC call, for tests to ask a node directly."""
    r = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
    data = r.json()
    assert "error" not in data, data
    return data["result"]


@pytest.fixture
def evm_isolated(evm_worlds: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The EVM worlds, reverted to their state before the test when it ends."""
    snaps = {
        name: rpc_call(w["url"], "evm_snapshot")
        for name, w in evm_worlds.items()
        if w["kind"] == "anvil"
    }
    try:
        yield evm_worlds
    finally:
        for name, snap in snaps.items():
            rpc_call(evm_worlds[name]["url"], "evm_revert", snap)


@pytest.fixture(scope="session")
def world_info() -> dict[str, dict[str, Any]]:
    """The committed world descriptions (contract and pool addresses)."""
    root = Path(__file__).resolve().parent.parent / "fixtures" / "evm"
    return {
        name: json.loads((root / f"{name}.world.json").read_text())
        for name in ("ethereum", "avalanche")
    }
