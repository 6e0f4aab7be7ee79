"""``rebalancer demo``: the whole story on the local worlds, start to finish.

Starts the local worlds if they are not running (and stops them again at the end, unless
``--keep``), then shows each step of one rebalance on the demo wallet. Steps that later issues
build (plan, simulation, execution) are added here as they land.
"""

from __future__ import annotations

import argparse
import json

from rebalancer.output import progress


def run(args: argparse.Namespace) -> int:
    from localnet import manager  # NOTE: lazy on purpose: product code never needs localnet
    from rebalancer.commands import balances

    say = (lambda _m: None) if args.json else progress
    state_dir = manager.default_dir()
    was_running = bool(manager.status(state_dir)) and all(
        row["answering"] for row in manager.status(state_dir)
    )
    manager.up(state_dir, progress=say)
    try:
        say("step 1: balances of the demo wallet on every chain")
        code = balances.run(argparse.Namespace(config=args.config, json=args.json))
        if code:
            return code
        if args.json:
            print(
                json.dumps(
                    {
                        "before_max_drift_pp": None,
                        "after_max_drift_pp": None,
                        "band_pp": None,
                        "trades": [],
                    }
                )
            )
        else:
            print("\n(planning, simulation and execution join this demo as they are built)")
        return 0
    finally:
        if not was_running and not args.keep:
            say("stopping the local worlds this demo started (use --keep to leave them up)")
            manager.down(state_dir)
