"""The Ledger TCP transport when the device is busy (issue 14): a request that needs no
confirmation (address, app settings) gives up after a short timeout with one line saying the
device is busy (exit 4), while a signature keeps the long timeout for the person's review.

The emulator runs as a real process with ``--exclusive`` (one client at a time, like a real
device); a second client holds it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from rebalancer.core.errors import DeviceError
from rebalancer.wallet.evm_tx import normalise
from rebalancer.wallet.ledger import DEVICE_BUSY, LedgerEvmSigner, TcpTransport
from rebalancer.wallet.local import LocalEvmSigner
from tests.wallet.conftest import EMULATOR, listening
from tests.wallet.test_ledger import Prompts, type2


@pytest.fixture
def exclusive_port() -> Iterator[int]:
    with listening([*EMULATOR, "--exclusive"]) as port:
        yield port


def _set(transport: TcpTransport, **state: object) -> None:
    body = json.dumps(state).encode()
    _data, sw = transport.exchange(bytes([0xEE, 0x01, 0, 0, len(body)]) + body)
    assert sw == 0x9000


async def test_a_device_held_by_another_client_is_busy_in_one_line(exclusive_port: int) -> None:
    other = TcpTransport("127.0.0.1", exclusive_port)
    _set(other)  # the other client is connected and holds the device
    try:
        start = time.monotonic()
        with pytest.raises(DeviceError) as err:
            await LedgerEvmSigner.open(
                TcpTransport("127.0.0.1", exclusive_port, quick_timeout=1.0), prompt=Prompts()
            )
        waited = time.monotonic() - start
    finally:
        other.close()
    assert err.value.exit_code == 4
    assert DEVICE_BUSY in str(err.value) and "\n" not in str(err.value)
    assert f"tcp://127.0.0.1:{exclusive_port}" in str(err.value)
    assert waited < 10  # the quick timeout, not the 300 s review timeout
    # once the other client lets go, the device answers
    signer = await LedgerEvmSigner.open(
        TcpTransport("127.0.0.1", exclusive_port, quick_timeout=1.0), prompt=Prompts()
    )
    assert signer.identity.startswith("0x")
    signer.client.close()


async def test_a_signature_keeps_the_long_timeout_for_the_review(
    exclusive_port: int, evm_test_key: bytes
) -> None:
    transport = TcpTransport("127.0.0.1", exclusive_port, quick_timeout=0.5)
    _set(transport, review_s=1.5)  # the person reads for longer than the quick timeout
    signer = await LedgerEvmSigner.open(transport, prompt=Prompts())
    try:
        tx = normalise(type2())
        start = time.monotonic()
        assert await signer.sign(tx) == await LocalEvmSigner(evm_test_key).sign(tx)
        assert time.monotonic() - start >= 1.5  # the review really outlasted the quick timeout
    finally:
        _set(transport, review_s=0)
        signer.client.close()
