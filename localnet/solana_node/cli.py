"""``python -m rebalancer.localnet.solana_node``: load snapshots, serve, stop on a signal."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rebalancer.localnet.solana_node.http import serve
from rebalancer.localnet.solana_node.node import MAINNET_GENESIS_HASH, SolanaNode, load_accounts


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m rebalancer.localnet.solana_node --port 0 --snapshot FILE``."""
    parser = argparse.ArgumentParser(
        prog="python -m rebalancer.localnet.solana_node",
        description="A local Solana JSON-RPC node over LiteSVM, on 127.0.0.1.",
    )
    parser.add_argument("--port", type=int, default=8899, help="0 picks a free port")
    parser.add_argument(
        "--snapshot",
        action="append",
        default=[],
        metavar="FILE",
        help="account snapshot to load (repeatable; later files win)",
    )
    parser.add_argument("--slot-ms", type=int, default=400, help="wall milliseconds per slot")
    parser.add_argument(
        "--start-slot", type=int, default=None, help="first slot (default: the snapshots' slot)"
    )
    parser.add_argument(
        "--genesis-hash",
        default=MAINNET_GENESIS_HASH,
        help="what getGenesisHash answers (default: mainnet's)",
    )
    parser.add_argument("--quiet", action="store_true", help="do not log requests")
    args = parser.parse_args(argv)
    from rebalancer.core.errors import ConfigError

    try:
        accounts, snap_slot = load_accounts(args.snapshot)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    start_slot = args.start_slot if args.start_slot is not None else snap_slot
    node = SolanaNode(
        accounts, slot_ms=args.slot_ms, start_slot=start_slot, genesis_hash=args.genesis_hash
    )

    def ready(port: int) -> None:
        print(f"Listening on 127.0.0.1:{port}", flush=True)
        print(
            f"solana node: {len(accounts)} accounts, slot {node.slot}, {args.slot_ms} ms/slot",
            file=sys.stderr,
            flush=True,
        )

    try:
        serve(node.rpc, args.port, quiet=args.quiet, ready=ready)
    except OSError as exc:
        print(f"error: cannot listen on 127.0.0.1:{args.port}: {exc.strerror}", file=sys.stderr)
        return 4
    return 0
