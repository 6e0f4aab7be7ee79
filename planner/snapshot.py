"""The snapshot file: holdings and prices (and optionally history and tax lots) for offline use.

``drift``/``plan``/``harvest --snapshot FILE`` read it instead of the chains, so users can ask
"what if" and tests need no chain. Parsing takes the text (the command reads the file). Format::

    {
      "as_of": "2025-06-01T00:00:00Z",            # optional: the snapshot's time
      "last_rebalance": "2025-03-01T00:00:00Z",   # optional: for the calendar trigger
      "prices": {"BTC": "104000", "ETH": "2500"}, # USD per whole unit, per asset
      "reference_prices": {"BTC": "103900"},      # optional: a second source to check against
      "holdings": [
        {"chain": "ethereum", "wallet": "main", "token": "WBTC", "amount": "1.25"},
        {"chain": "solana", "wallet": "sol", "token": "solana:5eyk.../token:EPjF...",
         "raw": "2500000000"}
      ],
      "price_history": {"BTC": ["98000", "99500"]},  # optional: oldest first, one per period
      "lots": [{"id": "L1", "date": "2024-01-10", "asset": "BTC", "amount": "0.5",
                "cost_basis_usd": "21000"}]          # optional: tax lots
    }

``token`` is a symbol on that chain, a CAIP-19 id or the token's address; give ``amount``
(decimal string in token units) or ``raw`` (integer base units, as a string or integer), not
both. Numbers may be JSON numbers or strings; they are read as exact decimals and bounded
(``core.bounds``: finite, at most 10^15 tokens, prices $10^-12 .. $10^9, values at most $10^13).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from rebalancer.core import bounds
from rebalancer.core.errors import ConfigError
from rebalancer.core.types import Holding, Token
from rebalancer.planner.model import Universe, to_base_units
from rebalancer.planner.tax import Lot, parse_lot

_KEYS = {
    "as_of",
    "last_rebalance",
    "prices",
    "reference_prices",
    "holdings",
    "price_history",
    "lots",
    "comment",
}
_HOLDING_KEYS = {"chain", "wallet", "token", "amount", "raw"}


@dataclass(frozen=True)
class Snapshot:
    """A parsed snapshot: exact holdings and prices, plus the optional extras."""

    holdings: tuple[Holding, ...]
    prices: dict[str, Decimal]
    reference_prices: dict[str, Decimal] | None = None
    as_of: datetime | None = None
    last_rebalance: datetime | None = None
    history: dict[str, list[Decimal]] = field(default_factory=dict)
    lots: tuple[Lot, ...] = ()


def _time(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    try:
        out = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{where} = {value!r}: not an ISO 8601 time") from None
    return out if out.tzinfo is not None else out.replace(tzinfo=UTC)


def _prices(value: Any, where: str, universe: Universe) -> dict[str, Decimal]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: must be an object of asset -> USD price")
    known = {a for assets in universe.classes.values() for a in assets}
    out = {}
    for asset, price in value.items():
        if asset not in known:
            raise ConfigError(f"{where}.{asset}: unknown asset")
        out[asset] = bounds.price(price, f"{where}.{asset}")
    return out


def find_token(universe: Universe, chain: str, name: str) -> Token | None:
    """A token on ``chain`` by symbol, CAIP-19 id or contract/mint address."""
    found = universe.by_symbol(chain, name)
    if found is not None:
        return found
    folded = name.lower() if name.startswith("0x") else name
    for t in universe.tokens_on(chain):
        address = t.address.lower() if t.address and t.address.startswith("0x") else t.address
        if name == t.id or folded == address:
            return t
    return None


def parse_snapshot(text: str, universe: Universe, source: str = "snapshot") -> Snapshot:
    """Parse and check a snapshot; every error names the field and the value."""
    try:
        data = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: must be a JSON object")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise ConfigError(f"{source}: unknown field {unknown[0]!r}")
    if "prices" not in data:
        raise ConfigError(f"{source}: prices is missing")
    if "holdings" not in data:
        raise ConfigError(f"{source}: holdings is missing")
    prices = _prices(data["prices"], f"{source}: prices", universe)
    reference = None
    if data.get("reference_prices") is not None:
        reference = _prices(data["reference_prices"], f"{source}: reference_prices", universe)
    raw_holdings = data["holdings"]
    if not isinstance(raw_holdings, list):
        raise ConfigError(f"{source}: holdings must be a list")
    holdings = []
    seen: set[tuple[str, str, str]] = set()
    for i, h in enumerate(raw_holdings):
        where = f"{source}: holdings[{i}]"
        if not isinstance(h, dict):
            raise ConfigError(f"{where}: must be an object")
        extra = sorted(set(h) - _HOLDING_KEYS)
        if extra:
            raise ConfigError(f"{where}: unknown field {extra[0]!r}")
        for key in ("chain", "wallet", "token"):
            if not isinstance(h.get(key), str) or not h[key]:
                raise ConfigError(f"{where}.{key}: missing")
        chain = h["chain"]
        if chain not in universe.chains:
            known = ", ".join(universe.chains)
            raise ConfigError(f"{where}.chain = {chain!r}: unknown chain (known: {known})")
        token = find_token(universe, chain, h["token"])
        if token is None:
            raise ConfigError(f"{where}.token = {h['token']!r}: unknown token on {chain}")
        if ("amount" in h) == ("raw" in h):
            raise ConfigError(f"{where}: give amount or raw (one of them)")
        if "raw" in h:
            raw = bounds.raw_amount(h["raw"], f"{where}.raw", token.decimals)
            field_name, shown = "raw", h["raw"]
        else:
            amount = bounds.units(h["amount"], f"{where}.amount", token.decimals)
            raw = to_base_units(amount, token.decimals)
            field_name, shown = "amount", h["amount"]
        price = prices.get(token.asset)
        if (
            price is not None
            and Decimal(raw).scaleb(-token.decimals) * price > bounds.MAX_VALUE_USD
        ):
            raise ConfigError(
                f"{where}.{field_name} = {shown!r}: worth over ${bounds.MAX_VALUE_USD:,} "
                f"at {token.asset} ${price}"
            )
        hkey = (chain, h["wallet"], token.id)
        if hkey in seen:
            raise ConfigError(
                f"{where}: duplicate holding of {token.symbol} in wallet {h['wallet']!r} on {chain}"
            )
        seen.add(hkey)
        if raw > 0 and token.asset not in prices:
            raise ConfigError(
                f"{source}: prices.{token.asset}: missing (held as {token.symbol} on {chain})"
            )
        holdings.append(Holding(chain, h["wallet"], token, raw))
    history: dict[str, list[Decimal]] = {}
    raw_history = data.get("price_history") or {}
    if not isinstance(raw_history, dict):
        raise ConfigError(f"{source}: price_history must be an object of asset -> list")
    for asset, series in raw_history.items():
        where = f"{source}: price_history.{asset}"
        if not isinstance(series, list):
            raise ConfigError(f"{where}: must be a list of prices")
        values = [bounds.price(p, f"{where}[{n}]") for n, p in enumerate(series)]
        history[asset] = values
    known_assets = {a for assets in universe.classes.values() for a in assets}
    lots = []
    raw_lots = data.get("lots") or []
    if not isinstance(raw_lots, list):
        raise ConfigError(f"{source}: lots must be a list")
    for n, lot in enumerate(raw_lots):
        if not isinstance(lot, Mapping):
            raise ConfigError(f"{source}: lots[{n}]: must be an object")
        lots.append(parse_lot(lot, f"{source}: lots[{n}]", known_assets, n + 1))
    return Snapshot(
        holdings=tuple(holdings),
        prices=prices,
        reference_prices=reference,
        as_of=_time(data.get("as_of"), f"{source}: as_of"),
        last_rebalance=_time(data.get("last_rebalance"), f"{source}: last_rebalance"),
        history=history,
        lots=tuple(lots),
    )
