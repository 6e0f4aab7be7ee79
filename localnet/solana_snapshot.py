"""Account snapshots: the Solana node's "fork" is a set of accounts loaded from JSON files.

A snapshot is ``{"meta": {...}, "accounts": {"<pubkey>": <account>}}`` where each account is
exactly what ``getMultipleAccounts`` (base64) returns, so one can be captured from any RPC:

    python -m rebalancer.localnet.solana_snapshot --rpc https://api.mainnet-beta.solana.com \
        --out fixtures/solana/mine.json EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v ...

``meta`` is optional (format, source, slot, labels, missing); the node reads only ``slot``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
from solders.account import Account
from solders.pubkey import Pubkey

from rebalancer.core.errors import ChainError, ConfigError
from rebalancer.core.redact import redact_url
from rebalancer.localnet.solana_accounts import account_from_json

SNAPSHOT_FORMAT = "rebalancer-solana-snapshot/1"
MAX_ACCOUNTS_PER_CALL = 100  # getMultipleAccounts' limit on every validator
_RETRIES = 3


def dump_snapshot(snapshot: Mapping[str, Any]) -> str:
    """Deterministic JSON text (sorted keys, fixed indent, final newline): reproducible files."""
    return json.dumps(snapshot, indent=1, sort_keys=True) + "\n"


def write_or_check(text: str, out: Path, *, check: bool, command: str) -> int:
    """Write a committed snapshot file, or with ``check`` only say whether it is up to date
    (exit 1 when not, naming ``command`` that rebuilds it)."""
    if check:
        current = out.read_text() if out.exists() else ""
        if current != text:
            print(f"{out} is out of date: run {command}")
            return 1
        print(f"{out} is up to date")
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"wrote {out}", file=sys.stderr)
    return 0


def load_snapshot(path: str | Path) -> dict[str, Any]:
    """Read and check a snapshot file; every problem is a ConfigError naming file and key."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"snapshot {str(p)!r} not found") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"snapshot {str(p)!r} is not readable JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("accounts"), dict):
        raise ConfigError(f"snapshot {str(p)!r}: missing object 'accounts'")
    snapshot_accounts(data, str(p))  # validate every entry now, not when the node serves it
    return data


def snapshot_accounts(
    snapshot: Mapping[str, Any], where: str = "snapshot"
) -> dict[Pubkey, Account]:
    """The snapshot's accounts as solders objects."""
    out: dict[Pubkey, Account] = {}
    for key, entry in snapshot["accounts"].items():
        try:
            out[Pubkey.from_string(key)] = account_from_json(entry)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: accounts[{key!r}]: {exc}") from None
    return out


def _post(client: httpx.Client, url: str, payload: Any) -> Any:
    """One JSON-RPC POST with a few retries on timeouts, connection errors and 5xx/429."""
    shown = redact_url(url)
    for attempt in range(_RETRIES):
        try:
            resp = client.post(url, json=payload)
            if resp.status_code >= 500 or resp.status_code == 429:
                raise httpx.HTTPStatusError("retryable", request=resp.request, response=resp)
            resp.raise_for_status()
            return resp.json()
        except (httpx.TransportError, httpx.HTTPStatusError) as exc:
            if attempt == _RETRIES - 1 or (
                isinstance(exc, httpx.HTTPStatusError)
                and exc.response.status_code < 500
                and exc.response.status_code != 429
            ):
                raise ChainError(f"Solana node {shown} failed: {exc.__class__.__name__}") from exc
            time.sleep(0.25 * 2**attempt)
        except ValueError as exc:
            raise ChainError(f"Solana node {shown} answered malformed JSON") from exc
    raise AssertionError("unreachable")


def capture_snapshot(
    rpc_url: str, pubkeys: Sequence[str], *, client: httpx.Client | None = None
) -> dict[str, Any]:
    """Read ``pubkeys`` from any RPC with getMultipleAccounts (100 per call) into a snapshot.

    Accounts that do not exist are listed under ``meta.missing``; ``meta.slot`` is the lowest
    context slot the RPC answered at.
    """
    keys = list(dict.fromkeys(pubkeys))
    for i, key in enumerate(keys):
        try:
            Pubkey.from_string(key)
        except ValueError:
            raise ConfigError(f"pubkeys[{i}] = {key!r}: not a Solana address") from None
    own = client is None
    http = client if client is not None else httpx.Client(timeout=30.0)
    accounts: dict[str, Any] = {}
    missing: list[str] = []
    slots: list[int] = []
    try:
        for start in range(0, len(keys), MAX_ACCOUNTS_PER_CALL):
            chunk = keys[start : start + MAX_ACCOUNTS_PER_CALL]
            payload = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "getMultipleAccounts",
                "params": [chunk, {"encoding": "base64", "commitment": "confirmed"}],
            }
            answer = _post(http, rpc_url, payload)
            try:
                if "error" in answer:
                    raise ChainError(
                        f"Solana node {redact_url(rpc_url)} refused getMultipleAccounts: "
                        f"{answer['error'].get('message')}"
                    )
                slots.append(int(answer["result"]["context"]["slot"]))
                values = answer["result"]["value"]
                if len(values) != len(chunk):
                    raise ValueError("answer length differs from request")
                for key, value in zip(chunk, values, strict=True):
                    if value is None:
                        missing.append(key)
                        continue
                    account_from_json(value)  # refuse what the node cannot load
                    accounts[key] = {k: value[k] for k in _ACCOUNT_KEYS if k in value}
            except (KeyError, TypeError, ValueError) as exc:
                raise ChainError(
                    f"Solana node {redact_url(rpc_url)} answered an unexpected shape: {exc}"
                ) from exc
    finally:
        if own:
            http.close()
    meta: dict[str, Any] = {"format": SNAPSHOT_FORMAT, "source": redact_url(rpc_url)}
    if slots:
        meta["slot"] = min(slots)
    if missing:
        meta["missing"] = missing
    return {"meta": meta, "accounts": accounts}


_ACCOUNT_KEYS = ("data", "executable", "lamports", "owner", "rentEpoch", "space")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rebalancer.localnet.solana_snapshot --rpc URL --out FILE PUBKEY...``"""
    parser = argparse.ArgumentParser(
        prog="python -m rebalancer.localnet.solana_snapshot",
        description="Capture Solana accounts from an RPC into a snapshot the local node loads.",
    )
    parser.add_argument("--rpc", required=True, help="RPC URL to read from")
    parser.add_argument("--out", required=True, type=Path, help="snapshot file to write")
    parser.add_argument("pubkeys", nargs="+", help="accounts to capture (base58)")
    args = parser.parse_args(argv)
    try:
        snap = capture_snapshot(args.rpc, args.pubkeys)
    except (ChainError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(dump_snapshot(snap))
    missing = len(snap["meta"].get("missing", []))
    print(f"wrote {len(snap['accounts'])} accounts to {args.out} ({missing} missing)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
