"""``rebalancer watch``: check the triggers on a schedule and run when one fires.

Each check is one ``run`` (recover, plan from fresh balances: the planner's triggers decide
whether there is anything to do, then simulate or, with ``--execute``, execute). After each
check, what happened goes to the channels of ``[notify]`` (rebalancer.notify: the generic
webhook gets the JSON summary of checks that traded or failed; Telegram, Discord, Slack and ntfy
get one message per event). SIGINT and SIGTERM stop the loop between steps: a run in progress
finishes its current trades and records them first.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import threading
from datetime import UTC, datetime
from typing import Any

from rebalancer.core.errors import ConfigError, ExternalError, RefusedError
from rebalancer.output import progress, progress_unless, warn

_INTERVAL = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_interval(text: str) -> float:
    """``15m``, ``30s``, ``1h``, ``1d`` or plain seconds."""
    m = _INTERVAL.match(text.strip())
    if not m:
        raise ConfigError(f"--interval {text!r}: use a number with s, m, h or d (e.g. 15m)")
    return float(m.group(1)) * _UNIT[m.group(2)]


def run(args: argparse.Namespace) -> int:
    import os

    from rebalancer.commands.execution import run_once
    from rebalancer.config import load_config

    interval = parse_interval(args.interval)
    config, _ = load_config(args.config)
    from rebalancer import notify as notifications

    chans = notifications.channels(config.notify, os.environ)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        progress(f"{signal.Signals(signum).name}: stopping after the current step")
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    say = progress_unless(args.json)
    checks = 0
    code = 0
    try:
        while not stop.is_set():
            checks += 1
            started = datetime.now(UTC)
            say(f"check {checks} at {started.isoformat(timespec='seconds')}")
            try:
                report, plan = run_once(args, say, execute_trades=args.execute, yes=args.yes)
                doc = plan.as_json()
                code = report.exit_code or code
                summary = {
                    "check": checks,
                    # NOTE: the plan's time is the check's on the tool's clock (the chains' on
                    # simulated worlds: rebalancer.clock)
                    "at": doc.get("created_at") or started.isoformat(),
                    "triggered": doc.get("triggered"),
                    "before_max_drift_pp": doc.get("before_max_drift_pp"),
                    "after_max_drift_pp": doc.get("after_max_drift_pp"),
                    **report.as_dict(),
                }
            except (ExternalError, RefusedError) as exc:
                # NOTE: a node or API outage, or a refusal, ends this check, not the watch.
                code = exc.exit_code
                summary = {
                    "check": checks,
                    "at": started.isoformat(),
                    "error": exc.message,
                    "exit_code": exc.exit_code,
                }
                warn(exc.message)
            if args.json:
                print(json.dumps(summary, default=str), flush=True)
            elif "trades" in summary:
                n = len(summary["trades"])
                say(f"check {checks}: {n} trade(s), {summary.get('status')}")
            notifications.send(chans, summary, warn)
            if args.count and checks >= args.count:
                break
            stop.wait(interval)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    say(f"watch stopped after {checks} check(s)")
    return code
