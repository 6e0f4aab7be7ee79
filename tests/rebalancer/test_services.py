"""Services: parts handed in are used as they are; the aggregator of a chain is configuration."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from rebalancer.config import load_config
from rebalancer.core.errors import ConfigError
from rebalancer.services import Services, injected

CONFIG = """
[chains.ethereum]
rpc = "http://127.0.0.1:1"
{extra}
[chains.solana]
rpc = "http://127.0.0.1:2"

[[wallets]]
name = "w"
address = "0x38933fB3600db971A459767D149B492e58e40b76"
chains = ["ethereum"]

[strategy]
targets = {{ ETH = 100 }}
"""


def _services(tmp_path: Path, extra: str = "", **parts: Any) -> Services:
    path = tmp_path / "c.toml"
    path.write_text(CONFIG.format(extra=extra))
    config, registry = load_config(path)
    return Services(config, registry, httpx.AsyncClient(), **parts)


def test_the_aggregator_of_a_chain_is_configuration(tmp_path: Path) -> None:
    s = _services(tmp_path)
    assert s.aggregator_name("ethereum") == "1inch" and s.aggregator_name("solana") == "jupiter"
    s = _services(tmp_path, 'aggregator = "jupiter"')
    assert s.aggregator_name("ethereum") == "jupiter"
    s = _services(tmp_path, 'aggregator = "nope"')
    with pytest.raises(ConfigError, match=r"aggregators\.nope"):
        s.aggregator("ethereum")


def test_parts_handed_in_are_used_and_wrap_sees_what_services_builds(tmp_path: Path) -> None:
    fake_adapter, fake_agg, fake_signer = object(), object(), object()
    s = _services(
        tmp_path,
        adapters={"ethereum": fake_adapter},  # type: ignore[dict-item]
        aggregators={"1inch": fake_agg},  # type: ignore[dict-item]
        signers={("ethereum", "0x38933fb3600db971a459767d149b492e58e40b76"): fake_signer},  # type: ignore[dict-item]
    )
    assert s.adapter("ethereum") is fake_adapter
    assert s.aggregator("ethereum") is fake_agg
    wallet = "0x38933fB3600db971A459767D149B492e58e40b76"
    assert asyncio.run(s.signer("ethereum", wallet)) is fake_signer
    seen: list[Any] = []
    with injected(wrap=lambda part: seen.append(part) or part, confirm_timeout_s=1.5):
        s = _services(tmp_path)
        built = s.adapter("solana")
    assert seen == [built] and s.confirm_timeout_s == 1.5


def test_aggregator_api_versions_default_current_and_stay_selectable(tmp_path: Path) -> None:
    from rebalancer.services import api_url

    s = _services(tmp_path)
    assert s.aggregator("ethereum").base_url == "https://api.1inch.com/swap/v6.1"  # type: ignore[attr-defined]
    assert api_url("1inch", "https://api.1inch.com/swap/v6.1", "v6.0") == (
        "https://api.1inch.com/swap/v6.0",
        "v6.0",
    )
    assert api_url("1inch", "http://127.0.0.1:9/", "v6.1")[0] == "http://127.0.0.1:9/swap/v6.1"
    assert api_url("1inch", "https://x/swap/v6.0", None) == ("https://x/swap/v6.0", "v6.0")
    with pytest.raises(ConfigError, match=r"aggregators\.1inch\.api: 'v5\.2'"):
        api_url("1inch", "https://x/swap/v6.1", "v5.2")


def test_send_rpc_is_resolved_like_rpc_and_named_when_missing(tmp_path: Path) -> None:
    s = _services(tmp_path, 'send_rpc = "https://rpc.example/KEY123"')
    assert s.send_urls == {"ethereum": "https://rpc.example/KEY123"}
    adapter = s.adapter("ethereum")
    assert adapter.sent_via.startswith("https://rpc.example") and "KEY123" not in adapter.sent_via
    assert s.adapter("solana").sent_via == "http://127.0.0.1:2"
    with pytest.raises(ConfigError, match=r"chains\.ethereum\.send_rpc = 'env:NOPE'"):
        _services(tmp_path, 'send_rpc = "env:NOPE"')
    with pytest.raises(ConfigError, match="send_rpc"):
        _services(tmp_path, 'send_rpc = "wss://x"')
