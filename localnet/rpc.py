"""A small synchronous JSON-RPC client for building and funding the local worlds.

Builder scripts send a few hundred transactions from anvil's unlocked dev account; web3.py's
machinery is not needed for that, and a plain client keeps them fast and readable.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
from eth_abi import encode
from eth_utils import keccak, to_checksum_address

from rebalancer.core.errors import ChainError


def selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


def calldata(signature: str, *args: Any) -> str:
    """ABI-encode a call: ``calldata("transfer(address,uint256)", to, amount)``."""
    types = signature[signature.index("(") + 1 : -1]
    arg_types = _split_types(types)
    return "0x" + (selector(signature) + encode(arg_types, list(args))).hex()


def _split_types(types: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in types:
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    if cur:
        out.append(cur)
    return out


class Rpc:
    """JSON-RPC over HTTP to one local node."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url
        self.http = httpx.Client(timeout=timeout)
        self._id = 0

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, *params: Any) -> Any:
        self._id += 1
        body = {"jsonrpc": "2.0", "id": self._id, "method": method, "params": list(params)}
        resp = self.http.post(self.url, json=body)
        resp.raise_for_status()
        data = resp.json()
        if "error" in data:
            message = str(data["error"].get("message"))[:200]
            raise ChainError(f"{method} failed on {self.url}: {message}")
        return data["result"]

    def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """Several calls in one JSON-RPC batch; each answer is its result, or the error
        object (a dict with ``code``/``message``) where that call failed."""
        if not calls:
            return []
        body = [
            {"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)
        ]
        resp = self.http.post(self.url, json=body)
        resp.raise_for_status()
        answers = sorted(resp.json(), key=lambda a: a["id"])
        return [a["result"] if "result" in a else {"error": a.get("error")} for a in answers]

    def send(self, sender: str, to: str | None, data: str = "0x", value: int = 0) -> dict[str, Any]:
        """Send from an unlocked account, wait for the (automined) receipt, insist on success."""
        # NOTE: an explicit gas limit; estimates fall short for Uniswap V3 mints (63/64 rule).
        tx: dict[str, Any] = {
            "from": sender,
            "data": data,
            "value": hex(value),
            "gas": hex(15_000_000),
        }
        if to is not None:
            tx["to"] = to
        tx_hash = self.call("eth_sendTransaction", tx)
        receipt: dict[str, Any] | None = None
        deadline = time.monotonic() + 30
        while receipt is None and time.monotonic() < deadline:
            receipt = self.call("eth_getTransactionReceipt", tx_hash)
            if receipt is None:
                time.sleep(0.001)
        if receipt is None or int(receipt["status"], 16) != 1:
            try:
                self.call("eth_call", tx, "latest")
                why = "no reason given"
            except ChainError as exc:
                why = str(exc)
            raise ChainError(f"transaction {tx_hash} to {to} reverted: {why}")
        return receipt

    def deploy(self, sender: str, bytecode: str, ctor: str = "") -> str:
        """Deploy ``bytecode`` with ABI-encoded constructor args ``ctor`` (hex, no 0x)."""
        code = bytecode if bytecode.startswith("0x") else "0x" + bytecode
        receipt = self.send(sender, None, code + ctor)
        return str(to_checksum_address(receipt["contractAddress"]))

    def transact(self, sender: str, to: str, signature: str, *args: Any, value: int = 0) -> None:
        try:
            self.send(sender, to, calldata(signature, *args), value)
        except ChainError as exc:
            raise ChainError(f"{signature}: {exc}") from None

    def read(self, to: str, signature: str, *args: Any) -> bytes:
        out = self.call("eth_call", {"to": to, "data": calldata(signature, *args)}, "latest")
        return bytes.fromhex(out[2:])
