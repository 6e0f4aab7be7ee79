"""A node's JSON-RPC error, turned into the one ``ChainError`` subclass that says what it means.

This is the only place that reads the words of a node's error: everything above catches
``AlreadyKnownError`` or ``MethodNotFoundError`` by type.
"""

from __future__ import annotations

from typing import Any

from rebalancer.core.errors import AlreadyKnownError, ChainError, MethodNotFoundError

METHOD_NOT_FOUND = -32601

# geth/anvil/avalanchego say "already known" / "transaction already imported"; Solana's
# preflight says "This transaction has already been processed" (err AlreadyProcessed).
_ALREADY = ("already known", "already imported", "already been processed", "alreadyprocessed")
_NO_METHOD = ("method not found", "not supported", "does not exist/is not available")


def rpc_error(where: str, method: str, code: Any, message: str, data: Any = None) -> ChainError:
    """The error for a node's answer ``{"code": code, "message": message, "data": data}``."""
    text = f"{where}: {method} failed: {message[:300]}"
    lowered = message.lower()
    err = data.get("err") if isinstance(data, dict) else None
    if any(w in lowered for w in _ALREADY) or err == "AlreadyProcessed":
        return AlreadyKnownError(text)
    if code == METHOD_NOT_FOUND or any(w in lowered for w in _NO_METHOD):
        return MethodNotFoundError(text)
    return ChainError(text)
