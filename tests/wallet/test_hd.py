"""Derivation: SLIP-0010 vectors, BIP32 paths, and mnemonic errors that do not repeat the words."""

from __future__ import annotations

import pytest
from eth_account import Account

from rebalancer.core.errors import ConfigError
from rebalancer.localnet.ledger_emulator import TEST_MNEMONIC
from rebalancer.wallet.hd import (
    HARDENED,
    evm_key_from_seed,
    format_path,
    parse_path,
    seed_from_mnemonic,
    serialize_path,
    slip10_ed25519,
)

SEED1 = bytes.fromhex("000102030405060708090a0b0c0d0e0f")


@pytest.mark.parametrize(
    ("chain", "chain_code", "key"),
    [
        (
            [],
            "90046a93de5380a72b5e45010748567d5ea02bbf6522f979e05c0d8d8ca9fffb",
            "2b4be7f19ee27bbf30c667b642d5f4aa69fd169872f8fc3059c08ebae2eb19e7",
        ),
        (
            [0],
            "8b59aa11380b624e81507a27fedda59fea6d0b779a778918a2fd3590e16e9c69",
            "68e0fe46dfb67e368c75379acec591dad19df3cde26e63b93a8e704f1dade7a3",
        ),
        (
            [0, 1, 2, 2],
            "8f6d87f93d750e0efccda017d662a1b31a266e4a6f5993b15f5c1f07f74dd5cc",
            "30d1dc7e5fc04c31219ab25a27ae00b50f6fd66622f6e9c913253d6511d1e662",
        ),
    ],
)
def test_slip10_ed25519_vector_1(chain: list[int], chain_code: str, key: str) -> None:
    got_key, got_chain = slip10_ed25519(SEED1, [i | HARDENED for i in chain])
    assert got_key.hex() == key
    assert got_chain.hex() == chain_code


def test_slip10_refuses_unhardened_levels() -> None:
    with pytest.raises(ConfigError, match="hardened"):
        slip10_ed25519(SEED1, [44 | HARDENED, 501])


def test_paths_round_trip_and_serialise() -> None:
    indices = parse_path("m/44'/60'/0'/0/7")
    assert format_path(indices) == "m/44'/60'/0'/0/7"
    assert serialize_path(indices).hex() == "058000002c8000003c800000000000000000000007"
    assert parse_path("44h/501h") == [44 | HARDENED, 501 | HARDENED]
    for bad in ("m/", "m/x", "m/1/2/3/4/5/6/7/8/9/10/11", f"m/{2**31}"):
        with pytest.raises(ConfigError):
            parse_path(bad)


def test_evm_derivation_matches_eth_account() -> None:
    Account.enable_unaudited_hdwallet_features()
    expected = Account.from_mnemonic(TEST_MNEMONIC, account_path="m/44'/60'/0'/0/3").key
    assert evm_key_from_seed(seed_from_mnemonic(TEST_MNEMONIC), "m/44'/60'/0'/0/3") == expected


def test_bad_mnemonic_error_does_not_repeat_the_words() -> None:
    words = "coyote unusual rug often fly valve divert used slight above divorce divorce"
    with pytest.raises(ConfigError) as info:
        seed_from_mnemonic(words)
    assert "coyote" not in str(info.value) and "divorce" not in str(info.value)
