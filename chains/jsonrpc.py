"""JSON-RPC over an injected ``httpx.AsyncClient``: single calls and batches.

A whole balance refresh goes out as one JSON-RPC batch in one HTTP request. Timeouts,
connection errors, 429 and 5xx are retried with backoff (Retry-After honoured); what still
fails becomes one ChainError naming the node with its URL redacted. Plain httpx and the C JSON
encoder, no web3.py: importing web3 costs more CPU than a whole ``rebalancer balances``.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import httpx

from rebalancer.chains.rpc_errors import rpc_error
from rebalancer.core.errors import ChainError
from rebalancer.core.http import post_json_body
from rebalancer.core.redact import redact_url

RPCResponse = dict[str, Any]
"""One decoded JSON-RPC answer: ``{"jsonrpc", "id", "result" | "error"}``."""


class HttpxProvider:
    """JSON-RPC to one node on a shared httpx client, with retries and clear errors."""

    def __init__(
        self,
        url: str,
        client: httpx.AsyncClient,
        *,
        label: str = "node",
        retries: int = 3,
        backoff: float = 0.25,
    ) -> None:
        self.url = url
        self.client = client
        self.label = label
        self.retries = retries
        self.backoff = backoff
        self._ids = itertools.count()

    def __str__(self) -> str:
        return f"HttpxProvider({redact_url(self.url)})"

    @property
    def where(self) -> str:
        return f"{self.label} node at {redact_url(self.url)}"

    async def post(self, body: bytes) -> Any:
        """POST one JSON-RPC body; return the decoded JSON. Retries transient failures."""
        content = await post_json_body(
            self.client,
            self.url,
            body,
            where=self.where,
            error=ChainError,
            retries=self.retries,
            backoff=self.backoff,
        )
        try:
            return json.loads(content)
        except ValueError:
            raise ChainError(f"{self.where} answered malformed JSON") from None

    async def make_request(self, method: str, params: Any) -> RPCResponse:
        """One call; the answer as the node sent it (``result_of`` takes the result out)."""
        body = json.dumps(
            {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params},
            separators=(",", ":"),
        ).encode()
        data = await self.post(body)
        if not isinstance(data, dict):
            raise ChainError(f"{self.where} answered {method} with a non-object")
        return data

    async def make_batch_request(self, requests: list[tuple[str, Any]]) -> list[RPCResponse]:
        """Send ``requests`` as one JSON-RPC batch; answers come back in request order.

        Params must be plain JSON (str, int, dict, list).
        """
        body = json.dumps(
            [
                {"jsonrpc": "2.0", "id": i, "method": m, "params": p}
                for i, (m, p) in enumerate(requests)
            ],
            separators=(",", ":"),
        ).encode()
        data = await self.post(body)
        if isinstance(data, dict) and "error" in data:
            message = str(data["error"].get("message", ""))[:120]
            raise ChainError(f"{self.where} refused a JSON-RPC batch: {message}")
        if not isinstance(data, list) or len(data) != len(requests):
            raise ChainError(f"{self.where} answered a batch of {len(requests)} malformed")
        try:
            ordered = sorted(data, key=lambda r: int(r["id"]))
        except (KeyError, TypeError, ValueError):
            raise ChainError(f"{self.where} answered a batch without request ids") from None
        return ordered


def result_of(resp: RPCResponse, method: str, where: str) -> Any:
    """The ``result`` of one JSON-RPC answer, or a ChainError carrying the node's message."""
    if "error" in resp:
        err = resp["error"]
        if isinstance(err, dict):
            raise rpc_error(
                where, method, err.get("code"), str(err.get("message", err))[:160], err.get("data")
            )
        raise rpc_error(where, method, None, str(err)[:160])
    if "result" not in resp:
        raise ChainError(f"{where}: {method} answer has no result")
    return resp["result"]
