"""Turn a config's ``rpc`` spec into a URL: literal, ``env:VAR`` or ``localnet:NAME``.

This is the one place that reads RPC URLs from the environment, so keys in URLs stay out of
config files; every message about a URL shows it redacted.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from rebalancer.core.errors import ConfigError


def localnet_dir() -> Path:
    """Where ``rebalancer localnet up`` keeps its manifest (shared with localnet.manager)."""
    env = os.environ.get("REBALANCER_LOCALNET_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "rebalancer" / "localnet"


def resolve_rpc(
    chain: str,
    spec: str,
    env: Mapping[str, str] | None = None,
    local_dir: Path | None = None,
    *,
    key: str = "rpc",
) -> str:
    """The node URL for ``chain`` (its ``key``: ``rpc`` or ``send_rpc``); ConfigError naming
    the field if it cannot be found."""
    env = os.environ if env is None else env
    field = f"chains.{chain}.{key}"
    if spec.startswith("env:"):
        var = spec.removeprefix("env:")
        url = env.get(var, "")
        if not url:
            raise ConfigError(f"{field} = {spec!r}: environment variable {var} is not set")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"{field}: environment variable {var} does not hold an http(s) URL")
        return url
    if spec.startswith("localnet:"):
        import json

        name = spec.removeprefix("localnet:")
        manifest = (local_dir or localnet_dir()) / "manifest.json"
        try:
            worlds = json.loads(manifest.read_text())["worlds"]
        except (OSError, ValueError, KeyError):
            raise ConfigError(
                f"{field} = {spec!r}: no local worlds are running (run `rebalancer localnet up`)"
            ) from None
        for w in worlds:
            if w.get("name") == name:
                return str(w["url"])
        raise ConfigError(f"{field} = {spec!r}: no local world named {name!r} is running")
    return spec
