"""``rebalancer localnet up|status|down``: the local worlds for the demo and the tests."""

from __future__ import annotations

import argparse
from pathlib import Path

from rebalancer.output import emit_json, progress_unless, table


def run(args: argparse.Namespace) -> int:
    from rebalancer.localnet import (
        manager,  # NOTE: lazy on purpose: product code never needs localnet
    )

    state_dir = Path(args.dir) if args.dir else manager.default_dir()
    if args.action == "snapshot":
        return _snapshot(args)
    if args.action == "up":
        manifest = manager.up(state_dir, progress=progress_unless(args.json))
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


def _snapshot(args: argparse.Namespace) -> int:
    """Capture chosen Solana accounts from any RPC: a user's fork of what they care about."""
    from rebalancer.core.errors import ConfigError
    from rebalancer.core.redact import redact_url
    from rebalancer.localnet.solana_snapshot import capture_snapshot, dump_snapshot

    if not args.rpc or not args.out or not args.accounts:
        raise ConfigError("localnet snapshot needs --rpc URL, --out FILE and at least one PUBKEY")
    snap = capture_snapshot(args.rpc, args.accounts)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(dump_snapshot(snap))
    missing = snap["meta"].get("missing", [])
    if args.json:
        emit_json({"out": str(out), "accounts": len(snap["accounts"]), "missing": missing})
    else:
        print(
            f"wrote {len(snap['accounts'])} accounts from {redact_url(args.rpc)} to {out}"
            f" ({len(missing)} missing)"
        )
    return 0
