"""EVM encoding and Ledger chunking: the device path must produce eth-account's exact bytes.

These use the emulator in-process (no socket) so hypothesis can try many transactions; the TCP
path is covered in test_ledger.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from eth_utils import to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rebalancer.localnet.ledger_emulator import InProcessTransport, LedgerEmulator
from rebalancer.wallet import evm_tx
from rebalancer.wallet.evm_tx import normalise
from rebalancer.wallet.ledger import LedgerClient, LedgerEvmSigner, eth_chunks
from rebalancer.wallet.local import LocalEvmSigner

_EMULATOR = LedgerEmulator()


def _quiet(_text: str) -> None:
    pass


def _ledger() -> LedgerEvmSigner:
    client = LedgerClient(InProcessTransport(_EMULATOR))
    path = "m/44'/60'/0'/0/0"
    return LedgerEvmSigner(client, path, client.eth_address(path), _quiet)


addresses = st.binary(min_size=20, max_size=20).map(to_checksum_address)
u64 = st.integers(min_value=0, max_value=2**64 - 1)
u256 = st.integers(min_value=0, max_value=2**256 - 1)
chain_ids = st.sampled_from([1, 43114, 31337, 137, 56, 11155111]) | st.integers(1, 2**32)


@st.composite
def transactions(draw: Any) -> dict[str, Any]:
    tx: dict[str, Any] = {
        "chainId": draw(chain_ids),
        "nonce": draw(u64),
        "gas": draw(st.integers(21000, 30_000_000)),
        "to": draw(addresses),
        "value": draw(u256),
        "data": "0x" + draw(st.binary(max_size=700)).hex(),
    }
    if draw(st.booleans()):
        tx["type"] = 2
        tx["maxFeePerGas"] = draw(u64)
        tx["maxPriorityFeePerGas"] = draw(u64)
        if draw(st.booleans()):
            tx["accessList"] = [
                {"address": draw(addresses), "storageKeys": ["0x" + "00" * 31 + "01"]}
            ]
    else:
        tx["gasPrice"] = draw(u64)
    return tx


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tx=transactions())
def test_ledger_signature_equals_local_key(tx: dict[str, Any], evm_test_key: bytes) -> None:
    """RFC 6979: same key, same bytes -> same signature; also checks our RLP against eth-account."""
    local = asyncio.run(LocalEvmSigner(evm_test_key).sign(normalise(tx)))
    ledger = asyncio.run(_ledger().sign(normalise(tx)))
    assert ledger == local


def test_legacy_v_reconstruction_for_avalanche(evm_test_key: bytes) -> None:
    tx = {
        "chainId": 43114,
        "nonce": 0,
        "gas": 21000,
        "gasPrice": 25 * 10**9,
        "to": "0x" + "22" * 20,
        "value": 1,
    }
    signed = asyncio.run(_ledger().sign(normalise(tx)))
    assert signed.v in (43114 * 2 + 35, 43114 * 2 + 36)
    assert signed == asyncio.run(LocalEvmSigner(evm_test_key).sign(normalise(tx)))


@given(
    path_len=st.integers(1, 10).map(lambda n: 1 + 4 * n),
    payload=st.binary(min_size=30, max_size=1200),
    tail=st.sampled_from([0, 3, 5, 7]),
)
def test_eth_chunks_cover_payload_and_avoid_the_eip155_marker(
    path_len: int, payload: bytes, tail: int
) -> None:
    path = b"\x01" * path_len
    chunks = eth_chunks(path, payload, tail)
    assert b"".join(chunks) == path + payload
    assert all(0 < len(c) <= 255 for c in chunks)
    if tail:
        tail_start = path_len + len(payload) - tail
        boundaries = {sum(len(c) for c in chunks[: i + 1]) for i in range(len(chunks) - 1)}
        assert not any(tail_start <= b for b in boundaries)


def test_unsupported_transactions_are_refused() -> None:
    base = {"chainId": 1, "nonce": 0, "gas": 21000, "value": 0}
    with pytest.raises(ValueError, match="contract creation"):
        evm_tx.normalise({**base, "gasPrice": 1})
    with pytest.raises(ValueError, match="type 1"):
        evm_tx.normalise({**base, "type": 1, "gasPrice": 1, "to": "0x" + "11" * 20})
    with pytest.raises(ValueError, match="maxFeePerGas"):
        evm_tx.normalise({**base, "to": "0x" + "11" * 20})
    with pytest.raises(ValueError, match="nonce"):
        evm_tx.normalise({"chainId": 1, "gas": 1, "value": 0, "gasPrice": 1, "to": "0x" + "1" * 40})
    good = to_checksum_address("0x" + "ab" * 20)
    bad = good[:2] + good[2].swapcase() + good[3:]
    with pytest.raises(ValueError, match="checksum"):
        evm_tx.normalise({**base, "gasPrice": 1, "to": bad})


def test_every_signer_gives_the_same_bytes_and_eth_account_recovers_the_sender(
    evm_test_key: bytes,
) -> None:
    """Local key, Ledger and an air-gapped wallet sign the payload of one encoder: same bytes."""
    from eth_account import Account

    from rebalancer.wallet.presigned import PresignedSigner
    from rebalancer.wallet.unsigned import verify_evm_signed

    sender = Account.from_key(evm_test_key).address
    fields: dict[str, Any] = {
        "type": 2,
        "chainId": 1,
        "nonce": 7,
        "maxFeePerGas": 3 * 10**10,
        "maxPriorityFeePerGas": 10**9,
        "gas": 250_000,
        "to": to_checksum_address("0x" + "ab" * 20),
        "value": 12345,
        "data": "0x" + "cd" * 300,
    }
    tx = normalise(fields)
    local = asyncio.run(LocalEvmSigner(evm_test_key).sign(tx))
    ledger = asyncio.run(_ledger().sign(tx))
    # the air-gapped wallet: any software signing the exported payload (here eth-account's own
    # encoder), proven against the export, then handed back by the pre-signed signer
    outside = bytes(Account.sign_transaction(fields, evm_test_key).raw_transaction)
    proven = verify_evm_signed(outside, fields, sender, "test.signed.hex")
    presigned = asyncio.run(PresignedSigner("evm", sender, {tx.payload(): proven}).sign(tx))
    assert local.raw == ledger.raw == presigned.raw == outside
    for signed in (local, ledger, presigned):
        assert Account.recover_transaction(signed.raw) == sender
