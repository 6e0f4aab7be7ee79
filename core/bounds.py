"""How big a number read from outside may be: amounts, prices and values from files and APIs.

Every number a user file, an API or a node gives is checked against these before it reaches
the planner, the solver or a transaction: finite (no NaN, no Infinity), within a documented
magnitude, and (for token amounts) at most the token's decimals. Anything else is refused with
one line naming the field (``ConfigError``, exit 2, for files; the caller picks the error for
an API answer).

    amounts   at most 10^15 whole tokens per holding, trade or lot
    prices    above 0 and at most $10^9 per whole token (at least $10^-12 when not 0)
    values    at most $10^13 per holding or trade
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from rebalancer.core.errors import ConfigError, RebalancerError

MAX_UNITS = Decimal(10) ** 15
"""Whole tokens in one holding, trade or lot (the largest supplies are about 10^15)."""
MAX_PRICE_USD = Decimal(10) ** 9
MIN_PRICE_USD = Decimal(10) ** -12
MAX_VALUE_USD = Decimal(10) ** 13


def number(value: Any, where: str, *, error: type[RebalancerError] = ConfigError) -> Decimal:
    """``value`` (a JSON number, a string or an int, never a bool) as an exact finite Decimal."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        raise error(f"{where} = {_shown(value)}: not a number")
    try:
        out = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise error(f"{where} = {_shown(value)}: not a number") from None
    if not out.is_finite():
        raise error(f"{where} = {_shown(value)}: not a finite number")
    return out


def units(
    value: Any, where: str, decimals: int, *, error: type[RebalancerError] = ConfigError
) -> Decimal:
    """A token amount in whole units: finite, not negative, at most MAX_UNITS, at most
    ``decimals`` places."""
    out = number(value, where, error=error)
    if out < 0:
        raise error(f"{where} = {_shown(value)}: negative")
    if out > MAX_UNITS:
        raise error(f"{where} = {_shown(value)}: over {MAX_UNITS:,} whole tokens")
    if places(out) > decimals:
        raise error(f"{where} = {_shown(value)}: more decimals than the token has ({decimals})")
    return out


def raw_amount(
    value: Any, where: str, decimals: int, *, error: type[RebalancerError] = ConfigError
) -> int:
    """A token amount in base units: a non-negative integer of at most MAX_UNITS whole tokens."""
    out = number(value, where, error=error)
    if out != out.to_integral_value():
        raise error(f"{where} = {_shown(value)}: not an integer")
    if out < 0:
        raise error(f"{where} = {_shown(value)}: negative")
    if out > MAX_UNITS.scaleb(decimals):
        raise error(f"{where} = {_shown(value)}: over {MAX_UNITS:,} whole tokens")
    return int(out)


def price(value: Any, where: str, *, error: type[RebalancerError] = ConfigError) -> Decimal:
    """A USD price per whole token: above 0, between MIN_PRICE_USD and MAX_PRICE_USD."""
    out = number(value, where, error=error)
    if out <= 0:
        raise error(f"{where} = {_shown(value)}: must be above 0")
    if out > MAX_PRICE_USD or out < MIN_PRICE_USD:
        raise error(
            f"{where} = {_shown(value)}: outside ${MIN_PRICE_USD} .. ${MAX_PRICE_USD:,} per token"
        )
    return out


def usd(value: Any, where: str, *, error: type[RebalancerError] = ConfigError) -> Decimal:
    """A USD value: finite, not negative, at most MAX_VALUE_USD."""
    out = number(value, where, error=error)
    if out < 0:
        raise error(f"{where} = {_shown(value)}: negative")
    if out > MAX_VALUE_USD:
        raise error(f"{where} = {_shown(value)}: over ${MAX_VALUE_USD:,}")
    return out


def places(value: Decimal) -> int:
    """Decimal places ``value`` really has (trailing zeros do not count); exact, no rounding."""
    t = value.as_tuple()
    assert isinstance(t.exponent, int)
    digits = t.digits
    zeros = len(digits) - len("".join(map(str, digits)).rstrip("0") or "0")
    return max(0, -(t.exponent + zeros))


def _shown(value: Any) -> str:
    text = str(value) if isinstance(value, Decimal) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
