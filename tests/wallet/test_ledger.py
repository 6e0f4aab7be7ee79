"""The Ledger signer through the real TCP transport against the emulator process.

Addresses and signatures must equal a local key's holding the same derived key; every device
refusal must become the documented error and exit code.
"""

from __future__ import annotations

import socket
import sys
import types
from typing import Any

import pytest
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer

from rebalancer.core.errors import ConfigError, DeviceError, UserRejectedError
from rebalancer.wallet.evm_tx import normalise
from rebalancer.wallet.ledger import (
    HID_PACKET,
    HidTransport,
    HidUnwrapper,
    LedgerEvmSigner,
    LedgerSolanaSigner,
    TcpTransport,
    hid_wrap,
    make_transport,
    open_ledger_signer,
    sol_chunks,
)
from rebalancer.wallet.local import LocalEvmSigner, LocalSolanaSigner
from tests.wallet.conftest import Device

TO = "0x1111111111111111111111111111111111111111"


def type2(**over: Any) -> dict[str, Any]:
    tx = {
        "type": 2,
        "chainId": 1,
        "nonce": 7,
        "maxFeePerGas": 30 * 10**9,
        "maxPriorityFeePerGas": 10**9,
        "gas": 21000,
        "to": TO,
        "value": 12345 * 10**12,
        "data": b"",
    }
    tx.update(over)
    return tx


def legacy(**over: Any) -> dict[str, Any]:
    tx = {"chainId": 43114, "nonce": 1, "gasPrice": 25 * 10**9, "gas": 60000, "to": TO, "value": 5}
    tx.update(over)
    return tx


def solana_message(payer: Pubkey, n_transfers: int = 1) -> bytes:
    ixs = [
        transfer(TransferParams(from_pubkey=payer, to_pubkey=Keypair().pubkey(), lamports=1000 + i))
        for i in range(n_transfers)
    ]
    return to_bytes_versioned(MessageV0.try_compile(payer, ixs, [], Hash.new_unique()))


class Prompts:
    def __init__(self) -> None:
        self.shown: list[str] = []

    def __call__(self, text: str) -> None:
        self.shown.append(text)


async def test_evm_address_and_signatures_equal_local_key(
    device: Device, evm_test_key: bytes
) -> None:
    local = LocalEvmSigner(evm_test_key)
    prompts = Prompts()
    signer = await LedgerEvmSigner.open(device.transport(), expected=local.identity, prompt=prompts)
    assert signer.identity == local.identity
    big_call = type2(data=bytes(range(256)) * 3, gas=200_000)  # several 255-byte chunks
    for tx in (
        type2(),
        legacy(),
        legacy(chainId=1),
        big_call,
        legacy(data=b"\xd0\xe3\x0d\xb0" * 100),
    ):
        assert await signer.sign(normalise(tx)) == await local.sign(normalise(tx))
    shown = prompts.shown[0]
    assert TO in shown and "0.012345 ETH" in shown and "chain:   1 (Ethereum)" in shown
    assert "AVAX" in prompts.shown[1] and "43114" in prompts.shown[1]
    assert "contract call" in prompts.shown[3]


async def test_other_account_paths(device: Device, test_seed: bytes) -> None:
    from rebalancer.wallet.hd import evm_key_from_seed, solana_key_from_seed

    path = "m/44'/60'/0'/0/5"
    signer = await LedgerEvmSigner.open(device.transport(), path, prompt=Prompts())
    assert signer.identity == LocalEvmSigner(evm_key_from_seed(test_seed, path)).identity
    device.set(app="sol")
    sol_path = "m/44'/501'/3'/0'"
    sol = await LedgerSolanaSigner.open(device.transport(), sol_path, prompt=Prompts())
    local = LocalSolanaSigner.from_seed(solana_key_from_seed(test_seed, sol_path))
    assert sol.identity == local.identity


async def test_solana_pubkey_and_signatures_equal_local_key(
    device: Device, solana_test_seed: bytes
) -> None:
    device.set(app="sol")
    local = LocalSolanaSigner.from_seed(solana_test_seed)
    prompts = Prompts()
    signer = await LedgerSolanaSigner.open(
        device.transport(), expected=local.identity, prompt=prompts
    )
    assert signer.identity == local.identity
    payer = Pubkey.from_string(local.identity)
    for n in (1, 12):  # 12 transfers: a message longer than one APDU
        message = solana_message(payer, n)
        assert await signer.sign_solana_message(message) == await local.sign_solana_message(message)
    assert len(solana_message(payer, 12)) > 255
    assert "transfer:     0.000001 SOL" in prompts.shown[0] and "message hash" in prompts.shown[0]


async def test_user_rejects_on_device(device: Device) -> None:
    signer = await LedgerEvmSigner.open(device.transport(), prompt=Prompts())
    device.set(reject=True)
    with pytest.raises(UserRejectedError) as err:
        await signer.sign(normalise(type2()))
    assert err.value.exit_code == 5 and "rejected on the Ledger" in str(err.value)
    device.set(app="sol", reject=False)
    sol = await LedgerSolanaSigner.open(device.transport(), prompt=Prompts())
    device.set(reject=True)
    with pytest.raises(UserRejectedError):
        await sol.sign_solana_message(solana_message(Pubkey.from_string(sol.identity)))


async def test_locked_device(device: Device) -> None:
    device.set(locked=True)
    with pytest.raises(DeviceError, match=r"locked .*unlock it with the PIN") as err:
        await LedgerEvmSigner.open(device.transport())
    assert err.value.exit_code == 4


async def test_wrong_app_open(device: Device) -> None:
    device.set(app="sol")
    with pytest.raises(
        DeviceError, match="the Solana app is open on the Ledger: open the Ethereum"
    ):
        await LedgerEvmSigner.open(device.transport())
    device.set(app="dashboard")
    with pytest.raises(DeviceError, match="no app is open on the Ledger: open the Solana app"):
        await LedgerSolanaSigner.open(device.transport())


async def test_app_switched_between_open_and_sign(device: Device) -> None:
    signer = await LedgerEvmSigner.open(device.transport(), prompt=Prompts())
    device.set(app="sol")
    with pytest.raises(DeviceError, match="open the Ethereum app"):
        await signer.sign(normalise(type2()))


async def test_contract_data_disabled(device: Device) -> None:
    signer = await LedgerEvmSigner.open(device.transport(), prompt=Prompts())
    device.set(contract_data=False)
    assert await signer.sign(normalise(type2()))  # a plain transfer still works
    with pytest.raises(DeviceError, match="enable 'Blind signing'"):
        await signer.sign(normalise(type2(data="0xd0e30db0", gas=60000)))


async def test_solana_blind_signing_disabled(device: Device) -> None:
    from solders.instruction import Instruction

    device.set(app="sol", blind_signing=False)
    signer = await LedgerSolanaSigner.open(device.transport(), prompt=Prompts())
    payer = Pubkey.from_string(signer.identity)
    assert await signer.sign_solana_message(solana_message(payer))  # System only: clear-signed
    memo = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")
    msg = MessageV0.try_compile(payer, [Instruction(memo, b"hi", [])], [], Hash.new_unique())
    with pytest.raises(DeviceError, match="enable 'Allow blind sign'"):
        await signer.sign_solana_message(to_bytes_versioned(msg))


async def test_short_reply_is_a_device_error(device: Device) -> None:
    device.set(short_reply=True)
    with pytest.raises(DeviceError, match="unexpected length"):
        await LedgerEvmSigner.open(device.transport())
    signer = await LedgerEvmSigner.open(device.transport(), prompt=Prompts())
    device.set(short_reply=True)
    with pytest.raises(DeviceError, match="64 bytes, expected 65"):
        await signer.sign(normalise(type2()))
    device.set(app="sol", short_reply=True)
    with pytest.raises(DeviceError, match="31 bytes, expected 32"):
        await LedgerSolanaSigner.open(device.transport())


async def test_configured_address_must_match_device(device: Device) -> None:
    with pytest.raises(ConfigError, match="not the configured"):
        await LedgerEvmSigner.open(device.transport(), expected="0x" + "22" * 20)


async def test_wrong_family_and_factory(device: Device) -> None:
    signer = await open_ledger_signer("evm", transport=f"tcp://127.0.0.1:{device.port}")
    assert isinstance(signer, LedgerEvmSigner)
    with pytest.raises(ConfigError, match="cannot sign a Solana"):
        await signer.sign_solana_message(b"x")
    with pytest.raises(ConfigError, match="ledger transport"):
        make_transport("bluetooth")


def test_no_device_listening() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DeviceError, match="no Ledger reachable"):
        TcpTransport("127.0.0.1", port, connect_timeout=1).exchange(b"\xe0\x02\x00\x00\x00")


def test_solana_chunk_flags() -> None:
    assert sol_chunks(b"x" * 10) == [(0, b"x" * 10)]
    flags = [p2 for p2, _ in sol_chunks(b"x" * 600)]
    assert flags == [0x02, 0x03, 0x01]


def test_hid_framing_round_trip() -> None:
    apdu = bytes(range(256)) + b"\x01" * 44
    packets = hid_wrap(apdu)
    assert all(len(p) == HID_PACKET for p in packets)
    assert packets[0][:7] == bytes([0x01, 0x01, 0x05, 0x00, 0x00]) + len(apdu).to_bytes(2, "big")
    assert [int.from_bytes(p[3:5], "big") for p in packets] == list(range(len(packets)))
    unwrap = HidUnwrapper()
    results = [unwrap.feed(p) for p in packets]
    assert results[:-1] == [None] * (len(packets) - 1) and results[-1] == apdu
    bad = HidUnwrapper()
    with pytest.raises(DeviceError, match="sequence"):
        bad.feed(packets[1])


def test_hid_transport_with_a_fake_hidapi(monkeypatch: pytest.MonkeyPatch) -> None:
    """The HID code path without hardware: a fake ``hid`` module that echoes an address reply."""
    written: list[bytes] = []

    class FakeDevice:
        def open_path(self, path: bytes) -> None:
            assert path == b"fake-path"

        def write(self, data: bytes) -> int:
            assert data[0] == 0 and len(data) == HID_PACKET + 1
            written.append(data[1:])
            return len(data)

        def read(self, size: int, timeout: int) -> list[int]:
            if not hasattr(self, "replies"):
                self.replies = hid_wrap(b"\x2a" * 70 + b"\x90\x00")
            return list(self.replies.pop(0))

        def close(self) -> None:
            pass

    fake = types.ModuleType("hid")
    fake.enumerate = lambda vid, pid: [  # type: ignore[attr-defined]
        {"path": b"fake-path", "usage_page": 0xFFA0, "interface_number": 0}
    ]
    fake.device = FakeDevice  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "hid", fake)
    transport = make_transport("hid")
    data, sw = transport.exchange(b"\xe0\x02\x00\x00\x00")
    assert sw == 0x9000 and data == b"\x2a" * 70
    assert written[0][:7] == b"\x01\x01\x05\x00\x00\x00\x05"


def test_hid_without_hidapi_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "hid", None)  # makes ``import hid`` fail
    with pytest.raises(DeviceError, match="pip install hidapi"):
        HidTransport()


async def test_open_signer_from_config_values(device: Device, tmp_path: Any) -> None:
    from rebalancer.wallet.base import Signer
    from rebalancer.wallet.factory import open_signer
    from rebalancer.wallet.local import write_solana_keypair

    local = LocalSolanaSigner(bytes(Keypair()))
    info = write_solana_keypair(tmp_path, "k", local, "pw", scrypt_n=2**12)
    signer = await open_signer(
        kind="keyfile",
        family="solana",
        address=local.identity,
        environ={"PW": "pw"},
        file=str(info.path),
        passphrase_env="PW",
    )
    assert isinstance(signer, Signer) and signer.identity == local.identity
    with pytest.raises(ConfigError, match="not the wallet's address"):
        await open_signer(
            kind="keyfile", family="solana", address=str(Keypair().pubkey()), environ={"PW": "pw"},
            file=str(info.path), passphrase_env="PW",
        )  # fmt: skip
    with pytest.raises(ConfigError, match="not the configured"):
        await open_signer(
            kind="ledger", family="evm", address="0x" + "00" * 20, environ={},
            transport=f"tcp://127.0.0.1:{device.port}",
        )  # fmt: skip
