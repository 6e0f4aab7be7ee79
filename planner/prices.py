"""Where prices come from, and the check that refuses to plan on prices sources disagree on.

A ``PriceSource`` answers USD per whole unit of each asset it knows (Decimal, never float). The
snapshot/manual source is a fixed table; the aggregator-quote source (a later issue) implements
the same protocol outside the planner, since it does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from rebalancer.core.errors import ConfigError, RefusedError


class PriceDisagreementError(RefusedError):
    """Two price sources disagree on an asset by more than the configured percent (exit 3)."""


class PriceSource(Protocol):
    """Anything that prices assets in USD per whole unit."""

    @property
    def name(self) -> str:
        """Shown in messages, e.g. "snapshot prices" or "1inch quotes"."""
        ...

    def prices(self, assets: Iterable[str]) -> dict[str, Decimal]:
        """Prices of those of ``assets`` the source knows; unknown assets are left out."""
        ...


@dataclass(frozen=True)
class ManualPrices:
    """A fixed table of prices: a snapshot file or the config's ``[prices]``."""

    table: Mapping[str, Decimal]
    name: str = "manual"

    def __post_init__(self) -> None:
        for asset, price in self.table.items():
            if not isinstance(price, Decimal) or not price.is_finite() or price <= 0:
                raise ConfigError(f"{self.name}.{asset} = {price!r}: must be a positive number")

    def prices(self, assets: Iterable[str]) -> dict[str, Decimal]:
        return {a: self.table[a] for a in assets if a in self.table}


def deviation_pct(a: Decimal, b: Decimal) -> Decimal:
    """``|a - b| / min(a, b) * 100``: symmetric, so the order of the sources does not matter."""
    return abs(a - b) / min(a, b) * 100


def check_agreement(
    primary: PriceSource,
    secondary: PriceSource,
    assets: Iterable[str],
    max_deviation_pct: Decimal,
) -> dict[str, Decimal]:
    """Return the primary's prices after checking every asset both know against the secondary.

    Raises PriceDisagreementError naming the first asset (in sorted order) that deviates more
    than ``max_deviation_pct``.
    """
    wanted = sorted(set(assets))
    first = primary.prices(wanted)
    second = secondary.prices(wanted)
    for asset in wanted:
        if asset in first and asset in second:
            dev = deviation_pct(first[asset], second[asset])
            if dev > max_deviation_pct:
                raise PriceDisagreementError(
                    f"price of {asset}: {primary.name} says {first[asset]}, {secondary.name} "
                    f"says {second[asset]} ({dev:.2f}% apart, more than "
                    f"strategy.price_max_deviation_pct = {max_deviation_pct}); refusing to plan"
                )
    return first
