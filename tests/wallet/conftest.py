"""Wallet test fixtures: the emulated Ledger as a real process on TCP, and throwaway anvils.

Both are started with port 0, ready when they print ``Listening on HOST:PORT``, and stopped in
``finally`` (SIGINT, then terminate, then kill), with their output tail shown on failure.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from rebalancer.localnet.ledger_emulator import TEST_MNEMONIC
from rebalancer.wallet.hd import (
    evm_key_from_seed,
    seed_from_mnemonic,
    solana_key_from_seed,
)
from rebalancer.wallet.ledger import TcpTransport

ROOT = Path(__file__).resolve().parents[2]
ANVIL = ROOT / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
_LISTENING = re.compile(r"Listening on (\S+):(\d+)")


def start_listening(cmd: list[str], deadline_s: float = 20.0) -> tuple[subprocess.Popen[str], int]:
    """Start ``cmd`` and wait for its ``Listening on HOST:PORT`` line; return (process, port)."""
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    seen: list[str] = []
    deadline = time.monotonic() + deadline_s
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        m = _LISTENING.search(line)
        if m:
            # NOTE: keep reading, or a chatty node blocks once the pipe buffer is full.
            threading.Thread(target=_drain, args=(proc,), daemon=True).start()
            return proc, int(m.group(2))
    stop(proc)
    raise RuntimeError(f"{cmd[0]} did not start; output tail:\n{''.join(seen[-20:])}")


def _drain(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    for _line in proc.stdout:
        pass


def stop(proc: subprocess.Popen[str]) -> None:
    """SIGINT, then terminate, then kill: never leave a node holding a port."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(3)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


EMULATOR = [sys.executable, "-m", "rebalancer.localnet.ledger_emulator", "--port", "0"]


@contextmanager
def listening(cmd: list[str]) -> Iterator[int]:
    """``cmd`` started (:func:`start_listening`) for the block: its port; stopped after."""
    proc, port = start_listening(cmd)
    try:
        yield port
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def emulator_port() -> Iterator[int]:
    """``python -m rebalancer.localnet.ledger_emulator`` on a free port, for the whole session."""
    with listening(EMULATOR) as port:
        yield port


class Device:
    """Test handle on the emulated device: new transports and in-band state changes."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._control = TcpTransport("127.0.0.1", port)

    def transport(self) -> TcpTransport:
        return TcpTransport("127.0.0.1", self.port, reply_timeout=10)

    def set(self, **state: Any) -> dict[str, Any]:
        body = json.dumps(state).encode()
        data, sw = self._control.exchange(bytes([0xEE, 0x01, 0, 0, len(body)]) + body)
        assert sw == 0x9000, hex(sw)
        result: dict[str, Any] = json.loads(data)
        return result

    def close(self) -> None:
        self._control.close()


@pytest.fixture
def device(emulator_port: int) -> Iterator[Device]:
    """The emulator reset to: Ethereum app open, unlocked, accepting, contract data on."""
    dev = Device(emulator_port)
    dev.set(
        app="eth",
        locked=False,
        reject=False,
        contract_data=True,
        blind_signing=True,
        short_reply=False,
    )
    try:
        yield dev
    finally:
        dev.close()


@pytest.fixture(scope="session")
def test_seed() -> bytes:
    return seed_from_mnemonic(TEST_MNEMONIC)


@pytest.fixture(scope="session")
def evm_test_key(test_seed: bytes) -> bytes:
    """The emulated device's EVM key at m/44'/60'/0'/0/0, as a local key would hold it."""
    return evm_key_from_seed(test_seed)


@pytest.fixture(scope="session")
def solana_test_seed(test_seed: bytes) -> bytes:
    """The emulated device's Solana secret seed at m/44'/501'/0'/0'."""
    return solana_key_from_seed(test_seed)


@pytest.fixture
def anvil() -> Iterator[Callable[[int], str]]:
    """Factory: ``anvil(chain_id) -> url`` of a fresh anvil on a free port; all stopped after."""
    procs: list[subprocess.Popen[str]] = []

    def start(chain_id: int) -> str:
        proc, port = start_listening([str(ANVIL), "--port", "0", "--chain-id", str(chain_id)])
        procs.append(proc)
        return f"http://127.0.0.1:{port}"

    try:
        yield start
    finally:
        for proc in procs:
            stop(proc)
