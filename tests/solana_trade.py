"""One SOL -> USDC trade of a wallet of its own through ``apply`` on the local worlds: the
Solana node is shared by the session, so each test funds a fresh wallet nobody else touches
and signs with it (injected), never the shared fixtures' keys."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from solders.pubkey import Pubkey

from rebalancer.journal import Journal, TradeRow
from rebalancer.services import injected
from rebalancer.wallet.base import Signer
from tests.dex.test_jupiter import fresh_wallet, fund
from tests.rebalancer.test_execution import run_json
from tests.rebalancer.test_external import trade, write_plan


@dataclass(frozen=True)
class SolanaTrade:
    """The worlds' Solana node and Jupiter stand-in, the funded wallet and its plan file."""

    node: str
    jupiter: str
    signer: Signer
    plan: Path

    @property
    def wallet(self) -> str:
        return self.signer.identity

    @property
    def key(self) -> Pubkey:
        return Pubkey.from_string(self.signer.identity)


def sol_to_usdc(
    worlds: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    name: str,
    trade_id: str,
    lamports: int,
) -> SolanaTrade:
    """A fresh wallet ``name`` given ``lamports``, and a plan selling 1 SOL for USDC."""
    node, jupiter = str(worlds["solana"]["url"]), str(worlds["jupiter"]["url"])
    signer = fresh_wallet(name)
    wallet = signer.identity
    fund(node, Pubkey.from_string(wallet), lamports, {})
    monkeypatch.setenv("JUPITER_API_KEY", "test-key")
    plan = write_plan(
        tmp_path / "plan.json", [trade(trade_id, "solana", wallet, "SOL", "USDC", Decimal(1))]
    )
    return SolanaTrade(node, jupiter, signer, plan)


def apply_signed(
    capsys: pytest.CaptureFixture[str], signer: Signer, plan: Path, cfg: Path
) -> tuple[int, dict[str, Any]]:
    """``apply PLAN -c CFG --yes --json`` with ``signer`` as the Solana wallet's key."""
    with injected(signers={("solana", signer.identity.lower()): signer}):
        return run_json(capsys, "apply", str(plan), "-c", str(cfg), "--yes")


def journal_trades(path: Path) -> list[TradeRow]:
    """Every trade row of the journal at ``path``."""
    j = Journal(path)
    try:
        return j.trades()
    finally:
        j.close()
