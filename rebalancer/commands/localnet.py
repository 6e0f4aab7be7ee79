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
    if args.action == "market":
        return _market(args, state_dir)
    if args.action == "up":
        path = None
        if args.market is not None:  # checked before anything starts
            from rebalancer.localnet.market import parse_market_spec, parse_step

            path = parse_market_spec(args.market, args.days, parse_step(args.step))
        manifest = manager.up(state_dir, progress=progress_unless(args.json))
        if path is not None:
            pid = manager.start_market(state_dir, args.market, args.days, args.step, args.speed)
            progress_unless(args.json)(f"market on {path.source} detached (pid {pid})")
            manifest = manager.read_manifest(state_dir) or manifest
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
    market = manager.market_status(state_dir)
    if args.json:
        emit_json({"dir": str(state_dir), "worlds": rows, "market": market})
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
    if market is not None:
        running = f"running (pid {market['pid']})" if market.get("running") else "not running"
        print(
            f"\nsimulated market: {market.get('now')} after {market.get('steps', 0)} step(s) "
            f"of {market.get('step') or '?'} on {market.get('path') or '?'}; {running}"
        )
    print(f"\nmanifest: {state_dir / 'manifest.json'}")
    return 0 if all(r["answering"] for r in rows) else 4


def _market(args: argparse.Namespace, state_dir: Path) -> int:
    """Run the moving market in the foreground: progress on stderr, summary with --json."""
    from rebalancer.localnet.market import (
        choose_path,
        final_line,
        last_prices,
        parse_step,
        run_foreground,
    )

    path = choose_path(
        args.prices, args.seed, args.days, parse_step(args.step), last_prices(state_dir)
    )
    if args.speed is not None and not args.speed > 0:
        from rebalancer.core.errors import ConfigError

        raise ConfigError(f"--speed {args.speed}: must be a positive number")
    code, summary = run_foreground(
        state_dir, path, speed=args.speed, progress=progress_unless(args.json)
    )
    import sys

    line = final_line(summary)
    if code != 0:
        print(line, file=sys.stderr)
    if args.json:
        emit_json(summary)
    elif code == 0:
        print(line)
    return code


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
