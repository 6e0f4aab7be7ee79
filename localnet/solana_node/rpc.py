"""The JSON-RPC envelope of the local Solana node: errors, requests, batches, and the parsing of
parameters every method shares (config objects, pubkeys, signatures, encodings)."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any

from solders.pubkey import Pubkey
from solders.signature import Signature

Method = Callable[[list[Any]], Any]

COMMITMENTS = {
    "processed",
    "confirmed",
    "finalized",
    "recent",
    "single",
    "singleGossip",
    "root",
    "max",
}


class RpcError(Exception):
    """A JSON-RPC error answer (code, message, optional data)."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            err["data"] = self.data
        return err


def invalid(message: str) -> RpcError:
    return RpcError(-32602, message)


def error_reply(req_id: Any, err: RpcError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "error": err.to_json(), "id": req_id}


class Dispatcher:
    """Answers HTTP bodies (one request, a batch, or garbage) from a table of methods; each
    call runs under one lock after ``before`` (the clock's tick)."""

    def __init__(
        self, methods: Mapping[str, Method], lock: threading.RLock, before: Callable[[], None]
    ) -> None:
        self.methods = dict(methods)
        self._lock = lock
        self._before = before

    def handle_body(self, body: bytes) -> Any:
        """Answer one HTTP body. None means "no reply" (notifications only)."""
        try:
            request = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return error_reply(None, RpcError(-32700, "Parse error"))
        if isinstance(request, list):
            if not request:
                return error_reply(None, RpcError(-32600, "Invalid request"))
            replies = [r for r in (self.handle_request(item) for item in request) if r is not None]
            return replies or None
        return self.handle_request(request)

    def handle_request(self, request: Any) -> dict[str, Any] | None:
        """Answer one JSON-RPC request object."""
        if not isinstance(request, dict):
            return error_reply(None, RpcError(-32600, "Invalid request"))
        req_id = request.get("id")
        valid_id = req_id is None or (
            isinstance(req_id, str | int) and not isinstance(req_id, bool)
        )
        method = request.get("method")
        params = request.get("params", [])
        if request.get("jsonrpc") != "2.0" or not isinstance(method, str) or not valid_id:
            return error_reply(req_id if valid_id else None, RpcError(-32600, "Invalid request"))
        fn = self.methods.get(method)
        try:
            if fn is None:
                raise RpcError(-32601, "Method not found")
            if params is None:
                params = []
            if not isinstance(params, list):
                raise invalid("Invalid params: invalid type: map, expected a sequence")
            with self._lock:
                self._before()
                result = fn(params)
        except RpcError as exc:
            return None if "id" not in request else error_reply(req_id, exc)
        except Exception as exc:  # a bug here must not kill the server; say where it was
            print(f"internal error in {method}: {exc!r}", file=sys.stderr, flush=True)
            return (
                None
                if "id" not in request
                else error_reply(req_id, RpcError(-32603, "Internal error"))
            )
        if "id" not in request:
            return None
        return {"jsonrpc": "2.0", "result": result, "id": req_id}


# -- parameters --------------------------------------------------------------------------------
def config(params: list[Any], index: int, slot: int) -> dict[str, Any]:
    """The optional config object at ``index``; checks commitment and minContextSlot against
    the node's current ``slot``."""
    cfg = params[index] if len(params) > index else None
    if cfg is None:
        return {}
    if not isinstance(cfg, dict):
        raise invalid(f"Invalid params: invalid type: {type(cfg).__name__}, expected a map")
    commitment = cfg.get("commitment")
    if commitment is not None and commitment not in COMMITMENTS:
        raise invalid(
            f"Invalid params: unknown variant `{commitment}`, expected one of "
            "`processed`, `confirmed`, `finalized`"
        )
    min_slot = cfg.get("minContextSlot")
    if min_slot is not None:
        if not isinstance(min_slot, int) or isinstance(min_slot, bool):
            raise invalid("Invalid params: minContextSlot must be an integer")
        if min_slot > slot:
            raise RpcError(
                -32016, "Minimum context slot has not been reached", {"contextSlot": slot}
            )
    return cfg


def arg(params: list[Any], index: int, what: str) -> Any:
    if len(params) <= index:
        raise invalid(f"Invalid params: missing {what}")
    return params[index]


def pubkey(value: Any) -> Pubkey:
    if not isinstance(value, str):
        raise invalid("Invalid param: Invalid")
    try:
        return Pubkey.from_string(value)
    except ValueError:
        raise invalid(f"Invalid param: {'WrongSize' if len(value) > 44 else 'Invalid'}") from None


def int_arg(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise invalid(f"Invalid params: {what} must be a non-negative integer")
    return value


def signature(sig: Any) -> Signature:
    if not isinstance(sig, str):
        raise invalid("Invalid param: signature must be a string")
    try:
        return Signature.from_string(sig)
    except ValueError:
        raise invalid("Invalid param: Invalid") from None


def account_encoding(cfg: dict[str, Any], default: str) -> str:
    encoding = cfg.get("encoding") or default
    if encoding not in ("base58", "base64", "jsonParsed", "binary"):
        raise invalid(f"Invalid params: unsupported account encoding {encoding!r}")
    return str(encoding)


def data_slice(cfg: dict[str, Any]) -> tuple[int, int] | None:
    value = cfg.get("dataSlice")
    if value is None:
        return None
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("offset"), int)
        or not isinstance(value.get("length"), int)
        or value["offset"] < 0
        or value["length"] < 0
    ):
        raise invalid("Invalid params: dataSlice needs non-negative offset and length")
    return value["offset"], value["length"]
