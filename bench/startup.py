"""Start-up cost: whole-process CPU of `rebalancer balances` on the local worlds, against a bare
`python -c "import httpx, pydantic, solders"` measured in the same run (target: at most 3x).
`rebalancer --help` is measured the same way.

CPU is user + sys of each child process (RUSAGE_CHILDREN before and after), the median of
several runs after one warm-up run each. The target is for rebalancer as a user installs it:
the dev venv also holds the dev extras (selenium brings trio, which httpcore imports on first
use whenever it is installed, ~0.1 s), so ``balances`` runs once with the modules of every
distribution that rebalancer's runtime dependencies do not pull in made unimportable, and once
as the dev venv has it. Prints figures for a person, and as its last line one JSON object of
them. `.venv/bin/python bench/startup.py` starts and stops its own worlds.
"""

from __future__ import annotations

import json
import os
import re
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


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def dev_only_modules() -> list[str]:
    """Top-level import names of installed distributions that rebalancer's runtime
    dependencies (transitively, with the extras they ask for) do not pull in: pytest, selenium,
    trio, ... Markers other than extras are not evaluated: a doubt keeps a module visible."""
    from importlib import metadata

    wanted: dict[str, set[str]] = {}
    todo: list[tuple[str, set[str]]] = [("rebalancer", set())]
    while todo:
        name, extras = todo.pop()
        key = _norm(name)
        if key in wanted and extras <= wanted[key]:
            continue
        wanted.setdefault(key, set()).update(extras)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for req in requires:
            found = re.match(r"\s*([A-Za-z0-9._-]+)\s*(?:\[([^\]]*)\])?", req)
            if found is None:
                continue
            extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", req)
            if extra is not None and _norm(extra.group(1)) not in {_norm(e) for e in extras}:
                continue
            asked = {e.strip() for e in (found.group(2) or "").split(",") if e.strip()}
            todo.append((found.group(1), asked))
    hidden: set[str] = set()
    for dist in metadata.distributions():
        if _norm(dist.metadata["Name"]) in wanted:
            continue
        for f in dist.files or []:
            top = f.parts[0]
            if top in ("..", "__pycache__") or top.endswith((".dist-info", ".data", ".pth")):
                continue
            hidden.add(top.split(".")[0] if len(f.parts) == 1 else top)
    return sorted(hidden)


def cpu_of(argv: list[str], env: dict[str, str]) -> float:
    """User + sys CPU seconds of one child process run to completion."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    exe = str(Path(sys.executable).with_name("rebalancer"))
    config = str(ROOT / "examples" / "local.toml")
    # What the console script runs, with the dev-only modules unimportable (None in
    # sys.modules makes `import x` raise ImportError, as if x were not installed).
    as_installed = (
        "import sys\n"
        f"for name in {dev_only_modules()!r}:\n"
        "    sys.modules.setdefault(name, None)\n"
        "from rebalancer.cli import main\n"
        "sys.exit(main())\n"
    )
    commands = {
        "baseline": [sys.executable, "-c", "import httpx, pydantic, solders"],
        "help": [exe, "--help"],
        "balances": [sys.executable, "-c", as_installed, "balances", "-c", config],
        "balances_dev_venv": [exe, "balances", "-c", config],
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
        "balances_dev_venv_cpu_s": round(median["balances_dev_venv"], 3),
        "help_ratio": round(median["help"] / base, 2),
        "balances_ratio": round(median["balances"] / base, 2),
        "balances_dev_venv_ratio": round(median["balances_dev_venv"] / base, 2),
        "target_ratio": TARGET,
        "runs": RUNS,
    }
    print(f'python -c "import httpx, pydantic, solders": {base * 1000:.0f} ms CPU (baseline)')
    print(f"rebalancer --help: {median['help'] * 1000:.0f} ms CPU, {figures['help_ratio']}x")
    print(
        f"rebalancer balances on the local worlds: {median['balances'] * 1000:.0f} ms CPU, "
        f"{figures['balances_ratio']}x the baseline (target <= {TARGET:g}x)"
    )
    print(
        f"  the same in the dev venv (dev extras importable): "
        f"{median['balances_dev_venv'] * 1000:.0f} ms CPU, {figures['balances_dev_venv_ratio']}x"
    )
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
