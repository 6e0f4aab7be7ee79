"""Swaps signed by the emulated Ledger through the whole engine: ``rebalancer apply`` with a
wallet whose ``signer = { kind = "ledger", transport = "tcp://127.0.0.1:PORT" }``.

The device is ``python -m rebalancer.localnet.ledger_emulator`` as a real process behind the
real TCP transport and APDU code. Its addresses are funded fresh on the session's worlds (anvil
reverted after each test; on Solana a path of its own, so no other test's balances move).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from solders.keypair import Keypair

from rebalancer.localnet.ledger_emulator import TEST_MNEMONIC
from rebalancer.localnet.rpc import Rpc
from rebalancer.localnet.solana_fixtures import maker_keypair
from rebalancer.wallet.hd import evm_key_from_seed, seed_from_mnemonic, solana_key_from_seed
from tests.conftest import rpc_call
from tests.dex.test_jupiter import fund, holding
from tests.rebalancer.test_execution import WALLET, run_json, write_config
from tests.rebalancer.test_external import REG, trade, write_plan
from tests.wallet.conftest import EMULATOR, Device, listening

SEED = seed_from_mnemonic(TEST_MNEMONIC)
LEDGER_EVM = Account.from_key(evm_key_from_seed(SEED)).address
SOL_PATH = "m/44'/501'/7'/0'"
LEDGER_SOL = str(Keypair.from_seed(solana_key_from_seed(SEED, SOL_PATH)).pubkey())
FIXTURES = Path(__file__).parents[2] / "fixtures" / "evm"


@pytest.fixture(scope="module")
def ledger_port() -> Iterator[int]:
    """The emulated device as its own process on a free loopback port."""
    with listening(EMULATOR) as port:
        yield port


@pytest.fixture
def device(ledger_port: int) -> Iterator[Device]:
    dev = Device(ledger_port)
    dev.set(app="eth", locked=False, reject=False, contract_data=True, blind_signing=True)
    try:
        yield dev
    finally:
        dev.close()


def ledger_config(tmp_path: Path, port: int, solana: bool = False) -> Path:
    """The execution tests' config with the Ledger's wallet instead of the demo key file."""
    cfg = write_config(tmp_path, f'rfq_makers = ["{maker_keypair().pubkey()}"]')
    text = cfg.read_text()
    start = text.index("[[wallets]]")
    end = text.index("[strategy]")
    wallet = (
        f'[[wallets]]\nname = "ledger"\naddress = "{LEDGER_EVM}"\n'
        'chains = ["ethereum", "avalanche"]\n'
        f'signer = {{ kind = "ledger", transport = "tcp://127.0.0.1:{port}" }}\n\n'
    )
    text = text[:start] + wallet + text[end:]
    assert WALLET not in text
    if solana:
        text += (
            '\n[chains.solana]\nrpc = "localnet:solana"\n'
            '[aggregators.jupiter]\nbase_url = "localnet:jupiter"\n'
            'api_key_env = "JUPITER_API_KEY"\n'
            f'[[wallets]]\nname = "ledger-sol"\naddress = "{LEDGER_SOL}"\nchains = ["solana"]\n'
            f'signer = {{ kind = "ledger", path = "{SOL_PATH}", '
            f'transport = "tcp://127.0.0.1:{port}" }}\n'
        )
    cfg.write_text(text)
    return cfg


def fund_evm(url: str, usdc: int) -> None:
    """ETH for gas (anvil_setBalance) and USDC minted by the world's deployer."""
    world = json.loads((FIXTURES / "ethereum.world.json").read_text())
    token = REG.by_symbol("ethereum", "USDC")
    assert token is not None and token.address is not None
    rpc = Rpc(url)
    try:
        rpc.call("anvil_setBalance", LEDGER_EVM, hex(10**19))
        rpc.transact(world["deployer"], token.address, "mint(address,uint256)", LEDGER_EVM, usdc)
    finally:
        rpc.close()


def usdc_to_weth(
    worlds: dict[str, Any], tmp_path: Path, port: int, trade_id: str
) -> tuple[Path, Path]:
    """Config and plan for one Ledger-signed trade: $2,000 of the 5,000 USDC funded, for WETH."""
    fund_evm(worlds["ethereum"]["url"], 5_000 * 10**6)
    cfg = ledger_config(tmp_path, port)
    plan = write_plan(
        tmp_path / "plan.json",
        [trade(trade_id, "ethereum", LEDGER_EVM, "USDC", "WETH", Decimal(2000))],
    )
    return cfg, plan


def ledger_nonce(worlds: dict[str, Any]) -> int:
    url = worlds["ethereum"]["url"]
    return int(rpc_call(url, "eth_getTransactionCount", LEDGER_EVM, "latest"), 16)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONEINCH_API_KEY", "test-key")
    monkeypatch.setenv("JUPITER_API_KEY", "test-key")


def test_a_ledger_signed_swap_with_its_approval_executes(
    evm_isolated: dict[str, Any],
    device: Device,
    env: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg, plan = usdc_to_weth(evm_isolated, tmp_path, device.port, "ledger-usdc")
    code, out = run_json(capsys, "apply", str(plan), "-c", str(cfg), "--yes")
    assert code == 0, out
    (t,) = out["trades"]
    assert t["status"] == "confirmed" and int(t["realised_out"]) >= int(t["min_out"]) > 0
    assert ledger_nonce(evm_isolated) == 2  # the approval and the swap, both from the device
    url = evm_isolated["ethereum"]["url"]
    hashes = _journal_hashes(cfg.parent / "journal.sqlite")
    assert len(hashes) == 2
    nonces = set()
    for tx_hash in hashes:
        got = rpc_call(url, "eth_getTransactionByHash", tx_hash)
        assert got["from"].lower() == LEDGER_EVM.lower() and int(got["type"], 16) == 2
        nonces.add(int(got["nonce"], 16))
    assert nonces == {0, 1}


def _journal_hashes(path: Path) -> list[str]:
    from rebalancer.journal import Journal

    j = Journal(path)
    try:
        return [t.tx_hash for t in j.trades() if t.tx_hash is not None]
    finally:
        j.close()


def test_rejected_on_the_device_exits_5_and_sends_nothing(
    evm_isolated: dict[str, Any],
    device: Device,
    env: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg, plan = usdc_to_weth(evm_isolated, tmp_path, device.port, "ledger-no")
    device.set(reject=True)
    capsys.readouterr()
    code = main_apply(plan, cfg)
    err = capsys.readouterr().err
    assert code == 5, err
    assert "reject" in err.lower()
    assert ledger_nonce(evm_isolated) == 0
    assert _journal_hashes(cfg.parent / "journal.sqlite") == []


def main_apply(plan: Path, cfg: Path) -> int:
    from rebalancer.cli import main

    return main(["apply", str(plan), "-c", str(cfg), "--yes"])


def test_a_ledger_signed_solana_swap_executes(
    evm_worlds: dict[str, Any],
    device: Device,
    env: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    node = evm_worlds["solana"]["url"]
    fund(node, Keypair.from_seed(solana_key_from_seed(SEED, SOL_PATH)).pubkey(), 5 * 10**9, {})
    device.set(app="sol")
    cfg = ledger_config(tmp_path, device.port, solana=True)
    plan = write_plan(
        tmp_path / "plan.json",
        [trade("ledger-sol", "solana", LEDGER_SOL, "SOL", "USDC", Decimal(1))],
    )
    from solders.pubkey import Pubkey

    before = holding(node, Pubkey.from_string(LEDGER_SOL), "USDC")
    code, out = run_json(capsys, "apply", str(plan), "-c", str(cfg), "--yes")
    assert code == 0, out
    (t,) = out["trades"]
    assert t["status"] == "confirmed" and int(t["realised_out"]) >= int(t["min_out"]) > 0
    assert holding(node, Pubkey.from_string(LEDGER_SOL), "USDC") - before >= int(t["min_out"])
