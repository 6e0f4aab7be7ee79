"""Start and stop anvil nodes: the local worlds, and forks of any RPC for simulation.

A node is started on port 0 and its real port read from its ``Listening on`` line, so two
runs never talk to each other's nodes. Every node started here is stopped by its PID:
SIGINT, then SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from rebalancer.core.errors import ChainError, ConfigError
from rebalancer.core.redact import redact_url
from rebalancer.core.resources import checkout_root

ANVIL_NPM = "@foundry-rs/anvil-linux-amd64"
ANVIL_VERSION = "1.7.1"  # NOTE: keep in step with package.json (a test checks)


def find_anvil() -> str:
    """The anvil binary: $REBALANCER_ANVIL, the checkout's pinned npm copy, or PATH."""
    explicit = os.environ.get("REBALANCER_ANVIL")
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise ConfigError(f"REBALANCER_ANVIL = {explicit!r}: not an executable file")
        return explicit
    root = checkout_root()
    npm = root / "node_modules" / ANVIL_NPM / "bin" / "anvil" if root else None
    if npm is not None and npm.exists():
        return str(npm)
    found = shutil.which("anvil")
    if found:
        return found
    raise ConfigError(
        f"anvil not found: put it on PATH (`npm install {ANVIL_NPM}@{ANVIL_VERSION}` and add "
        "node_modules/.bin to PATH; in a checkout `make setup`) or set REBALANCER_ANVIL"
    )


@dataclass
class NodeProcess:
    """A node we started: its PID, its URL and where its log goes."""

    name: str
    pid: int
    url: str
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def start_listening(
    name: str,
    argv: Sequence[str],
    log_path: Path,
    *,
    timeout: float = 30.0,
    detached: bool = False,
    shown_argv: str | None = None,
    secrets: Sequence[str] = (),
) -> NodeProcess:
    """Start a process that prints ``Listening on HOST:PORT`` and wait for that line.

    Output goes to ``log_path`` (read back to find the port), so a detached process keeps
    running after we exit. With ``secrets`` (a fork URL holding an API key: anvil prints its
    fork endpoint) the output is piped through a thread that masks them before the log. On
    timeout or early exit the process is stopped and the log tail is in the error.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "wb")  # noqa: SIM115 - handed to the child or the copier thread
    popen = subprocess.Popen(
        list(argv),
        stdout=subprocess.PIPE if secrets else log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=detached,
    )
    if secrets and popen.stdout is not None:
        threading.Thread(
            target=_copy_masked, args=(popen.stdout, log, list(secrets)), daemon=True
        ).start()
    else:
        log.close()
    node = NodeProcess(name=name, pid=popen.pid, url="", log_path=log_path, popen=popen)
    deadline = time.monotonic() + timeout
    what = shown_argv or name
    while time.monotonic() < deadline:
        for line in log_path.read_text(errors="replace").splitlines():
            if line.startswith("Listening on "):
                node.url = "http://" + line.removeprefix("Listening on ").strip()
                return node
        if popen.poll() is not None:
            tail = node.log_tail(5).replace("\n", " | ")
            raise ChainError(f"{what} exited with code {popen.returncode} at start: {tail}")
        time.sleep(0.01)
    stop_pid(node.pid)
    raise ChainError(f"{what} did not start within {timeout:.0f} s; log: {log_path}")


def _copy_masked(src: IO[bytes], dst: IO[bytes], secrets: list[str]) -> None:
    masks = [s.encode() for s in secrets if s]
    with dst:
        for line in src:
            for m in masks:
                line = line.replace(m, b"***")
            dst.write(line)
            dst.flush()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as gone.
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        return waited == 0
    except ChildProcessError:
        return True


def stop_pid(pid: int, *, grace: float = 3.0) -> None:
    """Stop one process we started: SIGINT, then SIGTERM, then SIGKILL; never anything else."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return
            time.sleep(0.01)


def start_anvil(
    name: str,
    log_path: Path,
    *,
    chain_id: int | None = None,
    load_state: Path | None = None,
    fork_url: str | None = None,
    fork_block: int | None = None,
    extra: Sequence[str] = (),
    detached: bool = False,
) -> NodeProcess:
    """Start anvil on a free loopback port."""
    argv = [find_anvil(), "--host", "127.0.0.1", "--port", "0"]
    if chain_id is not None:
        argv += ["--chain-id", str(chain_id)]
    if load_state is not None:
        argv += ["--load-state", str(load_state)]
    shown = f"anvil {name}"
    if fork_url is not None:
        argv += ["--fork-url", fork_url]
        shown += f" (fork of {redact_url(fork_url)})"
        if fork_block is not None:
            argv += ["--fork-block-number", str(fork_block)]
    argv += list(extra)
    secrets = [fork_url] if fork_url and redact_url(fork_url) != fork_url else []
    return start_listening(
        name, argv, log_path, detached=detached, shown_argv=shown, secrets=secrets
    )


@contextmanager
def fork(
    rpc_url: str, log_dir: Path, *, block: int | None = None, name: str = "fork"
) -> Iterator[NodeProcess]:
    """A throwaway anvil fork of ``rpc_url`` (pinned to ``block`` if given), always torn down.

    Swaps simulated on it leave the forked chain untouched.
    """
    node = start_anvil(name, log_dir / f"{name}.log", fork_url=rpc_url, fork_block=block)
    try:
        yield node
    finally:
        stop_pid(node.pid)
