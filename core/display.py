"""Numbers for people: token amounts to a few significant digits (display only).

JSON, plan files and the journal keep exact values; only text tables pass through here, and no
amount that is signed ever does.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

SIGNIFICANT = 6


def short_units(amount: Decimal, digits: int = SIGNIFICANT) -> str:
    """``amount`` with grouped thousands, ``digits`` significant digits (never fewer than its
    whole part: 1,234,567 stays whole), rounded toward zero so a table never shows more than
    there is, and no trailing zeros: ``89.140596492857137142`` -> ``89.1405``."""
    if amount == 0:
        return "0"
    whole_digits = amount.adjusted() + 1  # digits before the point (<= 0 for 0.00x)
    places = max(0, digits - whole_digits)
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -places:
        amount = amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN)
    text = f"{amount:,f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text
