"""One writer per wallet on this machine: a lock file per chain and wallet address.

A run that signs takes ``<state>/locks/<chain>-<address>.lock`` for every wallet it signs for
(``flock``, exclusive, non-blocking) and holds it until it ends. Two runs with two journals
(two configs, a copied journal) cannot sign for one wallet at once: the second is refused
(exit 3) naming the holder's pid. The kernel drops a ``flock`` when its process dies, so a
lock left by a killed run is never in the way (the pid written in the file is only shown).
Across machines, the on-chain freshness check in the engine does the same job.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from rebalancer.core.errors import ConfigError, RefusedError


def state_dir(env: Mapping[str, str]) -> Path:
    """The user's state folder (XDG), overridable with REBALANCER_STATE_DIR."""
    if env.get("REBALANCER_STATE_DIR"):
        return Path(env["REBALANCER_STATE_DIR"])
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "rebalancer"


@contextmanager
def wallet_locks(folder: Path, wallets: Iterable[tuple[str, str]]) -> Iterator[None]:
    """Hold the lock of every ``(chain, address)`` for the block; refused if another process
    holds one."""
    held: list[int] = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"lock folder {folder}: cannot create ({exc.strerror})") from None
    try:
        for chain, address in sorted({(c, a.lower()) for c, a in wallets}):
            path = folder / f"{chain}-{address}.lock"
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise RefusedError(
                    f"wallet {address} on {chain} is in use by another rebalancer run "
                    f"(pid {holder}, lock {path}): one writer per wallet"
                ) from None
            held.append(fd)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        for fd in held:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # releases the lock
