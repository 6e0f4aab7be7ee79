"""``rebalancer init`` scripted with flags: a config that validates, no secret in it, no
overwrite without --force."""

from __future__ import annotations

from pathlib import Path

import pytest

from rebalancer.cli import main
from rebalancer.config import load_config

KEYS = Path(__file__).parents[2] / "examples" / "keys"
EVM = "0x38933fB3600db971A459767D149B492e58e40b76"
SOL = "6mEAPbHcy66wK4T2iyhJnZhaZuY4mjqa3P8rBZSU18td"

LOCAL = [
    "--rpc", "ethereum=localnet:ethereum",
    "--rpc", "avalanche=localnet:avalanche",
    "--rpc", "solana=localnet:solana",
    "--aggregator-url", "1inch=localnet:1inch",
    "--aggregator-url", "jupiter=localnet:jupiter",
]  # fmt: skip


def init(tmp_path: Path, *flags: str) -> int:
    return main(["init", "-c", str(tmp_path / "rebalancer.toml"), "--no-input", *flags])


def test_flags_write_a_config_that_validates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = ["--evm-keyfile", str(KEYS / "demo-evm.json"), "--evm-passphrase-env", "DEMO_PASS"]
    assert init(tmp_path, *flags, "--solana-address", SOL, *LOCAL) == 0
    out = capsys.readouterr().out
    assert "DEMO_PASS" in out and "ONEINCH_API_KEY" in out and "rebalancer doctor" in out
    config, _ = load_config(tmp_path / "rebalancer.toml")
    assert [w.address for w in config.wallets] == [EVM, SOL]
    assert config.wallets[0].signer is not None and config.wallets[1].signer is None
    assert config.strategy.band_pp == 5 and set(config.strategy.targets) == {
        "BTC",
        "ETH",
        "ALTS",
        "STABLES",
    }
    assert "#" in (tmp_path / "rebalancer.toml").read_text()  # commented


def test_defaults_are_env_placeholders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert init(tmp_path, "--evm-address", EVM, "--chains", "ethereum") == 0
    config, _ = load_config(tmp_path / "rebalancer.toml")
    assert config.chains["ethereum"].rpc == "env:ETHEREUM_RPC_URL"
    assert "ETHEREUM_RPC_URL" in capsys.readouterr().out


def test_refuses_overwrite_and_a_secret_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert init(tmp_path, "--evm-address", EVM) == 0
    before = (tmp_path / "rebalancer.toml").read_text()
    assert init(tmp_path, "--evm-address", EVM, "--targets", "BTC=100") == 2
    assert "--force" in capsys.readouterr().err
    assert (tmp_path / "rebalancer.toml").read_text() == before
    url = "https://mainnet.example/v3/TOPSECRET"
    assert init(tmp_path, "--force", "--evm-address", EVM, "--rpc", f"ethereum={url}") == 2
    err = capsys.readouterr().err
    assert "env:VAR" in err and "TOPSECRET" not in err
    assert (tmp_path / "rebalancer.toml").read_text() == before
    # invalid answers (targets not summing to 100) write nothing
    assert init(tmp_path, "--force", "--evm-address", EVM, "--targets", "BTC=50") == 2
    assert (tmp_path / "rebalancer.toml").read_text() == before
    assert list(tmp_path.iterdir()) == [tmp_path / "rebalancer.toml"]


def test_ledger_needs_its_address(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert init(tmp_path, "--evm-ledger", "m/44'/60'/0'/0/0") == 2
    assert "--evm-address" in capsys.readouterr().err
    assert init(tmp_path, "--evm-ledger", "m/44'/60'/0'/0/0", "--evm-address", EVM) == 0
    config, _ = load_config(tmp_path / "rebalancer.toml")
    signer = config.wallets[0].signer
    assert signer is not None and signer.kind == "ledger" and signer.path == "m/44'/60'/0'/0/0"
