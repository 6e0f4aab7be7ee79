"""The charts, as PNG (or SVG) bytes: allocation against target with its bands, drift over
time, and portfolio value against buy-and-hold (plus the sweep's heat map).

matplotlib is imported inside each function (never at module import), through the Agg canvas
directly: no GUI, no pyplot state, so ``rebalancer --help`` stays fast and charts are safe to
draw from any thread. Files carry no timestamp, so the same data draws the same bytes. SVG
(``fmt="svg"``, for the dashboard) draws text as paths: it needs no font from anywhere.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

_COLOURS = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563")
_DPI = 100


def _figure(width: float = 8.0, height: float = 4.0) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any, fmt: str = "png") -> bytes:
    buf = io.BytesIO()
    if fmt == "svg":
        fig.savefig(buf, format="svg", metadata={"Date": None})
    else:
        fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def allocation(
    names: Sequence[str],
    targets_pct: Sequence[float],
    bands_pp: Sequence[float],
    weights_pct: Mapping[str, Sequence[float]],
    title: str = "Allocation against target",
    fmt: str = "png",
) -> bytes:
    """Bars of each series' weight per row, the target as a black tick and the band around it
    as a grey box: a bar ending outside its box is out of band."""
    fig = _figure(max(6.0, 0.9 * len(names) + 2), 4.2)
    ax = fig.add_subplot()
    x = list(range(len(names)))
    lows = [max(t - b, 0.0) for t, b in zip(targets_pct, bands_pp, strict=True)]
    ax.bar(
        x,
        [t + b - lo for t, b, lo in zip(targets_pct, bands_pp, lows, strict=True)],
        bottom=lows,
        width=0.9,
        color="#e5e7eb",
        label="band",
        zorder=1,
    )
    n = max(len(weights_pct), 1)
    width = 0.7 / n
    for k, (label, weights) in enumerate(weights_pct.items()):
        offset = (k - (n - 1) / 2) * width
        ax.bar(
            [i + offset for i in x],
            list(weights),
            width=width,
            color=_COLOURS[k % len(_COLOURS)],
            label=label,
            zorder=2,
        )
    ax.hlines(targets_pct, [i - 0.45 for i in x], [i + 0.45 for i in x], colors="black", zorder=3)
    ax.plot([], [], color="black", label="target")
    ax.set_xticks(x, list(names))
    ax.set_ylabel("weight (%)")
    ax.set_title(title)
    ax.legend(fontsize="small", ncols=min(4, n + 2))
    ax.grid(axis="y", alpha=0.3)
    return _png(fig, fmt)


def drift(
    x: Sequence[Any],
    series: Mapping[str, Sequence[float]],
    band_pp: float | None,
    title: str = "Drift from target",
    ylabel: str = "drift (percentage points)",
    absolute: bool = False,
    marks: Sequence[Any] = (),
    fmt: str = "png",
) -> bytes:
    """One line per row (or strategy) and the band as a shaded strip around zero (from zero
    up when the series are absolute drifts); ``marks`` (the rebalances) as dotted verticals."""
    fig = _figure()
    ax = fig.add_subplot()
    if band_pp is not None:
        low = 0.0 if absolute else -band_pp
        ax.axhspan(low, band_pp, color="#e5e7eb", label=f"band ±{band_pp:g} pp")
    ax.axhline(0, color="black", linewidth=0.8)
    marker = "o" if len(x) < 40 else None
    for k, (label, ys) in enumerate(series.items()):
        ax.plot(list(x), list(ys), label=label, color=_COLOURS[k % len(_COLOURS)], marker=marker)
    if marks:  # one collection; many rebalances become ticks along the bottom
        ax.vlines(
            list(marks), 0, 1 if len(marks) <= 60 else 0.04, transform=ax.get_xaxis_transform(),
            colors="#6b7280", linestyles=":" if len(marks) <= 60 else "-", linewidth=0.8,
            label="rebalance",
        )  # fmt: skip
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize="small", ncols=min(4, len(series) + 1 + bool(marks)))
    ax.grid(alpha=0.3)
    _dates(fig, ax, x)
    return _png(fig, fmt)


def _dates(fig: Any, ax: Any, x: Sequence[Any]) -> None:
    """Readable time ticks at any span, from seconds (the demo's runs) to years."""
    import datetime as dt

    if x and isinstance(x[0], dt.date):
        import matplotlib.dates as mdates

        locator = mdates.AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    else:
        fig.autofmt_xdate()


def value(
    x: Sequence[Any],
    series: Mapping[str, Sequence[float]],
    title: str = "Portfolio value against buy-and-hold",
    fmt: str = "png",
) -> bytes:
    """Value lines in USD; buy-and-hold dashed so it reads as the reference."""
    fig = _figure()
    ax = fig.add_subplot()
    marker = "o" if len(x) < 40 else None
    for k, (label, ys) in enumerate(series.items()):
        style = "--" if "hold" in label else "-"
        ax.plot(
            list(x),
            list(ys),
            style,
            label=label,
            color=_COLOURS[k % len(_COLOURS)],
            marker=marker,
        )
    ax.set_ylabel("USD")
    ax.set_title(title)
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    ax.yaxis.set_major_formatter(_usd_formatter())
    _dates(fig, ax, x)
    return _png(fig, fmt)


def _usd_formatter() -> Any:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _pos: f"{v:,.0f}")


def heatmap(
    rows: Sequence[str],
    cols: Sequence[str],
    cells: Sequence[Sequence[float | None]],
    title: str,
    xlabel: str,
    ylabel: str,
) -> bytes:
    """A grid of scores (the sweep's Sharpe ratios) with each value written in its cell."""
    import numpy as np

    data = np.array([[np.nan if v is None else v for v in r] for r in cells], dtype=float)
    fig = _figure(max(4.5, 1.1 * len(cols) + 2.5), max(3.0, 0.5 * len(rows) + 1.5))
    ax = fig.add_subplot()
    image = ax.imshow(data, cmap="RdYlGn", aspect="auto")
    ax.set_xticks(range(len(cols)), list(cols))
    ax.set_yticks(range(len(rows)), list(rows))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    for i in range(len(rows)):
        for j in range(len(cols)):
            v = data[i, j]
            ax.text(j, i, "-" if np.isnan(v) else f"{v:.2f}", ha="center", va="center")
    fig.colorbar(image, ax=ax)
    return _png(fig)
