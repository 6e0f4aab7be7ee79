"""Local key files: round trips, wrong passphrases, corruption, permissions, no secret in repr."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from solders.keypair import Keypair

from rebalancer.core.errors import ConfigError, UserRejectedError
from rebalancer.wallet.evm_tx import normalise
from rebalancer.wallet.local import (
    LocalEvmSigner,
    LocalSolanaSigner,
    default_keys_dir,
    list_keys,
    load_signer,
    read_key_info,
    resolve_passphrase,
    write_evm_keystore,
    write_solana_keypair,
)

N = 2**12  # scrypt cost for tests; real files use 2**18
PASS = "correct horse battery staple"
EVM_KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_keystore_round_trip_and_perms(tmp_path: Path) -> None:
    keys_dir = tmp_path / "keys"
    signer = LocalEvmSigner(EVM_KEY)
    info = write_evm_keystore(keys_dir, "hot", signer, PASS, scrypt_n=N)
    assert info.kind == "keystore-v3" and info.encrypted
    assert info.identity == signer.identity == "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"
    assert _mode(info.path) == 0o600 and _mode(keys_dir) == 0o700
    loaded = load_signer(info.path, PASS)
    assert isinstance(loaded, LocalEvmSigner) and loaded.identity == signer.identity
    doc = json.loads(info.path.read_text())
    assert doc["crypto"]["kdf"] == "scrypt" and doc["crypto"]["kdfparams"]["n"] == N


def test_keystore_wrong_passphrase_is_one_line(tmp_path: Path) -> None:
    info = write_evm_keystore(tmp_path, "hot", LocalEvmSigner(EVM_KEY), PASS, scrypt_n=N)
    with pytest.raises(ConfigError) as err:
        load_signer(info.path, "not it")
    assert err.value.exit_code == 2
    assert str(err.value) == f"key file {info.path}: wrong passphrase"


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d["crypto"].pop("ciphertext"),
        lambda d: d["crypto"].update(kdf="bcrypt"),
        lambda d: d["crypto"]["kdfparams"].update(salt="zz"),
    ],
)
def test_corrupted_keystore(tmp_path: Path, damage: object) -> None:
    info = write_evm_keystore(tmp_path, "hot", LocalEvmSigner(EVM_KEY), PASS, scrypt_n=N)
    doc = json.loads(info.path.read_text())
    damage(doc)  # type: ignore[operator]
    info.path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="corrupted keystore") as err:
        load_signer(info.path, PASS)
    assert "\n" not in str(err.value)


def test_truncated_and_foreign_files(tmp_path: Path) -> None:
    info = write_evm_keystore(tmp_path, "hot", LocalEvmSigner(EVM_KEY), PASS, scrypt_n=N)
    info.path.write_text(info.path.read_text()[:100])
    with pytest.raises(ConfigError, match="not JSON"):
        load_signer(info.path, PASS)
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}')
    with pytest.raises(ConfigError, match="neither a keystore"):
        read_key_info(other)
    short = tmp_path / "short.json"
    short.write_text("[1, 2, 3]")
    with pytest.raises(ConfigError, match="64 bytes"):
        load_signer(short, None)
    with pytest.raises(ConfigError, match="does not exist"):
        load_signer(tmp_path / "missing.json", None)


async def test_solana_plain_file_is_solana_keygen_format(tmp_path: Path) -> None:
    kp = Keypair()
    signer = LocalSolanaSigner(bytes(kp))
    info = write_solana_keypair(tmp_path, "bot", signer, None)
    assert json.loads(info.path.read_text()) == list(bytes(kp))
    assert info.kind == "solana-keygen" and not info.encrypted
    assert info.identity == str(kp.pubkey()) and _mode(info.path) == 0o600
    loaded = load_signer(info.path, lambda: pytest.fail("plain files need no passphrase"))
    message = b"\x80hello"
    assert await loaded.sign_solana_message(message) == bytes(kp.sign_message(message))


async def test_solana_encrypted_round_trip(tmp_path: Path) -> None:
    kp = Keypair()
    info = write_solana_keypair(tmp_path, "sol", LocalSolanaSigner(bytes(kp)), PASS, scrypt_n=N)
    doc = json.loads(info.path.read_text())
    assert doc["pubkey"] == str(kp.pubkey()) and doc["crypto"]["cipher"] == "aes-256-gcm"
    assert str(list(bytes(kp))[:8])[1:-1] not in info.path.read_text()
    assert read_key_info(info.path).identity == str(kp.pubkey())
    loaded = load_signer(info.path, PASS)
    assert loaded.identity == str(kp.pubkey())
    assert await loaded.sign_solana_message(b"m") == bytes(kp.sign_message(b"m"))
    with pytest.raises(ConfigError, match="wrong passphrase"):
        load_signer(info.path, "nope")


def test_solana_encrypted_tampering_is_caught(tmp_path: Path) -> None:
    info = write_solana_keypair(
        tmp_path, "sol", LocalSolanaSigner(bytes(Keypair())), PASS, scrypt_n=N
    )
    doc = json.loads(info.path.read_text())
    doc["pubkey"] = str(Keypair().pubkey())  # authenticated as associated data
    info.path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="wrong passphrase \\(or the file was altered\\)"):
        load_signer(info.path, PASS)
    doc["crypto"]["nonce"] = "xyz"
    info.path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="corrupted"):
        load_signer(info.path, PASS)


def test_never_overwrites(tmp_path: Path) -> None:
    write_solana_keypair(tmp_path, "a", LocalSolanaSigner(bytes(Keypair())), None)
    with pytest.raises(ConfigError, match="already exists"):
        write_solana_keypair(tmp_path, "a", LocalSolanaSigner(bytes(Keypair())), None)
    with pytest.raises(ConfigError, match="key name"):
        write_solana_keypair(tmp_path, "../evil", LocalSolanaSigner(bytes(Keypair())), None)
    with pytest.raises(ConfigError, match="empty"):
        write_evm_keystore(tmp_path, "b", LocalEvmSigner(EVM_KEY), "", scrypt_n=N)


def test_list_keys_skips_junk(tmp_path: Path) -> None:
    write_solana_keypair(tmp_path, "b", LocalSolanaSigner(bytes(Keypair())), None)
    write_evm_keystore(tmp_path, "a", LocalEvmSigner(EVM_KEY), PASS, scrypt_n=N)
    (tmp_path / "junk.json").write_text("{")
    assert [(i.name, i.family) for i in list_keys(tmp_path)] == [("a", "evm"), ("b", "solana")]
    assert list_keys(tmp_path / "nothing") == []


def test_repr_and_str_hold_no_secret() -> None:
    kp = Keypair()
    for signer, secret in (
        (LocalEvmSigner(EVM_KEY), EVM_KEY.hex()),
        (LocalSolanaSigner(bytes(kp)), bytes(kp)[:32].hex()),
    ):
        for text in (repr(signer), str(signer), repr([signer]), f"{signer!r}"):
            assert secret not in text and signer.identity in text
    assert str(kp) not in repr(LocalSolanaSigner(bytes(kp)))


async def test_wrong_family_is_a_usage_error() -> None:
    with pytest.raises(ConfigError, match="cannot sign a Solana"):
        await LocalEvmSigner(EVM_KEY).sign_solana_message(b"x")
    with pytest.raises(ConfigError, match="cannot sign an EVM"):
        await LocalSolanaSigner(bytes(Keypair())).sign(
            normalise(
                {
                    "chainId": 1,
                    "nonce": 0,
                    "gas": 21000,
                    "gasPrice": 1,
                    "to": "0x" + "11" * 20,
                    "value": 0,
                }
            )
        )


def test_mismatched_solana_halves_refused() -> None:
    a, b = Keypair(), Keypair()
    with pytest.raises(ConfigError, match="does not match"):
        LocalSolanaSigner(bytes(a)[:32] + bytes(b)[32:])


def test_resolve_passphrase_sources() -> None:
    env = {"MY_PASS": "s3cret"}
    assert resolve_passphrase("MY_PASS", environ=env, what="k") == "s3cret"
    with pytest.raises(ConfigError, match="MY_OTHER is not set"):
        resolve_passphrase("MY_OTHER", environ=env, what="k")
    with pytest.raises(ConfigError, match="no terminal"):
        resolve_passphrase(None, environ=env, what="k", interactive=False)
    answers = iter(["one", "two"])
    with pytest.raises(ConfigError, match="differ"):
        resolve_passphrase(
            None, environ=env, what="k", confirm=True, prompt=lambda _: next(answers)
        )
    assert resolve_passphrase(None, environ=env, what="k", prompt=lambda _: "typed") == "typed"

    def cancel(_: str) -> str:
        raise EOFError

    with pytest.raises(UserRejectedError):
        resolve_passphrase(None, environ=env, what="k", prompt=cancel)


def test_default_keys_dir() -> None:
    assert default_keys_dir({"REBALANCER_KEYS_DIR": "/x/k"}) == Path("/x/k")
    assert default_keys_dir({"XDG_DATA_HOME": "/d"}) == Path("/d/rebalancer/keys")
