"""Start-up cost: whole-process CPU of `rebalancer balances` on the local worlds, against a bare
`python -c "import httpx, pydantic, solders"` measured in the same run (target: at most 3x).
`rebalancer --help` is measured the same way.

CPU is user + sys of each child process (RUSAGE_CHILDREN before and after), the median of
several runs after one warm-up run each. Prints figures for a person, and as its last line one
JSON object of them. `.venv/bin/python bench/startup.py` starts and stops its own worlds.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rebalancer.localnet import manager

ROOT = Path(__file__).resolve().parent.parent
RUNS = 7
TARGET = 3.0


def cpu_of(argv: list[str], env: dict[str, str]) -> float:
    """User + sys CPU seconds of one child process run to completion."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    exe = str(Path(sys.executable).with_name("rebalancer"))
    commands = {
        "baseline": [sys.executable, "-c", "import httpx, pydantic, solders"],
        "help": [exe, "--help"],
        "balances": [exe, "balances", "-c", str(ROOT / "examples" / "local.toml")],
    }
    with tempfile.TemporaryDirectory() as tmp:
        worlds = Path(tmp) / "worlds"
        env = {
            k: v
            for k, v in os.environ.items()
            # NOTE: an installed package has its bytecode compiled by pip; without the cache
            # every run would also compile ~100 of our modules, which no user pays twice.
            if k != "PYTHONDONTWRITEBYTECODE"
        }
        env |= {"REBALANCER_LOCALNET_DIR": str(worlds), "REBALANCER_DATA_DIR": str(tmp)}
        os.environ["REBALANCER_LOCALNET_DIR"] = str(worlds)
        manager.up(worlds)
        try:
            for argv in commands.values():
                cpu_of(argv, env)  # warm-up: bytecode caches, page cache
            samples: dict[str, list[float]] = {name: [] for name in commands}
            for _ in range(RUNS):
                for name, argv in commands.items():
                    samples[name].append(cpu_of(argv, env))
        finally:
            manager.down(worlds)
    median = {name: statistics.median(s) for name, s in samples.items()}
    base = median["baseline"]
    figures = {
        "baseline_import_cpu_s": round(base, 3),
        "help_cpu_s": round(median["help"], 3),
        "balances_cpu_s": round(median["balances"], 3),
        "help_ratio": round(median["help"] / base, 2),
        "balances_ratio": round(median["balances"] / base, 2),
        "target_ratio": TARGET,
        "runs": RUNS,
    }
    print(f'python -c "import httpx, pydantic, solders": {base * 1000:.0f} ms CPU (baseline)')
    print(f"rebalancer --help: {median['help'] * 1000:.0f} ms CPU, {figures['help_ratio']}x")
    print(
        f"rebalancer balances on the local worlds: {median['balances'] * 1000:.0f} ms CPU, "
        f"{figures['balances_ratio']}x the baseline (target <= {TARGET:g}x)"
    )
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
