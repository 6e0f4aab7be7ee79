"""Ledger-signed transactions that execute: on a real anvil, on the local Solana node, on LiteSVM.

The device is the emulator process behind the real TCP transport; the chains are real processes
(anvil; ``python -m rebalancer.localnet.solana_node``) started on free ports and stopped in
``finally``.
"""

from __future__ import annotations

import base64
import json
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from solders.hash import Hash
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import MessageV0
from solders.null_signer import NullSigner
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata, TransactionMetadata

from rebalancer.wallet.base import sign_versioned_transaction
from rebalancer.wallet.evm_tx import normalise
from rebalancer.wallet.ledger import LedgerEvmSigner, LedgerSolanaSigner
from tests.conftest import rpc_call
from tests.wallet.conftest import ROOT, Device, listening

pytestmark = pytest.mark.slow

ANVIL_DEV = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"  # anvil's unlocked account 0
WETH9 = ROOT / "node_modules" / "@uniswap" / "v2-periphery" / "build" / "WETH9.json"


def _quiet(_: str) -> None:
    pass


def _receipt(url: str, tx_hash: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        receipt = rpc_call(url, "eth_getTransactionReceipt", tx_hash)
        if receipt:
            return dict(receipt)
        time.sleep(0.01)
    raise AssertionError(f"no receipt for {tx_hash}")


def _deploy_weth(url: str) -> str:
    bytecode = json.loads(WETH9.read_text())["bytecode"]
    code = bytecode if bytecode.startswith("0x") else "0x" + bytecode
    tx_hash = rpc_call(
        url, "eth_sendTransaction", {"from": ANVIL_DEV, "data": code, "gas": hex(2_000_000)}
    )
    receipt = _receipt(url, tx_hash)
    assert receipt["status"] == "0x1"
    return str(receipt["contractAddress"])


async def test_ledger_signed_weth_deposit_on_anvil(
    device: Device, anvil: Callable[[int], str]
) -> None:
    url = anvil(1)
    signer = await LedgerEvmSigner.open(device.transport(), prompt=_quiet)
    rpc_call(url, "anvil_setBalance", signer.identity, hex(10 * 10**18))
    weth = _deploy_weth(url)
    base_fee = int(rpc_call(url, "eth_getBlockByNumber", "latest", False)["baseFeePerGas"], 16)
    tx = {
        "type": 2,
        "chainId": 1,
        "nonce": int(rpc_call(url, "eth_getTransactionCount", signer.identity, "pending"), 16),
        "maxFeePerGas": 2 * base_fee + 10**9,
        "maxPriorityFeePerGas": 10**9,
        "gas": 100_000,
        "to": weth,
        "value": 10**18,
        "data": "0xd0e30db0",  # deposit()
    }
    signed = await signer.sign(normalise(tx))
    tx_hash = rpc_call(url, "eth_sendRawTransaction", "0x" + signed.raw_transaction.hex())
    assert tx_hash == "0x" + signed.hash.hex()
    receipt = _receipt(url, tx_hash)
    assert receipt["status"] == "0x1"
    assert receipt["from"].lower() == signer.identity.lower()
    balance_call = {"to": weth, "data": "0x70a08231" + signer.identity[2:].lower().rjust(64, "0")}
    assert int(rpc_call(url, "eth_call", balance_call, "latest"), 16) == 10**18


async def test_ledger_signed_legacy_transfer_on_avalanche_chain_id(
    device: Device, anvil: Callable[[int], str]
) -> None:
    """Legacy EIP-155 on chain 43114: the one-byte v from the device must be rebuilt right."""
    url = anvil(43114)
    signer = await LedgerEvmSigner.open(device.transport(), prompt=_quiet)
    rpc_call(url, "anvil_setBalance", signer.identity, hex(10**18))
    to = "0x000000000000000000000000000000000000dEaD"
    gas_price = int(rpc_call(url, "eth_gasPrice"), 16)
    tx = {"chainId": 43114, "nonce": 0, "gasPrice": gas_price, "gas": 21000, "to": to, "value": 777}
    signed = await signer.sign(normalise(tx))
    assert signed.v in (43114 * 2 + 35, 43114 * 2 + 36)
    tx_hash = rpc_call(url, "eth_sendRawTransaction", "0x" + signed.raw_transaction.hex())
    assert _receipt(url, tx_hash)["status"] == "0x1"
    assert int(rpc_call(url, "eth_getBalance", to, "latest"), 16) == 777


@pytest.fixture
def solana_node() -> Iterator[str]:
    with listening(
        [sys.executable, "-m", "rebalancer.localnet.solana_node", "--port", "0", "--quiet"]
    ) as port:
        yield f"http://127.0.0.1:{port}"


async def test_ledger_signed_transfer_on_the_local_solana_node(
    device: Device, solana_node: str
) -> None:
    device.set(app="sol")
    signer = await LedgerSolanaSigner.open(device.transport(), prompt=_quiet)
    payer = Pubkey.from_string(signer.identity)
    rpc_call(solana_node, "requestAirdrop", str(payer), 2 * 10**9)
    to = Keypair().pubkey()
    blockhash = rpc_call(solana_node, "getLatestBlockhash")["value"]["blockhash"]
    ix = transfer(TransferParams(from_pubkey=payer, to_pubkey=to, lamports=123_456_789))
    msg = MessageV0.try_compile(payer, [ix], [], Hash.from_string(blockhash))
    tx = await sign_versioned_transaction(signer, VersionedTransaction(msg, [NullSigner(payer)]))
    wire = base64.b64encode(bytes(tx)).decode()
    sig = rpc_call(solana_node, "sendTransaction", wire, {"encoding": "base64"})
    assert sig == str(tx.signatures[0])
    statuses = rpc_call(solana_node, "getSignatureStatuses", [sig])["value"]
    assert statuses[0] is not None and statuses[0]["err"] is None
    assert rpc_call(solana_node, "getBalance", str(to))["value"] == 123_456_789


async def test_ledger_fills_its_slot_next_to_an_rfq_maker_on_litesvm(device: Device) -> None:
    """An RFQ-style transaction: the maker signs first, the Ledger fills the fee payer's slot."""
    device.set(app="sol")
    signer = await LedgerSolanaSigner.open(device.transport(), prompt=_quiet)
    user = Pubkey.from_string(signer.identity)
    maker = Keypair()
    svm = LiteSVM()
    svm.airdrop(user, 10**9)
    svm.airdrop(maker.pubkey(), 10**9)
    ixs = [
        transfer(TransferParams(from_pubkey=user, to_pubkey=maker.pubkey(), lamports=1000)),
        transfer(TransferParams(from_pubkey=maker.pubkey(), to_pubkey=user, lamports=5000)),
    ]
    msg = MessageV0.try_compile(user, ixs, [], svm.latest_blockhash())
    half = VersionedTransaction(msg, [NullSigner(user), maker])
    assert isinstance(svm.send_transaction(half), FailedTransactionMetadata)  # half-signed
    maker_sig = half.signatures[1]
    full = await sign_versioned_transaction(signer, half)
    assert full.signatures[1] == maker_sig  # the maker's signature is kept
    before = svm.get_balance(user)
    result = svm.send_transaction(full)
    assert isinstance(result, TransactionMetadata), result
    assert svm.get_balance(user) == before - 1000 + 5000 - result.fee()
