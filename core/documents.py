"""What every document of ours shares (plan files, journal rows, manifests, the planner's skip
entries): strict models, exact number types, one-line errors.

JSON carries base-unit amounts and USD values as strings (no float ever rounds them); here they
are ``int`` and ``Decimal`` and are written back as the same strings, so a document read and
written again is byte for byte what it was.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    PlainSerializer,
    PlainValidator,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
)

from rebalancer.core.errors import ConfigError

MAX_UINT256 = 2**256 - 1
_INT_TEXT = re.compile(r"-?[0-9]{1,78}")

Str = StrictStr
Int = StrictInt
Bool = StrictBool


class Document(BaseModel):
    """One of our own documents: unknown fields are an error; strings, integers and booleans
    are not coerced into each other."""

    # NOTE: defer_build: a model's validator is built when it is first used, so importing the
    # journal (``drift`` reads one date from it) does not build every document's schema
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    union_tags: ClassVar[frozenset[str]] = frozenset()
    """Tags of the tagged unions inside (left out of the field path in errors)."""

    def as_json(self) -> dict[str, Any]:
        """The document as the JSON value it was read or made from (fields it was not given
        stay absent; amounts and decimals are strings again)."""
        return dump(self)


def _int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int | str):
        raise ValueError("must be an integer (as a decimal string)")
    if isinstance(v, str):
        if not _INT_TEXT.fullmatch(v):
            raise ValueError("must be a decimal integer")
        v = int(v)
    if abs(v) > MAX_UINT256:
        raise ValueError("is out of range (more than 2**256)")
    return v


def _decimal(v: Any) -> Decimal:
    if isinstance(v, Decimal):
        d = v
    elif not isinstance(v, str):
        raise ValueError("must be a decimal number as a string")
    else:
        try:
            d = Decimal(v)
        except InvalidOperation:
            raise ValueError("must be a decimal number") from None
    if not d.is_finite() or not -100 <= d.adjusted() <= 30:
        raise ValueError("must be a finite decimal number between 1e-100 and 1e31")
    return d


def _decimal_text(d: Decimal) -> str:
    # NOTE: never an exponent (str() writes 1E-7): what every writer here makes, and no
    # script has to parse scientific notation
    return format(d, "f")


def _time(v: Any) -> datetime:
    if isinstance(v, datetime):
        return v
    if not isinstance(v, str):
        raise ValueError("must be an ISO 8601 time as a string")
    try:
        return datetime.fromisoformat(v)
    except ValueError:
        raise ValueError("must be an ISO 8601 time") from None


IntText = Annotated[int, PlainValidator(_int), PlainSerializer(str, return_type=str)]
"""An integer (base units), read from a decimal string or a JSON integer, written as a string."""

DecimalText = Annotated[
    Decimal, PlainValidator(_decimal), PlainSerializer(_decimal_text, return_type=str)
]
"""An exact decimal (USD, percentages, token units), read and written as a plain string."""

IsoTime = Annotated[
    datetime, PlainValidator(_time), PlainSerializer(datetime.isoformat, return_type=str)
]
"""A time as ``datetime.isoformat`` writes it (and ``fromisoformat`` reads it)."""


def _where(loc: tuple[int | str, ...], tags: frozenset[str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part not in tags:
            out += f".{part}" if out else part
    return out or "(document)"


def describe(exc: ValidationError, tags: frozenset[str] = frozenset()) -> str:
    """The first problem of a validation error as ``field = value: what is wrong``; ``tags``
    name the members of tagged unions, which pydantic puts in the path but are not fields."""
    err = exc.errors(include_url=False)[0]
    where = _where(tuple(err["loc"]), tags)
    kind = err["type"]
    msg = str(err["msg"]).removeprefix("Value error, ")
    if not err["loc"] and kind == "value_error":
        return msg  # a check of the whole document: its message names the fields
    if kind == "missing":
        return f"{where}: missing"
    if kind == "extra_forbidden":
        return f"{where}: unknown field"
    value = err.get("input")
    if isinstance(value, dict | list):
        return f"{where}: {msg}"
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"{where} = {shown}: {msg}"


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], data: Any, where: str) -> M:
    """``data`` as ``model``, or a ConfigError (exit 2) naming ``where`` and the field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        tags: frozenset[str] = getattr(model, "union_tags", frozenset())
        raise ConfigError(f"{where}: {describe(exc, tags)}") from None


_JSON_DEPTH = 1000


def load_json(text: str | bytes) -> Any:
    """``json.loads`` that cannot overflow the C stack: ValueError or RecursionError on bad
    input, never a crash."""
    # NOTE: py_ecc (under eth_account) raises the recursion limit to 100,000 at import; the C
    # JSON scanner recurses once per nesting level, so a file of 100,000 '[' would overflow the
    # C stack and kill the process. Documents of ours nest a few levels deep.
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(min(old, _JSON_DEPTH))
    try:
        return json.loads(text)
    finally:
        sys.setrecursionlimit(old)


def without_unknown(model: type[M], data: Any) -> Any:
    """``data`` without the fields ``model`` does not know, when those are all that is wrong
    with it (a document kept from before, with a key written by hand); else ``data``."""
    try:
        model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if not all(e["type"] == "extra_forbidden" for e in errors):
            return data
        data = copy.deepcopy(data)
        for e in errors:
            *path, key = e["loc"]
            node = data
            for part in path:
                if isinstance(node, dict) and part not in node:
                    continue  # a union member's tag, not a field
                node = node[part]
            del node[key]
    return data


def dump(doc: BaseModel) -> dict[str, Any]:
    """A document as the JSON value it was read from (fields it did not have stay absent)."""
    out: dict[str, Any] = doc.model_dump(mode="json", exclude_unset=True)
    return out
