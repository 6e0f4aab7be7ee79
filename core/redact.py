"""Keep secrets off the screen: RPC URLs often carry API keys in their path or query."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_TRAILING = ".,;:)'\""
_URL = re.compile(r"https?://[^\s'\"<>]+")


def redact_url(url: str) -> str:
    """Return ``url`` fit for a log line: scheme, host and port only.

    Path, query, fragment and user-info are where providers put keys
    (``/v2/<key>``, ``?apikey=``, ``user:pass@``), so they are replaced by ``/***``.
    A URL with nothing beyond host and port (the local worlds) is shown whole. Punctuation
    that ends a sentence after the URL (``http://host:8545: refused``) is kept after it, not
    read as part of the port.
    """
    stripped = url.rstrip(_TRAILING)
    if stripped != url and stripped:
        return redact_url(stripped) + url[len(stripped) :]
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparseable url>"
    if not parts.scheme or not host:
        return "<unparseable url>"
    hidden = "/***" if (parts.path not in ("", "/") or parts.query or parts.fragment) else ""
    shown_host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{shown_host}{port}{hidden}"


def scrub(text: str) -> str:
    """``text`` with every http(s) URL in it redacted (error lines, journalled reasons)."""
    return _URL.sub(lambda m: redact_url(m.group(0)), text)
