from __future__ import annotations

import pytest

from rebalancer.chains.registry import Registry
from rebalancer.core.errors import ConfigError


def test_every_asset_has_one_class_and_tokens_map_to_assets() -> None:
    reg = Registry.load()
    assert reg.class_of("BTC") == "BTC"
    assert reg.class_of("SOL") == "ALTS"
    btc = {t.symbol for t in reg.tokens if t.asset == "BTC"}
    assert {"WBTC", "cbBTC", "BTC.b", "WBTC.e"} <= btc
    for token in reg.tokens:
        assert reg.class_of(token.asset) is not None, token
        assert len(token.id.split("/")) == 2


def test_real_addresses_and_decimals() -> None:
    reg = Registry.load()
    usdc = reg.by_symbol("ethereum", "USDC")
    assert usdc is not None and usdc.decimals == 6
    assert usdc.id == "eip155:1/erc20:0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
    assert reg.by_address("ethereum", usdc.address.lower()) is usdc  # type: ignore[union-attr]
    assert reg.native("avalanche").id == "eip155:43114/slip44:9000"
    sol_usdc = reg.by_address("solana", "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v")
    assert sol_usdc is not None and sol_usdc.asset == "USDC"


def test_shipped_tokens_name_two_sources() -> None:
    import tomllib
    from importlib import resources

    data = tomllib.loads(
        resources.files("rebalancer.chains").joinpath("data/tokens.toml").read_text()
    )
    for spec in data["tokens"]:
        assert len(spec["sources"]) >= 2, spec["symbol"]


def test_user_token_with_new_asset_needs_a_class() -> None:
    spec = {
        "chain": "ethereum",
        "symbol": "PEPE",
        "asset": "PEPE",
        "address": "0x6982508145454Ce325dDbE47a25d4ec3d2311933",
        "decimals": 18,
    }
    with pytest.raises(ConfigError, match=r"tokens\[0\].asset = 'PEPE': unknown asset"):
        Registry.load([spec])
    reg = Registry.load([{**spec, "class": "ALTS"}])
    assert reg.class_of("PEPE") == "ALTS"
    assert reg.by_symbol("ethereum", "pepe") is not None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"chain": "bitcoin"}, "unknown chain"),
        ({"address": "0x1234"}, "not an EVM address"),
        (
            {"address": "0x6982508145454ce325ddbe47a25d4ec3d2311933".replace("ce3", "CE3")},
            "wrong EIP-55 checksum",
        ),
        ({"decimals": 77}, "decimals = 77"),
        ({"address": "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"}, "already registered"),
        ({"color": "red"}, "unknown field 'color'"),
    ],
)
def test_bad_user_tokens_name_the_field(change: dict[str, object], message: str) -> None:
    spec = {
        "chain": "ethereum",
        "symbol": "PEPE",
        "asset": "PEPE",
        "class": "ALTS",
        "address": "0x6982508145454Ce325dDbE47a25d4ec3d2311933",
        "decimals": 18,
        **change,
    }
    with pytest.raises(ConfigError, match=message):
        Registry.load([spec])


def test_solana_addresses_are_checked() -> None:
    base = {"chain": "solana", "symbol": "X", "asset": "X", "class": "ALTS", "decimals": 6}
    with pytest.raises(ConfigError, match="not a Solana address"):
        Registry.load([{**base, "address": "0OIl" * 10}])
    with pytest.raises(ConfigError, match="decodes to"):
        Registry.load([{**base, "address": "1" * 40}])
