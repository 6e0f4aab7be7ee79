"""Keep secrets off the screen: RPC URLs often carry API keys in their path or query."""

from __future__ import annotations

from urllib.parse import urlsplit


def redact_url(url: str) -> str:
    """Return ``url`` fit for a log line: scheme, host and port only.

    Path, query, fragment and user-info are where providers put keys
    (``/v2/<key>``, ``?apikey=``, ``user:pass@``), so they are replaced by ``/***``.
    A URL with nothing beyond host and port (the local worlds) is shown whole.
    """
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
