"""One retry policy for every HTTP peer (nodes, aggregator APIs).

Timeouts, connection failures, 429 and 5xx are retried with exponential backoff (a 429's
Retry-After is honoured, capped); so is a 200 answer its ``parse`` calls garbled (not JSON,
not the protocol's shape: raised as :class:`Garbled`). Anything still failing raises the
caller's error class with one line naming the peer (its URL already redacted by the caller).

A call may have an overall ``deadline`` in seconds (connect, read, backoff and every retry):
each try gets at most an equal share of it (a quarter with the default 3 retries, so a hung
answer leaves time to try again) and the call gives up when it is spent, whatever the
client's own timeouts say.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Required, TypedDict, TypeVar, Unpack

import httpx

from rebalancer.core.errors import ExternalError

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 30.0
T = TypeVar("T")


class Garbled(Exception):
    """Raised by a ``parse`` callback: the peer answered 200 with garbage; retried like a 5xx,
    and ``error`` is raised when every try was garbage."""

    def __init__(self, error: ExternalError) -> None:
        super().__init__(error.message)
        self.error = error


async def send_parsed(
    send: Callable[[], Awaitable[httpx.Response]],
    parse: Callable[[httpx.Response], T],
    *,
    where: str,
    error: type[ExternalError],
    retries: int = 3,
    backoff: float = 0.25,
    deadline: float | None = None,
) -> T:
    """``parse`` of the first answer that is not a transient failure nor garbled; ``error``
    (or the last ``Garbled`` error) after ``retries`` more tries or once ``deadline`` is spent."""
    loop = asyncio.get_running_loop()
    end = None if deadline is None else loop.time() + deadline
    share = None if deadline is None else deadline / (retries + 1)
    reason = ""
    garbled: ExternalError | None = None
    delay = 0.0
    tries = 0
    for attempt in range(retries + 1):
        if attempt:
            if end is not None and loop.time() + delay >= end:
                break
            await asyncio.sleep(delay)
        delay = backoff * 2**attempt
        tries += 1
        try:
            if end is None or share is None:
                resp = await send()
            else:
                async with asyncio.timeout(max(min(share, end - loop.time()), 0.0)):
                    resp = await send()
        except (httpx.TimeoutException, TimeoutError):
            reason, garbled = "timed out", None
            continue
        except httpx.TransportError as exc:
            reason, garbled = f"unreachable ({type(exc).__name__})", None
            continue
        if resp.status_code in RETRY_STATUS:
            reason, garbled = f"HTTP {resp.status_code}", None
            retry_after = resp.headers.get("Retry-After")
            if resp.status_code == 429 and retry_after:
                with contextlib.suppress(ValueError):
                    delay = min(max(float(retry_after), 0.0), MAX_RETRY_AFTER)
            continue
        try:
            return parse(resp)
        except Garbled as exc:
            garbled = exc.error
            continue
    if garbled is not None:
        raise type(garbled)(f"{garbled.message} ({_tries(tries)})")
    within = "" if deadline is None else f" within {deadline:g} s"
    raise error(f"{where} failed after {_tries(tries)}{within}: {reason}")


def _tries(n: int) -> str:
    return f"{n} {'try' if n == 1 else 'tries'}"


class Policy(TypedDict, total=False):
    """Who is asked, what its failure raises, and how hard to try: the keywords every helper
    here takes and hands on to :func:`send_parsed` as they are."""

    where: Required[str]
    error: Required[type[ExternalError]]
    retries: int
    backoff: float
    deadline: float | None


async def send_with_retries(
    send: Callable[[], Awaitable[httpx.Response]], **policy: Unpack[Policy]
) -> httpx.Response:
    """The first answer that is not a transient failure; ``error`` after ``retries`` more."""
    return await send_parsed(send, lambda resp: resp, **policy)


async def post_json(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    parse: Callable[[bytes], T],
    **policy: Unpack[Policy],
) -> T:
    """POST a JSON body with the retry policy above; anything but HTTP 200 is ``error``;
    ``parse`` gets the 200 body and may call it :class:`Garbled` (then it is tried again)."""

    def parsed(resp: httpx.Response) -> T:
        if resp.status_code != 200:
            raise policy["error"](f"{policy['where']} answered HTTP {resp.status_code}")
        return parse(resp.content)

    return await send_parsed(
        lambda: client.post(url, content=body, headers={"Content-Type": "application/json"}),
        parsed,
        **policy,
    )
