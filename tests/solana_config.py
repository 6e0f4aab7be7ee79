"""One Solana-only config for the engine tests that trade SOL/USDC through the Jupiter stand-in
(one wallet, SOL 50 / STABLES 50, typed prices, the local maker allowed)."""

from __future__ import annotations

from pathlib import Path

from rebalancer.localnet.solana_fixtures import maker_keypair


def write_solana_config(
    tmp_path: Path,
    node: str,
    wallet: str,
    *,
    jupiter: str,
    name: str,
    chain: str = "",
    aggregator: str = "",
) -> Path:
    """``chain`` and ``aggregator``: extra lines for ``[chains.solana]`` and
    ``[aggregators.jupiter]``."""
    cfg = tmp_path / "rebalancer.toml"
    cfg.write_text(
        f"""
journal = "{tmp_path / "journal.sqlite"}"
[chains.solana]
rpc = "{node}"
{chain}
[aggregators.jupiter]
base_url = "{jupiter}"
api_key_env = "JUPITER_API_KEY"
{aggregator}
[[wallets]]
name = "{name}"
address = "{wallet}"
chains = ["solana"]
[strategy]
targets = {{ SOL = 50, STABLES = 50 }}
[prices]
SOL = 180
USDC = 1
USDT = 1
[policy]
max_slippage_bps = 100
max_price_deviation_pct = 3
rfq_makers = ["{maker_keypair().pubkey()}"]
"""
    )
    return cfg
