"""A node's JSON-RPC error becomes the ChainError subclass that says what it means."""

from __future__ import annotations

import pytest

from rebalancer.chains.rpc_errors import rpc_error
from rebalancer.core.errors import AlreadyKnownError, ChainError, MethodNotFoundError


@pytest.mark.parametrize(
    ("code", "message", "data", "kind"),
    [
        (-32000, "already known", None, AlreadyKnownError),  # geth
        (-32003, "transaction already imported", None, AlreadyKnownError),  # anvil
        (
            -32002,
            "Transaction simulation failed: This transaction has already been processed",
            {"err": "AlreadyProcessed"},
            AlreadyKnownError,
        ),  # Solana preflight
        (-32002, "Transaction simulation failed", {"err": "AlreadyProcessed"}, AlreadyKnownError),
        (-32601, "Method not found", None, MethodNotFoundError),
        (
            -32000,
            "the method eth_simulateV1 does not exist/is not available",
            None,
            MethodNotFoundError,
        ),
        (-32000, "eth_simulateV1 is not supported", None, MethodNotFoundError),
        (-32000, "nonce too low", None, ChainError),
        (3, "execution reverted", None, ChainError),
    ],
)
def test_errors_are_typed_where_they_enter(
    code: int, message: str, data: object, kind: type[ChainError]
) -> None:
    err = rpc_error("node at http://x", "m", code, message, data)
    assert type(err) is kind
    assert err.message == f"node at http://x: m failed: {message}"
