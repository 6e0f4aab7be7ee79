"""A loopback JSON-RPC proxy in front of a local world that waits before forwarding each
request and counts them: a distant node, for bench/ and tests (what a trade costs at 50 ms
per round trip)."""

from __future__ import annotations

import json
import time

from rebalancer.chains.rpc_forwarder import LoopbackForwarder


class LatencyProxy(LoopbackForwarder):
    """Forwards to ``upstream`` after ``delay_s`` per request; ``requests`` counts them (HTTP
    round trips) and ``calls`` the JSON-RPC calls in them (a batch counts each)."""

    def __init__(self, upstream: str, *, delay_s: float = 0.0) -> None:
        super().__init__(upstream)
        self.delay_s = delay_s
        self.calls = 0

    def _forward(self, body: bytes) -> tuple[int, bytes]:
        try:
            parsed = json.loads(body)
            self.calls += len(parsed) if isinstance(parsed, list) else 1
        except ValueError:
            self.calls += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        return super()._forward(body)
