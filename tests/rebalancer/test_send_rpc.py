"""``[chains.X] send_rpc``: signed transactions go to the sending endpoint, reads stay on ``rpc``.

Two logging proxies on loopback stand in front of one node: the reading ``rpc`` and the
``send_rpc``. Every signed transaction must reach the second and none the first; receipts are
polled on the first; the journal notes where each was sent (redacted).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

from rebalancer.chains.base import adapter_for
from rebalancer.chains.registry import Registry
from rebalancer.journal import Journal
from tests.conftest import rpc_call
from tests.rebalancer.test_execution import run_json, write_config
from tests.rpc_proxy import logging_proxy
from tests.solana_node_fixture import solana_node  # noqa: F401 (a fixture)

EVM_SENDS = ("eth_sendRawTransaction", "eth_sendTransaction")


def test_every_signed_evm_tx_goes_to_send_rpc_and_none_to_rpc(
    evm_isolated: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DEMO_PASS", "demo")
    monkeypatch.setenv("ONEINCH_API_KEY", "test-key")
    node = evm_isolated["ethereum"]["url"]
    with logging_proxy(node) as reads, logging_proxy(node) as sends:
        monkeypatch.setenv("ETH_SEND_RPC", sends.url)
        cfg = write_config(tmp_path)
        text = cfg.read_text().replace(
            'rpc = "localnet:ethereum"',
            f'rpc = "{reads.url}"\nsend_rpc = "env:ETH_SEND_RPC"',
        )
        cfg.write_text(text)
        code, out = run_json(capsys, "run", "-c", str(cfg), "--execute", "--yes")
        assert code == 0 and out["status"] == "ok", out
        eth = [t for t in out["trades"] if t["chain"] == "ethereum"]
        assert eth and all(t["status"] == "confirmed" for t in eth)
        j = Journal(tmp_path / "journal.sqlite")
        try:
            rows = [t for t in j.trades() if t.chain == "ethereum" and t.tx_hash]
            avax = [t for t in j.trades() if t.chain == "avalanche" and t.tx_hash]
        finally:
            j.close()
        # every signed ethereum transaction (approvals included) went to send_rpc, once
        assert sends.count("eth_sendRawTransaction") == len(rows) >= len(eth)
        assert all(reads.count(m) == 0 for m in EVM_SENDS)
        assert set(sends.methods) == {"eth_sendRawTransaction"}
        # receipts and reads on rpc
        assert reads.count("eth_getTransactionReceipt") > 0
        assert {t.sent_via for t in rows} == {sends.url}
        # a chain without send_rpc sends through its rpc, and says so
        assert avax and {t.sent_via for t in avax} == {evm_isolated["avalanche"]["url"]}
        for t in rows:
            receipt = rpc_call(node, "eth_getTransactionReceipt", t.tx_hash)
            assert receipt is not None and receipt["status"] == "0x1"


async def _solana_transfer_via(rpc: str, send: str) -> str:
    info = Registry.load().chains["solana"]
    payer = Keypair()
    rpc_call(rpc, "requestAirdrop", str(payer.pubkey()), 10**9)
    async with httpx.AsyncClient() as client:
        chain = adapter_for(info, rpc, client, send_url=send)
        blockhash = rpc_call(rpc, "getLatestBlockhash")["value"]["blockhash"]
        ix = transfer(
            TransferParams(from_pubkey=payer.pubkey(), to_pubkey=Keypair().pubkey(), lamports=10**7)
        )
        msg = MessageV0.try_compile(payer.pubkey(), [ix], [], Hash.from_string(blockhash))
        raw = bytes(VersionedTransaction(msg, [payer]))
        sig = await chain.send_raw(raw)
        assert await chain.wait(sig, timeout=30) == "confirmed"
        assert chain.sent_via == send
        return sig


def test_a_solana_tx_goes_to_send_rpc_and_its_status_is_read_on_rpc(
    solana_node: Any,  # noqa: F811
) -> None:
    with logging_proxy(solana_node.url) as reads, logging_proxy(solana_node.url) as sends:
        asyncio.run(_solana_transfer_via(reads.url, sends.url))
        assert sends.methods == ["sendTransaction"]
        assert reads.count("sendTransaction") == 0
        assert reads.count("getSignatureStatuses") > 0
