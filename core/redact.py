"""Keep secrets off the screen: RPC URLs often carry API keys in their path or query."""

from __future__ import annotations

from urllib.parse import urlsplit

_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def redact_url(url: str) -> str:
    """Return ``url`` fit for a log line: scheme, host and port only.

    Path, query, fragment and user-info are where providers put keys
    (``/v2/<key>``, ``?apikey=``, ``user:pass@``), so they are replaced by ``/***``.
    Loopback URLs are shown whole: they are the local worlds and carry no key.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparseable url>"
    if not parts.scheme or not host:
        return "<unparseable url>"
    if host in _LOCAL_HOSTS and not parts.username and not parts.password and not parts.query:
        return url
    hidden = "/***" if (parts.path not in ("", "/") or parts.query or parts.fragment) else ""
    shown_host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{shown_host}{port}{hidden}"
