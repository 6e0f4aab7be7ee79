"""``rebalancer dashboard``: a read-only local web page over the journal and a live read.

Serves on 127.0.0.1:8787 by default. Anything but a loopback ``--host`` is an explicit choice
and prints a warning: the page shows holdings, addresses and trades to whoever can reach it
(never a secret: no key, passphrase, API key or RPC URL reaches the page). The process never
builds a signer, so it cannot sign or send. How the page is made: ``rebalancer.dashboard``.
"""

from __future__ import annotations

import argparse
import ipaddress
import signal
import sys
import threading
from typing import Any

from rebalancer.commands import config_arg
from rebalancer.core.errors import ConfigError
from rebalancer.output import warn

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def add_arguments(p: argparse.ArgumentParser) -> None:
    config_arg(p)
    p.add_argument(
        "--port", type=int, default=8787, metavar="PORT", help="port (default 8787; 0: any free)"
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        metavar="ADDR",
        help="address to listen on (default 127.0.0.1; anything else is reachable from other "
        "machines and prints a warning)",
    )
    p.add_argument(
        "--refresh",
        default="60s",
        metavar="EVERY",
        help="how often to read balances and prices again (default 60s; each read is one "
        "batch per chain, plus the price check's quotes when the config asks for it; the "
        "journal is watched continuously)",
    )


def check_host(host: str) -> bool:
    """Whether ``host`` is loopback; an address that is neither an IP nor localhost is exit 2."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        raise ConfigError(
            f"--host {host!r}: give an IP address to listen on (127.0.0.1, ::1, 0.0.0.0, or "
            "one of this machine's addresses) or localhost"
        ) from None


def exposure_warning(host: str, port: int) -> str:
    return (
        f"--host {host}: the dashboard is reachable from other machines on port {port}; anyone "
        "who can reach it sees your holdings, addresses and trades (it is read-only and shows "
        "no secrets). Use --host 127.0.0.1 unless you mean this."
    )


def run(args: argparse.Namespace) -> int:
    from rebalancer.commands.watch import parse_interval
    from rebalancer.dashboard.data import Dashboard
    from rebalancer.dashboard.page import draw
    from rebalancer.dashboard.server import DashboardServer

    host = args.host.strip("[]")
    loopback = check_host(args.host)
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port}: must be 0-65535")
    refresh = parse_interval(args.refresh)
    if refresh < 1:
        raise ConfigError(f"--refresh {args.refresh!r}: at least 1s")
    dashboard = Dashboard(args.config, refresh, draw=draw)
    try:
        server = DashboardServer(host, args.port, dashboard, LOOPBACK_NAMES if loopback else None)
    except OSError as exc:
        raise ConfigError(
            f"--host {args.host} --port {args.port}: cannot listen: {exc.strerror or exc}"
        ) from None
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{'127.0.0.1' if host in ('localhost', '127.0.0.1') else shown}:{server.port}/"
    if not loopback:
        warn(exposure_warning(args.host, server.port))
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    thread = threading.Thread(target=server.serve_forever, name="dashboard-http", daemon=True)
    try:
        dashboard.start()
        thread.start()
        if args.json:
            print(f'{{"url": "{url}"}}', flush=True)
        else:
            print(f"dashboard: {url}  (read-only; Ctrl-C stops it)", flush=True)
        stop.wait()
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        server.stop()
    print("dashboard stopped", file=sys.stderr)
    return 0
