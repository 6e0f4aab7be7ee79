"""Air-gapped signing: ``export PLAN --unsigned DIR`` and ``submit DIR``.

``export`` runs every trade of a plan through the engine's steps before a signature (quote,
policy, build, check, simulate, finalize, fee budget: :meth:`Engine.prepare`) without any
signer, and writes for each finalized transaction the exact bytes a wallet signs (the payload
of the one encoder, ``wallet.unsigned.export_tx``), plus ``manifest.json`` (hashes of those
bytes) and a README. The manifest's own hash is
recorded in the journal as an ``export`` run, so ``submit`` only sends what this tool exported.

``submit`` proves every signed file is the exported transaction signed by its wallet
(:mod:`wallet.unsigned`), asks the chain adapters whether each can still land (EVM nonce
next, Solana blockhash valid), and only then sends them through the engine's own path
(:meth:`Engine.send`: journal before send, confirm) with a ``PresignedSigner`` that hands back
what the wallet signed; approvals first, then swaps, and measures what arrived. One bad file
refuses the whole submission before anything is sent.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rebalancer.core.documents import load_json, parse
from rebalancer.core.errors import ConfigError, RefusedError
from rebalancer.core.tx import SignedTx, UnsignedTx
from rebalancer.documents.journal import ExportSummary, NewTrade, RunSummary
from rebalancer.documents.manifest import FORMAT, Manifest
from rebalancer.documents.plan import PlanFile
from rebalancer.documents.status import RunMode, RunStatus, TradeStatus
from rebalancer.engine import Engine, TradeIntent, TradeResult
from rebalancer.intents import pre_swap_ids
from rebalancer.journal import Journal
from rebalancer.services import Services
from rebalancer.wallet.presigned import PresignedSigner
from rebalancer.wallet.unsigned import export_tx, read_file, read_signed, sha256_hex

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


async def _prepare_all(
    engine: Engine, intents: Sequence[TradeIntent]
) -> tuple[list[dict[str, Any]], dict[str, bytes], list[dict[str, str]]]:
    """Every trade prepared and finalized; a wallet's transactions follow each other (EVM
    nonces counted on from the ones exported before them)."""
    from rebalancer.dex.base import NoRouteError

    engine.check_run_total(intents)
    engine.number(intents)
    registry = engine.s.registry
    txs: list[dict[str, Any]] = []
    files: dict[str, bytes] = {}
    skipped: list[dict[str, str]] = []
    queued: dict[tuple[str, str], int] = {}
    for t in intents:
        key = (t.chain, t.wallet.lower())
        try:
            p = await engine.prepare(t, queued=queued.get(key, 0))
        except NoRouteError as exc:
            skipped.append({"id": t.id, "reason": f"no_route: {exc.message}"})
            continue
        except RefusedError as exc:
            raise RefusedError(
                f"trade {t.id} on {t.chain}: {exc.message}; nothing exported"
            ) from None
        queued[key] = queued.get(key, 0) + len(p.txs)
        base = {
            "trade": t.id,
            "chain": t.chain,
            "family": registry.chains[t.chain].family,
            "wallet": t.wallet,
            "sell": t.sell.id,
            "buy": t.buy.id,
            "amount_in": str(t.amount_in),
        }
        *approvals, swap = p.txs
        # NOTE: a reset of a leftover allowance is an approve too (kind "approve", sent in
        # nonce order before the approval); its id says which it is.
        ids = [*pre_swap_ids(t.id, len(approvals)), t.id]
        parts = [("approve", tx) for tx in approvals] + [("swap", swap)]
        for tx_id, (kind, tx) in zip(ids, parts, strict=True):
            exported = export_tx(tx, tx_id, t.wallet)
            files.update(exported.files)
            txs.append(
                {
                    "id": tx_id,
                    **base,
                    "kind": kind,
                    "min_out": str(p.checked.min_out) if kind == "swap" else None,
                    "simulated_out": str(p.sim.out) if kind == "swap" else None,
                    "simulation": p.sim.method,
                    **exported.fields,
                }
            )
    return txs, files, skipped


async def export(
    services: Services,
    journal: Journal,
    intents: Sequence[TradeIntent],
    *,
    plan_doc: PlanFile,
    out: Path,
    progress: Progress,
) -> ExportReport:
    """Prepare every trade without a signer and write what each wallet must sign into ``out``."""
    config, registry = services.config, services.registry
    _prepare_dir(out)
    txs, files, skipped = await _prepare_all(Engine(services, journal, progress), intents)
    now = _now(services).isoformat(timespec="seconds")
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

    entry: dict[str, Any]
    unsigned: UnsignedTx
    signed: SignedTx

    @property
    def tx_id(self) -> str:
        """Hash (EVM) or first signature (Solana)."""
        return self.signed.tx_id


def read_manifest(folder: Path, journal: Journal) -> Manifest:
    """The manifest, refused unless an export of this journal wrote exactly these bytes."""
    body = read_file(folder, MANIFEST)
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


async def _still_valid(engine: Engine, signed: Sequence[Signed]) -> None:
    """Every transaction can still land: a wallet's EVM nonces are its next ones, a Solana
    blockhash has not expired (the chain adapter says which applies)."""
    by_wallet: dict[tuple[str, str], list[Signed]] = {}
    for s in signed:
        by_wallet.setdefault((s.entry["chain"], s.entry["wallet"]), []).append(s)
    for (chain, wallet), group in by_wallet.items():
        adapter = engine.s.adapter(chain)
        problem = await adapter.landing_problem(
            wallet, [s.unsigned for s in group], what="this export"
        )
        if problem is not None:
            raise RefusedError(f"{wallet} on {chain}: {problem}: export again and sign again")


async def _send_all(
    engine: Engine, run_id: int, signed: Sequence[Signed], registry: Any
) -> list[TradeResult]:
    """Journal (before send), send in nonce order, confirm, measure: per trade, through the
    engine's own path with a signer that hands back what the wallet signed."""
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
        adapter = engine.s.adapter(swap["chain"])
        before = await adapter.balance(swap["wallet"], buy)
        status = "confirmed"
        for s in parts:
            e = s.entry
            signer = PresignedSigner(e["family"], e["wallet"], {s.unsigned.payload(): s.signed})
            nonce = f", nonce {e['nonce']}" if "nonce" in e else ""
            engine.say(f"{e['chain']}: sending {e['id']} ({e['kind']}{nonce})")
            tx_id, status = await engine.send(run_id, e["id"], e["chain"], s.unsigned, signer)
            if status != "pending" and (e["kind"] == "approve" or status != "confirmed"):
                engine.journal.update(run_id, e["id"], TradeStatus(status))
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
            gained = await adapter.balance(swap["wallet"], buy) - before
            result.realised_out = gained
            engine.journal.update(run_id, trade_id, TradeStatus.CONFIRMED, realised_out=gained)
            engine.say(f"{swap['chain']}: {trade_id} confirmed in {result.tx}")
        else:
            stuck.add(wallet_key)
            result.reason = result.reason or f"transaction {result.status}"
    return results


def _now(services: Services) -> datetime:
    """The command's time: the chains' on simulated local worlds (``rebalancer.clock``)."""
    return services.clock.now() if services.clock.simulated else datetime.now(UTC)


def _fresh_enough(manifest: Manifest, max_age_s: int, folder: Path, now: datetime) -> None:
    """An export is a plan's trades at the prices of its day: like ``apply``, refuse an old
    one rather than send it against a portfolio and a market that have moved."""
    made = manifest.created_at
    if made.tzinfo is None:
        made = made.replace(tzinfo=UTC)
    age = (now - made).total_seconds()
    if age > max_age_s:
        raise RefusedError(
            f"{folder}: exported {age / 60:.0f} min ago, over policy.max_plan_age_s "
            f"({max_age_s} s): make a new plan and export again"
        )


async def submit(
    services: Services,
    journal: Journal,
    folder: Path,
    progress: Progress,
    ask: Callable[[int], None] = lambda _n: None,
) -> tuple[int, list[TradeResult]]:
    """Check every signed file, ``ask`` (the prompt), then journal, send, confirm and record
    them; returns the run id and the trades."""
    config, registry = services.config, services.registry
    manifest = read_manifest(folder, journal)
    _fresh_enough(manifest, config.policy.max_plan_age_s, folder, _now(services))
    sent_before = {t.tx_hash for t in journal.trades() if t.tx_hash}
    for entry in manifest.transactions:
        chain = entry.chain
        if chain not in config.chains:
            raise ConfigError(f"manifest: chain {chain!r} of {entry.id} is not in the config")
        known = manifest.chains.get(chain)
        want = None if known is None else known.chain_id
        if want != registry.chains[chain].chain_id:
            raise RefusedError(f"manifest: chain {chain} has chain id {want}, not the config's")
    # NOTE: the senders below read each entry as its JSON (validated above)
    entries = [entry.as_json() for entry in manifest.transactions]
    signed = [Signed(e, *read_signed(folder, e)) for e in entries]
    for one in signed:
        if one.tx_id in sent_before:
            raise RefusedError(
                f"{folder}: {one.entry['id']} was already submitted (tx {one.tx_id}); "
                "nothing sent: to trade again, make a new plan and export again"
            )
    ask(len(signed))
    engine = Engine(services, journal, progress)
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
                    id=e["id"],
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
                    run_id, e["trade"], TradeStatus.PLANNED, simulated_out=int(e["simulated_out"])
                )
        results = await _send_all(engine, run_id, signed, registry)
        bad = [r for r in results if r.status != "confirmed"]
        status = RunStatus.PARTIAL if bad else RunStatus.OK
        return run_id, results
    finally:
        journal.finish_run(run_id, status, RunSummary.of(r.as_dict() for r in results))
