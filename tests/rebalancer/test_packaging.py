"""The wheel: one top-level name, the data the demo needs, and a demo that runs from anywhere.

The wheel is built from a clean copy of the checkout (no stale build/ folder can leak into it),
installed into a fresh venv outside the checkout, and ``rebalancer demo --stop --json`` runs
from an unrelated folder with anvil found on PATH. The venv borrows the running venv's
third-party packages through a .pth (pip does not process .pth files inside that folder, so the
checkout's editable install stays out); ``rebalancer`` itself comes from the new venv.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from rebalancer.chains.anvil import find_anvil
from rebalancer.localnet import manager

ROOT = Path(__file__).resolve().parents[2]
IGNORE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "node_modules",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    ".localnet",
    ".demo-journal.sqlite*",
)

pytestmark = pytest.mark.slow


def _run(
    argv: list[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, check=False, cwd=cwd, env=env, timeout=timeout
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT, src, symlinks=True, ignore=IGNORE)
    out = _run(
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-q", "-w", str(tmp)],
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    (found,) = tmp.glob("rebalancer-*.whl")
    return found


def test_wheel_has_one_top_level_name_and_the_demo_data(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"rebalancer"}
    for needed in (
        "rebalancer/py.typed",
        "rebalancer/chains/data/tokens.toml",
        "rebalancer/examples/local.toml",
        "rebalancer/examples/keys/demo-evm.json",
        "rebalancer/examples/keys/demo-solana.json",
        "rebalancer/examples/README-snapshot.md",
        "rebalancer/fixtures/evm/ethereum.state.json.gz",
        "rebalancer/fixtures/evm/avalanche.world.json",
        "rebalancer/fixtures/solana/demo.json",
        "rebalancer/fixtures/solana/amm.json",
        "rebalancer/fixtures/aggregators/1inch/swap.json",
        "rebalancer/localnet/contracts/Multicall3.runtime.hex",
    ):
        assert needed in names, needed
    for folder in ("core", "chains", "dex", "wallet", "planner", "localnet"):
        assert f"rebalancer/{folder}/__init__.py" in names


def test_installed_wheel_runs_the_demo_from_anywhere(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], timeout=120)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    site = Path(
        _run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]
        ).stdout.strip()
    )
    (site / "borrowed-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    installed = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr[-2000:]

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "anvil").symlink_to(find_anvil())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"REBALANCER_ANVIL", "PYTHONPATH", "VIRTUAL_ENV"}
        and not k.startswith(("REBALANCER_", "ONEINCH_", "JUPITER_"))
    }
    env |= {
        "PATH": f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": str(tmp_path / "home"),
        "REBALANCER_LOCALNET_DIR": str(tmp_path / "localnet"),
        "REBALANCER_DATA_DIR": str(tmp_path / "data"),
    }

    where = _run(
        [str(python), "-c", "import rebalancer; print(rebalancer.__file__)"], cwd=elsewhere, env=env
    )
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout + where.stderr

    try:
        demo = _run(
            [str(venv / "bin" / "rebalancer"), "demo", "--stop", "--json"],
            cwd=elsewhere,
            env=env,
            timeout=600,
        )
    finally:
        manager.down(tmp_path / "localnet")  # only if the demo died before --stop
    assert demo.returncode == 0, demo.stderr[-3000:]
    summary = json.loads(demo.stdout.strip().splitlines()[-1])
    assert set(summary) >= {"before_max_drift_pp", "after_max_drift_pp", "band_pp", "trades"}
    assert summary["trades"] and all(t["status"] == "confirmed" for t in summary["trades"])
    assert float(summary["after_max_drift_pp"]) <= float(summary["band_pp"])
    assert list(elsewhere.iterdir()) == []  # nothing written in the current folder
