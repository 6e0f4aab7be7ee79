"""A loopback forwarder in front of an RPC URL, for child processes (an anvil fork).

A command line is readable by every local user (``ps``, ``/proc/*/cmdline``), and a keyed RPC
URL (``https://user:pass@host/v2/KEY?apikey=...``) is a secret; anvil 1.x reads its fork URL
only from its arguments. So the child is given ``http://127.0.0.1:PORT/`` and this process
forwards each request body to the real URL, counting them.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import httpx

_UNREACHABLE = b'{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"unreachable"}}'


class LoopbackForwarder:
    """Forwards POSTed JSON-RPC bodies from ``url`` (loopback) to ``upstream``."""

    def __init__(self, upstream: str, *, timeout: float = 60.0) -> None:
        self.upstream = upstream
        self.requests = 0
        """How many requests went upstream."""
        self._client = httpx.Client(timeout=timeout)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """The loopback URL to give a child process: no secret in it."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    def __enter__(self) -> LoopbackForwarder:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _forward(self, body: bytes) -> tuple[int, bytes]:
        with self._lock:
            self.requests += 1
        try:
            r = self._client.post(
                self.upstream, content=body, headers={"Content-Type": "application/json"}
            )
        except httpx.HTTPError:
            # NOTE: the upstream's error text may hold its URL; the child only learns it failed.
            return 502, _UNREACHABLE
        return r.status_code, r.content

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        forward = self._forward

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                status, data = forward(self.rfile.read(length) if length else b"")
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the child stopped (or gave up) before the answer came
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                return None

        return Handler
