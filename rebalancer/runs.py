"""Plan, simulate, apply and run: the commands' shared path through the engine.

A run is: recover what a crash left -> read the portfolio once (the stale-plan check, the
plan, the "before" snapshot) -> execute the trades (simulate only, or sign and send) -> record
the summary. A command runs all of it in one event loop with one HTTP client and one
``Services`` (adapters and aggregators built once): :func:`open_services`.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rebalancer.config import Config
from rebalancer.core.errors import ConfigError, RefusedError, UserRejectedError
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


@dataclass
class RunReport:
    run_id: int
    mode: str
    results: list[TradeResult]
    recovered: int

    @property
    def status(self) -> RunStatus:
        bad = [r for r in self.results if r.status in NOT_DONE]
        return RunStatus.PARTIAL if bad else RunStatus.OK

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "mode": self.mode,
            "status": self.status,
            "recovered": self.recovered,
            "trades": [r.as_dict() for r in self.results],
        }


def open_journal(config: Config) -> Journal:
    import os

    return Journal(journal_path(config, os.environ))


@asynccontextmanager
async def open_services(
    config: Config, registry: Any, *, timeout: float = 60.0
) -> AsyncIterator[Services]:
    """The command's one HTTP client and Services, and a scratch folder for simulation logs."""
    import httpx

    with tempfile.TemporaryDirectory(prefix="rebalancer-") as tmp:
        async with httpx.AsyncClient(timeout=timeout) as client:
            yield Services(config, registry, client, work_dir=Path(tmp))


@asynccontextmanager
async def recovered_journal(
    services: Services, progress: Progress
) -> AsyncIterator[tuple[Journal, int]]:
    """The journal, locked for this run, and how many trades a crash left were settled
    (recovery) before any new work; the journal is closed whatever happens."""
    import fcntl

    journal = open_journal(services.config)
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
        yield journal, recovered
    finally:
        journal.close()
        lock.close()  # releases the lock


async def read_portfolio(services: Services) -> Snapshot:
    """Every configured wallet's holdings, through the command's adapters."""
    from rebalancer.portfolio import read_holdings

    return await read_holdings(services.config, services.registry, adapters=services.adapter)


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
) -> RunReport:
    """Run ``intents`` through the engine: ``simulate`` signs nothing, ``execute`` does.

    An executing run records the portfolio before and after (``portfolio_before`` and
    ``portfolio_after`` snapshots) for performance reports; ``before`` is the portfolio the
    command read already (after recovery, under the journal's lock), not read again.
    """
    config = services.config
    run_id = journal.start_run(RunMode(mode), plan_doc)
    if mode == "execute" and config.prices:
        snap = before if before is not None else await read_portfolio(services)
        record_portfolio(journal, run_id, SnapshotKind.PORTFOLIO_BEFORE, snap, config.prices)
    status = RunStatus.ERROR
    report = RunReport(run_id, mode, [], recovered)
    try:
        engine = Engine(services, journal, progress)
        report.results = await engine.execute(run_id, intents, sign=(mode == "execute"))
        status = report.status
        if mode == "execute":
            from rebalancer.market_costs import record_landed

            await record_landed(services, journal, report.results)
        if mode == "execute" and config.prices:
            after = await read_portfolio(services)
            record_portfolio(journal, run_id, SnapshotKind.PORTFOLIO_AFTER, after, config.prices)
        return report
    finally:
        journal.finish_run(run_id, status, RunSummary.of(r.as_dict() for r in report.results))


def confirm(question: str, yes: bool) -> None:
    """Ask before signing; without a terminal, --yes is required."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise ConfigError("no terminal to confirm on: pass --yes to execute without a prompt")
    answer = input(f"{question} [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise UserRejectedError("not confirmed: nothing was signed")


def read_plan(
    path: str, max_age_s: int, registry: Any, prices: Mapping[str, Any]
) -> tuple[PlanFile, list[TradeIntent]]:
    """A PLAN file, parsed once (a malformed one is exit 2, naming the field); a plan older
    than the policy allows is refused (exit 3)."""
    from rebalancer.engine import intents_from_plan

    doc = PlanFile.read(path)
    created = doc.created_at
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    age = (datetime.now(UTC) - created).total_seconds()
    if age > max_age_s:
        raise RefusedError(
            f"plan {path!r} is {age / 60:.0f} min old, over policy.max_plan_age_s "
            f"({max_age_s} s): make a new plan"
        )
    return doc, intents_from_plan(doc, registry, prices)


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

    from rebalancer.output import fmt_amount, table

    def units(raw: int | None, decimals: int) -> str:
        return "-" if raw is None else fmt_amount(Decimal(raw).scaleb(-decimals))

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
