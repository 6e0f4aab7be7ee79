"""The price history a backtest replays: a CSV of daily closes the user brings.

Format (``examples/prices.csv`` is a small example)::

    # lines starting with '#' and blank lines are ignored
    date,symbol,price_usd
    2024-01-01,BTC,42280.5
    2024-01-01,ETH,2352.1
    2024-01-02,BTC,44950
    ...

- ``date`` is ``YYYY-MM-DD`` (UTC close); rows must be sorted by date (any symbol order within a
  date); a (date, symbol) pair may appear once.
- ``symbol`` is a registry asset (``BTC``, ``ETH``, ``SOL``, ``USDC``..., or an asset a config's
  ``[[tokens]]`` adds); case is ignored. Symbols nobody targets are read and ignored.
- ``price_usd`` is a positive decimal number of USD per unit. Other columns are ignored.

Gaps: the history is a calendar-day grid from the first to the last date. A held asset missing
on a day takes its last price (forward fill) for at most ``max_gap`` days in a row (default 3);
a longer gap, or an asset that starts after the first date, is an error naming the row.
Every error is a ``ConfigError`` (exit 2) naming the file, the line and the value.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation

import numpy as np

from rebalancer.core.errors import ConfigError

COLUMNS = ("date", "symbol", "price_usd")
DEFAULT_MAX_GAP = 3


@dataclass(frozen=True)
class PriceHistory:
    """Daily prices on a contiguous calendar grid: ``prices[t, j]`` is ``symbols[j]`` on
    ``dates[t]`` in USD (floats for the vectorised replay)."""

    dates: tuple[date, ...]
    symbols: tuple[str, ...]
    prices: np.ndarray
    filled: int = 0
    """How many values were forward-filled."""
    step_days: float = 1.0
    """Days between two points of the grid (a living demo's path is 6-hourly: 0.25); its
    ``dates`` are then datetimes (UTC)."""

    def __len__(self) -> int:
        return len(self.dates)

    def column(self, symbol: str) -> int:
        return self.symbols.index(symbol)

    def slice(self, start: int, stop: int) -> PriceHistory:
        """Days ``start`` to ``stop - 1`` (the in-sample / out-of-sample split)."""
        return PriceHistory(
            self.dates[start:stop],
            self.symbols,
            self.prices[start:stop].copy(),
            self.filled,
            self.step_days,
        )


@dataclass
class PriceTable:
    """Every valid row of the file, before the symbols a backtest needs are put on the grid."""

    source: str
    rows: dict[str, dict[date, tuple[Decimal, int]]] = field(default_factory=dict)
    """symbol -> date -> (price, line number)."""
    first: date | None = None
    last: date | None = None

    @property
    def symbols(self) -> list[str]:
        return sorted(self.rows)

    def history(self, symbols: Sequence[str], max_gap: int = DEFAULT_MAX_GAP) -> PriceHistory:
        """``symbols`` on the daily grid, forward-filling gaps of at most ``max_gap`` days."""
        if self.first is None or self.last is None or self.first == self.last:
            raise ConfigError(f"{self.source}: needs prices on at least two dates")
        days = (self.last - self.first).days + 1
        grid = [self.first + timedelta(days=i) for i in range(days)]
        out = np.empty((days, len(symbols)), dtype=float)
        filled = 0
        for j, symbol in enumerate(symbols):
            series = self.rows.get(symbol)
            if not series:
                raise ConfigError(f"{self.source}: no prices for {symbol}")
            start = min(series)
            if start != self.first:
                line = series[start][1]
                raise ConfigError(
                    f"{self.source} line {line}: {symbol} starts on {start}, after the history "
                    f"starts on {self.first}: every held asset needs a price on the first date "
                    "(cut the history or drop the asset from the targets)"
                )
            last_price = 0.0
            last_day = self.first
            last_line = 0
            for t, day in enumerate(grid):
                hit = series.get(day)
                if hit is not None:
                    gap = (day - last_day).days - 1
                    if gap > max_gap:
                        raise ConfigError(
                            f"{self.source} line {hit[1]}: {symbol} has no price for {gap} days "
                            f"before {day} (at most {max_gap} are filled with the last price; "
                            "--max-gap N)"
                        )
                    last_price, last_day, last_line = float(hit[0]), day, hit[1]
                else:
                    if (day - last_day).days > max_gap:
                        later = [d for d in series if d > day]
                        if later:
                            resume = min(later)
                            gap = (resume - last_day).days - 1
                            raise ConfigError(
                                f"{self.source} line {series[resume][1]}: {symbol} has no price "
                                f"for {gap} days before {resume} (at most {max_gap} are filled "
                                "with the last price; --max-gap N)"
                            )
                        raise ConfigError(
                            f"{self.source} line {last_line}: {symbol} has no price after "
                            f"{last_day} for more than {max_gap} days (at most {max_gap} are "
                            "filled with the last price; --max-gap N)"
                        )
                    filled += 1
                out[t, j] = last_price
        return PriceHistory(tuple(grid), tuple(symbols), out, filled)


def _canonical(known: Iterable[str] | None) -> dict[str, str] | None:
    return None if known is None else {k.upper(): k for k in known}


def parse_prices_csv(
    text: str, source: str = "prices.csv", known_assets: Iterable[str] | None = None
) -> PriceTable:
    """Parse and check every row; an error names the file, the line and the value."""
    known = _canonical(known_assets)
    table = PriceTable(source)
    header: list[str] | None = None
    index: dict[str, int] = {}
    prev_date: date | None = None
    prev_line = 0
    reader = csv.reader(io.StringIO(text))
    for fields in reader:
        n = reader.line_num
        if not fields or not "".join(fields).strip() or fields[0].lstrip().startswith("#"):
            continue
        cells = [f.strip() for f in fields]
        if header is None:
            header = [c.lower() for c in cells]
            missing = [c for c in COLUMNS if c not in header]
            if missing:
                raise ConfigError(
                    f"{source} line {n}: header {','.join(cells)!r} lacks column {missing[0]!r} "
                    f"(need {','.join(COLUMNS)})"
                )
            index = {c: header.index(c) for c in COLUMNS}
            continue
        where = f"{source} line {n}"
        if len(cells) != len(header):
            raise ConfigError(
                f"{where}: malformed row {','.join(cells)!r} ({len(cells)} fields, header has "
                f"{len(header)})"
            )
        raw_date, raw_symbol, raw_price = (cells[index[c]] for c in COLUMNS)
        try:
            day = date.fromisoformat(raw_date)
        except ValueError:
            raise ConfigError(f"{where}: date = {raw_date!r}: not a date (YYYY-MM-DD)") from None
        if not raw_symbol:
            raise ConfigError(f"{where}: symbol is empty")
        symbol = raw_symbol
        if known is not None:
            found = known.get(raw_symbol.upper())
            if found is None:
                raise ConfigError(
                    f"{where}: symbol = {raw_symbol!r}: unknown asset (the registry knows "
                    f"{', '.join(sorted(known.values()))})"
                )
            symbol = found
        try:
            price = Decimal(raw_price)
        except InvalidOperation:
            raise ConfigError(f"{where}: price_usd = {raw_price!r}: not a number") from None
        if not price.is_finite() or price <= 0:
            raise ConfigError(f"{where}: price_usd = {raw_price!r}: must be a positive number")
        if prev_date is not None and day < prev_date:
            raise ConfigError(
                f"{where}: date = {raw_date!r} is before {prev_date} on line {prev_line}: "
                "rows must be sorted by date"
            )
        series = table.rows.setdefault(symbol, {})
        if day in series:
            raise ConfigError(
                f"{where}: {symbol} on {day} is given twice (also line {series[day][1]})"
            )
        series[day] = (price, n)
        prev_date, prev_line = day, n
        table.first = table.first or day
        table.last = day
    if header is None:
        raise ConfigError(f"{source}: empty file (need a header {','.join(COLUMNS)} and rows)")
    if not table.rows:
        raise ConfigError(f"{source}: no price rows after the header")
    return table
