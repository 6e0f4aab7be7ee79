"""Price points recorded at any moment, turned into the evenly spaced closes the volatility and
momentum formulas expect (pure: the points and the period come in as arguments)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal


def closes(points: Sequence[tuple[int, Decimal]], period_s: int) -> list[Decimal]:
    """The last price of each ``period_s``-long period that has one, oldest first.

    A refresh every 15 minutes and a day's period give one close a day; periods without a point
    are skipped (not filled), so a gap never invents a price.
    """
    last: dict[int, tuple[int, Decimal]] = {}
    for at, price in points:
        bucket = at // period_s
        seen = last.get(bucket)
        if seen is None or at >= seen[0]:
            last[bucket] = (at, price)
    return [last[b][1] for b in sorted(last)]


def period_s(periods_per_year: int) -> int:
    """Seconds per period for ``periods_per_year`` (365 -> one day)."""
    return max(1, 365 * 86400 // periods_per_year)
