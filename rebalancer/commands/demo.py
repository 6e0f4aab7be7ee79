"""``rebalancer demo``: the whole story on the local worlds, start to finish.

Starts the local worlds if they are not running, then on the demo wallets: balances on every
chain -> drift against the targets -> the cheapest plan -> every trade simulated on a fork,
checked, signed with the demo keys, sent and confirmed -> the drift after. The worlds are left
running so that a second ``rebalancer demo`` finds nothing to do (``--stop`` stops them at the
end; ``rebalancer localnet down`` any time). Without ``-c`` it runs the demo config shipped in
the package (examples/local.toml), copied with its demo keys to a private folder of the user's
data folder.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

from rebalancer.output import progress_unless

# The demo key file's passphrase: public, like the demo keys. Set only when the user has not.
DEMO_ENV = {"REBALANCER_DEMO_PASSPHRASE": "demo"}


def packaged_config(data_dir: Path, name: str = "local.toml", folder: str = "demo") -> Path:
    """The shipped demo config ``name``, copied with its key files into ``data_dir/folder``.

    The copy keeps the config's relative paths working: the journal lands beside it (a
    writable place, whatever folder the package is installed in) and the key files are 0600
    like any key file, which the package's own copies need not be.
    """
    from rebalancer.core.errors import ConfigError
    from rebalancer.core.resources import package_path

    src = package_path("examples")
    dst = data_dir / folder
    try:
        (dst / "keys").mkdir(parents=True, exist_ok=True)
        for place in (dst, dst / "keys"):
            place.chmod(0o700)
        for key in sorted((src / "keys").glob("*.json")):
            fd = os.open(dst / "keys" / key.name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as out:
                os.fchmod(fd, 0o600)  # NOTE: an existing file keeps its mode under O_CREAT
                out.write(key.read_bytes())
        config = dst / name
        config.write_bytes((src / name).read_bytes())
    except OSError as exc:
        raise ConfigError(
            f"cannot prepare the demo folder {dst}: {exc.strerror} "
            "(set REBALANCER_DATA_DIR, or give a config with -c)"
        ) from None
    return config


def _max_drift(doc: dict[str, Any]) -> Decimal:
    return max(
        (abs(Decimal(str(r["drift_pp"]))) for r in doc["rows"] if r.get("drift_pp") is not None),
        default=Decimal(0),
    )


def run(args: argparse.Namespace) -> int:
    if getattr(args, "days", None) is not None:
        from rebalancer.commands import living

        return living.run(args)
    for flag in ("prices", "seed"):
        if getattr(args, flag, None) is not None:
            from rebalancer.core.errors import ConfigError

            raise ConfigError(f"--{flag} needs --days N (the living demo)")
    from rebalancer.commands import balances
    from rebalancer.commands.drift import load_inputs, refuse_partial
    from rebalancer.commands.plan import build, document
    from rebalancer.engine import intents_from_trades
    from rebalancer.localnet import (
        manager,  # NOTE: lazy on purpose: product code never needs localnet
    )
    from rebalancer.planner.drift import compute_drift
    from rebalancer.planner.render import drift_json, drift_text
    from rebalancer.runs import execute, open_services, recovered_journal, results_table

    for key, value in DEMO_ENV.items():
        os.environ.setdefault(key, value)
    if args.config is None:
        from rebalancer.services import data_dir

        args.config = str(packaged_config(data_dir(os.environ)))
    quiet = args.json
    say = progress_unless(quiet)
    state_dir = manager.default_dir()
    manager.up(state_dir, progress=say)

    def show(title: str) -> None:
        if not quiet:
            print(f"\n== {title}")

    def drift_of(inputs: Any) -> Any:
        return compute_drift(
            inputs.portfolio,
            inputs.targets,
            inputs.config.strategy,
            now=inputs.now,
            last_rebalance=inputs.last_rebalance,
        )

    try:
        show("1. balances of the demo wallets on every chain")
        if not quiet:
            balances.run(argparse.Namespace(config=args.config, json=False))
        load_args = argparse.Namespace(config=args.config, snapshot=None)
        inputs = load_inputs(load_args, costs=True)
        refuse_partial(inputs)
        before = drift_json(drift_of(inputs))
        show("2. drift from the targets")
        if not quiet:
            print(drift_text(drift_of(inputs)))
        plan = build(inputs, force=False)
        doc = document(inputs, plan)
        intents = intents_from_trades(plan.trades)
        show(f"3. the plan: {len(intents)} trade(s), estimated cost ${doc.est_cost_usd}")
        config, registry = inputs.config, inputs.registry

        async def session() -> Any:
            async with (
                open_services(config, registry) as services,
                recovered_journal(services, say) as (journal, _recovered),
            ):
                show("4. simulate on forks, check, sign with the demo keys, send, confirm")
                return await execute(
                    services, journal, intents, mode="execute", plan_doc=doc, progress=say
                )

        report = asyncio.run(session())
        if not quiet:
            print(results_table(report.results) if report.results else "nothing to do")
        after_inputs = load_inputs(load_args)
        after = drift_json(drift_of(after_inputs))
        show("5. drift after")
        if not quiet:
            print(drift_text(drift_of(after_inputs)))
        summary = {
            "before_max_drift_pp": str(_max_drift(before).quantize(Decimal("0.01"))),
            "after_max_drift_pp": str(_max_drift(after).quantize(Decimal("0.01"))),
            "band_pp": str(config.strategy.band_pp),
            "est_cost_usd": doc.as_json()["est_cost_usd"],
            "trades": [{"chain": r.chain, "tx": r.tx, "status": r.status} for r in report.results],
        }
        if quiet:
            print(json.dumps(summary))
        else:
            print(
                f"\nmax drift {summary['before_max_drift_pp']} pp -> "
                f"{summary['after_max_drift_pp']} pp (band {summary['band_pp']} pp)"
            )
        bad = [r for r in report.results if r.status != "confirmed"]
        if not bad:
            return 0
        return 6 if len(bad) < len(report.results) else 3
    finally:
        if args.stop:
            say("stopping the local worlds")
            manager.down(state_dir)
        else:
            say("the local worlds keep running: `rebalancer localnet down` stops them")
