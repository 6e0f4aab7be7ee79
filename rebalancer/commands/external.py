"""``export PLAN --unsigned DIR`` and ``submit DIR``: signing somewhere else (air-gapped).

``export`` refuses a stale plan as ``apply`` does, settles what a crash left, checks the
balances, then prepares every trade (quote, policy, build, check, simulate) and writes what each
wallet must sign. ``submit`` checks the signed files against the export and sends them; one
mismatch refuses all of them (exit 3) before anything is sent.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rebalancer.output import emit_json, progress_unless


def add_export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("plan", metavar="PLAN", help="a plan file written by `rebalancer plan -o`")
    p.add_argument(
        "--unsigned",
        required=True,
        metavar="DIR",
        help="a new (or empty) folder for the unsigned transactions, the manifest and a README",
    )


def add_submit_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", metavar="DIR", help="the folder `export --unsigned` wrote, now signed")
    p.add_argument("--yes", action="store_true", help="do not ask before sending")


def export(args: argparse.Namespace) -> int:
    import asyncio

    from rebalancer.external import ExportReport
    from rebalancer.external import export as export_plan
    from rebalancer.output import table
    from rebalancer.runs import (
        check_balances,
        load_plan,
        open_services,
        read_portfolio,
        recovered_journal,
    )

    config, registry, doc, intents = load_plan(args.plan, args.config)
    say = progress_unless(args.json)

    async def session() -> ExportReport:
        async with (
            open_services(config, registry, progress=say) as services,
            recovered_journal(services, say) as (journal, _recovered),
        ):
            check_balances(await read_portfolio(services), intents)
            return await export_plan(
                services, journal, intents, plan_doc=doc, out=Path(args.unsigned), progress=say
            )

    report = asyncio.run(session())
    if args.json:
        emit_json(report.as_dict())
        return 0
    rows = [
        (
            t["chain"],
            t["id"],
            t["kind"],
            t["wallet"],
            t.get("nonce", ""),
            t["min_out"] or "-",
            t["files"]["signed"],
        )
        for t in report.manifest["transactions"]
    ]
    if rows:
        print(table(["chain", "tx", "kind", "wallet", "nonce", "min out", "sign into"], rows))
    else:
        print("nothing to sign: no trades")
    for s in report.skipped:
        print(f"skipped {s['id']}: {s['reason']}")
    print(f"\nwritten to {report.dir} (read its README.txt), then: rebalancer submit {report.dir}")
    return 0


def submit(args: argparse.Namespace) -> int:
    import asyncio

    from rebalancer.config import load_config
    from rebalancer.external import submit as submit_dir
    from rebalancer.runs import RunReport, confirm, open_services, recovered_journal, results_table

    config, registry = load_config(args.config)
    say = progress_unless(args.json)
    folder = Path(args.dir)
    if not folder.is_dir():
        from rebalancer.core.errors import ConfigError

        raise ConfigError(f"DIR {args.dir!r}: not a folder")

    def ask(n: int) -> None:
        confirm(f"Send the {n} signed transaction(s) in {folder}?", args.yes)

    async def session() -> tuple[int, list[Any], int]:
        async with (
            open_services(config, registry, progress=say) as services,
            recovered_journal(services, say) as (journal, recovered),
        ):
            run_id, results = await submit_dir(services, journal, folder, say, ask)
            return run_id, results, recovered

    run_id, results, recovered = asyncio.run(session())
    report = RunReport(run_id, "submit", results, recovered)
    if args.json:
        emit_json(report.as_dict())
    else:
        print(results_table(results) if results else "nothing to send")
        print(f"\nrun {run_id} (submit): {report.status}")
    return report.exit_code
