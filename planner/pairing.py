"""Pairing sells with buys: the north-west corner walk the naive plan and the backtest share."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal


def north_west(sells: Sequence[Decimal], buys: Sequence[Decimal]) -> list[tuple[int, int, Decimal]]:
    """Walk ``sells`` and ``buys`` (USD amounts) in order, matching amounts: one
    ``(sell index, buy index, amount)`` per step that moves something."""
    out: list[tuple[int, int, Decimal]] = []
    i = j = 0
    s_left = sells[0] if sells else Decimal(0)
    b_left = buys[0] if buys else Decimal(0)
    while i < len(sells) and j < len(buys):
        amount = min(s_left, b_left)
        if amount > 0:
            out.append((i, j, amount))
        s_left -= amount
        b_left -= amount
        if s_left <= 0:
            i += 1
            s_left = sells[i] if i < len(sells) else Decimal(0)
        if b_left <= 0:
            j += 1
            b_left = buys[j] if j < len(buys) else Decimal(0)
    return out
