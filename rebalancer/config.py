"""The portfolio config: one validated tree, loaded once from TOML and passed down.

Secrets never live here: an RPC URL carrying a key is given as ``env:VARNAME`` and resolved
from the environment by the CLI; ``localnet:NAME`` points at a local world's manifest.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.errors import ConfigError
from planner.config import StrategyConfig


class ChainConfig(BaseModel):
    """One chain to read and trade on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rpc: str
    """Where the node is: an http(s) URL, ``env:VAR`` (URL in that environment variable, for
    URLs with API keys), or ``localnet:NAME`` (a world started by ``rebalancer localnet up``)."""

    tokens: list[str] | None = None
    """Token symbols to read on this chain; default: every registry token of the chain."""

    @field_validator("rpc")
    @classmethod
    def _rpc_form(cls, v: str) -> str:
        if v.startswith(("http://", "https://", "env:", "localnet:")):
            return v
        raise ValueError("must start with http://, https://, env: or localnet:")


class WalletConfig(BaseModel):
    """A self-custodied wallet: its public address and the chains it holds funds on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    """A short label shown in tables and plans."""

    address: str
    """EVM address (EIP-55 checksummed or all one case) or Solana public key (base58)."""

    chains: list[str] = Field(min_length=1)
    """Chains this address is used on, e.g. ``["ethereum", "avalanche"]``."""


class Config(BaseModel):
    """The whole portfolio config file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chains: dict[str, ChainConfig]
    """Chains by name (``ethereum``, ``avalanche``, ``solana``)."""

    wallets: list[WalletConfig] = Field(min_length=1)
    """Wallets to read and rebalance."""

    tokens: list[dict[str, Any]] = Field(default_factory=list)
    """Extra tokens: tables of chain, symbol, asset, address, decimals (+ class for a new asset)."""

    strategy: StrategyConfig = Field(default_factory=StrategyConfig)
    """Targets and bands."""


def _describe(exc: ValidationError, data: dict[str, Any]) -> str:
    """One line naming the first bad field and its value."""
    err = exc.errors()[0]
    loc = err["loc"]
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    value: Any = data
    try:
        for part in loc:
            value = value[part]
        shown = f" = {value!r}"
    except (KeyError, IndexError, TypeError):
        shown = ""
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "missing":
        return f"{path}: missing"
    if err["type"] == "extra_forbidden":
        return f"{path}: unknown field"
    return f"{path}{shown}: {msg}"


def load_config(path: str | Path) -> tuple[Config, Any]:
    """Read and validate ``path``; return the config and the registry with the user's tokens.

    Every problem becomes a one-line ConfigError naming the field and value.
    """
    from chains.addresses import normalise
    from chains.registry import Registry

    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file {str(p)!r} not found (use -c FILE)") from None
    except OSError as exc:
        raise ConfigError(f"config file {str(p)!r}: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {str(p)!r} is not valid TOML: {exc}") from None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"config {p.name}: {_describe(exc, data)}") from None

    registry = Registry.load(config.tokens)
    for name, chain in config.chains.items():
        if name not in registry.chains:
            known = ", ".join(registry.chains)
            raise ConfigError(f"config {p.name}: chains.{name}: unknown chain (known: {known})")
        for symbol in chain.tokens or []:
            if registry.by_symbol(name, symbol) is None:
                raise ConfigError(
                    f"config {p.name}: chains.{name}.tokens: unknown token {symbol!r} on {name}"
                )
    seen: set[tuple[str, str]] = set()
    names: set[str] = set()
    wallets = []
    for i, w in enumerate(config.wallets):
        if w.name in names:
            raise ConfigError(f"config {p.name}: wallets[{i}].name = {w.name!r}: duplicate wallet")
        names.add(w.name)
        families = set()
        for chain_name in w.chains:
            if chain_name not in config.chains:
                raise ConfigError(
                    f"config {p.name}: wallets[{i}].chains: {chain_name!r} is not configured "
                    f"under [chains]"
                )
            families.add(registry.chains[chain_name].family)
        if len(families) > 1:
            raise ConfigError(
                f"config {p.name}: wallets[{i}].chains: mixes EVM and Solana chains; "
                "use one wallet entry per address"
            )
        address = normalise(families.pop(), w.address, f"config {p.name}: wallets[{i}].address")
        for chain_name in w.chains:
            if (chain_name, address.lower()) in seen:
                raise ConfigError(
                    f"config {p.name}: wallets[{i}].address = {w.address!r}: duplicate wallet "
                    f"on {chain_name}"
                )
            seen.add((chain_name, address.lower()))
        wallets.append(w.model_copy(update={"address": address}))
    unknown = [
        t
        for t in config.strategy.targets
        if t not in registry.classes and registry.class_of(t) is None
    ]
    if unknown:
        raise ConfigError(f"config {p.name}: strategy.targets.{unknown[0]}: unknown asset or class")
    return config.model_copy(update={"wallets": wallets}), registry
