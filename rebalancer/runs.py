"""Plan, simulate, apply and run: the commands' shared path through the engine.

A run is: recover what a crash left -> read the portfolio once (the stale-plan check, the
plan, the "before" snapshot) -> execute the trades (simulate only, or sign and send) -> record
the summary. A command runs all of it in one event loop with one HTTP client and one
``Services`` (adapters and aggregators built once): :func:`open_services`.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rebalancer.config import Config
from rebalancer.core.errors import ConfigError, RebalancerError, RefusedError, UserRejectedError
from rebalancer.core.redact import scrub
from rebalancer.documents.journal import PortfolioSnapshot, RunSummary, SnapshotKind
from rebalancer.documents.plan import PlanFile
from rebalancer.documents.status import RunMode, RunStatus, TradeStatus
from rebalancer.engine import Engine, TradeIntent, TradeResult
from rebalancer.journal import Journal
from rebalancer.services import Services, journal_path

if TYPE_CHECKING:
    from rebalancer.portfolio import Snapshot

Progress = Callable[[str], None]
NOT_DONE = (TradeStatus.FAILED, TradeStatus.REFUSED, TradeStatus.PENDING)
"""A run with a trade in one of these states is ``partial``."""


DONE_STATES = frozenset({"confirmed", "simulated"})
"""What a trade ends as when it did what the run asked (executed, or simulated in a dry run)."""

PARTLY_DONE = 6
"""The exit code of a run where some trades were done and others were not (``partial``)."""


@dataclass
class RunReport:
    run_id: int
    mode: str
    results: list[TradeResult]
    recovered: int
    ended: str | None = None
    """``error`` or ``interrupted`` when the run did not reach its end."""

    @property
    def status(self) -> RunStatus:
        if self.ended is not None:
            return RunStatus(self.ended)
        bad = [r for r in self.results if r.status not in DONE_STATES]
        return RunStatus.PARTIAL if bad else RunStatus.OK

    @property
    def exit_code(self) -> int:
        """0 all done; 3 every trade refused; 6 partly done (the JSON says which)."""
        bad = [r for r in self.results if r.status not in DONE_STATES]
        if not bad:
            return 0
        if all(r.status == "refused" for r in self.results):
            return 3
        return PARTLY_DONE

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "mode": self.mode,
            "status": self.status,
            "recovered": self.recovered,
            "trades": [r.as_dict() for r in self.results],
        }


_LAST: list[dict[str, Any]] = []


def last_document() -> dict[str, Any] | None:
    """The document of the last run this process recorded, even one that ended in an error
    or a signal: the CLI prints it with ``--json`` whatever the exit code."""
    return _LAST[-1] if _LAST else None


def forget_documents() -> None:
    _LAST.clear()


def remember(doc: dict[str, Any]) -> None:
    _LAST.append(doc)


def open_journal(config: Config) -> Journal:
    import os

    return Journal(journal_path(config, os.environ))


@asynccontextmanager
async def open_services(
    config: Config, registry: Any, *, timeout: float = 60.0, progress: Progress | None = None
) -> AsyncIterator[Services]:
    """The command's one HTTP client and Services, and a scratch folder for simulation logs."""
    import httpx

    with tempfile.TemporaryDirectory(prefix="rebalancer-") as tmp:
        async with httpx.AsyncClient(timeout=timeout) as client:
            services = Services(config, registry, client, work_dir=Path(tmp), progress=progress)
            try:
                yield services
            finally:
                await services.aclose()


@asynccontextmanager
async def recovered_journal(
    services: Services, progress: Progress
) -> AsyncIterator[tuple[Journal, int]]:
    """The journal, locked for this run, and how many trades a crash left were settled
    (recovery) before any new work; the journal is closed whatever happens."""
    import fcntl

    await services.clock.refresh()
    journal = Journal(
        journal_path(services.config, os.environ),
        services.clock.time,
        durable=not services.clock.simulated,
    )
    lock = open(str(journal.path) + ".lock", "w")  # noqa: SIM115 - held for the whole run
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RefusedError(
                f"another rebalancer run holds the journal {journal.path}: one run at a time "
                "(two runs would plan the same trades)"
            ) from None
        recovered = 0
        if journal.unfinished():
            recovered = len(await Engine(services, journal, progress).recover())
        left = journal.unfinished()
        if left:
            t = left[0]
            raise RefusedError(
                f"{len(left)} trade(s) still in flight (first: {t.trade_id} on {t.chain}, "
                f"tx {t.tx_hash}); not planning until they land or are dropped: run again later"
            )
        # NOTE: marked before the balances are read, so a transaction sent from elsewhere
        # after this makes every later signature for that wallet refused as stale.
        await services.read_activity()
        yield journal, recovered
    finally:
        journal.close()
        lock.close()  # releases the lock


async def read_portfolio(services: Services) -> Snapshot:
    """Every configured wallet's holdings, through the command's adapters."""
    from rebalancer.portfolio import read_holdings

    return await read_holdings(
        services.config, services.registry, adapters=services.adapter, progress=services.progress
    )


def portfolio_doc(holdings: Sequence[Any], prices: Mapping[str, Any]) -> PortfolioSnapshot:
    """A portfolio snapshot for the journal (reports read these): holdings at prices."""
    from decimal import Decimal

    rows = []
    total = Decimal(0)
    for h in holdings:
        price = prices.get(h.token.asset)
        value = (
            None
            if price is None
            else Decimal(h.raw).scaleb(-h.token.decimals) * Decimal(str(price))
        )
        if value is not None:
            total += value
        rows.append(
            {
                "chain": h.chain,
                "wallet": h.wallet,
                "asset": h.token.asset,
                "symbol": h.token.symbol,
                "token": h.token.id,
                "decimals": h.token.decimals,
                "raw": str(h.raw),
                "value_usd": None if value is None else str(value),
            }
        )
    return PortfolioSnapshot.model_validate(
        {
            "prices": {k: str(v) for k, v in prices.items()},
            "holdings": rows,
            "total_usd": str(total),
        }
    )


def record_portfolio(
    journal: Journal, run_id: int, kind: SnapshotKind, snap: Snapshot, prices: Any
) -> None:
    """A portfolio snapshot in the journal, at the config's prices (reports read these)."""
    journal.snapshot(run_id, kind, portfolio_doc(snap.holdings, prices))


async def execute(
    services: Services,
    journal: Journal,
    intents: Sequence[TradeIntent],
    *,
    mode: str,
    plan_doc: PlanFile,
    progress: Progress,
    recovered: int = 0,
    before: Snapshot | None = None,
    on_start: Callable[[int], Any] | None = None,
) -> RunReport:
    """Run ``intents`` through the engine: ``simulate`` signs nothing, ``execute`` does.

    An executing run records the portfolio before and after (``portfolio_before`` and
    ``portfolio_after`` snapshots) for performance reports; ``before`` is the portfolio the
    command read already (after recovery, under the journal's lock), not read again.
    """
    config = services.config
    run_id = journal.start_run(RunMode(mode), plan_doc)
    if on_start is not None:
        on_start(run_id)
    if mode == "execute" and config.prices:
        snap = before if before is not None else await read_portfolio(services)
        record_portfolio(journal, run_id, SnapshotKind.PORTFOLIO_BEFORE, snap, config.prices)
    report = RunReport(run_id, mode, [], recovered, ended=RunStatus.ERROR)
    error: RebalancerError | None = None
    try:
        engine = Engine(services, journal, progress)
        report.results = await engine.execute(run_id, intents, sign=(mode == "execute"))
        report.ended = None
        if mode == "execute":
            from rebalancer.market_costs import record_landed

            await record_landed(services, journal, report.results)
        if mode == "execute" and config.prices:
            # NOTE: a run with nothing to trade moved nothing: its "after" is its "before"
            quiet = not intents and before is not None
            after = snap if quiet else await read_portfolio(services)
            record_portfolio(journal, run_id, SnapshotKind.PORTFOLIO_AFTER, after, config.prices)
        return report
    except RebalancerError as exc:
        error = exc
        raise
    except (KeyboardInterrupt, asyncio.CancelledError):
        report.ended = RunStatus.INTERRUPTED
        raise
    finally:
        if report.ended is not None:
            close_unexecuted(journal, run_id, report.ended)
            report.results = results_from_journal(journal, run_id, intents, report.results)
        doc = report.as_dict()
        if error is not None:
            doc["error"] = {"exit_code": error.exit_code, "message": scrub(error.message)}
        remember(doc)
        summary = RunSummary.of(r.as_dict() for r in report.results)
        if error is not None:
            summary = summary.model_copy(update={"error": doc["error"]})
        journal.finish_run(run_id, report.status, summary)


def close_unexecuted(journal: Journal, run_id: int, why: str) -> None:
    """A run that ends early leaves no trade ``planned``: never-signed rows become
    ``not_executed`` (a resume may still execute them); signed or sent ones stay for recovery."""
    for row in journal.trades(run_id, states=(TradeStatus.PLANNED,)):
        journal.update(
            run_id,
            row.trade_id,
            TradeStatus.NOT_EXECUTED,
            error=row.error or f"not executed: run {why}",
        )


def results_from_journal(
    journal: Journal,
    run_id: int,
    intents: Sequence[TradeIntent],
    known: Sequence[TradeResult],
) -> list[TradeResult]:
    """Every trade of the run with its status, from the journal where the engine returned none
    (a run that stopped in the middle)."""
    from rebalancer.intents import approval_ids

    have = {r.id: r for r in known}
    rows = {t.trade_id: t for t in journal.trades(run_id)}
    out: list[TradeResult] = []
    for t in intents:
        if t.id in have:
            out.append(have[t.id])
            continue
        row = rows.get(t.id)
        tx = row.tx_hash if row is not None else None
        if row is not None and tx is None:
            approval = next((rows[a] for a in approval_ids(t.id) if a in rows), None)
            tx = approval.tx_hash if approval is not None else None
        out.append(
            TradeResult.of(
                t,
                row.state if row is not None else TradeStatus.NOT_EXECUTED,
                tx=tx,
                min_out=row.min_out if row is not None else None,
                simulated_out=row.simulated_out if row is not None else None,
                realised_out=row.realised_out if row is not None else None,
                reason=(row.error if row is not None else None) or "the run stopped before it",
            )
        )
    return out


RESUMABLE = (TradeStatus.PLANNED, TradeStatus.NOT_EXECUTED, TradeStatus.APPROVED)
"""Rows of an unfinished run that were never sent: a resume executes them (after recovery has
settled the signed and sent ones)."""


@dataclass
class Resumed:
    """What finishing the unfinished runs did: the last resume's report, the plans resumed."""

    report: RunReport | None = None
    plans: list[PlanFile] = field(default_factory=list)


async def resume_unfinished(services: Services, journal: Journal, progress: Progress) -> Resumed:
    """Finish the plan of a run that never reached its end (killed, interrupted, an error)
    before anything new is planned: its settled trades stay settled; the ones never signed are
    quoted, checked and simulated again against the same limits and executed if they pass, in
    a new run. The old run is closed ``interrupted`` and names the run that resumed it."""
    from rebalancer.engine import intents_from_plan

    done = Resumed()
    max_age = services.config.policy.max_plan_age_s
    for old in journal.unfinished_runs():
        left = {r.trade_id for r in journal.trades(old.id, states=RESUMABLE)}
        close_unexecuted(journal, old.id, RunStatus.INTERRUPTED)
        age = services.clock.time() - old.started_at
        plan = old.plan if isinstance(old.plan, PlanFile) else None
        if not left or plan is None or age > max_age:
            if left:
                progress(
                    f"run {old.id} was interrupted {age / 60:.0f} min ago (policy.max_plan_age_s "
                    f"is {max_age} s): not resumed, planning afresh"
                )
            journal.mark_resumed(old.id, 0, old.summary)
            continue
        try:
            registry, prices = services.registry, services.config.prices
            intents = [t for t in intents_from_plan(plan, registry, prices) if t.id in left]
        except ConfigError as exc:
            progress(f"run {old.id}: its plan cannot be resumed ({exc.message})")
            journal.mark_resumed(old.id, 0, old.summary)
            continue
        progress(f"resuming run {old.id}: {len(intents)} trade(s) of its plan never sent")
        done.plans.append(plan)
        new_id: list[int] = []
        try:
            done.report = await execute(
                services,
                journal,
                intents,
                mode="execute",
                plan_doc=plan,
                progress=progress,
                on_start=new_id.append,
            )
        finally:
            if new_id:
                for t in intents:
                    journal.update(
                        old.id,
                        t.id,
                        TradeStatus.NOT_EXECUTED,
                        error=f"resumed in run {new_id[0]}",
                    )
                journal.mark_resumed(old.id, new_id[0], old.summary)
    return done


def confirm(question: str, yes: bool) -> None:
    """Ask before signing; without a terminal, --yes is required."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise ConfigError("no terminal to confirm on: pass --yes to execute without a prompt")
    answer = input(f"{question} [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise UserRejectedError("not confirmed: nothing was signed")


def load_plan(plan_path: str, config_path: str | Path) -> tuple[Any, Any, Any, Any]:
    """The config and a plan file read against it (``apply``, ``simulate``, ``export``): prices
    are fetched only when ``read_plan`` asks for them, and the config that priced the plan is
    the one the command goes on with."""
    from rebalancer.clock import now_for
    from rebalancer.config import load_config
    from rebalancer.market_prices import priced_config

    config, registry = load_config(config_path)

    def prices() -> Any:
        nonlocal config
        config = priced_config(config, registry)
        return config.prices

    doc, intents = read_plan(
        plan_path, config.policy.max_plan_age_s, registry, prices, lambda: now_for(config, registry)
    )
    return config, registry, doc, intents


def read_plan(
    path: str,
    max_age_s: int,
    registry: Any,
    prices: Callable[[], Mapping[str, Any]],
    now: Callable[[], datetime] | None = None,
) -> tuple[PlanFile, list[TradeIntent]]:
    """A PLAN file, parsed once (a malformed one is exit 2, naming the field); a plan older
    than the policy allows is refused (exit 3). ``prices`` is asked only then: a bad file
    is refused before any node or API is asked for a price. ``now``: the command's clock
    (``rebalancer.clock.now_for``; the chains' time on simulated worlds)."""
    from rebalancer.engine import intents_from_plan
    from rebalancer.intents import plan_legs

    doc = PlanFile.read(path)
    plan_legs(doc, registry)
    created = doc.created_at
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    age = ((now or (lambda: datetime.now(UTC)))() - created).total_seconds()
    if age > max_age_s:
        raise RefusedError(
            f"plan {path!r} is {age / 60:.0f} min old, over policy.max_plan_age_s "
            f"({max_age_s} s): make a new plan"
        )
    return doc, intents_from_plan(doc, registry, prices())


def check_balances(snap: Snapshot, intents: Sequence[TradeIntent]) -> None:
    """A stale plan sells what is no longer there: every trade's sell amount must be held now."""
    held: dict[tuple[str, str, str], int] = {}
    for h in snap.holdings:
        key = (h.chain, h.wallet.lower(), h.token.id)
        held[key] = held.get(key, 0) + int(h.raw)
    need: dict[tuple[str, str, str], int] = {}
    for t in intents:
        key = (t.chain, t.wallet.lower(), t.sell.id)
        need[key] = need.get(key, 0) + t.amount_in
    for key, amount in need.items():
        if held.get(key, 0) < amount:
            chain, wallet, token = key
            raise RefusedError(
                f"stale plan: it sells {amount} base units of {token} from {wallet} on {chain}, "
                f"but the wallet holds {held.get(key, 0)}: make a new plan"
            )


def results_table(results: Sequence[TradeResult]) -> str:
    """Trades in token units for people (the JSON keeps exact base units)."""
    from decimal import Decimal

    from rebalancer.output import fmt_units, table

    def units(raw: int | None, decimals: int) -> str:
        return "-" if raw is None else fmt_units(Decimal(raw).scaleb(-decimals))

    rows = [
        (
            r.chain,
            r.id,
            f"{units(r.amount_in, r.sell_decimals)} {r.sell}",
            f"{units(r.simulated_out, r.buy_decimals)} {r.buy}",
            units(r.min_out, r.buy_decimals),
            units(r.realised_out, r.buy_decimals),
            r.status,
            (r.tx or r.reason or "")[:66],
        )
        for r in results
    ]
    return table(
        [
            "chain",
            "trade",
            "sell",
            "buy (simulated)",
            "min out",
            "realised",
            "status",
            "tx / reason",
        ],
        rows,
        right=(2, 3, 4, 5),
    )
