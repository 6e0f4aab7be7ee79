"""The HTTP side of the aggregator stand-ins: JSON answers over HTTP/1.1, and the serving loop.

Each stand-in keeps its own ``Api.handle``; this module only turns a request into a call of it,
its answer into a JSON response, and serves on 127.0.0.1 until SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

Handle = Callable[[str, str, str, bytes, dict[str, str]], tuple[int, Any]]
"""``(method, path, query, body, lower-cased headers) -> (status, JSON answer)``."""


def json_handler(
    name: str,
    handle: Handle,
    *,
    methods: tuple[str, ...],
    internal_error: Callable[[Exception], Any],
) -> type[BaseHTTPRequestHandler]:
    """A request handler answering ``methods`` through ``handle``; a bug in it answers 500 with
    ``internal_error(exc)`` like the real API would. Other methods get the server's 501."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # NOTE: headers and body go out in separate writes; without TCP_NODELAY each answer
        # waits ~40 ms for the client's delayed ACK.
        disable_nagle_algorithm = True

        def _answer(self) -> None:
            parts = urlsplit(self.path)
            headers = {k.lower(): v for k, v in self.headers.items()}
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            try:
                status, answer = handle(self.command, parts.path, parts.query, body, headers)
            except Exception as exc:  # a stand-in bug: answer 500 like the real API would
                status, answer = 500, internal_error(exc)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            sys.stderr.write(
                f"{name} {self.command} {urlsplit(self.path).path} "
                f"{args[1] if len(args) > 1 else ''}\n"
            )

    # NOTE: BaseHTTPRequestHandler dispatches to ``do_<METHOD>``; a method without one is a 501.
    for method in methods:
        setattr(Handler, f"do_{method}", Handler._answer)
    return Handler


def serve(handler: type[BaseHTTPRequestHandler], port: int) -> int:
    """Serve on 127.0.0.1:``port`` (0: a free one, printed as ``Listening on``) until SIGTERM."""
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    print(f"Listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
