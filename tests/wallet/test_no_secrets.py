"""Run every signing flow with DEBUG logging and scan everything printed or logged for secrets.

The emulator runs in a thread here (still over real TCP) so its own logs are captured too.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer

from rebalancer.cli import main
from rebalancer.core.errors import RebalancerError
from rebalancer.localnet.ledger_emulator import TEST_MNEMONIC, LedgerEmulator, serve_in_thread
from rebalancer.wallet.evm_tx import normalise
from rebalancer.wallet.hd import evm_key_from_seed, seed_from_mnemonic, solana_key_from_seed
from rebalancer.wallet.ledger import LedgerEvmSigner, LedgerSolanaSigner, TcpTransport
from rebalancer.wallet.local import load_signer

PASSPHRASE = "Tr0ub4dor&3-very-secret"
EVM_KEY = "8da4ef21b864d2cc526dbdb2a120bd2874c36c9d0a1fb7f8c63d7f7a8b41de8f"
TX = {
    "type": 2,
    "chainId": 1,
    "nonce": 0,
    "maxFeePerGas": 10**10,
    "maxPriorityFeePerGas": 10**9,
    "gas": 50_000,
    "to": "0x000000000000000000000000000000000000dEaD",
    "value": 1,
    "data": "0xd0e30db0",
}


@pytest.fixture
def emulator() -> Iterator[LedgerEmulator]:
    emu = LedgerEmulator()
    server = serve_in_thread(emu)
    emu.port = server.port  # type: ignore[attr-defined]
    try:
        yield emu
    finally:
        server.shutdown()
        server.server_close()


def _secrets() -> list[str]:
    seed = seed_from_mnemonic(TEST_MNEMONIC)
    sol_seed = solana_key_from_seed(seed)
    sol_pair = bytes(Keypair.from_seed(sol_seed))
    ledger_evm = evm_key_from_seed(seed)
    words = TEST_MNEMONIC.split()
    return [
        PASSPHRASE,
        EVM_KEY,
        TEST_MNEMONIC,
        " ".join(words[:3]),
        seed.hex(),
        sol_seed.hex(),
        str(Keypair.from_seed(sol_seed)),  # base58 of the 64 bytes, as wallets export it
        json.dumps(list(sol_pair)),
        ",".join(str(b) for b in sol_pair[:16]),
        ledger_evm.hex(),
    ]


async def test_no_secret_in_any_output(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    emulator: LedgerEmulator,
) -> None:
    caplog.set_level(logging.DEBUG)
    keys_dir = tmp_path / "keys"
    monkeypatch.setenv("REBALANCER_KEYS_DIR", str(keys_dir))
    monkeypatch.setenv("PASS", PASSPHRASE)
    monkeypatch.setenv("EVM_SECRET", EVM_KEY)
    monkeypatch.setenv("PHRASE", TEST_MNEMONIC)
    monkeypatch.setenv("WRONG", "wrong " + PASSPHRASE[::-1])
    fast = ["--passphrase-env", "PASS", "--kdf-n", "4096"]

    # the CLI, with and without --json, including failures
    for argv in (
        ["keys", "import", "e", "--family", "evm", "--secret-env", "EVM_SECRET", *fast],
        ["keys", "import", "s", "--family", "solana", "--mnemonic", "--secret-env", "PHRASE",
         *fast],
        ["keys", "import", "p", "--family", "solana", "--mnemonic", "--secret-env", "PHRASE",
         "--plain", "--json"],
        ["keys", "new", "n", "--family", "solana", "--json", *fast],
        ["keys", "import", "e2", "--family", "evm", "--from-file", str(keys_dir / "e.json"),
         "--passphrase-env", "WRONG"],
        ["keys", "import", "bad", "--family", "evm", "--secret-env", "PHRASE", *fast],
        ["keys", "import", "bad", "--family", "solana", "--secret-env", "PHRASE", *fast],
        ["keys", "list"],
        ["keys", "list", "--json"],
        ["keys", "show", "e"],
        ["keys", "show", "s", "--json"],
    ):  # fmt: skip
        main(argv)

    # local signers: load, sign, show
    evm = load_signer(keys_dir / "e.json", PASSPHRASE)
    sol = load_signer(keys_dir / "s.json", PASSPHRASE)
    print(evm, repr(sol), [evm, sol], vars(type(evm)).keys())
    logging.getLogger("test").debug("signers %r %s", evm, sol)
    signed = await evm.sign(normalise(TX))
    print(signed)
    payer = Pubkey.from_string(sol.identity)
    ix = transfer(TransferParams(from_pubkey=payer, to_pubkey=Keypair().pubkey(), lamports=5))
    message = to_bytes_versioned(MessageV0.try_compile(payer, [ix], [], Hash.new_unique()))
    print(await sol.sign_solana_message(message))
    for bad in ("wrong", ""):
        try:
            load_signer(keys_dir / "s.json", bad)
        except RebalancerError as exc:
            print(exc)

    # the Ledger path (default prompt prints to stderr), over TCP
    port = emulator.port  # type: ignore[attr-defined]
    ledger = await LedgerEvmSigner.open(TcpTransport("127.0.0.1", port))
    print(ledger, await ledger.sign(normalise(TX)))
    emulator.state.app = "sol"
    ledger_sol = await LedgerSolanaSigner.open(TcpTransport("127.0.0.1", port))
    print(ledger_sol, await ledger_sol.sign_solana_message(message))
    print(emulator)
    try:
        seed_from_mnemonic(TEST_MNEMONIC.replace("skin", "skin skin"))
    except RebalancerError as exc:
        print(exc)
    await asyncio.sleep(0)

    out, err = capfd.readouterr()
    text = "\n".join([out, err, caplog.text])
    assert "imported" in out and sol.identity in text and "wrong passphrase" in err
    assert "Confirm on the Ledger" in err
    for secret in _secrets():
        assert secret not in text, f"a secret leaked: {secret[:6]}..."
        assert secret.lower() not in text.lower()
    for path in keys_dir.glob("*.json"):
        if json.loads(path.read_text()) and path.name != "p.json":  # p.json is plain on purpose
            body = path.read_text()
            assert (
                EVM_KEY not in body
                and solana_key_from_seed(seed_from_mnemonic(TEST_MNEMONIC)).hex() not in body
            )
