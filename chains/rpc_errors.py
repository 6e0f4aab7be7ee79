"""A node's JSON-RPC answer checked once where it enters: its error turned into the one
``ChainError`` subclass that says what it means, and garbage recognised as garbage.

This is the only place that reads the words of a node's error: everything above catches
``AlreadyKnownError`` or ``MethodNotFoundError`` by type. A 200 answer that is not a JSON-RPC
answer to what was asked (not JSON, neither result nor error, another id, a result of the wrong
type, a batch short of answers) is :class:`~rebalancer.core.http.Garbled`: the transport retries
it like a 5xx, and ``MalformedAnswerError`` (exit 4) names the node and the method at the end.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rebalancer.core.errors import (
    AlreadyKnownError,
    ChainError,
    MalformedAnswerError,
    MethodNotFoundError,
)
from rebalancer.core.http import Garbled

METHOD_NOT_FOUND = -32601

# geth/anvil/avalanchego say "already known" / "transaction already imported"; Solana's
# preflight says "This transaction has already been processed" (err AlreadyProcessed).
_ALREADY = ("already known", "already imported", "already been processed", "alreadyprocessed")
_NO_METHOD = ("method not found", "not supported", "does not exist/is not available")

_HEX = (str,)
_OBJECT = (dict,)
_OBJECT_OR_NULL = (dict, type(None))
RESULT_TYPES: dict[str, tuple[type, ...]] = {
    **dict.fromkeys(
        (
            "eth_chainId",
            "eth_call",
            "eth_getBalance",
            "eth_getCode",
            "eth_getStorageAt",
            "eth_getTransactionCount",
            "eth_maxPriorityFeePerGas",
            "eth_gasPrice",
            "eth_estimateGas",
            "eth_blockNumber",
            "eth_sendRawTransaction",
            "eth_sendTransaction",
        ),
        _HEX,
    ),
    "eth_getBlockByNumber": _OBJECT_OR_NULL,
    "eth_getTransactionReceipt": _OBJECT_OR_NULL,
    "eth_getTransactionByHash": _OBJECT_OR_NULL,
    "eth_feeHistory": _OBJECT,
    "eth_createAccessList": _OBJECT,
    "eth_simulateV1": (list,),
    "getGenesisHash": (str,),
    "sendTransaction": (str,),
    "getSignaturesForAddress": (list,),
    "getRecentPrioritizationFees": (list,),
    "getTransaction": _OBJECT_OR_NULL,
    **dict.fromkeys(
        (
            "getMultipleAccounts",
            "getTokenAccountsByOwner",
            "getSignatureStatuses",
            "getAccountInfo",
            "getBalance",
            "getLatestBlockhash",
            "isBlockhashValid",
            "simulateTransaction",
            "getFeeForMessage",
        ),
        _OBJECT,
    ),
}
"""What the ``result`` of each method the tool calls is, in JSON types (others: anything)."""


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


def garbled(where: str, method: str, what: str) -> Garbled:
    """The retry signal for a garbage answer to ``method``, carrying its final error."""
    return Garbled(MalformedAnswerError(f"{where} answered {method} {what}"))


def decoded(content: bytes, where: str, method: str) -> Any:
    """The JSON of a 200 body; not JSON is garbled."""
    try:
        return json.loads(content)
    except ValueError:
        raise garbled(where, method, "with malformed JSON") from None


def check_answer(answer: Any, request_id: int, method: str, where: str) -> None:
    """Raise :class:`Garbled` unless ``answer`` is the node's answer to request ``request_id``:
    an object with that id and a ``result`` of the method's type, or an ``error``."""
    if not isinstance(answer, dict):
        raise garbled(where, method, f"with a {type(answer).__name__}, not a JSON-RPC object")
    got = answer.get("id")
    if isinstance(got, bool) or got != request_id:
        raise garbled(where, method, f"with id {got!r:.20} to request id {request_id}")
    if answer.get("error") is not None:
        return
    if "result" not in answer:
        raise garbled(where, method, "with neither a result nor an error")
    want = RESULT_TYPES.get(method)
    if want is not None and not isinstance(answer["result"], want):
        names = " or ".join("null" if t is type(None) else _JSON[t] for t in want)
        kind = _JSON.get(type(answer["result"]), type(answer["result"]).__name__)
        raise garbled(where, method, f"with a result of the wrong type ({kind}, not {names})")


def check_batch(answers: Any, methods: Sequence[str], where: str) -> list[dict[str, Any]]:
    """The answers of a batch in request order (ids 0..n-1), each checked; garbled unless
    every request has exactly one well-formed answer."""
    what = f"a batch of {len(methods)} ({methods[0] if methods else 'nothing'}, ...)"
    if not isinstance(answers, list):
        raise Garbled(MalformedAnswerError(f"{where} answered {what} with no list"))
    by_id: dict[Any, Any] = {}
    for a in answers:
        key = a.get("id") if isinstance(a, dict) else None
        by_id[key if isinstance(key, int) and not isinstance(key, bool) else None] = a
    if len(answers) != len(methods) or set(by_id) != set(range(len(methods))):
        raise Garbled(
            MalformedAnswerError(
                f"{where} answered {len(answers)} of {what} (truncated or without request ids)"
            )
        )
    for i, method in enumerate(methods):
        check_answer(by_id[i], i, method, where)
    return [by_id[i] for i in range(len(methods))]


_JSON: dict[type, str] = {
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    dict: "object",
    list: "array",
    type(None): "null",
}
