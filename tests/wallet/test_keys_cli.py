"""``rebalancer keys``: new/import/list/show, JSON output, exit codes, no secret on screen."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from solders.keypair import Keypair

from rebalancer.cli import main
from rebalancer.localnet.ledger_emulator import TEST_MNEMONIC
from tests.wallet.conftest import Device

EVM_KEY = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
EVM_ADDR = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"


@pytest.fixture
def keys_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("REBALANCER_KEYS_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("KEY_PASS", "pass phrase 1")
    return tmp_path / "keys"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_new_list_show_json(keys_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fast = ["--passphrase-env", "KEY_PASS", "--kdf-n", "4096"]
    code, out, _ = _run(capsys, "keys", "new", "hot", "--family", "evm", "--json", *fast)
    assert code == 0
    created = json.loads(out)
    assert (
        created["family"] == "evm" and created["encrypted"] and created["address"].startswith("0x")
    )
    code, out, _ = _run(capsys, "keys", "new", "sol", "--family", "solana", "--json", *fast)
    sol = json.loads(out)
    assert code == 0 and sol["kind"] == "solana-encrypted"
    code, out, _ = _run(capsys, "keys", "list", "--json")
    listed = json.loads(out)
    assert [k["name"] for k in listed["keys"]] == ["hot", "sol"]
    code, out, _ = _run(capsys, "keys", "show", "hot")
    assert code == 0 and out.strip() == created["address"]
    code, out, _ = _run(capsys, "keys", "show", "sol", "--json")
    assert json.loads(out)["address"] == sol["address"]
    code, _, err = _run(capsys, "keys", "new", "hot", "--family", "evm", *fast)
    assert code == 2 and "already exists" in err


def test_import_evm_hex_from_env(
    keys_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMPORT_ME", "0x" + EVM_KEY)
    code, out, err = _run(
        capsys, "keys", "import", "imp", "--family", "evm", "--secret-env", "IMPORT_ME",
        "--passphrase-env", "KEY_PASS", "--kdf-n", "4096",
    )  # fmt: skip
    assert code == 0, err
    assert EVM_ADDR in out and EVM_KEY not in out + err


def test_import_solana_keygen_file_and_mnemonic(
    keys_env: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kp = Keypair()
    src = tmp_path / "id.json"
    src.write_text(json.dumps(list(bytes(kp))))
    code, out, err = _run(
        capsys, "keys", "import", "s1", "--family", "solana", "--from-file", str(src),
        "--passphrase-env", "KEY_PASS", "--kdf-n", "4096", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["address"] == str(kp.pubkey()) and json.loads(out)["encrypted"]
    monkeypatch.setenv("PHRASE", TEST_MNEMONIC)
    code, out, err = _run(
        capsys, "keys", "import", "s2", "--family", "solana", "--mnemonic", "--secret-env",
        "PHRASE", "--plain", "--json",
    )  # fmt: skip
    assert code == 0, err
    from rebalancer.wallet.hd import seed_from_mnemonic, solana_key_from_seed

    expected = Keypair.from_seed(solana_key_from_seed(seed_from_mnemonic(TEST_MNEMONIC)))
    assert json.loads(out)["address"] == str(expected.pubkey())
    assert TEST_MNEMONIC.split()[0] not in out + err


def test_import_keystore_with_wrong_passphrase_exits_2(
    keys_env: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fast = ["--passphrase-env", "KEY_PASS", "--kdf-n", "4096"]
    _run(capsys, "keys", "new", "orig", "--family", "evm", *fast)
    monkeypatch.setenv("WRONG", "nope")
    code, out, err = _run(
        capsys, "keys", "import", "copy", "--family", "evm", "--from-file",
        str(keys_env / "orig.json"), "--passphrase-env", "WRONG",
    )  # fmt: skip
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "wrong passphrase" in err
    code, out, err = _run(
        capsys, "keys", "import", "copy", "--family", "evm", "--from-file",
        str(keys_env / "orig.json"), "--passphrase-env", "KEY_PASS",
    )  # fmt: skip
    assert code == 0, err


def test_usage_errors(keys_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "keys", "new", "x")
    assert code == 2 and "--family" in err
    code, _, err = _run(capsys, "keys", "show")
    assert code == 2 and "needs a key name" in err
    code, _, err = _run(capsys, "keys", "show", "ghost")
    assert code == 2 and "no file" in err
    code, _, err = _run(capsys, "keys", "new", "p", "--family", "evm", "--plain")
    assert code == 2 and "only Solana" in err
    code, out, _ = _run(capsys, "keys", "list")
    assert code == 0 and "no keys" in out


def test_keys_ledger_prints_the_devices_addresses(
    device: Device, capsys: pytest.CaptureFixture[str]
) -> None:
    """``keys ledger`` over TCP against the emulated device: one path, the first N accounts."""
    from eth_account import Account

    from rebalancer.wallet.hd import evm_key_from_seed, seed_from_mnemonic, solana_key_from_seed

    seed = seed_from_mnemonic(TEST_MNEMONIC)
    tcp = ["--transport", f"tcp://127.0.0.1:{device.port}"]
    code, out, _ = _run(capsys, "keys", "ledger", "--chain", "ethereum", *tcp)
    assert code == 0
    assert out.split() == ["m/44'/60'/0'/0/0", Account.from_key(evm_key_from_seed(seed)).address]
    code, out, _ = _run(
        capsys, "keys", "ledger", "--chain", "avalanche", "--account", "3", "--json", *tcp
    )
    got = json.loads(out)
    assert code == 0 and got["family"] == "evm" and len(got["accounts"]) == 3
    for i, acct in enumerate(got["accounts"]):
        path = f"m/44'/60'/{i}'/0/0"
        assert acct == {
            "path": path,
            "address": Account.from_key(evm_key_from_seed(seed, path)).address,
        }
    device.set(app="sol")
    path = "m/44'/501'/7'/0'"
    code, out, _ = _run(capsys, "keys", "ledger", "--chain", "solana", "--path", path, *tcp)
    expected = str(Keypair.from_seed(solana_key_from_seed(seed, path)).pubkey())
    assert code == 0 and out.split() == [path, expected]
    # the wrong app open: one line saying which to open, exit 4; bad usage: exit 2
    code, _, err = _run(capsys, "keys", "ledger", "--chain", "ethereum", *tcp)
    assert code == 4 and "open the Ethereum app" in err and len(err.strip().splitlines()) == 1
    code, _, err = _run(capsys, "keys", "ledger", "--chain", "dogechain", *tcp)
    assert code == 2 and "--chain dogechain" in err
    code, _, err = _run(
        capsys, "keys", "ledger", "--chain", "solana", "--path", path, "--account", "2", *tcp
    )
    assert code == 2 and "not both" in err
