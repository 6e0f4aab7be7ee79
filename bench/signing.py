"""Signing cost: local keys vs the emulated Ledger over TCP, and key-file decryption.

The Ledger figures measure our APDU/transport overhead only (a person pressing buttons takes
seconds). Prints figures for a person, and as its last line one JSON object of them. Run with
`.venv/bin/python bench/signing.py` (serves its own emulator on 127.0.0.1 in a thread).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer

from rebalancer.localnet.ledger_emulator import TEST_MNEMONIC, LedgerEmulator, serve_in_thread
from rebalancer.wallet.evm_tx import normalise
from rebalancer.wallet.hd import evm_key_from_seed, seed_from_mnemonic, solana_key_from_seed
from rebalancer.wallet.ledger import LedgerEvmSigner, LedgerSolanaSigner, TcpTransport
from rebalancer.wallet.local import (
    SCRYPT_N,
    LocalEvmSigner,
    LocalSolanaSigner,
    load_signer,
    write_evm_keystore,
    write_solana_keypair,
)

ROUNDS = 50
TX: dict[str, Any] = {
    "type": 2,
    "chainId": 1,
    "nonce": 0,
    "maxFeePerGas": 10**10,
    "maxPriorityFeePerGas": 10**9,
    "gas": 200_000,
    "to": "0x000000000000000000000000000000000000dEaD",
    "value": 0,
    "data": "0x" + "ab" * 600,  # a swap-sized calldata: 4 APDU chunks
}
UTX = normalise(TX)  # the engine hands signers this typed form, never a dict


def _quiet(_: str) -> None:
    pass


async def _median_ms(fn: Callable[[], Awaitable[object]], rounds: int = ROUNDS) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        await fn()
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 3)


async def main() -> dict[str, float]:
    seed = seed_from_mnemonic(TEST_MNEMONIC)
    local_evm = LocalEvmSigner(evm_key_from_seed(seed))
    local_sol = LocalSolanaSigner.from_seed(solana_key_from_seed(seed))
    emulator = LedgerEmulator()
    server = serve_in_thread(emulator)
    try:
        ledger_evm = await LedgerEvmSigner.open(
            TcpTransport("127.0.0.1", server.port), prompt=_quiet
        )
        emulator.state.app = "sol"
        ledger_sol = await LedgerSolanaSigner.open(
            TcpTransport("127.0.0.1", server.port), prompt=_quiet
        )
        payer = Pubkey.from_string(local_sol.identity)
        ixs = [
            transfer(TransferParams(from_pubkey=payer, to_pubkey=Keypair().pubkey(), lamports=1))
            for _ in range(10)
        ]
        message = to_bytes_versioned(MessageV0.try_compile(payer, ixs, [], Hash.new_unique()))
        figures = {
            "evm_local_ms": await _median_ms(lambda: local_evm.sign(UTX)),
            "sol_local_ms": await _median_ms(lambda: local_sol.sign_solana_message(message)),
            "sol_ledger_tcp_ms": await _median_ms(lambda: ledger_sol.sign_solana_message(message)),
        }
        emulator.state.app = "eth"
        figures["evm_ledger_tcp_ms"] = await _median_ms(lambda: ledger_evm.sign(UTX))
    finally:
        server.shutdown()
        server.server_close()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        evm_info = write_evm_keystore(d, "e", local_evm, "bench pass", scrypt_n=SCRYPT_N)
        sol_info = write_solana_keypair(d, "s", local_sol, "bench pass", scrypt_n=SCRYPT_N)

        async def decrypt_evm() -> object:
            return load_signer(evm_info.path, "bench pass")

        async def decrypt_sol() -> object:
            return load_signer(sol_info.path, "bench pass")

        figures["keystore_decrypt_ms"] = await _median_ms(decrypt_evm, 3)
        figures["solana_encrypted_decrypt_ms"] = await _median_ms(decrypt_sol, 3)
    figures["solana_message_bytes"] = len(message)
    figures["evm_payload_bytes"] = 600
    return figures


if __name__ == "__main__":
    result = asyncio.run(main())
    print(
        f"EVM type-2 sign, 600-byte calldata: local {result['evm_local_ms']} ms, "
        f"emulated Ledger over TCP {result['evm_ledger_tcp_ms']} ms (median of {ROUNDS})"
    )
    print(
        f"Solana sign, {result['solana_message_bytes']}-byte message: local "
        f"{result['sol_local_ms']} ms, emulated Ledger over TCP {result['sol_ledger_tcp_ms']} ms"
    )
    print(
        f"Key file decryption (scrypt n=2^18): keystore v3 {result['keystore_decrypt_ms']} ms, "
        f"encrypted Solana keypair {result['solana_encrypted_decrypt_ms']} ms"
    )
    print(json.dumps(result))
