"""`rebalancer balances` on the local worlds: JSON per CLI.md, tables, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from rebalancer.cli import main
from tests.conftest import rpc_call

EXAMPLE = str(Path(__file__).parents[2] / "examples" / "local.toml")
KEYS = {
    "chain",
    "wallet",
    "asset",
    "token",
    "symbol",
    "decimals",
    "raw",
    "amount",
    "price_usd",
    "value_usd",
}


def test_balances_json_matches_the_nodes(
    evm_worlds: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["balances", "-c", EXAMPLE, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"holdings", "total_usd"}
    assert Decimal(out["total_usd"]) > 50_000
    assert {h["chain"] for h in out["holdings"]} == {"ethereum", "avalanche", "solana"}
    sol = {h["symbol"]: h for h in out["holdings"] if h["chain"] == "solana"}
    assert sol["USDC"]["raw"] == "500000000"  # two token accounts of one mint, summed
    assert sol["SOL"]["wallet"] == "6mEAPbHcy66wK4T2iyhJnZhaZuY4mjqa3P8rBZSU18td"
    rows = [h for h in out["holdings"] if h["chain"] in ("ethereum", "avalanche")]
    for h in rows:
        assert set(h) >= KEYS
        assert isinstance(h["raw"], str)
        price = {"ETH": "3200", "AVAX": "25", "BTC": "95000", "USDC": "1"}.get(h["asset"])
        if price is not None:
            assert h["price_usd"] == price
            assert Decimal(h["value_usd"]) == (Decimal(h["amount"]) * Decimal(price)).quantize(
                Decimal("0.01")
            )
        if h["symbol"] in ("ETH", "AVAX"):
            url = evm_worlds[h["chain"]]["url"]
            assert int(h["raw"]) == int(rpc_call(url, "eth_getBalance", h["wallet"], "latest"), 16)
    wbtc = next(h for h in rows if h["symbol"] == "WBTC")
    assert wbtc["raw"] == "10000000" and wbtc["amount"] == "0.1" and wbtc["asset"] == "BTC"


def test_balances_table(evm_worlds: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["balances", "-c", EXAMPLE]) == 0
    out = capsys.readouterr().out
    assert "BTC.b" in out and "3,000" in out


def test_unreachable_node_exits_4(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[chains.ethereum]\nrpc = "env:ETH_RPC"\n[[wallets]]\nname = "w"\n'
        'address = "0x38933fB3600db971A459767D149B492e58e40b76"\nchains = ["ethereum"]\n'
    )
    import os

    os.environ["ETH_RPC"] = "http://127.0.0.1:9/v3/TOPSECRET"
    try:
        assert main(["balances", "-c", str(cfg)]) == 4
    finally:
        del os.environ["ETH_RPC"]
    err = capsys.readouterr().err
    assert "ethereum node at http://127.0.0.1:9/***" in err and "TOPSECRET" not in err


def test_help_is_light() -> None:
    """--help must not import web3, solders or the like (kept fast by lazy imports)."""
    code = (
        "import sys, contextlib, io\n"
        "from rebalancer.cli import main\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['--help'])\n"
        "heavy = [m for m in ('web3', 'solders', 'solana', 'scipy', 'eth_account', 'httpx')"
        " if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_wrong_chain_at_the_rpc_exits_2_naming_the_field(
    evm_worlds: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[chains.ethereum]\nrpc = "{evm_worlds["avalanche"]["url"]}"\n[[wallets]]\nname = "w"\n'
        'address = "0x38933fB3600db971A459767D149B492e58e40b76"\nchains = ["ethereum"]\n'
    )
    assert main(["balances", "-c", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "is chain id 43114" in err and "chains.ethereum.rpc" in err and err.count("\n") == 1
