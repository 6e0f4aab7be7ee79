"""The ``rebalancer`` command line: argument parsing, exit codes, nothing heavy at import.

Each command lives in ``rebalancer/commands/<name>.py`` with ``run(args) -> int`` and is
imported only when it runs, so ``rebalancer --help`` stays fast. Errors from the one tree in
``core.errors`` become one line on stderr and their exit code (see ../shared/CLI.md).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib import import_module

from rebalancer.commands import config_arg

REPORT_URL = "https://github.com/rebalancer/rebalancer/issues"

# command name -> (module under rebalancer.commands, one-line help, argument adder)
Adder = Callable[[argparse.ArgumentParser], None]


def _json_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")


def _add_balances(p: argparse.ArgumentParser) -> None:
    config_arg(p)


def _add_localnet(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "action",
        choices=["up", "status", "down", "snapshot", "market"],
        help="start, show or stop the worlds; snapshot: capture Solana accounts from any RPC "
        "into a file the local node loads (--rpc URL --out FILE PUBKEY...); market: move the "
        "worlds along a price path (clocks, oracles, pools, the Jupiter maker) in the foreground",
    )
    p.add_argument("accounts", nargs="*", metavar="PUBKEY", help="snapshot: accounts to capture")
    p.add_argument("--rpc", metavar="URL", help="snapshot: the RPC to read from")
    p.add_argument("--out", metavar="FILE", help="snapshot: the file to write")
    p.add_argument(
        "--dir",
        default=None,
        metavar="DIR",
        help="where the manifest, states and logs live (default: $REBALANCER_LOCALNET_DIR "
        "or ~/.local/state/rebalancer/localnet)",
    )
    p.add_argument(
        "--prices", metavar="CSV", help="market: the price path, in backtest --prices' format"
    )
    p.add_argument(
        "--seed", type=int, default=None, help="market: a seeded random walk instead of a CSV"
    )
    p.add_argument(
        "--days",
        type=float,
        default=None,
        help="market: simulated days (default: 120; a CSV: all of it)",
    )
    p.add_argument(
        "--step", default="6h", help="market: simulated time per step (default 6h; e.g. 1d, 30m)"
    )
    p.add_argument(
        "--speed",
        type=float,
        default=None,
        metavar="X",
        help="market: X simulated seconds per wall second (default: as fast as the worlds go)",
    )
    p.add_argument(
        "--market",
        metavar="PATH",
        default=None,
        help="up: also run the market detached on PATH (a CSV, `story` or `seed:N`); "
        "`localnet down` stops it",
    )


def _add_keys(p: argparse.ArgumentParser) -> None:
    from rebalancer.commands.keys import add_arguments

    add_arguments(p)


def _add_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-c",
        "--config",
        default=None,
        metavar="FILE",
        help="config for the local worlds (default: the demo config shipped in the package, "
        "examples/local.toml, run from a copy in the data folder)",
    )
    p.add_argument("--stop", action="store_true", help="stop the local worlds at the end")
    p.add_argument(
        "--days",
        type=int,
        default=None,
        metavar="N",
        help="the living demo: N simulated days of a moving market with watch checking, then "
        "the report and the backtest of the same path (default config: examples/living.toml)",
    )
    path = p.add_mutually_exclusive_group()
    path.add_argument(
        "--prices",
        default=None,
        metavar="CSV",
        help="with --days: the price path to replay (the format backtest --prices reads); "
        "default: the market's story (a rally, a sharp drop, a quiet stretch)",
    )
    path.add_argument(
        "--seed",
        type=int,
        default=None,
        metavar="S",
        help="with --days: a seeded random walk instead of the story",
    )
    p.add_argument(
        "--check-every",
        default="6h",
        metavar="INTERVAL",
        help="with --days: simulated time between two watch checks (default 6h)",
    )


def _add_drift(p: argparse.ArgumentParser) -> None:
    config_arg(p)
    p.add_argument(
        "--snapshot",
        metavar="FILE",
        help="holdings and prices from a JSON file "
        "(offline; format: examples/README-snapshot.md) instead of the chains",
    )


def _add_plan(p: argparse.ArgumentParser) -> None:
    _add_drift(p)
    p.add_argument("-o", "--output", metavar="PLAN", help="also write the plan to this file")
    p.add_argument("--lots", metavar="CSV", help="tax lots (date,asset,amount,cost_basis_usd)")
    p.add_argument("--force", action="store_true", help="plan even when no trigger fires")


def _add_harvest(p: argparse.ArgumentParser) -> None:
    _add_drift(p)
    p.add_argument("--lots", metavar="CSV", help="tax lots (date,asset,amount,cost_basis_usd)")


def _add_simulate(p: argparse.ArgumentParser) -> None:
    config_arg(p)
    p.add_argument("plan", metavar="PLAN", help="a plan file written by `rebalancer plan -o`")


def _add_apply(p: argparse.ArgumentParser) -> None:
    _add_simulate(p)
    p.add_argument("--yes", action="store_true", help="do not ask before signing")


def _add_run(p: argparse.ArgumentParser) -> None:
    config_arg(p)
    p.add_argument("--execute", action="store_true", help="sign and send (default: dry run)")
    p.add_argument("--yes", action="store_true", help="do not ask before signing")
    p.add_argument("--force", action="store_true", help="plan even when no trigger fires")
    p.set_defaults(snapshot=None)


def _add_watch(p: argparse.ArgumentParser) -> None:
    _add_run(p)
    p.add_argument(
        "--interval", default="15m", metavar="EVERY", help="how often to check (15m, 1h, 30s)"
    )
    p.add_argument("--count", type=int, default=0, metavar="N", help="stop after N checks")


def _add_history(p: argparse.ArgumentParser) -> None:
    config_arg(p)
    p.add_argument("--limit", type=int, default=20, metavar="N", help="the last N runs")


def _add_report(p: argparse.ArgumentParser) -> None:
    from rebalancer.commands.report import add_arguments

    add_arguments(p)


def _add_backtest(p: argparse.ArgumentParser) -> None:
    from rebalancer.commands.backtest import add_arguments

    add_arguments(p)


def _add_dashboard(p: argparse.ArgumentParser) -> None:
    from rebalancer.commands.dashboard import add_arguments

    add_arguments(p)


def _add_init(p: argparse.ArgumentParser) -> None:
    from rebalancer.commands.init import add_arguments

    add_arguments(p)


def _add_doctor(p: argparse.ArgumentParser) -> None:
    from rebalancer.commands.doctor import add_arguments

    add_arguments(p)


def _add_service(p: argparse.ArgumentParser) -> None:
    from rebalancer.commands.service import add_arguments

    add_arguments(p)


def _add_export(p: argparse.ArgumentParser) -> None:
    from rebalancer.commands.external import add_export_arguments

    config_arg(p)
    add_export_arguments(p)


def _add_submit(p: argparse.ArgumentParser) -> None:
    from rebalancer.commands.external import add_submit_arguments

    config_arg(p)
    add_submit_arguments(p)


def _add_lots(p: argparse.ArgumentParser) -> None:
    from rebalancer.commands.lots import add_lots_arguments

    config_arg(p)
    add_lots_arguments(p)


def _add_tax(p: argparse.ArgumentParser) -> None:
    from rebalancer.commands.lots import add_tax_arguments

    config_arg(p)
    add_tax_arguments(p)


COMMANDS: dict[str, tuple[str, str, Adder]] = {
    "init": (
        "init",
        "write a first commented config (asks, or takes flags); secrets stay in the environment",
        _add_init,
    ),
    "doctor": (
        "doctor",
        "check the config against the live nodes, APIs, signers and journal; signs nothing",
        _add_doctor,
    ),
    "balances": ("balances", "holdings of every configured wallet on every chain", _add_balances),
    "localnet": (
        "localnet",
        "start, show or stop the local worlds (anvil, Solana, APIs)",
        _add_localnet,
    ),
    "demo": ("demo", "the whole story on the local worlds, start to finish", _add_demo),
    "simulate": (
        "execution:simulate",
        "build and simulate every trade of a plan on forks; sign nothing",
        _add_simulate,
    ),
    "apply": (
        "execution:apply",
        "execute exactly that plan: simulate, check, sign, send, confirm, record",
        _add_apply,
    ),
    "run": (
        "execution:run",
        "plan and apply in one go; without --execute it stops after simulation",
        _add_run,
    ),
    "watch": (
        "watch",
        "check the triggers on a schedule and run when one fires",
        _add_watch,
    ),
    "service": (
        "service",
        "run watch as a service: install (systemd unit; launchd or cron where absent), "
        "status, uninstall",
        _add_service,
    ),
    "history": ("execution:history", "past runs and trades from the journal", _add_history),
    "export": (
        "external:export",
        "write a plan's unsigned transactions for signing elsewhere (--unsigned DIR)",
        _add_export,
    ),
    "submit": (
        "external:submit",
        "check the signed transactions of an export against it, then send them",
        _add_submit,
    ),
    "keys": (
        "keys",
        "manage local keys: new, import, list, show (addresses only); ledger: a Ledger's addresses",
        _add_keys,
    ),
    "drift": (
        "drift",
        "current vs target weights per class and asset, and which triggers fire",
        _add_drift,
    ),
    "plan": (
        "plan",
        "the cheapest trades that bring the portfolio back within its bands",
        _add_plan,
    ),
    "harvest": (
        "harvest",
        "tax-loss harvesting candidates, coordinated with the plan",
        _add_harvest,
    ),
    "lots": (
        "lots",
        "the tax lot book: imported lots plus every confirmed swap; lots import CSV",
        _add_lots,
    ),
    "tax": (
        "lots:tax",
        "realised gains: every disposal of a lot, short and long term, tax-form CSV",
        _add_tax,
    ),
    "report": (
        "report",
        "performance: P&L, returns, risk, costs and charts from the journal",
        _add_report,
    ),
    "backtest": (
        "backtest",
        "replay a price history under the configured rules and compare strategies",
        _add_backtest,
    ),
    "dashboard": (
        "dashboard",
        "a read-only local web page: holdings, allocation, drift, trades, returns, next run",
        _add_dashboard,
    ),
}


def _command_in(argv: Sequence[str]) -> str | None:
    """The command word of ``argv``: its first word that is not an option (the top-level
    options take no value)."""
    return next((word for word in argv if not word.startswith("-")), None)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser for ``argv``: every command with its one-line help, and the arguments of the
    command being run only (``None``: of every command).

    NOTE: some argument adders live in their command's module; adding only the chosen one keeps
    ``balances`` from importing ``backtest``, ``report`` and ``keys``.
    """
    from rebalancer import __version__

    parser = argparse.ArgumentParser(
        prog="rebalancer",
        description="Keep a self-custodied crypto portfolio on its target allocation across "
        "Ethereum, Avalanche and Solana.",
    )
    parser.add_argument("--version", action="version", version=f"rebalancer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = None if argv is None else _command_in(argv)
    for name, (_module, help_text, adder) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if argv is None or name == chosen:
            adder(p)
            _json_arg(p)
    return parser


def _scrub(text: str) -> str:
    from rebalancer.core.redact import scrub

    return scrub(text)


# Commands that sign or run for long: SIGTERM and SIGHUP stop them like SIGINT does, and with
# --json they print the run's document whatever the exit code.
RUN_COMMANDS = frozenset({"run", "apply", "simulate", "submit", "demo", "watch", "localnet"})


@contextmanager
def _signals_as_interrupt(received: list[int]) -> Iterator[None]:
    """SIGTERM (systemctl stop, docker stop, kill) and SIGHUP take SIGINT's path: the running
    step is cancelled at its next await (a signed transaction is already journalled, so the
    next run recovers it), the run is closed in the journal, and the exit code says which
    signal (143, 129; 130 for SIGINT)."""
    import signal

    def forward(signum: int, _frame: object) -> None:
        received.append(signum)
        signal.raise_signal(signal.SIGINT)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def _emit_run_document(args: argparse.Namespace, error: dict[str, object]) -> None:
    """With --json, a run command's document on stdout even when it ends in an error."""
    if not getattr(args, "json", False) or args.command not in RUN_COMMANDS:
        return
    from rebalancer.output import emit_json
    from rebalancer.runs import last_document

    doc = last_document()
    if doc is None:
        doc = {"run_id": None, "status": "error", "trades": []}
    emit_json({**doc, "error": doc.get("error") or error})


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    from rebalancer.core.errors import RebalancerError

    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    module_name, _, func = COMMANDS[args.command][0].partition(":")
    received: list[int] = []
    if args.command in RUN_COMMANDS:
        from rebalancer.runs import forget_documents

        forget_documents()
    try:
        module = import_module(f"rebalancer.commands.{module_name}")
        with _signals_as_interrupt(received):
            return int(getattr(module, func or "run")(args) or 0)
    except RebalancerError as exc:
        message = _scrub(exc.message)
        _emit_run_document(args, {"exit_code": exc.exit_code, "message": message})
        print(f"error: {message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        import signal

        signum = received[0] if received else int(signal.SIGINT)
        name = signal.Signals(signum).name
        _emit_run_document(args, {"exit_code": 128 + signum, "message": f"stopped by {name}"})
        print(
            f"stopped by {name}: the current step was abandoned and recorded in the journal "
            "(the next run recovers it)",
            file=sys.stderr,
        )
        return 128 + signum
    except Exception as exc:  # a bug: say where to report it, with no secret in the line
        if os.environ.get("REBALANCER_DEBUG"):
            raise
        print(
            f"internal error: {type(exc).__name__}: {_scrub(str(exc))} "
            f"(a bug; please report it at {REPORT_URL}; REBALANCER_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
