"""The local Solana node as a real process, for the localnet and chains tests.

Imported by ``tests/localnet/conftest.py`` and ``tests/chains/test_solana.py``. The node starts
on port 0, is ready when it prints ``Listening on 127.0.0.1:PORT``, and is stopped in
``finally`` by its PID (SIGINT, then SIGTERM, then SIGKILL); its log tail is printed when a
test of the session failed.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from rebalancer.chains.anvil import NodeProcess, start_listening, stop_pid
from rebalancer.localnet.solana_fixtures import DEMO_PATH


@contextmanager
def running_solana_node(
    log_dir: Path, *extra: str, name: str = "solana", snapshot: Path | None = DEMO_PATH
) -> Iterator[NodeProcess]:
    """A Solana node process loaded with the demo snapshot; always stopped on exit."""
    argv = [sys.executable, "-m", "rebalancer.localnet.solana_node", "--port", "0", *extra]
    if snapshot is not None:
        argv += ["--snapshot", str(snapshot)]
    node = start_listening(name, argv, log_dir / f"{name}.log", timeout=20.0)
    try:
        yield node
    finally:
        stop_pid(node.pid)


def _show_tail_on_failure(request: pytest.FixtureRequest, node: NodeProcess) -> None:
    if request.session.testsfailed:
        print(f"\n--- {node.name} log tail ({node.log_path})\n{node.log_tail(40)}")


@pytest.fixture(scope="session")
def solana_node(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NodeProcess]:
    """One demo-loaded node for the session (400 ms slots, like mainnet)."""
    with running_solana_node(tmp_path_factory.mktemp("solana")) as node:
        try:
            yield node
        finally:
            _show_tail_on_failure(request, node)


@pytest.fixture(scope="session")
def solana_fast_node(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NodeProcess]:
    """A node with 5 ms slots, so 150 slots of blockhash life pass in under a second."""
    log_dir = tmp_path_factory.mktemp("solana-fast")
    with running_solana_node(log_dir, "--slot-ms", "5", name="solana-fast") as node:
        try:
            yield node
        finally:
            _show_tail_on_failure(request, node)
