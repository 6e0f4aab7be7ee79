"""The dashboard's HTTP server: the standard library's, threaded, GET only.

Routes: ``/`` (the page), ``/api/panels`` (every panel's HTML as JSON), ``/events`` (server-sent
events: one ``update`` whenever the state changes, a comment every 15 s to keep the line open),
``/charts/NAME.svg`` and ``/static/NAME`` (the CSS, the script and the icon, shipped in the
wheel). Every answer carries a Content-Security-Policy that lets the page load nothing but from
this server, and a request whose ``Host`` is not this server's loopback name is refused, so a
web page elsewhere cannot read the dashboard through DNS rebinding.
"""

from __future__ import annotations

import json
import socket
import sys
import traceback
from collections.abc import Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from typing import Any
from urllib.parse import urlsplit

from rebalancer.dashboard import page
from rebalancer.dashboard.data import Dashboard

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEARTBEAT_S = 15.0
_STATIC = {
    "dashboard.css": "text/css; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}


class DashboardServer(ThreadingHTTPServer):
    """One dashboard, served to any number of pages; handler threads die with the process."""

    daemon_threads = True

    def __init__(
        self, host: str, port: int, dashboard: Dashboard, allowed_hosts: Iterable[str] | None
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.dashboard = dashboard
        self.allowed_hosts = None if allowed_hosts is None else set(allowed_hosts)
        self.stopping = False
        super().__init__((host, port), Handler)
        if self.allowed_hosts is not None:
            real_port = self.server_address[1]
            self.allowed_hosts = {f"{h}:{real_port}" for h in self.allowed_hosts}

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def stop(self) -> None:
        self.stopping = True
        self.dashboard.stop()
        self.shutdown()
        self.server_close()


class Handler(BaseHTTPRequestHandler):
    server: DashboardServer
    server_version = "rebalancer-dashboard"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a page polling all day would fill the terminal."""

    def _headers(self, status: int, ctype: str, length: int | None, cache: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        self.send_header("Cache-Control", "max-age=300" if cache else "no-store")
        self.end_headers()

    def _send(self, status: int, body: bytes, ctype: str, cache: bool = False) -> None:
        self._headers(status, ctype, len(body), cache)
        self.wfile.write(body)

    def _text(self, status: int, text: str) -> None:
        self._send(status, (text + "\n").encode(), "text/plain; charset=utf-8")

    def _host_ok(self) -> bool:
        allowed = self.server.allowed_hosts
        return allowed is None or self.headers.get("Host", "").lower() in allowed

    def do_GET(self) -> None:
        try:
            self._get()
        except (BrokenPipeError, ConnectionResetError):
            return  # the page went away
        except Exception:
            # NOTE: a bug answers 500 and shows its traceback in the terminal, not the page.
            traceback.print_exc(file=sys.stderr)
            self._text(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error (a bug; see the terminal)")

    def _get(self) -> None:
        if not self._host_ok():
            self._text(HTTPStatus.FORBIDDEN, "forbidden: unexpected Host header")
            return
        path = urlsplit(self.path).path
        dash = self.server.dashboard
        if path == "/":
            body = page.document(dash.state, dash.registry, dash.config).encode()
            self._send(HTTPStatus.OK, body, "text/html; charset=utf-8")
        elif path == "/api/panels":
            state = dash.state
            doc = {
                "version": state.version,
                "refreshed_at": state.refreshed_at,
                "panels": page.panels(state, dash.registry, dash.config),
            }
            self._send(HTTPStatus.OK, json.dumps(doc).encode(), "application/json")
        elif path == "/events":
            self._events()
        elif path.startswith("/charts/") and path.endswith(".svg"):
            svg = dash.state.charts.get(path.removeprefix("/charts/").removesuffix(".svg"))
            if svg is None:
                self._text(HTTPStatus.NOT_FOUND, "no such chart (yet)")
            else:
                self._send(HTTPStatus.OK, svg, "image/svg+xml", cache=True)
        elif path.startswith("/static/") and path.removeprefix("/static/") in _STATIC:
            name = path.removeprefix("/static/")
            data = (files("rebalancer.dashboard") / "static" / name).read_bytes()
            self._send(HTTPStatus.OK, data, _STATIC[name], cache=True)
        else:
            self._text(HTTPStatus.NOT_FOUND, "not found")

    def _refuse(self) -> None:
        self._text(HTTPStatus.METHOD_NOT_ALLOWED, "read-only: only GET")

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse

    def _events(self) -> None:
        """Server-sent events: the state's version whenever it changes."""
        self._headers(HTTPStatus.OK, "text/event-stream", None)
        dash = self.server.dashboard
        state = dash.state
        try:
            self.wfile.write(b"retry: 3000\n\n")
            while not self.server.stopping:
                data = json.dumps({"version": state.version, "refreshed_at": state.refreshed_at})
                self.wfile.write(f"event: update\ndata: {data}\n\n".encode())
                self.wfile.flush()
                newer = dash.wait_newer(state.version, HEARTBEAT_S)
                while newer.version == state.version and not self.server.stopping:
                    self.wfile.write(b": keep-alive\n\n")
                    self.wfile.flush()
                    newer = dash.wait_newer(state.version, HEARTBEAT_S)
                state = newer
        except (BrokenPipeError, ConnectionResetError):
            return  # the page went away
