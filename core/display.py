"""Numbers for people: token amounts and unit prices rounded for a table or a page (display
only).

Every text table, the dashboard and the notices round here, one way: toward zero (a table never
shows more than there is), grouped thousands, no trailing zeros. JSON, plan files and the
journal keep exact values, and no amount that is signed ever passes through here.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

SIGNIFICANT = 6


def fixed_units(amount: Decimal, places: int) -> str:
    """``amount`` with at most ``places`` decimals, rounded toward zero, grouped thousands and
    no trailing zeros: ``fixed_units(Decimal("1234.5678"), 2)`` -> ``1,234.56``."""
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -places:
        amount = amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN)
    text = f"{amount:,f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def significant_places(amount: Decimal, digits: int) -> int:
    """How many decimals leave ``digits`` significant digits (none when the whole part has
    that many already)."""
    if amount == 0:
        return 0
    whole_digits = amount.adjusted() + 1  # digits before the point (<= 0 for 0.00x)
    return max(0, digits - whole_digits)


def short_units(amount: Decimal, digits: int = SIGNIFICANT) -> str:
    """``amount`` with grouped thousands, ``digits`` significant digits (never fewer than its
    whole part: 1,234,567 stays whole), rounded toward zero so a table never shows more than
    there is, and no trailing zeros: ``89.140596492857137142`` -> ``89.1405``."""
    if amount == 0:
        return "0"
    return fixed_units(amount, significant_places(amount, digits))


def usd(value: Decimal, places: int = 2) -> str:
    """A USD value with its sign before the dollar: ``-$1,234.50``; the cents are kept (a
    value is read as money, not as a count)."""
    text = f"{abs(value):,.{places}f}"
    return f"-${text}" if value < 0 else f"${text}"
