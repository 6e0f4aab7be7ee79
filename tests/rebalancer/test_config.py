"""Bad config gets one line naming the field and value, and exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from rebalancer.cli import main
from rebalancer.config import load_config
from rebalancer.core.errors import ConfigError
from rebalancer.endpoints import resolve_rpc

GOOD = """
[chains.ethereum]
rpc = "https://rpc.example"

[[wallets]]
name = "main"
address = "0x38933fB3600db971A459767D149B492e58e40b76"
chains = ["ethereum"]
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "rebalancer.toml"
    p.write_text(text)
    return p


def test_example_config_loads() -> None:
    config, registry = load_config(Path(__file__).parents[2] / "examples" / "local.toml")
    assert config.wallets[0].name == "demo"
    assert "ethereum" in config.chains and registry.class_of("BTC") == "BTC"


def test_lowercase_address_is_checksummed(tmp_path: Path) -> None:
    config, _ = load_config(write(tmp_path, GOOD.replace("0x38933fB3", "0x38933fb3").lower()))
    assert config.wallets[0].address == "0x38933fB3600db971A459767D149B492e58e40b76"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("[chains.ethereum]", "[chains.bitcoin]", "chains.bitcoin: unknown chain"),
        ('rpc = "https://rpc.example"', 'rpc = "ftp://x"', "chains.ethereum.rpc = 'ftp://x'"),
        ('rpc = "https://rpc.example"', "", "chains.ethereum.rpc: missing"),
        ("0x38933fB3600db971A459767D149B492e58e40b76", "0x1234", "not an EVM address"),
        (
            "0x38933fB3600db971A459767D149B492e58e40b76",
            "0x38933Fb3600db971A459767D149B492e58e40b76",
            "wrong EIP-55 checksum",
        ),
        ('chains = ["ethereum"]', 'chains = ["avalanche"]', "'avalanche' is not configured"),
        ('name = "main"', 'name = "main"\ncolour = "red"', "wallets[0].colour: unknown field"),
        (
            'rpc = "https://rpc.example"',
            'rpc = "https://rpc.example"\ntokens = ["DOGE"]',
            "unknown token 'DOGE'",
        ),
    ],
)
def test_bad_config_names_field(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in GOOD
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, GOOD.replace(old, new)))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_duplicate_wallet(tmp_path: Path) -> None:
    text = GOOD + GOOD[GOOD.index("[[wallets]]") :].replace('"main"', '"other"')
    with pytest.raises(ConfigError, match="duplicate wallet"):
        load_config(write(tmp_path, text))


def test_targets_must_sum_to_100(tmp_path: Path) -> None:
    text = GOOD + "\n[strategy]\ntargets = { BTC = 50, ETH = 30 }\n"
    with pytest.raises(ConfigError, match=r"strategy\.targets"):
        load_config(write(tmp_path, text))


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[[[["))
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")


def test_rpc_specs() -> None:
    assert resolve_rpc("ethereum", "env:MY_RPC", {"MY_RPC": "https://x/KEY"}) == "https://x/KEY"
    with pytest.raises(ConfigError, match="MY_RPC is not set"):
        resolve_rpc("ethereum", "env:MY_RPC", {})
    with pytest.raises(ConfigError) as err:
        resolve_rpc("ethereum", "env:MY_RPC", {"MY_RPC": "wss://SECRET"})
    assert "SECRET" not in str(err.value)
    with pytest.raises(ConfigError, match="localnet up"):
        resolve_rpc("ethereum", "localnet:ethereum", {}, Path("/nonexistent"))


def test_cli_bad_config_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, GOOD.replace("0x38933fB3600db971A459767D149B492e58e40b76", "0xzz"))
    assert main(["balances", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: config rebalancer.toml: wallets[0]")
    assert "Traceback" not in err
