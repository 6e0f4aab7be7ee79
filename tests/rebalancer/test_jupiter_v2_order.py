"""Jupiter Swap API v2 ``mode = "order"`` through the whole engine on the local worlds: the
stand-in's ``/swap/v2/order`` transaction is held to the same checks and simulation, signed and
landed through ``POST /swap/v2/execute`` (the journal names it); ``/execute`` lands a signed
order on the stand-in once, and only the order's own transaction."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import pytest
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from rebalancer.core.tx import SolanaTx
from tests.dex.test_jupiter import fresh_wallet, fund, holding
from tests.solana_config import write_solana_config
from tests.solana_trade import apply_signed, journal_trades, sol_to_usdc

USDC = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
WSOL = "So11111111111111111111111111111111111111112"


def _config(tmp_path: Path, node: str, jupiter: str, wallet: str, extra: str) -> Path:
    return write_solana_config(tmp_path, node, wallet, jupiter=jupiter, name="v2", aggregator=extra)


def test_order_mode_trades_through_the_engine(
    evm_worlds: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    w = sol_to_usdc(
        evm_worlds, tmp_path, monkeypatch, name="v2 order", trade_id="v2", lamports=5 * 10**9
    )
    node = w.node
    # NOTE: v2 without a mode is /build now (tests/rebalancer/test_jupiter_v2_build.py)
    cfg = _config(tmp_path, node, w.jupiter, w.wallet, 'api = "v2"\nmode = "order"')
    before = holding(node, w.key, "USDC")
    code, out = apply_signed(capsys, w.signer, w.plan, cfg)
    assert code == 0, out
    (t,) = out["trades"]
    assert t["status"] == "confirmed" and int(t["realised_out"]) >= int(t["min_out"]) > 0
    assert holding(node, w.key, "USDC") - before == int(t["realised_out"])
    # landed through the stand-in's POST /execute, and the journal says so
    (row,) = journal_trades(tmp_path / "journal.sqlite")
    assert row.sent_via is not None and row.sent_via.startswith("Jupiter /execute at ")
    assert row.tx_hash == t["tx"]


async def test_stand_in_order_then_execute_lands(evm_worlds: dict[str, Any]) -> None:
    node, jupiter = str(evm_worlds["solana"]["url"]), str(evm_worlds["jupiter"]["url"])
    base = jupiter  # the manifest names the stand-in's v2 base
    signer = fresh_wallet("v2 execute")
    fund(node, Pubkey.from_string(signer.identity), 2 * 10**9, {})
    headers = {"x-api-key": "local"}
    async with httpx.AsyncClient(timeout=30) as client:
        params = {"inputMint": WSOL, "outputMint": USDC, "amount": str(10**8)}
        quote_only = (await client.get(f"{base}/order", params=params, headers=headers)).json()
        assert quote_only["transaction"] == "" and quote_only["requestId"]
        r = await client.get(
            f"{base}/order", params={**params, "taker": signer.identity}, headers=headers
        )
        assert r.status_code == 200, r.text
        order = r.json()
        assert int(order["lastValidBlockHeight"]) > 0 and order["taker"] == signer.identity
        tx = VersionedTransaction.from_bytes(base64.b64decode(order["transaction"]))
        signed = await signer.sign_solana_message(SolanaTx(raw=bytes(tx)).payload())
        sigs = list(tx.signatures)
        sigs[list(tx.message.account_keys).index(Pubkey.from_string(signer.identity))] = type(
            tx.signatures[0]
        ).from_bytes(signed)
        tx = VersionedTransaction.populate(tx.message, sigs)
        body = {
            "signedTransaction": base64.b64encode(bytes(tx)).decode(),
            "requestId": order["requestId"],
        }
        done = (await client.post(f"{base}/execute", json=body, headers=headers)).json()
        assert done["status"] == "Success", done
        assert done["signature"] == str(tx.signatures[0])
        again = await client.post(f"{base}/execute", json=body, headers=headers)
        assert again.status_code == 400  # a requestId lands once
