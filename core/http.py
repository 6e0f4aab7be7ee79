"""One retry policy for every HTTP peer (nodes, aggregator APIs).

Timeouts, connection failures, 429 and 5xx are retried with exponential backoff (a 429's
Retry-After is honoured, capped); anything still failing raises the caller's error class with
one line naming the peer (its URL already redacted by the caller).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import httpx

from rebalancer.core.errors import ExternalError

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 30.0


async def send_with_retries(
    send: Callable[[], Awaitable[httpx.Response]],
    *,
    where: str,
    error: type[ExternalError],
    retries: int = 3,
    backoff: float = 0.25,
) -> httpx.Response:
    """The first answer that is not a transient failure; ``error`` after ``retries`` more."""
    reason = ""
    delay = 0.0
    for attempt in range(retries + 1):
        if attempt:
            await asyncio.sleep(delay)
        delay = backoff * 2**attempt
        try:
            resp = await send()
        except httpx.TimeoutException:
            reason = "timed out"
            continue
        except httpx.TransportError as exc:
            reason = f"unreachable ({type(exc).__name__})"
            continue
        if resp.status_code in RETRY_STATUS:
            reason = f"HTTP {resp.status_code}"
            retry_after = resp.headers.get("Retry-After")
            if resp.status_code == 429 and retry_after:
                with contextlib.suppress(ValueError):
                    delay = min(max(float(retry_after), 0.0), MAX_RETRY_AFTER)
            continue
        return resp
    raise error(f"{where} failed after {retries + 1} tries: {reason}")


async def post_json_body(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    *,
    where: str,
    error: type[ExternalError],
    retries: int = 3,
    backoff: float = 0.25,
) -> bytes:
    """POST a JSON body with the retry policy above; anything but HTTP 200 is ``error``."""
    resp = await send_with_retries(
        lambda: client.post(url, content=body, headers={"Content-Type": "application/json"}),
        where=where,
        error=error,
        retries=retries,
        backoff=backoff,
    )
    if resp.status_code != 200:
        raise error(f"{where} answered HTTP {resp.status_code}")
    return resp.content
