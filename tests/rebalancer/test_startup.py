"""A command imports only what it uses: what ``--help``, ``balances``, ``drift`` and ``plan``
leave in ``sys.modules`` after a whole run on the local worlds (timings: bench/startup.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

EXAMPLE = str(Path(__file__).parents[2] / "examples" / "local.toml")
HEAVY = ("web3", "eth_account", "scipy", "numpy", "solders", "eth_utils", "httpx", "pydantic")
# Other commands' modules: the parser adds only the running command's arguments.
OTHERS = tuple(
    f"rebalancer.commands.{m}" for m in ("backtest", "report", "keys", "external", "execution")
)

# Run one command in a fresh interpreter; print which of HEAVY it imported (stdout is the
# command's; the verdict goes to stderr's last line).
PROBE = """
import contextlib, io, json, sys
from rebalancer.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        code = main(sys.argv[2:])
    except SystemExit as exc:
        code = exc.code
heavy = json.loads(sys.argv[1])
print(json.dumps({"code": code, "loaded": [m for m in heavy if m in sys.modules]}), file=sys.stderr)
"""


def _loaded(*argv: str) -> tuple[int, set[str]]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(HEAVY + OTHERS), *argv],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    verdict = json.loads(out.stderr.strip().splitlines()[-1])
    return verdict["code"], set(verdict["loaded"])


def test_help_imports_no_sdk() -> None:
    code, loaded = _loaded("--help")
    assert code == 0
    assert loaded == set()


@pytest.mark.parametrize(
    ("command", "allowed"),
    [
        ("balances", {"httpx", "pydantic"}),
        # drift checks [prices] against the aggregators' quotes: the Jupiter side uses solders;
        # the planner's optimiser (HiGHS) is scipy.
        ("drift", {"httpx", "pydantic", "solders", "eth_utils", "scipy", "numpy"}),
        ("plan", {"httpx", "pydantic", "solders", "eth_utils", "scipy", "numpy"}),
    ],
)
def test_read_commands_import_no_signing_sdk(
    evm_worlds: dict[str, Any], command: str, allowed: set[str]
) -> None:
    code, loaded = _loaded(command, "-c", EXAMPLE, "--json")
    assert code == 0
    assert "web3" not in loaded and "eth_account" not in loaded
    assert loaded <= allowed, loaded - allowed
