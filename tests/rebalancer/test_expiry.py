"""A Solana swap that outlasts its blockhash while being signed (a long Ledger review) is rebuilt
once (fresh quote and blockhash, the same checks and simulation), signed again and lands once;
the first attempt stays in the journal as dropped, never sent.

The node runs 20 ms slots, so its 150-slot blockhash window is 3 s; the signer waits 4 s on its
first signature.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from solders.pubkey import Pubkey

from rebalancer.chains.anvil import NodeProcess, start_listening, stop_pid
from rebalancer.journal import Journal
from rebalancer.services import injected
from rebalancer.wallet.local import LocalSolanaSigner
from tests.conftest import rpc_call
from tests.dex.test_jupiter import fresh_wallet, fund, holding
from tests.rebalancer.test_execution import run_json
from tests.rebalancer.test_external import trade, write_plan
from tests.solana_config import write_solana_config
from tests.solana_node_fixture import running_solana_node

SLOT_MS = 20
WINDOW_S = 150 * SLOT_MS / 1000
JUPITER_ARGS = ("--port", "0", "--rpc")


class SlowFirstSigner(LocalSolanaSigner):
    """Signs like a local key, but its first signature takes longer than a blockhash lives."""

    calls = 0

    async def sign_solana_message(self, message: bytes) -> bytes:
        type(self).calls += 1
        if type(self).calls == 1:
            await asyncio.sleep(WINDOW_S + 1.0)
        return await super().sign_solana_message(message)


@pytest.fixture(scope="module")
def quick_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A Solana node with a 3 s blockhash window and a Jupiter stand-in over it."""
    log_dir = tmp_path_factory.mktemp("quick-solana")
    with running_solana_node(log_dir, "--slot-ms", str(SLOT_MS), name="solana-quick") as node:
        jup: NodeProcess = start_listening(
            "jupiter-quick",
            [
                sys.executable,
                "-m",
                "rebalancer.localnet.jupiter_server",
                "--port",
                "0",
                "--rpc",
                node.url,
            ],
            log_dir / "jupiter.log",
        )
        try:
            yield node.url, jup.url + "/swap/v1"
        finally:
            stop_pid(jup.pid)


def test_a_swap_signed_past_its_blockhash_is_rebuilt_once_and_lands_once(
    quick_world: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    node, jupiter = quick_world
    signer = SlowFirstSigner(fresh_wallet("expiry").keypair_bytes())
    SlowFirstSigner.calls = 0
    wallet = signer.identity
    fund(node, Pubkey.from_string(wallet), 5 * 10**9, {})
    monkeypatch.setenv("JUPITER_API_KEY", "test-key")
    cfg = write_solana_config(tmp_path, node, wallet, jupiter=jupiter, name="slow")
    plan = write_plan(
        tmp_path / "plan.json", [trade("slow", "solana", wallet, "SOL", "USDC", Decimal(1))]
    )
    before = holding(node, Pubkey.from_string(wallet), "USDC")
    with injected(signers={("solana", wallet.lower()): signer}):
        code, out = run_json(capsys, "apply", str(plan), "-c", str(cfg), "--yes")
    assert code == 0, out
    (t,) = out["trades"]
    assert t["status"] == "confirmed", t
    assert SlowFirstSigner.calls == 2  # asked again for the rebuilt transaction, once
    j = Journal(tmp_path / "journal.sqlite")
    try:
        rows = {r.trade_id: r for r in j.trades()}
    finally:
        j.close()
    first, rebuilt = rows[t["id"]], rows[f"{t['id']}-rebuilt"]
    assert first.state == "dropped" and first.tx_hash and "never sent" in (first.error or "")
    assert rebuilt.state == "confirmed" and rebuilt.tx_hash == t["tx"] != first.tx_hash
    # only one could land: the first was never sent and its blockhash is gone for good
    statuses = rpc_call(
        node,
        "getSignatureStatuses",
        [first.tx_hash, rebuilt.tx_hash],
        {"searchTransactionHistory": True},
    )["value"]
    assert statuses[0] is None and statuses[1] is not None and statuses[1]["err"] is None
    gained = holding(node, Pubkey.from_string(wallet), "USDC") - before
    assert gained == int(t["realised_out"]) >= int(t["min_out"]) > 0
