"""A loopback JSON-RPC proxy in front of a local world that waits before forwarding each
request and counts them: a distant node, for bench/ and tests (what a trade costs at 50 ms
per round trip)."""

from __future__ import annotations

import time

from rebalancer.chains.rpc_forwarder import LoopbackForwarder


class LatencyProxy(LoopbackForwarder):
    """Forwards to ``upstream`` after ``delay_s`` per request; ``requests`` counts them."""

    def __init__(self, upstream: str, *, delay_s: float = 0.0) -> None:
        super().__init__(upstream)
        self.delay_s = delay_s

    def _forward(self, body: bytes) -> tuple[int, bytes]:
        if self.delay_s:
            time.sleep(self.delay_s)
        return super()._forward(body)
