"""The emulated Ledger's answers to the APDUs wallets send besides addresses and transactions,
per the apps' public protocol descriptions: the Ethereum address with its chain code (P2 01)
or a chain id after the path, personal_sign (INS 08), Solana off-chain messages (INS 07)."""

from __future__ import annotations

import struct

from eth_account import Account
from eth_account.messages import encode_defunct
from solders.pubkey import Pubkey
from solders.signature import Signature

from rebalancer.localnet.ledger_emulator import OFFCHAIN_DOMAIN, DeviceState, LedgerEmulator
from rebalancer.wallet.hd import HARDENED, evm_key_and_chain_code, serialize_path

EVM_PATH = [44 | HARDENED, 60 | HARDENED, 0 | HARDENED, 0, 0]
SOL_PATH = [44 | HARDENED, 501 | HARDENED, 0 | HARDENED, 0 | HARDENED]


def apdu(ins: int, p1: int, p2: int, data: bytes = b"") -> bytes:
    return bytes([0xE0, ins, p1, p2, len(data)]) + data


def answer(device: LedgerEmulator, command: bytes) -> tuple[bytes, int]:
    reply = device.exchange(command)
    return reply[:-2], int.from_bytes(reply[-2:], "big")


def test_bip32_chain_code_matches_the_standard_vector() -> None:
    # BIP32 test vector 1, chain m/0H.
    key, chain = evm_key_and_chain_code(
        bytes.fromhex("000102030405060708090a0b0c0d0e0f"), [HARDENED]
    )
    assert key.hex() == "edb2e14f9ee77d26dd93b4ecede8d16ed408ce149b6cd80b0715a2d911a0afea"
    assert chain.hex() == "47fdacbd0f1097043b78c63c20c34ef4ed9a111d980047ad16282c7ae6236141"


def test_eth_address_with_chain_code_and_chain_id() -> None:
    device = LedgerEmulator()
    path = serialize_path(EVM_PATH)
    plain, sw = answer(device, apdu(0x02, 0x00, 0x00, path))
    assert sw == 0x9000 and len(plain) == 1 + 65 + 1 + 40
    with_code, sw = answer(device, apdu(0x02, 0x00, 0x01, path))
    assert sw == 0x9000 and with_code[: len(plain)] == plain
    chain_code = with_code[len(plain) :]
    assert chain_code == evm_key_and_chain_code(device._seed, EVM_PATH)[1] and len(chain_code) == 32
    address = "0x" + plain[67:107].decode()
    assert address == Account.from_key(device.evm_key(EVM_PATH).to_bytes()).address
    for chain_id in (1, 43114):
        shown, sw = answer(device, apdu(0x02, 0x01, 0x00, path + struct.pack(">Q", chain_id)))
        assert sw == 0x9000 and shown == plain
    assert answer(device, apdu(0x02, 0x00, 0x00, path + b"\x00" * 7))[1] == 0x6A80
    assert answer(device, apdu(0x02, 0x00, 0x02, path))[1] == 0x6B00


def test_eth_personal_sign_in_chunks() -> None:
    device = LedgerEmulator()
    message = b"rebalancer wants you to sign in. " * 9  # 297 bytes: two APDUs
    first = serialize_path(EVM_PATH) + struct.pack(">I", len(message)) + message[:150]
    part, sw = answer(device, apdu(0x08, 0x00, 0x00, first))
    assert (part, sw) == (b"", 0x9000)
    sig, sw = answer(device, apdu(0x08, 0x80, 0x00, message[150:]))
    assert sw == 0x9000 and len(sig) == 65 and sig[0] in (27, 28)
    v, r, s = sig[0], int.from_bytes(sig[1:33], "big"), int.from_bytes(sig[33:], "big")
    signer = Account.recover_message(encode_defunct(message), vrs=(v, r, s))
    assert signer == Account.from_key(device.evm_key(EVM_PATH).to_bytes()).address
    # A continuation without a start, and a user who says no.
    assert answer(device, apdu(0x08, 0x80, 0x00, b"x"))[1] == 0x6A80
    device.state.reject = True
    short = serialize_path(EVM_PATH) + struct.pack(">I", 2) + b"hi"
    assert answer(device, apdu(0x08, 0x00, 0x00, short))[1] == 0x6985


def offchain(signer: Pubkey, text: bytes, version: int = 0, fmt: int = 0) -> bytes:
    """An off-chain message as sRFC 3 lays it out (version 0 with application domain and
    length, or version 1)."""
    if version == 0:
        return (
            OFFCHAIN_DOMAIN
            + bytes([0])
            + b"\x00" * 32
            + bytes([fmt, 1])
            + bytes(signer)
            + struct.pack("<H", len(text))
            + text
        )
    return OFFCHAIN_DOMAIN + bytes([1, 1]) + bytes(signer) + text


def sign_offchain(device: LedgerEmulator, message: bytes) -> tuple[bytes, int]:
    data = bytes([1]) + serialize_path(SOL_PATH) + message
    chunks = [data[i : i + 255] for i in range(0, len(data), 255)]
    for i, chunk in enumerate(chunks):
        p2 = (0x01 if i else 0) | (0x02 if i < len(chunks) - 1 else 0)
        reply, sw = answer(device, apdu(0x07, 0x01, p2, chunk))
        if sw != 0x9000 or i == len(chunks) - 1:
            return reply, sw
        assert reply == b""
    raise AssertionError("no chunks")


def test_solana_offchain_message_signing() -> None:
    device = LedgerEmulator(state=DeviceState(app="sol"))
    key = device.solana_keypair(SOL_PATH).pubkey()
    for message in (
        offchain(key, b"Sign in to rebalancer"),
        offchain(key, b"A longer message, " * 20),  # spans two APDUs
        offchain(key, "Grüße".encode(), fmt=1),
        offchain(key, b"version one", version=1),
    ):
        sig, sw = sign_offchain(device, message)
        assert sw == 0x9000 and len(sig) == 64
        assert Signature.from_bytes(sig).verify(key, message)
    other = Pubkey.from_string("11111111111111111111111111111112")
    assert sign_offchain(device, offchain(other, b"not my key"))[1] == 0x6A81
    assert sign_offchain(device, b"\xffsolana offchaiX" + b"\x00" * 40)[1] == 0x6A81
    assert sign_offchain(device, offchain(key, "Grüße".encode(), fmt=0))[1] == 0x6A82
    assert sign_offchain(device, offchain(key, b"x", fmt=2))[1] == 0x6A81
    device.state.blind_signing = False
    assert sign_offchain(device, offchain(key, "Grüße".encode(), fmt=1))[1] == 0x6808
    assert sign_offchain(device, offchain(key, b"plain ascii"))[1] == 0x9000
    device.state.reject = True
    assert sign_offchain(device, offchain(key, b"no thanks"))[1] == 0x6985
