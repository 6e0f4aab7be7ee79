"""EIP-55 without eth_utils gives eth_utils' answer."""

from __future__ import annotations

import pytest
from eth_utils import to_checksum_address
from hypothesis import given
from hypothesis import strategies as st

from rebalancer.chains.addresses import checksum_evm, to_checksum
from rebalancer.core.errors import ConfigError


@given(st.binary(min_size=20, max_size=20))
def test_checksum_matches_eth_utils(raw: bytes) -> None:
    address = "0x" + raw.hex()
    expected = to_checksum_address(address)
    assert to_checksum(address) == expected
    assert checksum_evm(address.upper().replace("0X", "0x"), "f") == expected
    assert checksum_evm(expected, "f") == expected


def test_bad_checksum_and_malformed_refused() -> None:
    good = "0x38933fB3600db971A459767D149B492e58e40b76"
    with pytest.raises(ConfigError, match="wrong EIP-55 checksum"):
        checksum_evm(good.replace("B", "b", 1), "wallets[0].address")
    for bad in ("0x1234", good + "00", "0x" + "g" * 40):
        with pytest.raises(ConfigError, match="not an EVM address"):
            checksum_evm(bad, "wallets[0].address")
