"""Air-gapped signing on the local worlds: ``export PLAN --unsigned DIR``, signing out of band
with the demo keys (eth-account over the exported JSON, solders over the exported message
bytes), and ``submit DIR``; tampered or stale signed files are refused before anything is sent.

EVM trades use the demo wallet on the reverted anvil; the Solana trade uses a fresh wallet of
its own (the Solana node is shared by the session), funded as tests/dex/test_jupiter.py does.
"""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_utils import keccak
from solders.keypair import Keypair
from solders.message import from_bytes_versioned, to_bytes_versioned
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from rebalancer.chains.registry import Registry
from rebalancer.cli import main
from rebalancer.localnet.solana_fixtures import maker_keypair
from rebalancer.localnet.worlds import PRICES
from tests.conftest import rpc_call
from tests.dex.test_jupiter import fund, holding
from tests.rebalancer.test_execution import KEYS, WALLET, nonce, run_json, write_config

REG = Registry.load()
SOL = 10**9


def evm_key() -> bytes:
    key: bytes = Account.decrypt(json.loads((KEYS / "demo-evm.json").read_text()), "demo")
    return key


def sol_keypair(name: str) -> Keypair:
    return Keypair.from_seed(hashlib.sha256(b"external signing test " + name.encode()).digest())


def trade(
    tid: str, chain: str, wallet: str, sell: str, buy: str, amount: Decimal
) -> dict[str, Any]:
    """A plan trade priced at the worlds' snapshot prices (the planner's independent price)."""
    s = REG.native(chain) if sell == "SOL" else REG.by_symbol(chain, sell)
    b = REG.native(chain) if buy == "SOL" else REG.by_symbol(chain, buy)
    assert s is not None and b is not None
    usd = amount * PRICES[s.asset]
    out = int(usd / PRICES[b.asset] * Decimal(10) ** b.decimals)
    return {
        "id": tid,
        "chain": chain,
        "wallet": wallet,
        "sell": {"symbol": s.symbol, "id": s.id, "asset": s.asset, "decimals": s.decimals},
        "buy": {"symbol": b.symbol, "id": b.id, "asset": b.asset, "decimals": b.decimals},
        "amount_in": str(int(amount * Decimal(10) ** s.decimals)),
        "expected_out": str(out),
        "min_out": str(out * 97 // 100),
        "value_usd": str(usd),
        "reason": "test",
    }


def write_plan(path: Path, trades: list[dict[str, Any]]) -> Path:
    path.write_text(
        json.dumps({"created_at": datetime.now(UTC).isoformat(), "trades": trades, "skipped": []})
    )
    return path


@pytest.fixture
def setup(
    evm_isolated: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., tuple[Path, Path]]:
    """``setup(name, solana=False, jupiter="") -> (config, plan)`` (``jupiter``: lines added
    to ``[aggregators.jupiter]``); no key passphrase is set: export must not open a signer."""
    monkeypatch.delenv("DEMO_PASS", raising=False)
    monkeypatch.setenv("ONEINCH_API_KEY", "test-key")
    monkeypatch.setenv("JUPITER_API_KEY", "test-key")

    def make(name: str, solana: bool = False, jupiter: str = "") -> tuple[Path, Path]:
        cfg = write_config(tmp_path, f'rfq_makers = ["{maker_keypair().pubkey()}"]')
        trades = [
            trade(f"{name}-usdc", "ethereum", WALLET, "USDC", "WETH", Decimal(1000)),
            trade(f"{name}-wbtc", "ethereum", WALLET, "WBTC", "WETH", Decimal("0.02")),
        ]
        if solana:
            kp = sol_keypair(name)
            fund(evm_isolated["solana"]["url"], kp.pubkey(), 5 * SOL, {})
            with cfg.open("a") as f:
                f.write(
                    '\n[chains.solana]\nrpc = "localnet:solana"\n'
                    '[aggregators.jupiter]\nbase_url = "localnet:jupiter"\n'
                    f'api_key_env = "JUPITER_API_KEY"\n{jupiter}\n'
                    f'[[wallets]]\nname = "cold-sol"\naddress = "{kp.pubkey()}"\n'
                    'chains = ["solana"]\n'
                )
            trades.append(
                trade(f"{name}-sol", "solana", str(kp.pubkey()), "SOL", "USDC", Decimal(2))
            )
        return cfg, write_plan(tmp_path / "plan.json", trades)

    return make


def export(capsys: pytest.CaptureFixture[str], cfg: Path, plan: Path, out: Path) -> dict[str, Any]:
    code, doc = run_json(capsys, "export", str(plan), "--unsigned", str(out), "-c", str(cfg))
    assert code == 0, capsys.readouterr().err
    manifest: dict[str, Any] = json.loads((out / "manifest.json").read_text())
    assert doc["transactions"] == manifest["transactions"]
    return manifest


def refused(capsys: pytest.CaptureFixture[str], cfg: Path, out: Path) -> str:
    """``submit`` exits 3; its one-line error."""
    capsys.readouterr()
    code = main(["submit", str(out), "-c", str(cfg), "--yes"])
    err = capsys.readouterr().err
    assert code == 3, err
    assert len(err.strip().splitlines()) == 1, err
    return err


def sign_evm(out: Path, entry: dict[str, Any], key: bytes | None = None, **change: Any) -> None:
    """Sign the exported JSON with eth-account, as an offline wallet would (``change`` edits
    fields first: a tampered or wrong transaction)."""
    tx = json.loads((out / entry["files"]["unsigned"]).read_text())
    tx.pop("from")
    tx.update(change)
    signed = Account.sign_transaction(tx, key or evm_key())
    (out / entry["files"]["signed"]).write_text(signed.raw_transaction.hex())


def sign_solana(out: Path, entry: dict[str, Any], kp: Keypair, whole: bool = False) -> None:
    message = base64.b64decode((out / entry["files"]["message"]).read_text())
    sig = kp.sign_message(message)
    if not whole:
        (out / entry["files"]["signature"]).write_text(str(sig) + "\n")
        return
    unsigned = VersionedTransaction.from_bytes(
        base64.b64decode((out / entry["files"]["unsigned"]).read_text())
    )
    sigs = list(unsigned.signatures)
    sigs[0] = sig
    tx = VersionedTransaction.populate(unsigned.message, sigs)
    (out / entry["files"]["signed"]).write_text(base64.b64encode(bytes(tx)).decode())


def token_balance(worlds: dict[str, Any], symbol: str) -> int:
    token = REG.by_symbol("ethereum", symbol)
    assert token is not None and token.address is not None
    data = "0x70a08231" + WALLET[2:].lower().rjust(64, "0")
    result = rpc_call(
        worlds["ethereum"]["url"], "eth_call", {"to": token.address, "data": data}, "latest"
    )
    return int(result, 16)


def test_export_sign_elsewhere_submit(
    setup: Callable[..., tuple[Path, Path]],
    evm_isolated: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg, plan = setup("happy", solana=True)
    out = tmp_path / "unsigned"
    start = nonce(evm_isolated, "ethereum")
    manifest = export(capsys, cfg, plan, out)
    assert nonce(evm_isolated, "ethereum") == start  # nothing signed, nothing sent
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in out.iterdir())
    assert "signed.hex" in (out / "README.txt").read_text()
    txs = manifest["transactions"]
    evm = [t for t in txs if t["family"] == "evm"]
    assert [(t["kind"], t["nonce"]) for t in evm] == [
        ("approve", start),
        ("swap", start + 1),
        ("approve", start + 2),
        ("swap", start + 3),
    ]
    for t in evm:
        payload = bytes.fromhex((out / t["files"]["payload"]).read_text().strip()[2:])
        assert payload[0] == 2 and hashlib.sha256(payload).hexdigest() == t["sha256"]
        fields = json.loads((out / t["files"]["unsigned"]).read_text())
        fields.pop("from")
        signed = Account.sign_transaction(fields, evm_key())
        # what eth-account signs is exactly the exported RLP payload
        assert Account._recover_hash(keccak(payload), vrs=(signed.v, signed.r, signed.s)) == WALLET
        sign_evm(out, t)
    (sol,) = [t for t in txs if t["family"] == "solana"]
    assert sol["expiry"]["last_valid_block_height"] > 0 and int(sol["min_out"]) > 0
    message = base64.b64decode((out / sol["files"]["message"]).read_text())
    assert hashlib.sha256(message).hexdigest() == sol["sha256"]
    kp = sol_keypair("happy")
    sign_solana(out, sol, kp)

    weth, usdc_sol = token_balance(evm_isolated, "WETH"), 0
    node = evm_isolated["solana"]["url"]
    usdc_sol = holding(node, kp.pubkey(), "USDC")
    code, report = run_json(capsys, "submit", str(out), "-c", str(cfg), "--yes")
    assert code == 0, capsys.readouterr().err
    assert report["mode"] == "submit" and report["status"] == "ok"
    assert [t["status"] for t in report["trades"]] == ["confirmed"] * 3
    for t in report["trades"]:
        assert int(t["realised_out"]) >= int(t["min_out"]) > 0
    assert nonce(evm_isolated, "ethereum") == start + 4
    min_weth = sum(int(t["min_out"]) for t in report["trades"] if t["chain"] == "ethereum")
    assert token_balance(evm_isolated, "WETH") - weth >= min_weth
    assert holding(node, kp.pubkey(), "USDC") - usdc_sol >= int(sol["min_out"])
    code, hist = run_json(capsys, "history", "-c", str(cfg))
    assert [r["mode"] for r in hist["runs"]][:2] == ["submit", "export"]
    states = {t["id"]: t["state"] for t in hist["runs"][0]["trades"]}
    assert set(states.values()) == {"confirmed"} and len(states) == 5  # 2 approvals, 3 swaps
    # the same folder again: its nonces are used now
    assert "export again" in refused(capsys, cfg, out)


@pytest.mark.parametrize(
    ("case", "field"),
    [
        ("to", "to"),
        ("value", "value"),
        ("data", "data"),
        ("nonce", "nonce"),
        ("other key", "signature"),
    ],
)
def test_a_tampered_evm_signature_refuses_everything(
    setup: Callable[..., tuple[Path, Path]],
    evm_isolated: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
    field: str,
) -> None:
    cfg, plan = setup("tamper")
    out = tmp_path / "unsigned"
    manifest = export(capsys, cfg, plan, out)
    start = nonce(evm_isolated, "ethereum")
    txs = manifest["transactions"]
    for t in txs[:-1]:
        sign_evm(out, t)
    last = txs[-1]  # the second swap: the others are fine, and still nothing may be sent
    fields = json.loads((out / last["files"]["unsigned"]).read_text())
    changes: dict[str, dict[str, Any]] = {
        "to": {"to": "0x000000000000000000000000000000000000dEaD"},
        "value": {"value": 1},
        "data": {"data": fields["data"][:-2] + "ff"},
        "nonce": {"nonce": fields["nonce"] + 1},
        "other key": {},
    }
    change = changes[case]
    key = hashlib.sha256(b"not the wallet").digest() if case == "other key" else None
    sign_evm(out, last, key, **change)
    err = refused(capsys, cfg, out)
    assert last["files"]["signed"] in err and f"field {field}" in err
    assert nonce(evm_isolated, "ethereum") == start


def test_a_garbled_unsigned_file_is_refused_not_a_crash(
    setup: Callable[..., tuple[Path, Path]],
    evm_isolated: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg, plan = setup("garbled")
    out = tmp_path / "unsigned"
    manifest = export(capsys, cfg, plan, out)
    start = nonce(evm_isolated, "ethereum")
    for t in manifest["transactions"]:
        sign_evm(out, t)
    unsigned = out / manifest["transactions"][0]["files"]["unsigned"]
    # NOTE: 100,000 nested lists would overflow the C stack once eth_account is imported
    for text in ("{", '{"nonce": 1}', "[" * 100_000 + "]" * 100_000):
        unsigned.chmod(0o600)
        unsigned.write_text(text)
        err = refused(capsys, cfg, out)
        assert unsigned.name in err and "changed since the export" in err
    assert nonce(evm_isolated, "ethereum") == start


def test_a_changed_solana_message_or_export_is_refused(
    setup: Callable[..., tuple[Path, Path]],
    evm_isolated: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # NOTE: v1, whose transaction the local maker co-signs (the export keeps its signature)
    cfg, plan = setup("solmsg", solana=True, jupiter='api = "v1"')
    out = tmp_path / "unsigned"
    manifest = export(capsys, cfg, plan, out)
    start = nonce(evm_isolated, "ethereum")
    kp = sol_keypair("solmsg")
    for t in manifest["transactions"]:
        if t["family"] == "evm":
            sign_evm(out, t)
        else:
            sol = t
    # the wallet signs (and sends back) a different message: one account key changed
    unsigned = VersionedTransaction.from_bytes(
        base64.b64decode((out / sol["files"]["unsigned"]).read_text())
    )
    raw = bytearray(to_bytes_versioned(unsigned.message))
    assert raw[0] == 0x80 and raw[4] >= 3  # v0; at least three account keys
    raw[1 + 3 + 1 + 32 * 2 + 5] ^= 1  # a byte of the third account key
    other = from_bytes_versioned(bytes(raw))
    sigs = list(unsigned.signatures)
    sigs[0] = kp.sign_message(bytes(raw))
    forged = VersionedTransaction.populate(other, sigs)
    (out / sol["files"]["signed"]).write_text(base64.b64encode(bytes(forged)).decode())
    node = evm_isolated["solana"]["url"]
    lamports = holding(node, kp.pubkey(), "SOL")
    err = refused(capsys, cfg, out)
    assert "field message" in err and sol["files"]["signed"] in err
    # a signature by another key in the signature file
    (out / sol["files"]["signed"]).unlink()
    stranger = Keypair().sign_message(base64.b64decode((out / sol["files"]["message"]).read_text()))
    (out / sol["files"]["signature"]).write_text(str(stranger))
    err = refused(capsys, cfg, out)
    assert "does not verify for the wallet" in err
    # the maker's signature replaced
    sign_solana(out, sol, kp, whole=True)
    signed = VersionedTransaction.from_bytes(
        base64.b64decode((out / sol["files"]["signed"]).read_text())
    )
    sigs = list(signed.signatures)
    sigs[1] = Signature.default()
    broken = VersionedTransaction.populate(signed.message, sigs)
    (out / sol["files"]["signed"]).write_text(base64.b64encode(bytes(broken)).decode())
    err = refused(capsys, cfg, out)
    assert "signatures[1]" in err and "was changed" in err
    # an edited manifest (say, a lower min_out) is not the one the journal recorded
    sign_solana(out, sol, kp, whole=True)
    doc = json.loads((out / "manifest.json").read_text())
    doc["transactions"][0]["min_out"] = "1"
    (out / "manifest.json").write_text(json.dumps(doc, indent=2) + "\n")
    err = refused(capsys, cfg, out)
    assert "not written by an export" in err
    assert nonce(evm_isolated, "ethereum") == start
    assert holding(node, kp.pubkey(), "SOL") == lamports


def test_a_stale_export_is_refused(
    setup: Callable[..., tuple[Path, Path]],
    evm_isolated: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg, plan = setup("stale")
    out = tmp_path / "unsigned"
    manifest = export(capsys, cfg, plan, out)
    for t in manifest["transactions"]:
        sign_evm(out, t)
    # the wallet sends something else meanwhile: the export's first nonce is used
    start = nonce(evm_isolated, "ethereum")
    url = evm_isolated["ethereum"]["url"]
    fees = int(rpc_call(url, "eth_gasPrice"), 16)
    other = Account.sign_transaction(
        {
            "type": 2,
            "chainId": 1,
            "nonce": start,
            "to": WALLET,
            "value": 1,
            "gas": 21_000,
            "maxFeePerGas": 2 * fees + 10**9,
            "maxPriorityFeePerGas": 10**9,
        },
        evm_key(),
    )
    rpc_call(url, "eth_sendRawTransaction", "0x" + other.raw_transaction.hex())
    assert nonce(evm_isolated, "ethereum") == start + 1
    err = refused(capsys, cfg, out)
    assert f"nonce {start} of this export is already used" in err
    assert "export again" in err
    assert nonce(evm_isolated, "ethereum") == start + 1


def test_an_expired_solana_blockhash_is_refused(
    setup: Callable[..., tuple[Path, Path]],
    evm_isolated: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rebalancer.chains.solana import SolanaChain

    cfg, plan = setup("expired", solana=True)
    out = tmp_path / "unsigned"
    manifest = export(capsys, cfg, plan, out)
    kp = sol_keypair("expired")
    for t in manifest["transactions"]:
        if t["family"] == "evm":
            sign_evm(out, t)
        else:
            sign_solana(out, t, kp)
    start = nonce(evm_isolated, "ethereum")

    async def expired(self: SolanaChain, blockhash: str) -> bool:
        return False  # NOTE: the node keeps a blockhash for ~60 s; a test does not wait that long

    monkeypatch.setattr(SolanaChain, "blockhash_valid", expired)
    err = refused(capsys, cfg, out)
    assert "blockhash expired" in err and "export again" in err
    assert nonce(evm_isolated, "ethereum") == start


def test_export_refuses_a_stale_plan_and_a_used_folder(
    setup: Callable[..., tuple[Path, Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, plan = setup("old")
    doc = json.loads(plan.read_text())
    doc["created_at"] = "2020-01-01T00:00:00+00:00"
    plan.write_text(json.dumps(doc))
    assert main(["export", str(plan), "--unsigned", str(tmp_path / "x"), "-c", str(cfg)]) == 3
    assert "old" in capsys.readouterr().err
    used = tmp_path / "used"
    used.mkdir()
    (used / "something").write_text("")
    cfg, plan = setup("old")
    assert main(["export", str(plan), "--unsigned", str(used), "-c", str(cfg)]) == 2
    assert "not empty" in capsys.readouterr().err


def test_an_old_export_is_refused_like_an_old_plan(
    setup: Callable[..., tuple[Path, Path]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    import rebalancer.external as external

    cfg, plan = setup("aged")
    out = tmp_path / "unsigned"
    manifest = export(capsys, cfg, plan, out)
    for entry in manifest["transactions"]:
        sign_evm(out, entry)
    real_now = external.datetime

    class Later(real_now):  # type: ignore[misc, valid-type]
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return real_now.now(tz) + timedelta(hours=2)

    monkeypatch.setattr(external, "datetime", Later)
    assert "export again" in refused(capsys, cfg, out)
