"""The local Solana node over HTTP on 127.0.0.1: POST bodies go to the JSON-RPC dispatcher,
``GET /health`` answers ok, as a validator's RPC port does."""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from rebalancer.localnet.solana_node.rpc import Dispatcher

MAX_BODY_BYTES = 10 * 1024 * 1024


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    rpc: Dispatcher
    quiet: bool


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # NOTE: headers and body go out in two writes; with Nagle on, each answer waits ~40 ms
    # for the client's delayed ACK.
    disable_nagle_algorithm = True
    server: _Server

    def do_POST(self) -> None:
        started = time.perf_counter()
        length_header = self.headers.get("Content-Length")
        if length_header is None or not length_header.isdigit():
            self._send(411, b"Content-Length required", "text/plain")
            return
        length = int(length_header)
        if length > MAX_BODY_BYTES:
            self._send(413, b"Payload Too Large", "text/plain")
            self.close_connection = True
            return
        body = self.rfile.read(length)
        reply = self.server.rpc.handle_body(body)
        payload = b"" if reply is None else json.dumps(reply, separators=(",", ":")).encode()
        self._send(200, payload, "application/json")
        if not self.server.quiet:
            ms = (time.perf_counter() - started) * 1000
            print(f"{_describe(body)} {ms:.1f}ms", file=sys.stderr, flush=True)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send(200, b"ok", "text/plain")
        else:
            self._send(
                405, b"Used HTTP Method is not allowed. POST or OPTIONS is required", "text/plain"
            )

    def _send(self, status: int, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence http.server's default access log; do_POST logs one terse line instead."""


def _describe(body: bytes) -> str:
    """A short label for the log: the method, or the batch size and first method."""
    try:
        request = json.loads(body)
    except ValueError:
        return "unparseable"
    if isinstance(request, list):
        first = request[0].get("method") if request and isinstance(request[0], dict) else None
        return f"batch[{len(request)}] {first}"
    return str(request.get("method")) if isinstance(request, dict) else "invalid"


def serve(
    dispatcher: Dispatcher,
    port: int = 0,
    *,
    quiet: bool = False,
    ready: Callable[[int], None] | None = None,
) -> None:
    """Serve ``dispatcher`` on 127.0.0.1 until SIGTERM/SIGINT; ``ready`` gets the bound port."""
    server = _Server(("127.0.0.1", port), _Handler)
    server.rpc = dispatcher
    server.quiet = quiet
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        if ready is not None:
            ready(server.server_address[1])
        while not stop.wait(0.05):
            pass
        print("solana node: stopping", file=sys.stderr, flush=True)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
