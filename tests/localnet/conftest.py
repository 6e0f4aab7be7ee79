"""Fixtures for the local worlds' tests: the Solana node (shared with tests/chains)."""

from __future__ import annotations

from tests.solana_node_fixture import solana_fast_node, solana_node

__all__ = ["solana_fast_node", "solana_node"]
