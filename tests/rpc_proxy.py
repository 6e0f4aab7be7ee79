"""JSON-RPC proxies on loopback in front of a real node, for tests that must see where each
request went (``logging_proxy``) or put a fault between the tool and the node (``fault_proxy``:
garbled, rewritten, lost or delayed answers)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

Answer = Callable[[int, Any, Callable[[], bytes]], "bytes | None"]
"""``answer(n, request, forward)``: the body to answer the n-th request (0-based; ``request``
is a POST's decoded JSON, or a GET's path and query) with HTTP 200, or None to drop it (no
answer; the connection is held, then closed). ``forward()`` sends it upstream and returns the
upstream's body."""


class Proxy:
    """Forwards every POST to ``upstream`` (or lets ``answer`` decide) and records the
    JSON-RPC methods."""

    def __init__(self, upstream: str, answer: Answer | None = None, hold_s: float = 30.0) -> None:
        self.upstream = upstream
        self.methods: list[str] = []
        self.bodies: list[bytes] = []
        self.dropped = 0
        self._lock = threading.Lock()
        self._closing = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                try:
                    parsed = json.loads(body)
                except ValueError:
                    parsed = {}
                calls = parsed if isinstance(parsed, list) else [parsed]
                with proxy._lock:
                    n = len(proxy.bodies)
                    proxy.bodies.append(body)
                    proxy.methods += [str(c.get("method")) for c in calls if isinstance(c, dict)]

                def forward() -> bytes:
                    r = httpx.post(
                        proxy.upstream,
                        content=body,
                        headers={"content-type": "application/json"},
                        timeout=60,
                    )
                    return r.content

                self._reply(forward() if answer is None else answer(n, parsed, forward))

            def do_GET(self) -> None:  # an aggregator API: the path and query go upstream
                with proxy._lock:
                    n = len(proxy.bodies)
                    proxy.bodies.append(self.path.encode())
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                origin = httpx.URL(proxy.upstream).copy_with(path="/", query=None)

                def forward() -> bytes:
                    url = str(origin).rstrip("/") + self.path
                    return httpx.get(url, headers=headers, timeout=60).content

                self._reply(forward() if answer is None else answer(n, self.path, forward))

            def _reply(self, content: bytes | None) -> None:
                """``content`` with HTTP 200; None: dropped (held, then closed unanswered)."""
                if content is None:
                    with proxy._lock:
                        proxy.dropped += 1
                    proxy._closing.wait(hold_s)
                    self.close_connection = True
                    return
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def count(self, method: str) -> int:
        with self._lock:
            return self.methods.count(method)


@contextmanager
def fault_proxy(
    upstream: str, answer: Answer | None = None, *, hold_s: float = 30.0
) -> Iterator[Proxy]:
    """A running :class:`Proxy` in front of ``upstream``; shut down on exit (held requests
    are let go)."""
    proxy = Proxy(upstream, answer, hold_s)
    thread = threading.Thread(target=proxy.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy._closing.set()
        proxy.server.shutdown()
        proxy.server.server_close()
        thread.join(timeout=5)


@contextmanager
def logging_proxy(upstream: str) -> Iterator[Proxy]:
    """A running :class:`Proxy` in front of ``upstream`` that forwards everything unchanged."""
    with fault_proxy(upstream) as proxy:
        yield proxy


def delayed(seconds: float, content: bytes) -> bytes:
    """``content``, after ``seconds`` (a slow node)."""
    time.sleep(seconds)
    return content
