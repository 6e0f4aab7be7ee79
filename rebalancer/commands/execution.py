"""``simulate PLAN``, ``apply PLAN``, ``run`` and ``history``: the execution commands.

``simulate`` builds and simulates every trade and signs nothing. ``apply`` executes exactly a
plan file after refusing a stale one (exit 3). ``run`` plans from fresh balances and applies in
one go; without ``--execute`` it stops after simulation (a dry run).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from rebalancer.output import emit_json, progress_unless

if TYPE_CHECKING:
    from rebalancer.documents.plan import PlanFile


def _report(args: argparse.Namespace, report: Any, extra: dict[str, Any] | None = None) -> int:
    from rebalancer.runs import results_table

    if args.json:
        emit_json({**report.as_dict(), **(extra or {})})
    else:
        if report.results:
            print(results_table(report.results))
        else:
            print("nothing to do: no trades")
        print(f"\nrun {report.run_id} ({report.mode}): {report.status}")
    return int(report.exit_code)


def simulate(args: argparse.Namespace) -> int:
    return _apply(args, mode="simulate")


def apply(args: argparse.Namespace) -> int:
    return _apply(args, mode="execute")


def _apply(args: argparse.Namespace, *, mode: str) -> int:
    import asyncio

    from rebalancer.runs import (
        check_balances,
        confirm,
        execute,
        load_plan,
        open_services,
        read_portfolio,
        recovered_journal,
    )

    config, registry, doc, intents = load_plan(args.plan, args.config)
    say = progress_unless(args.json)

    async def session() -> Any:
        async with (
            open_services(config, registry, progress=say) as services,
            recovered_journal(services, say) as (journal, recovered),
        ):
            if mode == "execute":
                resumed = await resume(services, journal, say, args.yes)
                if resumed.report is not None and any(
                    p.created_at == doc.created_at for p in resumed.plans
                ):
                    resumed.report.recovered = recovered
                    return resumed.report  # the interrupted run was this plan: it is done now
            snap = await read_portfolio(services)
            check_balances(snap, intents)
            if mode == "execute" and intents:
                confirm(f"Sign and send {len(intents)} trade(s) from {args.plan}?", args.yes)
            return await execute(
                services,
                journal,
                intents,
                mode=mode,
                plan_doc=doc,
                progress=say,
                recovered=recovered,
                before=snap,
            )

    return _report(args, asyncio.run(session()))


async def resume(services: Any, journal: Any, say: Any, yes: bool) -> Any:
    """Finish an unfinished run's plan before planning anything new (``runs.resume_unfinished``)."""
    from rebalancer.runs import Resumed, confirm, resume_unfinished

    if not journal.unfinished_runs():
        return Resumed()
    confirm("An earlier run was interrupted: finish its plan?", yes)
    return await resume_unfinished(services, journal, say)


def run_once(
    args: argparse.Namespace, say: Any, *, execute_trades: bool, yes: bool
) -> tuple[Any, PlanFile]:
    """Recover, plan from fresh balances, then simulate (dry run) or execute: one run, in
    one event loop."""
    import asyncio

    from rebalancer.config import load_config
    from rebalancer.runs import open_services, recovered_journal

    config, registry = load_config(args.config)

    async def session() -> tuple[Any, PlanFile]:
        async with (
            open_services(config, registry, progress=say) as services,
            recovered_journal(services, say) as (journal, recovered),
        ):
            report, doc, _inputs = await check(
                services,
                journal,
                recovered,
                say,
                execute_trades=execute_trades,
                yes=yes,
                force=getattr(args, "force", False),
            )
            return report, doc

    return asyncio.run(session())


async def check(
    services: Any,
    journal: Any,
    recovered: int,
    say: Any,
    *,
    execute_trades: bool,
    yes: bool,
    force: bool = False,
    lazy: bool = False,
) -> tuple[Any, PlanFile, Any]:
    """One check of ``run``/``watch`` with the command's open Services and journal: finish an
    interrupted run, plan from fresh balances, then simulate or execute. ``lazy``: see
    ``drift.live_inputs`` (a check with no trigger costs one balance read). Returns the run's
    report, the plan document and the inputs it planned from."""
    from rebalancer.commands.drift import live_inputs, refuse_partial
    from rebalancer.commands.plan import build, document
    from rebalancer.engine import intents_from_trades
    from rebalancer.runs import confirm, execute

    mode = "execute" if execute_trades else "simulate"
    resumed = await resume(services, journal, say, yes) if execute_trades else None
    if resumed is not None and resumed.report is not None:
        await services.read_activity()  # the resume's own sends are known
    inputs = await live_inputs(services, costs=True, book=True, lazy=lazy and not force)
    refuse_partial(inputs)
    plan = build(inputs, force=force)
    doc = document(inputs, plan)
    intents = intents_from_trades(plan.trades)
    if resumed is not None and resumed.report is not None and not intents:
        resumed.report.recovered = recovered
        return resumed.report, doc, inputs
    if mode == "execute" and intents:
        confirm(f"Sign and send {len(intents)} trade(s)?", yes)
    say(f"plan: {len(intents)} trade(s), est. cost ${doc.est_cost_usd}")
    report = await execute(
        services,
        journal,
        intents,
        mode=mode,
        plan_doc=doc,
        progress=say,
        recovered=recovered,
        before=inputs.snapshot,
    )
    return report, doc, inputs


def run(args: argparse.Namespace) -> int:
    """Plan from fresh balances, then simulate (dry run) or execute."""
    report, doc = run_once(
        args, progress_unless(args.json), execute_trades=args.execute, yes=args.yes
    )
    return _report(args, report, {"plan": doc.as_json()})


def history(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime
    from decimal import Decimal

    from rebalancer.config import load_config
    from rebalancer.output import fmt_units, table
    from rebalancer.runs import open_journal

    config, registry = load_config(args.config)
    journal = open_journal(config)

    def units(raw: int | None, token_id: str, with_symbol: bool = True) -> str:
        """Base units as token units with the token's symbol; the id when the registry does
        not know it (a journal written under another config)."""
        token = registry.by_id(token_id)
        if raw is None:
            return "-"
        if token is None:
            return f"{raw} {token_id}" if with_symbol else str(raw)
        amount = fmt_units(Decimal(raw).scaleb(-token.decimals))
        return f"{amount} {token.symbol}" if with_symbol else amount

    try:
        runs = journal.runs(limit=args.limit)
        trades = {r.id: journal.trades(r.id) for r in runs}
    finally:
        journal.close()
    if args.json:
        emit_json(
            {
                "runs": [
                    {
                        **r.model_dump(mode="json", exclude={"plan"}),
                        "trades": [
                            {
                                "id": t.trade_id,
                                "chain": t.chain,
                                "wallet": t.wallet,
                                "sell": t.sell,
                                "buy": t.buy,
                                "amount_in": str(t.amount_in),
                                "min_out": None if t.min_out is None else str(t.min_out),
                                "state": t.state,
                                "tx": t.tx_hash,
                                "realised_out": None
                                if t.realised_out is None
                                else str(t.realised_out),
                                "error": t.error,
                            }
                            for t in trades[r.id]
                        ],
                    }
                    for r in runs
                ]
            }
        )
        return 0
    if not runs:
        print("no runs yet")
        return 0
    for r in runs:
        when = datetime.fromtimestamp(r.started_at, UTC).strftime("%Y-%m-%d %H:%M:%S")
        print(f"run {r.id}  {when} UTC  {r.mode}  {r.status}")
        rows = [
            (
                t.chain,
                t.trade_id,
                units(t.amount_in, t.sell),
                _symbol(registry, t.buy),
                units(t.min_out, t.buy, with_symbol=False),
                units(t.realised_out, t.buy, with_symbol=False),
                t.state,
                (t.tx_hash or t.error or "")[:66],
            )
            for t in trades[r.id]
        ]
        if rows:
            print(
                table(
                    ["chain", "trade", "sell", "buy", "min out", "realised", "state", "tx / error"],
                    rows,
                    right=(2, 4, 5),
                )
            )
        print()
    return 0


def _symbol(registry: Any, token_id: str) -> str:
    token = registry.by_id(token_id)
    return token.symbol if token is not None else token_id
