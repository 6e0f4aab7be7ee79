"""Finding anvil: $REBALANCER_ANVIL, the checkout's pinned npm copy, PATH, or one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rebalancer.chains import anvil
from rebalancer.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_pinned_version_matches_package_json() -> None:
    deps = json.loads((ROOT / "package.json").read_text())["dependencies"]
    assert deps[anvil.ANVIL_NPM] == anvil.ANVIL_VERSION


def test_checkout_copy_then_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("REBALANCER_ANVIL", raising=False)
    assert anvil.find_anvil() == str(ROOT / "node_modules" / anvil.ANVIL_NPM / "bin" / "anvil")
    # Installed (no checkout): PATH decides.
    monkeypatch.setattr(anvil, "checkout_root", lambda: None)
    fake = tmp_path / "anvil"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert anvil.find_anvil() == str(fake)


def test_not_found_names_the_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("REBALANCER_ANVIL", raising=False)
    monkeypatch.setattr(anvil, "checkout_root", lambda: None)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError) as err:
        anvil.find_anvil()
    assert f"npm install {anvil.ANVIL_NPM}@{anvil.ANVIL_VERSION}" in err.value.message
    assert "\n" not in err.value.message


def test_explicit_must_be_executable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("REBALANCER_ANVIL", str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="REBALANCER_ANVIL"):
        anvil.find_anvil()
