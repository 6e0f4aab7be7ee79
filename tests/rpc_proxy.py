"""A logging JSON-RPC proxy on loopback, for tests that must see where each request went."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx


class Proxy:
    """Forwards every POST to ``upstream`` unchanged and records the JSON-RPC methods."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.methods: list[str] = []
        self.bodies: list[bytes] = []
        self._lock = threading.Lock()
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
                    proxy.bodies.append(body)
                    proxy.methods += [str(c.get("method")) for c in calls if isinstance(c, dict)]
                r = httpx.post(
                    proxy.upstream,
                    content=body,
                    headers={"content-type": "application/json"},
                    timeout=60,
                )
                self.send_response(r.status_code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def count(self, method: str) -> int:
        with self._lock:
            return self.methods.count(method)


@contextmanager
def logging_proxy(upstream: str) -> Iterator[Proxy]:
    """A running :class:`Proxy` in front of ``upstream``; shut down on exit."""
    proxy = Proxy(upstream)
    thread = threading.Thread(target=proxy.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.server.shutdown()
        proxy.server.server_close()
        thread.join(timeout=5)
