"""The token registry: chains, asset classes, and each asset's tokens on each chain.

The shipped data file (``chains/data/tokens.toml``) holds mainnet addresses and decimals; a
user's config can add tokens. One asset (BTC) may have many tokens (WBTC, cbBTC, BTC.b); the
planner only ever sees assets and classes.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from rebalancer.chains.addresses import normalise
from rebalancer.core.errors import ConfigError
from rebalancer.core.types import ChainInfo, Token, TokenQuirk

_TOKEN_FIELDS = {
    "chain",
    "symbol",
    "asset",
    "address",
    "decimals",
    "sources",
    "class",
    "quirks",
}


@dataclass
class Registry:
    """Chains, classes (class -> assets) and tokens, with lookups by symbol and address."""

    chains: dict[str, ChainInfo]
    classes: dict[str, list[str]]
    tokens: list[Token] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._by_symbol: dict[tuple[str, str], Token] = {}
        self._by_address: dict[tuple[str, str], Token] = {}
        self._by_id: dict[str, Token] = {}
        natives = [self._native_token(c) for c in self.chains.values()]
        for token in [*natives, *self.tokens]:
            self._index(token)

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def load(cls, extra_tokens: Iterable[Mapping[str, Any]] = ()) -> Registry:
        """Load the shipped registry and add the user's tokens (validated like the shipped ones)."""
        text = resources.files("rebalancer.chains").joinpath("data/tokens.toml").read_text()
        data = tomllib.loads(text)
        chains = {
            name: ChainInfo(name=name, **{"chain_id": None, **spec})
            for name, spec in data["chains"].items()
        }
        classes = {k: list(v) for k, v in data["classes"].items()}
        reg = cls(chains=chains, classes=classes)
        for i, spec in enumerate(data["tokens"]):
            reg.add(spec, f"registry tokens[{i}]")
        for i, spec in enumerate(extra_tokens):
            reg.add(spec, f"tokens[{i}]")
        return reg

    def add(self, spec: Mapping[str, Any], where: str) -> Token:
        """Validate one token table and add it; a user token may also bring a new asset."""
        unknown = set(spec) - _TOKEN_FIELDS
        if unknown:
            raise ConfigError(f"{where}: unknown field {sorted(unknown)[0]!r}")
        for key in ("chain", "symbol", "asset", "address", "decimals"):
            if key not in spec:
                raise ConfigError(f"{where}.{key}: missing")
        chain = spec["chain"]
        info = self.chains.get(chain)
        if info is None:
            known = ", ".join(self.chains)
            raise ConfigError(f"{where}.chain = {chain!r}: unknown chain (known: {known})")
        decimals = spec["decimals"]
        if not isinstance(decimals, int) or isinstance(decimals, bool) or not 0 <= decimals <= 36:
            raise ConfigError(f"{where}.decimals = {decimals!r}: must be an integer from 0 to 36")
        asset = str(spec["asset"])
        if self.class_of(asset) is None:
            klass = spec.get("class")
            if klass is None:
                raise ConfigError(
                    f"{where}.asset = {asset!r}: unknown asset; give it a 'class' "
                    f"({', '.join(self.classes)})"
                )
            self.classes.setdefault(str(klass), []).append(asset)
        address = normalise(info.family, spec["address"], f"{where}.address")
        quirks = spec.get("quirks", [])
        kinds = {q.value for q in TokenQuirk}
        if not isinstance(quirks, list) or not all(q in kinds for q in quirks):
            raise ConfigError(f"{where}.quirks = {quirks!r}: each must be one of {sorted(kinds)}")
        token = Token(
            chain=chain,
            caip2=info.caip2,
            symbol=str(spec["symbol"]),
            asset=asset,
            address=address,
            decimals=decimals,
            quirks=frozenset(TokenQuirk(q) for q in quirks),
        )
        if (chain, self._key(info, address)) in self._by_address:
            raise ConfigError(f"{where}.address = {address!r}: already registered on {chain}")
        if (chain, token.symbol.lower()) in self._by_symbol:
            raise ConfigError(f"{where}.symbol = {token.symbol!r}: already registered on {chain}")
        self.tokens.append(token)
        self._index(token)
        return token

    # -- lookups ----------------------------------------------------------------------------
    def native(self, chain: str) -> Token:
        return self._by_symbol[(chain, self.chains[chain].native_symbol.lower())]

    def tokens_on(self, chain: str) -> list[Token]:
        """The chain's native coin first, then its registered tokens in file order."""
        return [self.native(chain), *(t for t in self.tokens if t.chain == chain)]

    def by_symbol(self, chain: str, symbol: str) -> Token | None:
        return self._by_symbol.get((chain, symbol.lower()))

    def by_address(self, chain: str, address: str) -> Token | None:
        info = self.chains[chain]
        return self._by_address.get((chain, self._key(info, address)))

    def by_id(self, token_id: str) -> Token | None:
        """A token by its CAIP-19 id (as plan files carry them)."""
        return self._by_id.get(token_id)

    def class_of(self, asset: str) -> str | None:
        for klass, assets in self.classes.items():
            if asset in assets:
                return klass
        return None

    @property
    def assets(self) -> list[str]:
        return [a for assets in self.classes.values() for a in assets]

    # -- internals --------------------------------------------------------------------------
    @staticmethod
    def _key(info: ChainInfo, address: str) -> str:
        return address.lower() if info.family == "evm" else address

    @staticmethod
    def _native_token(info: ChainInfo) -> Token:
        return Token(
            chain=info.name,
            caip2=info.caip2,
            symbol=info.native_symbol,
            asset=info.native_asset,
            address=None,
            decimals=info.native_decimals,
            native_slip44=info.native_slip44,
        )

    def _index(self, token: Token) -> None:
        self._by_id[token.id] = token
        self._by_symbol[(token.chain, token.symbol.lower())] = token
        if token.address is not None:
            info = self.chains[token.chain]
            self._by_address[(token.chain, self._key(info, token.address))] = token
