"""Fetching aggregator JSON: one retry policy, one parse at the edge, errors mapped once."""

from __future__ import annotations

import json
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from core.errors import AggregatorError
from core.http import send_with_retries

M = TypeVar("M", bound=BaseModel)


async def fetch(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    where: str,
    params: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    retries: int = 3,
    backoff: float = 0.5,
) -> tuple[int, Any]:
    """Status and decoded JSON of one API call, after retries; non-JSON is an AggregatorError."""
    resp = await send_with_retries(
        lambda: client.request(method, url, params=params, json=body, headers=headers),
        where=where,
        error=AggregatorError,
        retries=retries,
        backoff=backoff,
    )
    try:
        return resp.status_code, json.loads(resp.content)
    except ValueError:
        kind = resp.headers.get("Content-Type", "unknown type").split(";")[0]
        raise AggregatorError(
            f"{where} answered HTTP {resp.status_code} with non-JSON ({kind})"
        ) from None


def parse(model: type[M], data: Any, where: str) -> M:
    """Parse an answer into its model; a missing or mistyped field is one clear line."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "(body)"
        raise AggregatorError(
            f"{where} answered an unexpected {model.__name__}: {loc}: {err['msg']}"
        ) from None
