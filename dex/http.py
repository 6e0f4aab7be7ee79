"""Fetching aggregator JSON: one retry policy, one parse at the edge, errors mapped once.

``HttpAggregator`` holds what both HTTP adapters share: the client, base URL, key and retry
policy, sending one call with the key attached, and refusing a rejected key the same way.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from rebalancer.core import bounds
from rebalancer.core.errors import AggregatorError, CorruptResponseError
from rebalancer.core.http import send_with_retries
from rebalancer.core.redact import redact_url
from rebalancer.core.types import Token
from rebalancer.dex.base import SwapAggregator

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
        error = CorruptResponseError if resp.status_code == 200 else AggregatorError
        raise error(f"{where} answered HTTP {resp.status_code} with non-JSON ({kind})") from None


def amount(value: int, where: str, token: Token) -> int:
    """A token amount an aggregator answered, within ``core.bounds`` (not negative, at most
    10^15 whole tokens): anything else is a corrupt answer, refused (exit 3) naming the field."""
    return bounds.raw_amount(value, where, token.decimals, error=CorruptResponseError)


def parse(model: type[M], data: Any, where: str) -> M:
    """Parse an answer into its model; a missing or mistyped field is one clear line."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "(body)"
        raise CorruptResponseError(
            f"{where} answered an unexpected {model.__name__}: {loc}: {err['msg']}"
        ) from None


class HttpAggregator(SwapAggregator):
    """An aggregator behind a JSON HTTP API; subclasses say how the key goes on the wire."""

    label: str = "aggregator"
    """How messages name the API ("Jupiter", "1inch")."""
    key_env: str = ""
    """The environment variable that sets the key, named when the API refuses it."""
    default_base_url: str = ""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        retries: int = 3,
        backoff: float = 1.0,
    ) -> None:
        self.client = client
        self.base_url = (self.default_base_url if base_url is None else base_url).rstrip("/")
        self._api_key = api_key
        self.retries = retries
        self.backoff = backoff

    def __repr__(self) -> str:
        return f"{type(self).__name__}({redact_url(self.base_url)})"

    @property
    def where(self) -> str:
        """The API as errors name it; the base URL is redacted, it may hold a key."""
        return f"{self.label} API at {redact_url(self.base_url)}"

    def _auth_headers(self, api_key: str) -> dict[str, str]:
        """The header(s) that carry ``api_key``."""
        raise NotImplementedError

    async def _fetch(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> tuple[int, Any]:
        """Status and decoded JSON of one call, with the key (if any) attached."""
        headers = {"Accept": "application/json"}
        if self._api_key:
            headers.update(self._auth_headers(self._api_key))
        return await fetch(
            self.client,
            method,
            url,
            where=self.where,
            params=params,
            body=body,
            headers=headers,
            retries=self.retries,
            backoff=self.backoff,
        )

    def _error_body(self, model: type[M], status: int, data: Any) -> M:
        """The error body of a non-200 answer; a refused key (401/403) is raised here."""
        err = parse(model, data if isinstance(data, dict) else {}, self.where)
        if status in (401, 403):
            raise AggregatorError(
                f"{self.where} refused the API key (HTTP {status}): set {self.key_env}"
            )
        return err
