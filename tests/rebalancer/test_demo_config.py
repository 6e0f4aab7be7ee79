"""`rebalancer demo` without -c: the shipped config, run from a private copy in the data folder."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from rebalancer.commands.demo import packaged_config
from rebalancer.config import load_config
from rebalancer.core.errors import ConfigError
from rebalancer.core.resources import checkout_root, fixture_path, package_path

ROOT = Path(__file__).resolve().parents[2]


def test_package_data_is_the_checkout_in_a_checkout() -> None:
    assert checkout_root() == ROOT
    assert fixture_path("evm").resolve() == ROOT / "fixtures" / "evm"
    assert (package_path("examples", "local.toml")).read_bytes() == (
        ROOT / "examples" / "local.toml"
    ).read_bytes()


def test_packaged_config_copy_is_private_and_self_contained(tmp_path: Path) -> None:
    stale = tmp_path / "demo" / "keys" / "demo-evm.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("old")
    stale.chmod(0o644)
    path = packaged_config(tmp_path)
    assert path == tmp_path / "demo" / "local.toml"
    config, _registry = load_config(path)
    assert config.journal == str(tmp_path / "demo" / ".demo-journal.sqlite")
    files = [w.signer.file for w in config.wallets if w.signer is not None]
    assert len(files) == 2
    for f in files:
        assert f is not None
        key = Path(f)
        assert key.parent == tmp_path / "demo" / "keys"
        assert key.read_bytes() == (ROOT / "examples" / "keys" / key.name).read_bytes()
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "demo").stat().st_mode) == 0o700


def test_unwritable_data_folder_is_one_config_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="cannot prepare the demo folder") as err:
        packaged_config(blocker)
    assert err.value.exit_code == 2
