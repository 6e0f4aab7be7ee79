"""``rebalancer localnet up|status|down``: the local worlds for the demo and the tests."""

from __future__ import annotations

import argparse
from pathlib import Path

from rebalancer.output import emit_json, progress, table


def run(args: argparse.Namespace) -> int:
    from localnet import manager  # NOTE: lazy on purpose: product code never needs localnet

    state_dir = Path(args.dir) if args.dir else manager.default_dir()
    if args.action == "up":
        manifest = manager.up(state_dir, progress=(lambda _m: None) if args.json else progress)
        rows = [{**w, "alive": True, "answering": True} for w in manifest["worlds"]]
    elif args.action == "status":
        rows = manager.status(state_dir)
    else:
        stopped = manager.down(state_dir)
        if args.json:
            emit_json({"stopped": stopped})
        else:
            print(f"stopped {len(stopped)} local world(s)" if stopped else "nothing was running")
        return 0
    if args.json:
        emit_json({"dir": str(state_dir), "worlds": rows})
        return 0
    if not rows:
        print("no local worlds (run `rebalancer localnet up`)")
        return 0
    print(
        table(
            ["world", "kind", "chain id", "endpoint", "pid", "state"],
            [
                (
                    r["name"],
                    r["kind"],
                    r.get("chain_id") or "",
                    r["url"],
                    r["pid"],
                    "up" if r["answering"] else ("not answering" if r["alive"] else "down"),
                )
                for r in rows
            ],
        )
    )
    print(f"\nmanifest: {state_dir / 'manifest.json'}")
    return 0 if all(r["answering"] for r in rows) else 4
