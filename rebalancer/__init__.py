"""rebalancer: keep a self-custodied portfolio on target across Ethereum, Avalanche and Solana."""

__version__ = "0.1.0"
