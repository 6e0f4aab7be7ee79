"""Air-gapped signing: ``export PLAN --unsigned DIR`` and ``submit DIR``.

``export`` runs every trade of a plan through the engine's steps before a signature (quote,
policy, build, check, simulate: :meth:`Engine.prepare`) without any signer, fixes each EVM
transaction's nonce, gas and fees, and writes for each transaction the exact bytes a wallet
signs, plus ``manifest.json`` (hashes of those bytes) and a README. The manifest's own hash is
recorded in the journal as an ``export`` run, so ``submit`` only sends what this tool exported.

``submit`` proves every signed file is the exported transaction signed by its wallet
(:mod:`wallet.unsigned`), checks each can still land (EVM nonce unused, Solana blockhash
valid), and only then journals each signed transaction (before its send, as the engine does),
sends in nonce order, confirms and measures what arrived. One bad file refuses the whole
submission before anything is sent.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rebalancer.config import Config
from rebalancer.core.documents import load_json, parse
from rebalancer.core.errors import ConfigError, RefusedError
from rebalancer.core.types import Family
from rebalancer.documents.journal import ExportSummary, NewTrade, RunSummary
from rebalancer.documents.manifest import FORMAT, EvmEntry, Manifest, SolanaEntry
from rebalancer.documents.plan import PlanFile
from rebalancer.documents.status import RunMode, RunStatus, TradeStatus
from rebalancer.engine import Engine, Prepared, TradeIntent, TradeResult
from rebalancer.journal import Journal
from rebalancer.simulate import gas_limit
from rebalancer.wallet.base import SignedEvmTransaction
from rebalancer.wallet.evm_tx import normalise
from rebalancer.wallet.unsigned import (
    SolanaExport,
    evm_unsigned_payload,
    sha256_hex,
    verify_evm_signed,
    verify_solana_signed,
)

Progress = Callable[[str], None]
MANIFEST = "manifest.json"

README = """\
Unsigned transactions written by `rebalancer export --unsigned` ({created_at}).

Sign each transaction listed in manifest.json with the wallet it names, then put the result
next to it in this folder and run `rebalancer submit {dir} -c CONFIG` with the same
config (its journal holds this export's fingerprint).

EVM (Ethereum, Avalanche), files <id>.unsigned.json and <id>.unsigned.rlp:
  <id>.unsigned.rlp holds the hex of the EIP-2718 payload 0x02 || rlp([chainId, nonce,
  maxPriorityFeePerGas, maxFeePerGas, gas, to, value, data, accessList]); the wallet signs its
  keccak-256. <id>.unsigned.json holds the same fields by name. Write the raw signed
  transaction (0x02 || rlp([..., yParity, r, s]), what eth_sendRawTransaction takes) as hex
  into <id>.signed.hex. Sign every transaction of a wallet: their nonces follow each other.

Solana, files <id>.unsigned.b64 and <id>.message.b64:
  <id>.message.b64 holds the base64 of the serialised message (to_bytes_versioned); the wallet
  signs exactly those bytes (ed25519). <id>.unsigned.b64 is the whole transaction, already
  co-signed by the market maker, with the wallet's signature slot empty. Either write the whole
  signed transaction as base64 into <id>.signed.b64, or only the wallet's signature as base58
  into <id>.signature.b58. It expires at block height {expiry}: submit before then.

`submit` checks every signed file against this export (every field, the signer, the message
bytes, the maker's signature) and refuses all of them if one differs; nothing is sent then.
Do not edit the files written here: their hashes are in the manifest and in the journal.
"""


# -- files -------------------------------------------------------------------------------------
def _write(path: Path, data: str | bytes) -> None:
    """A new file, 0600 from its creation on (never briefly readable by others)."""
    raw = data.encode() if isinstance(data, str) else data
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(raw)


def _prepare_dir(out: Path) -> None:
    if out.exists():
        if not out.is_dir():
            raise ConfigError(f"--unsigned {str(out)!r}: exists and is not a folder")
        if any(out.iterdir()):
            raise ConfigError(f"--unsigned {str(out)!r}: not empty; use a new folder")
    try:
        out.mkdir(mode=0o700, parents=True, exist_ok=True)
        out.chmod(0o700)
    except OSError as exc:
        raise ConfigError(f"--unsigned {str(out)!r}: cannot create: {exc.strerror}") from None


def _read(folder: Path, name: str) -> bytes:
    if "/" in name or name.startswith("."):
        raise RefusedError(f"manifest.json: file name {name!r} is not a plain file name")
    try:
        return (folder / name).read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{folder / name}: missing") from None
    except OSError as exc:
        raise ConfigError(f"{folder / name}: cannot read: {exc.strerror}") from None


# -- the engine, without a run -------------------------------------------------------------------
async def _with_engine(
    config: Config, registry: Any, journal: Journal, progress: Progress, job: Any
) -> Any:
    import httpx

    from rebalancer.services import Services

    with tempfile.TemporaryDirectory(prefix="rebalancer-") as tmp:
        async with httpx.AsyncClient(timeout=60) as client:
            services = Services(config, registry, client, work_dir=Path(tmp))
            return await job(Engine(services, journal, progress))


def approval_gas(p: Prepared) -> int:
    """The approval's gas limit, exactly as the engine sets it."""
    approval = p.checked.built.approval
    assert approval is not None
    return gas_limit(p.sim.approval_gas_used, approval.gas)


def swap_gas(p: Prepared) -> int:
    """The swap's gas limit, exactly as the engine sets it."""
    from rebalancer.dex.base import EvmTx

    swap = p.checked.built.tx
    assert isinstance(swap, EvmTx)
    return gas_limit(p.sim.gas_used, swap.gas)


# -- export --------------------------------------------------------------------------------------
@dataclass
class ExportReport:
    dir: Path
    manifest: dict[str, Any]
    run_id: int
    skipped: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dir": str(self.dir),
            "run_id": self.run_id,
            "transactions": self.manifest["transactions"],
            "skipped": self.skipped,
        }


def _family(registry: Any, chain: str) -> Family:
    family: Family = registry.chains[chain].family
    return family


async def _prepare_all(
    engine: Engine, intents: Sequence[TradeIntent]
) -> tuple[list[dict[str, Any]], dict[str, bytes], list[dict[str, str]]]:
    """Every trade prepared; EVM ones get their nonces (per wallet and chain) and fees."""
    from rebalancer.dex.base import EvmTx, NoRouteError, SolanaTx

    engine.check_run_total(intents)
    registry = engine.s.registry
    txs: list[dict[str, Any]] = []
    files: dict[str, bytes] = {}
    skipped: list[dict[str, str]] = []
    nonces: dict[tuple[str, str], int] = {}
    fees: dict[str, tuple[int, int]] = {}
    for t in intents:
        try:
            p = await engine.prepare(t)
        except NoRouteError as exc:
            skipped.append({"id": t.id, "reason": f"no_route: {exc.message}"})
            continue
        except RefusedError as exc:
            raise RefusedError(
                f"trade {t.id} on {t.chain}: {exc.message}; nothing exported"
            ) from None
        base = {
            "trade": t.id,
            "chain": t.chain,
            "family": _family(registry, t.chain),
            "wallet": t.wallet,
            "sell": t.sell.id,
            "buy": t.buy.id,
            "amount_in": str(t.amount_in),
        }
        built = p.checked.built
        if isinstance(built.tx, SolanaTx):
            from solders.message import to_bytes_versioned
            from solders.transaction import VersionedTransaction

            message = to_bytes_versioned(VersionedTransaction.from_bytes(built.tx.raw).message)
            files[f"{t.id}.unsigned.b64"] = base64.b64encode(built.tx.raw) + b"\n"
            files[f"{t.id}.message.b64"] = base64.b64encode(message) + b"\n"
            txs.append(
                {
                    "id": t.id,
                    **base,
                    "kind": "swap",
                    "min_out": str(p.checked.min_out),
                    "simulated_out": str(p.sim.out),
                    "simulation": p.sim.method,
                    "expiry": {"last_valid_block_height": built.tx.last_valid_block_height},
                    "files": {
                        "unsigned": f"{t.id}.unsigned.b64",
                        "message": f"{t.id}.message.b64",
                        "signed": f"{t.id}.signed.b64",
                        "signature": f"{t.id}.signature.b58",
                    },
                    "sha256": sha256_hex(message),
                    "unsigned_sha256": sha256_hex(built.tx.raw),
                }
            )
            continue
        assert isinstance(built.tx, EvmTx)
        adapter: Any = engine.s.adapter(t.chain)
        key = (t.chain, t.wallet.lower())
        if key not in nonces:
            nonces[key] = await adapter.nonce(t.wallet)
        if t.chain not in fees:
            fees[t.chain] = await adapter.fees()
        max_fee, tip = fees[t.chain]
        parts: list[tuple[str, EvmTx, int]] = []
        if built.approval is not None:
            parts.append(("approve", built.approval, approval_gas(p)))
        parts.append(("swap", built.tx, swap_gas(p)))
        for kind, tx, gas in parts:
            tx_id = t.id if kind == "swap" else f"{t.id}-approve"
            unsigned = {
                "type": 2,
                "chainId": tx.chain_id,
                "nonce": nonces[key],
                "from": t.wallet,
                "to": tx.to,
                "value": tx.value,
                "data": "0x" + tx.data.hex(),
                "gas": gas,
                "maxFeePerGas": max_fee,
                "maxPriorityFeePerGas": tip,
                "accessList": [],
            }
            nonces[key] += 1
            payload = evm_unsigned_payload(unsigned)
            files[f"{tx_id}.unsigned.json"] = (json.dumps(unsigned, indent=2) + "\n").encode()
            files[f"{tx_id}.unsigned.rlp"] = ("0x" + payload.hex() + "\n").encode()
            txs.append(
                {
                    "id": tx_id,
                    **base,
                    "kind": kind,
                    "nonce": unsigned["nonce"],
                    "min_out": str(p.checked.min_out) if kind == "swap" else None,
                    "simulated_out": str(p.sim.out) if kind == "swap" else None,
                    "simulation": p.sim.method,
                    "expiry": None,
                    "files": {
                        "unsigned": f"{tx_id}.unsigned.json",
                        "payload": f"{tx_id}.unsigned.rlp",
                        "signed": f"{tx_id}.signed.hex",
                    },
                    "sha256": sha256_hex(payload),
                }
            )
    return txs, files, skipped


def export(
    config: Config,
    registry: Any,
    journal: Journal,
    intents: Sequence[TradeIntent],
    *,
    plan_doc: PlanFile,
    out: Path,
    progress: Progress,
) -> ExportReport:
    """Prepare every trade without a signer and write what each wallet must sign into ``out``."""
    _prepare_dir(out)
    txs, files, skipped = asyncio.run(
        _with_engine(config, registry, journal, progress, lambda e: _prepare_all(e, intents))
    )
    now = datetime.now(UTC).isoformat(timespec="seconds")
    manifest = {
        "format": FORMAT,
        "created_at": now,
        "plan_created_at": plan_doc.as_json()["created_at"],
        "chains": {
            name: {
                "family": registry.chains[name].family,
                "chain_id": registry.chains[name].chain_id,
            }
            for name in config.chains
        },
        "transactions": txs,
        "skipped": skipped,
    }
    body = (json.dumps(Manifest.model_validate(manifest).as_json(), indent=2) + "\n").encode()
    for name, data in files.items():
        _write(out / name, data)
    expiries = [
        int(t["expiry"]["last_valid_block_height"])
        for t in txs
        if t["expiry"] and t["expiry"].get("last_valid_block_height") is not None
    ]
    expiry = str(min(expiries)) if expiries else "(no Solana transaction here)"
    _write(out / "README.txt", README.format(created_at=now, dir=out, expiry=expiry))
    _write(out / MANIFEST, body)
    run_id = journal.start_run(RunMode.EXPORT, plan_doc)
    journal.finish_run(
        run_id,
        RunStatus.EXPORTED,
        ExportSummary(dir=str(out), manifest_sha256=sha256_hex(body), transactions=len(txs)),
    )
    return ExportReport(out, manifest, run_id, skipped)


# -- submit --------------------------------------------------------------------------------------
@dataclass
class Signed:
    """One exported transaction with its proven signed form."""

    entry: dict[str, Any]  # its manifest entry, as JSON
    raw: bytes
    tx_id: str  # hash (EVM) or first signature (Solana)
    unsigned: dict[str, Any] | None = None  # EVM fields
    evm: SignedEvmTransaction | None = None


def read_manifest(folder: Path, journal: Journal) -> Manifest:
    """The manifest, refused unless an export of this journal wrote exactly these bytes."""
    body = _read(folder, MANIFEST)
    if not journal.exported(sha256_hex(body)):
        raise RefusedError(
            f"{folder / MANIFEST}: not written by an export recorded in this journal "
            "(changed, or exported with another config): export again"
        )
    try:
        doc = load_json(body)
    except (ValueError, RecursionError) as exc:  # pragma: no cover - export wrote it
        raise ConfigError(f"{folder / MANIFEST}: not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        got = doc.get("format") if isinstance(doc, dict) else None
        raise ConfigError(f"{folder / MANIFEST}: format {got!r}, not {FORMAT}")
    return parse(Manifest, doc, str(folder / MANIFEST))


def _verify_file(folder: Path, entry: EvmEntry | SolanaEntry) -> Signed:
    """Check one transaction's exported files against the manifest and its signed file."""
    if isinstance(entry, EvmEntry):
        unsigned_name = entry.files.unsigned
        try:
            unsigned = load_json(_read(folder, unsigned_name))
            payload = evm_unsigned_payload(unsigned)
        except (ValueError, RecursionError, KeyError, TypeError, AttributeError):
            raise RefusedError(
                f"{folder / unsigned_name}: changed since the export; nothing sent"
            ) from None
        if sha256_hex(payload) != entry.sha256:
            raise RefusedError(f"{folder / unsigned_name}: changed since the export; nothing sent")
        if int(unsigned["nonce"]) != entry.nonce:
            raise RefusedError(f"{folder / unsigned_name}: field nonce differs from the manifest")
        name = entry.files.signed
        text = _read(folder, name).decode(errors="replace").strip()
        try:
            raw = bytes.fromhex(text.removeprefix("0x"))
        except ValueError:
            raise RefusedError(f"{folder / name}: not hex; nothing was sent") from None
        signed = verify_evm_signed(raw, unsigned, entry.wallet, str(folder / name))
        return Signed(entry.as_json(), raw, "0x" + signed.hash.hex(), unsigned, signed)
    files = entry.files
    unsigned_raw = base64.b64decode(_read(folder, files.unsigned))
    where = str(folder / files.unsigned)
    if sha256_hex(unsigned_raw) != entry.unsigned_sha256:
        raise RefusedError(f"{where}: changed since the export; nothing was sent")
    export = SolanaExport.parse(unsigned_raw, entry.wallet, where)
    if sha256_hex(export.message) != entry.sha256:
        raise RefusedError(f"{where}: field message changed since the export; nothing was sent")
    signed_path = folder / files.signed
    if signed_path.exists():
        tx = verify_solana_signed(
            export,
            signed_tx=base64.b64decode(_read(folder, files.signed)),
            where=str(signed_path),
        )
    else:
        sig_path = folder / files.signature
        if not sig_path.exists():
            raise ConfigError(f"{signed_path}: missing (or {sig_path.name}): sign it first")
        tx = verify_solana_signed(
            export, signature_b58=sig_path.read_text().strip(), where=str(sig_path)
        )
    return Signed(entry.as_json(), bytes(tx), str(tx.signatures[0]))


class _Presigned:
    """A Signer that hands back the proven externally signed transaction for its nonce, so the
    engine's own record-before-send path sends it."""

    family: Family = "evm"

    def __init__(self, wallet: str, by_nonce: dict[int, Signed]) -> None:
        self.identity = wallet
        self.by_nonce = by_nonce

    async def sign_evm_transaction(self, tx: Mapping[str, Any]) -> SignedEvmTransaction:
        s = self.by_nonce[int(tx["nonce"])]
        assert s.unsigned is not None and s.evm is not None
        if normalise(tx) != normalise(s.unsigned):
            raise RefusedError(f"{s.entry['id']}: the engine's transaction differs from the export")
        return s.evm

    async def sign_solana_message(self, message: bytes) -> bytes:  # pragma: no cover
        raise RefusedError("submit signs nothing")


async def _still_valid(engine: Engine, signed: Sequence[Signed]) -> None:
    """Every transaction can still land: its EVM nonce is next, its blockhash unexpired."""
    from solders.transaction import VersionedTransaction

    first: dict[tuple[str, str], int] = {}
    for s in signed:
        e = s.entry
        if e["family"] == "evm":
            key = (e["chain"], e["wallet"])
            first[key] = min(first.get(key, e["nonce"]), e["nonce"])
        else:
            adapter: Any = engine.s.adapter(e["chain"])
            blockhash = str(VersionedTransaction.from_bytes(s.raw).message.recent_blockhash)
            if not await adapter.blockhash_valid(blockhash):
                raise RefusedError(
                    f"{e['id']} on {e['chain']}: its blockhash expired (valid until block height "
                    f"{e['expiry']['last_valid_block_height']}): export again and sign again"
                )
    for (chain, wallet), nonce in first.items():
        adapter = engine.s.adapter(chain)
        pending = await adapter.nonce(wallet)
        if pending > nonce:
            raise RefusedError(
                f"{wallet} on {chain}: nonce {nonce} of this export is already used (the wallet "
                f"is at {pending}): export again and sign again"
            )
        if pending < nonce:
            raise RefusedError(
                f"{wallet} on {chain}: the export starts at nonce {nonce} but the wallet is at "
                f"{pending}; earlier transactions are missing: export again"
            )


async def _send_all(
    engine: Engine, run_id: int, signed: Sequence[Signed], registry: Any
) -> list[TradeResult]:
    """Journal (before send), send in nonce order, confirm, measure: per trade."""
    from rebalancer.chains.evm import EvmChain
    from rebalancer.dex.base import EvmTx

    by_trade: dict[str, list[Signed]] = {}
    for s in signed:
        by_trade.setdefault(s.entry["trade"], []).append(s)
    results: list[TradeResult] = []
    stuck: set[tuple[str, str]] = set()  # a wallet whose nonce sequence broke
    for trade_id, parts in by_trade.items():
        parts.sort(key=lambda s: (s.entry["kind"] != "approve", s.entry.get("nonce", 0)))
        swap = parts[-1].entry
        sell, buy = registry.by_id(swap["sell"]), registry.by_id(swap["buy"])
        result = TradeResult(
            trade_id,
            swap["chain"],
            swap["wallet"],
            sell.symbol,
            buy.symbol,
            int(swap["amount_in"]),
            "skipped",
            min_out=int(swap["min_out"]),
            simulated_out=int(swap["simulated_out"]),
            method=swap.get("simulation"),
            sell_decimals=sell.decimals,
            buy_decimals=buy.decimals,
        )
        results.append(result)
        wallet_key = (swap["chain"], swap["wallet"].lower())
        if wallet_key in stuck:
            result.reason = "an earlier transaction of this wallet did not confirm"
            engine.journal.update(run_id, trade_id, TradeStatus.SKIPPED, error=result.reason)
            continue
        adapter: Any = engine.s.adapter(swap["chain"])
        before = await engine._balance(adapter, swap["wallet"], buy)
        status = "confirmed"
        for s in parts:
            e = s.entry
            row = trade_id if e["kind"] == "swap" else f"{trade_id}/approve"
            if isinstance(adapter, EvmChain):
                assert s.unsigned is not None
                u = s.unsigned
                tx = EvmTx(
                    chain_id=int(u["chainId"]),
                    sender=e["wallet"],
                    to=str(u["to"]),
                    data=bytes.fromhex(str(u["data"]).removeprefix("0x")),
                    value=int(u["value"]),
                    gas=int(u["gas"]),
                    gas_price=0,
                )
                engine.say(f"{e['chain']}: sending {e['id']} ({e['kind']}, nonce {e['nonce']})")
                tx_id, status = await engine._sign_send_wait_evm(
                    run_id,
                    row,
                    adapter,
                    _Presigned(e["wallet"], {int(e["nonce"]): s}),
                    tx,
                    int(u["nonce"]),
                    int(u["gas"]),
                    int(u["maxFeePerGas"]),
                    int(u["maxPriorityFeePerGas"]),
                )
            else:
                engine.journal.update(
                    run_id, row, TradeStatus.SIGNED, tx_hash=s.tx_id, raw_tx=s.raw.hex()
                )
                engine.say(f"{e['chain']}: sending {e['id']}")
                await adapter.send_raw(s.raw)
                engine.journal.update(run_id, row, TradeStatus.SENT)
                tx_id = s.tx_id
                status = await engine._wait(adapter, tx_id)
                if status != "confirmed":
                    engine.journal.update(run_id, row, TradeStatus(status))
            if e["kind"] == "approve":
                result.reason = None
                if status == "confirmed":
                    engine.journal.update(run_id, trade_id, TradeStatus.APPROVED)
                    continue
                result.status, result.reason = status, f"the approval was {status}"
                engine.journal.update(run_id, trade_id, TradeStatus.SKIPPED, error=result.reason)
                break
            result.tx, result.status = tx_id, status
        if result.status == "confirmed":
            gained = await engine._balance(adapter, swap["wallet"], buy) - before
            result.realised_out = gained
            engine.journal.update(run_id, trade_id, TradeStatus.CONFIRMED, realised_out=gained)
            engine.say(f"{swap['chain']}: {trade_id} confirmed in {result.tx}")
        else:
            stuck.add(wallet_key)
            result.reason = result.reason or f"transaction {result.status}"
    return results


def _fresh_enough(manifest: Manifest, max_age_s: int, folder: Path) -> None:
    """An export is a plan's trades at the prices of its day: like ``apply``, refuse an old
    one rather than send it against a portfolio and a market that have moved."""
    made = manifest.created_at
    if made.tzinfo is None:
        made = made.replace(tzinfo=UTC)
    age = (datetime.now(UTC) - made).total_seconds()
    if age > max_age_s:
        raise RefusedError(
            f"{folder}: exported {age / 60:.0f} min ago, over policy.max_plan_age_s "
            f"({max_age_s} s): make a new plan and export again"
        )


def submit(
    config: Config,
    registry: Any,
    journal: Journal,
    folder: Path,
    progress: Progress,
    ask: Callable[[int], None] = lambda _n: None,
) -> tuple[int, list[TradeResult]]:
    """Check every signed file, ``ask`` (the prompt), then journal, send, confirm and record
    them; returns the run id and the trades."""
    manifest = read_manifest(folder, journal)
    _fresh_enough(manifest, config.policy.max_plan_age_s, folder)
    entries = manifest.transactions
    sent_before = {t.tx_hash for t in journal.trades() if t.tx_hash}
    for e in entries:
        chain = e.chain
        if chain not in config.chains:
            raise ConfigError(f"manifest: chain {chain!r} of {e.id} is not in the config")
        known = manifest.chains.get(chain)
        want = None if known is None else known.chain_id
        if want != registry.chains[chain].chain_id:
            raise RefusedError(f"manifest: chain {chain} has chain id {want}, not the config's")
    signed = [_verify_file(folder, e) for e in entries]
    for one in signed:
        if one.tx_id in sent_before:
            raise RefusedError(
                f"{folder}: {one.entry['id']} was already submitted (tx {one.tx_id}); "
                "nothing sent: to trade again, make a new plan and export again"
            )
    ask(len(signed))

    async def job(engine: Engine) -> tuple[int, list[TradeResult]]:
        await _still_valid(engine, signed)
        run_id = journal.start_run(RunMode.SUBMIT, manifest)
        results: list[TradeResult] = []
        status = RunStatus.ERROR
        try:
            for s in signed:
                e = s.entry
                journal.add_trade(
                    run_id,
                    NewTrade(
                        id=e["trade"] if e["kind"] == "swap" else f"{e['trade']}/approve",
                        chain=e["chain"],
                        wallet=e["wallet"],
                        sell=e["sell"],
                        buy=e["buy"] if e["kind"] == "swap" else e["sell"],
                        amount_in=int(e["amount_in"]),
                        min_out=None if e["min_out"] is None else int(e["min_out"]),
                    ),
                )
                if e["kind"] == "swap" and e.get("simulated_out") is not None:
                    journal.update(
                        run_id,
                        e["trade"],
                        TradeStatus.PLANNED,
                        simulated_out=int(e["simulated_out"]),
                    )
            results = await _send_all(engine, run_id, signed, registry)
            bad = [r for r in results if r.status != "confirmed"]
            status = RunStatus.PARTIAL if bad else RunStatus.OK
            return run_id, results
        finally:
            journal.finish_run(run_id, status, RunSummary.of(r.as_dict() for r in results))

    result: tuple[int, list[TradeResult]] = asyncio.run(
        _with_engine(config, registry, journal, progress, job)
    )
    return result
