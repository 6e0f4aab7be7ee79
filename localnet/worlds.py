"""What the local EVM worlds hold: tokens at their real addresses, pools, prices, demo wallets.

Prices are a fixed snapshot so every build is identical; pool depths are chosen so that a
$10k trade moves the price about as much as it does on mainnet's main pools (0.03% on
WETH/USDC, ~1% on thin Avalanche pairs).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from eth_account import Account
from eth_utils import keccak

# USD per whole token of each asset, the snapshot every pool is seeded at.
PRICES: dict[str, Decimal] = {
    "ETH": Decimal(3200),
    "BTC": Decimal(95000),
    "AVAX": Decimal(25),
    "LINK": Decimal(15),
    "UNI": Decimal(8),
    "AAVE": Decimal(250),
    "USDC": Decimal(1),
    "USDT": Decimal(1),
    "SOL": Decimal(180),
    "JUP": Decimal("0.8"),
    "BONK": Decimal("0.00002"),
}

# ERC-20 names as the real contracts report them (symbol and decimals come from the registry).
TOKEN_NAMES: dict[str, str] = {
    "USDC": "USD Coin",
    "USDT": "Tether USD",
    "USDt": "TetherToken",
    "WBTC": "Wrapped BTC",
    "cbBTC": "Coinbase Wrapped BTC",
    "LINK": "ChainLink Token",
    "UNI": "Uniswap",
    "AAVE": "Aave Token",
    "BTC.b": "Bitcoin",
    "WBTC.e": "Wrapped BTC",
    "WETH.e": "Wrapped Ether",
    "LINK.e": "Chainlink Token",
    "AAVE.e": "Aave Token",
}


@dataclass(frozen=True)
class PoolSpec:
    """One liquidity pool: Uniswap V2 or V3 (full range), and its depth in USD per side."""

    kind: str  # "v2" or "v3"
    a: str
    b: str
    usd_per_side: int
    fee: int = 3000  # V3 fee in hundredths of a bip; V2 is always 0.3%


# Uniswap's own deployments, where each world puts the npm bytecode (sources: the deployment
# pages of docs.uniswap.org, v2 "V2 Deployment Addresses" and v3 "Ethereum Deployments" /
# "AVAX Deployments", in github:Uniswap/docs docs/contracts/v3/reference/deployments/).
# Avalanche has no SwapRouter (v1), only SwapRouter02, which is not on npm: there the local
# SwapRouter stays at the address its deployment got.
UNISWAP: dict[str, dict[str, str]] = {
    "ethereum": {
        "UniswapV2Factory": "0x5C69bEe701ef814a2B6a3EDD4B1652CB9cc5aA6f",
        "UniswapV2Router02": "0x7a250d5630B4cF539739dF2C5dAcb4c659F2488D",
        "UniswapV3Factory": "0x1F98431c8aD98523631AE4a59f267346ea31F984",
        "SwapRouter": "0xE592427A0AEce92De3Edee1F18E0157C05861564",
        "QuoterV2": "0x61fFE014bA17989E743c5F6cB21bF9697530B21e",
        "NonfungiblePositionManager": "0xC36442b4a4522E871399CD717aBDD847Ab11FE88",
    },
    "avalanche": {
        "UniswapV2Factory": "0x9e5A52f57b3038F1B8EeE45F28b3C1967e22799C",
        "UniswapV2Router02": "0x4752ba5DBc23f44D87826276BF6Fd6b1C372aD24",
        "UniswapV3Factory": "0x740b1c1de25031C31FF4fC9A62f554A55cdC1baD",
        "QuoterV2": "0xbe0F5544EC67e9B3b2D979aaA43f18Fd87E6257F",
        "NonfungiblePositionManager": "0x655C406EBFa14EE2006250925e54ec43AD184f8B",
    },
}


@dataclass(frozen=True)
class WorldSpec:
    """One EVM world: the chain, its wrapped native token and its pools."""

    chain: str
    chain_id: int
    wrapped_native: str
    wrapped_name: str
    pools: tuple[PoolSpec, ...]


WORLDS: dict[str, WorldSpec] = {
    "ethereum": WorldSpec(
        chain="ethereum",
        chain_id=1,
        wrapped_native="WETH",
        wrapped_name="Wrapped Ether",
        pools=(
            PoolSpec("v3", "WETH", "USDC", 40_000_000, 500),
            PoolSpec("v3", "WETH", "USDT", 20_000_000, 500),
            PoolSpec("v3", "USDC", "USDT", 30_000_000, 100),
            PoolSpec("v3", "WBTC", "WETH", 30_000_000, 3000),
            PoolSpec("v3", "WBTC", "USDC", 10_000_000, 3000),
            PoolSpec("v3", "cbBTC", "USDC", 10_000_000, 500),
            PoolSpec("v3", "cbBTC", "WETH", 8_000_000, 3000),
            PoolSpec("v3", "LINK", "WETH", 8_000_000, 3000),
            PoolSpec("v3", "UNI", "WETH", 6_000_000, 3000),
            PoolSpec("v3", "AAVE", "WETH", 5_000_000, 3000),
            PoolSpec("v2", "WETH", "USDC", 15_000_000),
            PoolSpec("v2", "WBTC", "WETH", 5_000_000),
            PoolSpec("v2", "LINK", "WETH", 2_000_000),
        ),
    ),
    "avalanche": WorldSpec(
        chain="avalanche",
        chain_id=43114,
        wrapped_native="WAVAX",
        wrapped_name="Wrapped AVAX",
        pools=(
            PoolSpec("v3", "WAVAX", "USDC", 8_000_000, 500),
            PoolSpec("v3", "WAVAX", "USDt", 4_000_000, 500),
            PoolSpec("v3", "USDC", "USDt", 5_000_000, 100),
            PoolSpec("v3", "BTC.b", "WAVAX", 5_000_000, 3000),
            PoolSpec("v3", "BTC.b", "USDC", 5_000_000, 3000),
            PoolSpec("v3", "WBTC.e", "WAVAX", 1_000_000, 3000),
            PoolSpec("v3", "WETH.e", "WAVAX", 3_000_000, 3000),
            PoolSpec("v3", "LINK.e", "WAVAX", 1_000_000, 3000),
            PoolSpec("v3", "AAVE.e", "WAVAX", 1_000_000, 3000),
            PoolSpec("v2", "WAVAX", "USDC", 3_000_000),
            PoolSpec("v2", "BTC.b", "WAVAX", 1_000_000),
        ),
    ),
}


def demo_evm_key() -> bytes:
    """The demo EVM wallet's private key: public, derived from a fixed phrase. Local worlds only."""
    return keccak(text="rebalancer demo evm wallet")


def demo_evm_address() -> str:
    return str(Account.from_key(demo_evm_key()).address)


# The demo portfolio on the EVM worlds, in whole tokens: deliberately skewed (too much ETH and
# alts, too little BTC and stables) so that the demo has drift to fix. Solana's share lives in
# fixtures/solana. "native" is the chain's coin.
DEMO_HOLDINGS: dict[str, dict[str, Decimal]] = {
    "ethereum": {
        "native": Decimal(6),
        "WETH": Decimal(4),
        "WBTC": Decimal("0.1"),
        "LINK": Decimal(300),
        "UNI": Decimal(500),
        "USDC": Decimal(3000),
    },
    "avalanche": {
        "native": Decimal(400),
        "BTC.b": Decimal("0.05"),
        "USDC": Decimal(2000),
        "WETH.e": Decimal(1),
    },
}
