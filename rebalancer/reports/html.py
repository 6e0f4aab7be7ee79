"""The HTML report: one self-contained file that opens offline.

Charts are PNGs inlined as ``data:image/png;base64,`` URIs, the CSS is inline, and nothing
refers to any other file or address, so the report can be mailed, archived or opened on an
air-gapped machine. Every text is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rebalancer.core.errors import ConfigError

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 1100px; padding: 0 1rem; color: #111827; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #e5e7eb; }
p.meta { color: #6b7280; margin-top: 0; }
table { border-collapse: collapse; margin: 0.6rem 0; font-size: 0.9rem; }
th, td { padding: 0.25rem 0.7rem; border-bottom: 1px solid #e5e7eb; text-align: left; }
th { background: #f9fafb; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; height: auto; display: block; margin: 0.8rem 0; }
.warning { background: #fef3c7; border-left: 4px solid #d97706; padding: 0.6rem 1rem; }
.note { color: #4b5563; font-size: 0.9rem; }
"""


@dataclass
class Page:
    """A report being assembled: a title, then sections of tables, charts and notes."""

    title: str
    meta: str = ""
    parts: list[str] = field(default_factory=list)

    def heading(self, text: str) -> None:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def paragraph(self, text: str, css: str = "note") -> None:
        self.parts.append(f'<p class="{css}">{html.escape(text)}</p>')

    def table(
        self, headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[int] = ()
    ) -> None:
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
        body = []
        for row in rows:
            cells = []
            for i, c in enumerate(row):
                css = ' class="num"' if i in right else ""
                cells.append(f"<td{css}>{html.escape('' if c is None else str(c))}</td>")
            body.append(f"<tr>{''.join(cells)}</tr>")
        self.parts.append(
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        )

    def image(self, png: bytes, alt: str) -> None:
        data = base64.b64encode(png).decode("ascii")
        self.parts.append(f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">')

    def render(self) -> str:
        return (
            "<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{html.escape(self.title)}</h1>"
            f'<p class="meta">{html.escape(self.meta)}</p>'
            + "\n".join(self.parts)
            + "</body></html>\n"
        )

    def write(self, path: str) -> None:
        try:
            Path(path).write_text(self.render(), encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"--html {path!r}: cannot write: {exc.strerror}") from None


def write_pngs(directory: str, charts: Sequence[tuple[str, bytes]]) -> list[str]:
    """``--png DIR``: each chart as ``DIR/<name>.png``; returns the paths written."""
    out = Path(directory)
    try:
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, png in charts:
            p = out / f"{name}.png"
            p.write_bytes(png)
            paths.append(str(p))
    except OSError as exc:
        raise ConfigError(f"--png {directory!r}: cannot write: {exc.strerror}") from None
    return paths
