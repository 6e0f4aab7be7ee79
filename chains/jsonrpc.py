"""JSON-RPC over an injected ``httpx.AsyncClient``: single calls and batches.

A whole balance refresh goes out as one JSON-RPC batch in one HTTP request. Timeouts,
connection errors, 429, 5xx and garbled answers (chains.rpc_errors) are retried with backoff
(Retry-After honoured), within one overall deadline per call; what still fails becomes one
ChainError naming the node with its URL redacted. Plain httpx and the C JSON
encoder, no web3.py: importing web3 costs more CPU than a whole ``rebalancer balances``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

from rebalancer.chains.rpc_errors import check_answer, check_batch, decoded, rpc_error
from rebalancer.core.errors import ChainError
from rebalancer.core.http import post_json
from rebalancer.core.redact import redact_url

RPCResponse = dict[str, Any]
"""One decoded JSON-RPC answer: ``{"jsonrpc", "id", "result" | "error"}``."""
T = TypeVar("T")


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
        deadline: float | None = None,
    ) -> None:
        self.url = url
        self.client = client
        self.label = label
        self.retries = retries
        self.backoff = backoff
        self.deadline = deadline
        """Seconds one call may take in all, retries included (``[chains.X] rpc_timeout``)."""
        self._ids = itertools.count()

    def __str__(self) -> str:
        return f"HttpxProvider({redact_url(self.url)})"

    @property
    def where(self) -> str:
        return f"{self.label} node at {redact_url(self.url)}"

    async def _post(self, body: bytes, parse: Callable[[bytes], T]) -> T:
        """POST one JSON-RPC body; ``parse`` of the answer. Transient failures and garbled
        answers are retried; the whole call ends within ``deadline`` seconds."""
        return await post_json(
            self.client,
            self.url,
            body,
            parse,
            where=self.where,
            error=ChainError,
            retries=self.retries,
            backoff=self.backoff,
            deadline=self.deadline,
        )

    async def make_request(self, method: str, params: Any) -> RPCResponse:
        """One call; the answer as the node sent it (``result_of`` takes the result out)."""
        rid = next(self._ids)
        body = json.dumps(
            {"jsonrpc": "2.0", "id": rid, "method": method, "params": params},
            separators=(",", ":"),
        ).encode()

        def parse(content: bytes) -> RPCResponse:
            data = decoded(content, self.where, method)
            check_answer(data, rid, method, self.where)
            return dict(data)

        return await self._post(body, parse)

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
        methods = [m for m, _ in requests]

        def parse(content: bytes) -> list[RPCResponse]:
            data = decoded(content, self.where, methods[0] if methods else "batch")
            if isinstance(data, dict) and isinstance(data.get("error"), dict):
                message = str(data["error"].get("message", ""))[:120]
                raise ChainError(f"{self.where} refused a JSON-RPC batch: {message}")
            return check_batch(data, methods, self.where)

        return await self._post(body, parse)


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
