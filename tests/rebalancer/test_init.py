"""``rebalancer init`` scripted with flags: a config that validates, no secret in it, no
overwrite without --force."""

from __future__ import annotations

from pathlib import Path

import pytest

from rebalancer.cli import main
from rebalancer.config import load_config

KEYS = Path(__file__).parents[2] / "examples" / "keys"
EVM = "0x38933fB3600db971A459767D149B492e58e40b76"
SOL = "6mEAPbHcy66wK4T2iyhJnZhaZuY4mjqa3P8rBZSU18td"

LOCAL = [
    "--rpc", "ethereum=localnet:ethereum",
    "--rpc", "avalanche=localnet:avalanche",
    "--rpc", "solana=localnet:solana",
    "--aggregator-url", "1inch=localnet:1inch",
    "--aggregator-url", "jupiter=localnet:jupiter",
]  # fmt: skip


def init(tmp_path: Path, *flags: str) -> int:
    return main(["init", "-c", str(tmp_path / "rebalancer.toml"), "--no-input", *flags])


def test_flags_write_a_config_that_validates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = ["--evm-keyfile", str(KEYS / "demo-evm.json"), "--evm-passphrase-env", "DEMO_PASS"]
    assert init(tmp_path, *flags, "--solana-address", SOL, *LOCAL) == 0
    out = capsys.readouterr().out
    assert "DEMO_PASS" in out and "ONEINCH_API_KEY" in out and "rebalancer doctor" in out
    config, _ = load_config(tmp_path / "rebalancer.toml")
    assert [w.address for w in config.wallets] == [EVM, SOL]
    assert config.wallets[0].signer is not None and config.wallets[1].signer is None
    assert config.strategy.band_pp == 5 and set(config.strategy.targets) == {
        "BTC",
        "ETH",
        "ALTS",
        "STABLES",
    }
    assert "#" in (tmp_path / "rebalancer.toml").read_text()  # commented


def test_defaults_are_env_placeholders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert init(tmp_path, "--evm-address", EVM, "--chains", "ethereum") == 0
    config, _ = load_config(tmp_path / "rebalancer.toml")
    assert config.chains["ethereum"].rpc == "env:ETHEREUM_RPC_URL"
    assert "ETHEREUM_RPC_URL" in capsys.readouterr().out


def test_refuses_overwrite_and_a_secret_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert init(tmp_path, "--evm-address", EVM) == 0
    before = (tmp_path / "rebalancer.toml").read_text()
    assert init(tmp_path, "--evm-address", EVM, "--targets", "BTC=100") == 2
    assert "--force" in capsys.readouterr().err
    assert (tmp_path / "rebalancer.toml").read_text() == before
    url = "https://mainnet.example/v3/TOPSECRET"
    assert init(tmp_path, "--force", "--evm-address", EVM, "--rpc", f"ethereum={url}") == 2
    err = capsys.readouterr().err
    assert "env:VAR" in err and "TOPSECRET" not in err
    assert (tmp_path / "rebalancer.toml").read_text() == before
    # invalid answers (targets not summing to 100) write nothing
    assert init(tmp_path, "--force", "--evm-address", EVM, "--targets", "BTC=50") == 2
    assert (tmp_path / "rebalancer.toml").read_text() == before
    assert list(tmp_path.iterdir()) == [tmp_path / "rebalancer.toml"]


def test_ledger_needs_its_address(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert init(tmp_path, "--evm-ledger", "m/44'/60'/0'/0/0") == 2
    assert "--evm-address" in capsys.readouterr().err
    assert init(tmp_path, "--evm-ledger", "m/44'/60'/0'/0/0", "--evm-address", EVM) == 0
    config, _ = load_config(tmp_path / "rebalancer.toml")
    signer = config.wallets[0].signer
    assert signer is not None and signer.kind == "ledger" and signer.path == "m/44'/60'/0'/0/0"


def _converse(
    argv: list[str], cwd: Path, env: dict[str, str], answers: dict[str, str]
) -> tuple[int, list[str], str]:
    """Run ``argv`` on a pseudo-terminal, answering each prompt by the first key of
    ``answers`` it contains (longest keys first); returns the exit code, the prompts seen and
    everything the terminal showed."""
    import os
    import pty
    import select
    import subprocess
    import time

    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env)
    os.close(slave)
    keys = sorted(answers, key=len, reverse=True)
    seen: list[str] = []
    shown = ""
    pending = ""
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 4096).decode()
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
            pending += chunk
            line = pending.rsplit("\n", 1)[-1]
            if line.endswith(": "):
                key = next((k for k in keys if k in line), None)
                assert key is not None, f"unexpected prompt {line!r}"
                seen.append(key)
                os.write(master, (answers[key] + "\n").encode())
                pending = ""
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return code, seen, shown


def test_prompts_on_a_terminal_write_a_config_doctor_passes(
    evm_worlds: dict[str, object],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``init`` with no flags on a real pseudo-terminal: every question asked, answered as a
    person would (defaults taken with Enter), and the config it writes passes ``doctor``."""
    import json
    import os
    import shutil
    import sys

    exe = shutil.which("rebalancer", path=str(Path(sys.executable).parent))
    assert exe, "the rebalancer console script"
    answers = {
        "chains": "",
        "EVM (Ethereum/Avalanche) wallet": "keyfile",
        "EVM (Ethereum/Avalanche) key file": str(KEYS / "demo-evm.json"),
        "EVM (Ethereum/Avalanche) key file passphrase": "INIT_TEST_PASS",
        "Solana wallet": "keyfile",
        "Solana key file": str(KEYS / "demo-solana.json"),
        "Solana key file passphrase": "INIT_TEST_PASS",
        "ethereum node": "localnet:ethereum",
        "avalanche node": "localnet:avalanche",
        "solana node": "localnet:solana",
        "1inch API (": "localnet:1inch",
        "1inch API key": "",
        "jupiter API (": "localnet:jupiter",
        "jupiter API key": "",
        "targets": "",
        "band": "4",
        "journal": "journal.sqlite",
    }
    env = {k: v for k, v in os.environ.items() if k != "INIT_TEST_PASS"}
    code, seen, shown = _converse([exe, "init"], tmp_path, env, answers)
    assert code == 0, shown
    must = set(answers) - {"Solana key file passphrase"}  # asked only for an encrypted file
    assert must <= set(seen), (must - set(seen), shown)
    assert seen[0] == "chains" and seen[-1] == "journal"
    assert "[BTC=40,ETH=30,ALTS=20,STABLES=10]" in shown  # the brief's start, offered
    assert "INIT_TEST_PASS" in shown and "rebalancer doctor" in shown  # what to set next
    cfg = tmp_path / "rebalancer.toml"
    config, _ = load_config(cfg)
    assert config.strategy.band_pp == 4 and set(config.strategy.targets) == {
        "BTC",
        "ETH",
        "ALTS",
        "STABLES",
    }
    assert [w.address for w in config.wallets] == [EVM, SOL]
    from tests.rebalancer.test_doctor import local_feeds

    local_feeds(cfg)
    monkeypatch.setenv("INIT_TEST_PASS", "demo")
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["doctor", "-c", str(cfg), "--json", "--timeout", "5"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] and all(c["status"] == "ok" for c in doc["checks"]), doc
