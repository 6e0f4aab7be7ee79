"""What the dashboard shows, gathered off the request path by two background threads.

Two sources:

- **The journal**, through its public methods (runs, trades, snapshots, trades in flight), read
  again whenever its files change (a ``watch`` or ``run`` in another process wrote to it), and
  the performance figures ``reports.tracking`` makes of it (what ``rebalancer report`` shows).
- **A live read** every ``--refresh`` and after every journal change: holdings and prices by
  ``commands.drift.load_inputs`` (what ``balances`` and ``drift`` read, the price check
  included) and the plan by ``commands.plan.build`` (the planning step of ``run``).

Nothing here simulates, signs, sends or writes: no ``Services`` or ``Engine`` is built, so no
signer is ever loaded. One thread watches the journal, the other reads the chains, so a slow
node never delays what a ``watch`` just journalled. Each change makes a new immutable ``State``
with a higher version; the server renders whatever state is current and wakes the pages that
wait for a newer one.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from rebalancer.core.errors import RebalancerError

MIN_LIVE_GAP_S = 2.0
"""The shortest pause between two live reads (a run in progress changes the journal often)."""
MAX_SAMPLES = 2000
"""Live drift readings kept for the drift history (a day of 45-second refreshes)."""


def scrub(text: str) -> str:
    """A message fit for the page: every URL cut to scheme, host and port (keys live in the
    rest of a URL)."""
    from rebalancer.core.redact import scrub as scrub_urls

    return scrub_urls(text)


def _message(exc: BaseException) -> str:
    if isinstance(exc, RebalancerError):
        return scrub(exc.message)
    # NOTE: a bug must not stop the page; the traceback goes to the terminal, not the page.
    traceback.print_exc(file=sys.stderr)
    return f"internal error: {type(exc).__name__} (a bug; the terminal shows the traceback)"


@dataclass(frozen=True)
class JournalView:
    """The journal as last read: every run and trade, and the report figures."""

    path: str
    read_at: float
    exists: bool = False
    runs: tuple[Any, ...] = ()
    trades: tuple[Any, ...] = ()
    unfinished: tuple[Any, ...] = ()
    last_rebalance: float | None = None
    report: Any = None
    error: str | None = None


@dataclass(frozen=True)
class LiveView:
    """The last live read that worked (``inputs``, ``plan``) and the last attempt's outcome."""

    read_at: float
    inputs: Any = None
    plan: Any = None
    plan_error: str | None = None
    error: str | None = None
    error_at: float | None = None


@dataclass(frozen=True)
class Sample:
    """One live reading of the drift of every targeted row (pp), for the drift history."""

    at: float
    drift: Mapping[str, Decimal]


@dataclass(frozen=True)
class State:
    version: int
    started_at: float
    config_path: str
    refresh_s: float = 0.0
    leaves: tuple[str, ...] = ()
    """The targeted rows that partition the assets (the drift history's lines)."""
    band_pp: float = 0.0
    journal: JournalView | None = None
    live: LiveView | None = None
    samples: tuple[Sample, ...] = ()
    charts: Mapping[str, bytes] = field(default_factory=dict)

    @property
    def refreshed_at(self) -> float | None:
        """When anything on the page was last read (the journal or the chains)."""
        times = [
            t
            for t in (
                self.journal.read_at if self.journal else None,
                self.live.read_at if self.live and self.live.inputs is not None else None,
            )
            if t is not None
        ]
        return max(times) if times else None


def read_journal(path: Path, config: Any, registry: Any, targets: Any) -> JournalView:
    """Every run, trade and snapshot, and the report built from them; a journal that does not
    exist yet is an empty view (and is not created)."""
    from rebalancer.journal import Journal
    from rebalancer.reports.tracking import build_report

    now = time.time()
    if not path.exists():
        return JournalView(str(path), now)
    journal = Journal(path)
    try:
        runs = journal.runs_with_plans()
        trades = journal.trades()
        snapshots = journal.snapshots()
        unfinished = journal.unfinished()
        last = journal.last_rebalance()
    finally:
        journal.close()
    report = build_report(
        journal_path=str(path),
        runs=runs,
        trades=trades,
        snapshots=snapshots,
        strategy=config.strategy,
        targets=targets,
        registry=registry,
        prices=dict(config.prices),
        now=datetime.fromtimestamp(now, UTC),
    )
    return JournalView(
        str(path),
        now,
        exists=True,
        runs=tuple(runs),
        trades=tuple(trades),
        unfinished=tuple(unfinished),
        last_rebalance=last,
        report=report,
    )


def read_live(config_path: str, previous: LiveView | None) -> LiveView:
    """Holdings, prices, drift and the plan, as ``drift`` and ``plan`` read them now."""
    from rebalancer.commands.drift import load_inputs, refuse_partial
    from rebalancer.commands.plan import build

    now = time.time()
    try:
        # NOTE: a view every few seconds records no price history (the commands do)
        args = argparse.Namespace(config=config_path, snapshot=None)
        inputs = load_inputs(args, record=False)
    except Exception as exc:
        base = previous if previous is not None else LiveView(now)
        return replace(base, error=_message(exc), error_at=now)
    plan, plan_error = None, None
    try:
        refuse_partial(inputs)
        plan = build(inputs, force=False)
    except Exception as exc:
        plan_error = _message(exc)
    return LiveView(now, inputs=inputs, plan=plan, plan_error=plan_error)


def drift_sample(live: LiveView) -> Sample | None:
    """The drift of every targeted row in this read (from the plan's drift table)."""
    if live.plan is None:
        return None
    rows = {r.name: r.drift_pp for r in live.plan.before.rows if r.drift_pp is not None}
    return Sample(live.read_at, rows)


def _signature(path: Path) -> tuple[Any, ...]:
    """Changes whenever SQLite commits to the journal (the main file or its write-ahead log)."""
    out: list[Any] = []
    for p in (path, Path(f"{path}-wal")):
        try:
            st = p.stat()
            out.append((st.st_mtime_ns, st.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


class Dashboard:
    """The current ``State`` and the thread that keeps it fresh.

    The config is loaded once here (a bad one is exit 2 before anything listens); the live
    read loads it again each time, exactly as the ``drift`` command would.
    """

    def __init__(
        self,
        config_path: str,
        refresh_s: float,
        *,
        draw: Callable[[State], Mapping[str, bytes]] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        from rebalancer.config import load_config
        from rebalancer.planner.model import validate_all
        from rebalancer.services import journal_path

        self.config_path = config_path
        self.config, self.registry = load_config(config_path)
        self.targets = validate_all(self.config.strategy, self.registry)
        self.journal_path = journal_path(self.config, os.environ if env is None else env)
        self.refresh_s = refresh_s
        self._draw = draw
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._state = State(
            0,
            time.time(),
            config_path,
            refresh_s=refresh_s,
            leaves=tuple(r.name for r in self.targets.leaves if r.target is not None),
            band_pp=float(self.config.strategy.band_pp),
        )
        self._publishing = threading.Lock()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def state(self) -> State:
        with self._cond:
            return self._state

    def wait_newer(self, version: int, timeout: float) -> State:
        """The state once its version differs from ``version`` (or after ``timeout``)."""
        with self._cond:
            self._cond.wait_for(
                lambda: self._state.version != version or self._stop.is_set(), timeout
            )
            return self._state

    def _publish(self, **changes: Any) -> None:
        """A new state with ``changes`` and its charts (publishers take turns, so neither
        thread's change is lost; pages keep reading the old state meanwhile)."""
        with self._publishing:
            state = replace(self.state, **changes)
            charts = self._draw(state) if self._draw else {}
            with self._cond:
                self._state = replace(state, version=state.version + 1, charts=charts)
                self._cond.notify_all()

    def refresh_journal(self) -> None:
        try:
            view = read_journal(self.journal_path, self.config, self.registry, self.targets)
        except Exception as exc:
            view = JournalView(str(self.journal_path), time.time(), error=_message(exc))
        self._publish(journal=view)

    def refresh_live(self) -> None:
        live = read_live(self.config_path, self.state.live)
        sample = drift_sample(live) if live.error is None else None
        samples = self.state.samples  # NOTE: only this thread changes them
        if sample is not None:
            samples = (*samples, sample)[-MAX_SAMPLES:]
        self._publish(live=live, samples=samples)

    def start(self) -> None:
        """Read the journal now (fast), then keep everything fresh in the background: one
        thread watches the journal, another reads the chains, so a slow node never delays
        the trades a ``watch`` just journalled."""
        self.refresh_journal()
        for target, name in ((self._watch_journal, "journal"), (self._read_live, "live")):
            thread = threading.Thread(target=target, name=f"dashboard-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        with self._cond:
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=5)  # a read in flight dies with the process

    def _watch_journal(self) -> None:
        seen = _signature(self.journal_path)
        while not self._stop.wait(0.5):
            now = _signature(self.journal_path)
            if now != seen:
                seen = now
                self.refresh_journal()
                self._wake.set()  # NOTE: a run just wrote: its trades moved the balances too

    def _read_live(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            self.refresh_live()
            # NOTE: a run writes its journal many times a second: read the chains at most
            # every MIN_LIVE_GAP_S meanwhile, and every refresh_s when nothing happens.
            if not self._stop.wait(MIN_LIVE_GAP_S):
                self._wake.wait(max(self.refresh_s - MIN_LIVE_GAP_S, 0))
