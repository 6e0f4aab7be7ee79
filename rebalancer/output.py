"""Output for people (aligned tables, progress on stderr) and for scripts (JSON on stdout)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any


def emit_json(obj: Any) -> None:
    """One JSON document on stdout; Decimals as strings so no precision is lost."""
    print(json.dumps(obj, default=_default, indent=2))


def _default(o: Any) -> Any:
    if isinstance(o, Decimal):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def progress(message: str) -> None:
    """A progress line on stderr: visible to a person, invisible to a script reading stdout."""
    print(f"· {message}", file=sys.stderr, flush=True)


def progress_unless(quiet: bool) -> Callable[[str], None]:
    """``progress``, or nothing when a script reads the output (``--json``) or it is quiet."""
    return (lambda _m: None) if quiet else progress


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[int] = ()) -> str:
    """A plain aligned text table; columns listed in ``right`` are right-aligned (numbers)."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def fmt(r: list[str]) -> str:
        parts = [c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(r)]
        return "  ".join(parts).rstrip()

    lines = [fmt(cells[0]), "  ".join("-" * w for w in widths)]
    lines += [fmt(r) for r in cells[1:]]
    return "\n".join(lines)


def fmt_units(amount: Decimal) -> str:
    """A token amount for a text table: a few significant digits (see ``core.display``)."""
    from rebalancer.core.display import short_units

    return short_units(amount)
