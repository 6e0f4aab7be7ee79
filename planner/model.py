"""The portfolio model the planner works on: positions at prices, and the rows targets apply to.

The planner never imports the token registry; it asks a ``Universe`` (which ``chains.registry.
Registry`` satisfies) for chains, classes and tokens. Everything here is exact: integer base units
and Decimal USD.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Literal, Protocol

from rebalancer.core.errors import ConfigError
from rebalancer.core.types import ChainInfo, Holding, Token
from rebalancer.planner.config import StrategyConfig

Kind = Literal["class", "asset"]
HUNDRED = Decimal(100)


class Universe(Protocol):
    """What the planner needs to know about chains and tokens (the registry provides it)."""

    @property
    def chains(self) -> Mapping[str, ChainInfo]: ...

    @property
    def classes(self) -> Mapping[str, list[str]]: ...

    def native(self, chain: str) -> Token: ...

    def tokens_on(self, chain: str) -> list[Token]: ...

    def by_symbol(self, chain: str, symbol: str) -> Token | None: ...

    def class_of(self, asset: str) -> str | None: ...


def to_base_units(amount: Decimal, decimals: int, *, up: bool = False) -> int:
    """Exact conversion of token units to base units, rounding down (or up) below one unit."""
    scaled = amount.scaleb(decimals)
    return int(scaled.to_integral_value(rounding=ROUND_CEILING if up else ROUND_FLOOR))


def from_base_units(raw: int, decimals: int) -> Decimal:
    """Exact conversion of base units to token units."""
    return Decimal(raw).scaleb(-decimals)


_set = object.__setattr__


@dataclass(frozen=True, slots=True, init=False)
class Position:
    """What one wallet holds of one token on one chain, and what it is worth."""

    chain: str
    wallet: str
    token: Token
    raw: int
    price: Decimal
    value: Decimal = field(init=False, compare=False)
    """What the position is worth in USD (computed once: the optimiser reads it often)."""

    # NOTE: written out rather than generated with a __post_init__: a dense plan builds ~10^5
    # positions, and this is half the work of the generated frozen __init__
    def __init__(self, chain: str, wallet: str, token: Token, raw: int, price: Decimal) -> None:
        _set(self, "chain", chain)
        _set(self, "wallet", wallet)
        _set(self, "token", token)
        _set(self, "raw", raw)
        _set(self, "price", price)
        _set(self, "value", from_base_units(raw, token.decimals) * price)


@dataclass(frozen=True, slots=True)
class Portfolio:
    """Every position across chains and wallets, and the USD price of every priced asset."""

    positions: tuple[Position, ...]
    prices: Mapping[str, Decimal]
    _sums: tuple[Decimal, dict[str, Decimal]] | None = field(
        init=False, default=None, repr=False, compare=False
    )
    """(total, value per asset), summed once on first use: a plan reads both for every
    drift table it makes."""

    @classmethod
    def build(cls, holdings: Iterable[Holding], prices: Mapping[str, Decimal]) -> Portfolio:
        """Attach prices to holdings; a held asset without a price is a ConfigError naming it."""
        for asset, given in prices.items():
            if not given.is_finite() or given <= 0:
                raise ConfigError(f"prices.{asset} = {given}: must be a positive number")
        positions = []
        seen: set[tuple[str, str, str]] = set()
        for h in holdings:
            key = (h.chain, h.wallet, h.token.id)
            if key in seen:
                raise ConfigError(
                    f"holdings: {h.token.symbol} of wallet {h.wallet!r} on {h.chain} given twice"
                )
            seen.add(key)
            if h.raw < 0:
                raise ConfigError(
                    f"holdings: {h.token.symbol} of wallet {h.wallet!r} on {h.chain}: "
                    f"negative amount {h.raw}"
                )
            price = prices.get(h.token.asset)
            if price is None:
                if h.raw == 0:
                    continue
                raise ConfigError(
                    f"prices.{h.token.asset}: missing (held as {h.token.symbol} on {h.chain})"
                )
            positions.append((key, Position(h.chain, h.wallet, h.token, h.raw, price)))
        positions.sort(key=lambda kp: kp[0])
        return cls(tuple(p for _, p in positions), dict(prices))

    def _summed(self) -> tuple[Decimal, dict[str, Decimal]]:
        """Total and value per asset in one pass, in position order (the same sums, to the
        last digit, as adding them up one at a time)."""
        sums = self._sums
        if sums is None:
            total = Decimal(0)
            out: dict[str, Decimal] = {}
            for p in self.positions:
                total += p.value
                asset = p.token.asset
                out[asset] = out.get(asset, Decimal(0)) + p.value
            sums = (total, out)
            _set(self, "_sums", sums)
        return sums

    @property
    def total(self) -> Decimal:
        return self._summed()[0]

    def value_by_asset(self) -> dict[str, Decimal]:
        return dict(self._summed()[1])

    @property
    def accounts(self) -> list[tuple[str, str]]:
        """(chain, wallet) pairs holding anything, sorted."""
        return sorted({(p.chain, p.wallet) for p in self.positions})


@dataclass(frozen=True, slots=True)
class Row:
    """One line of drift: a class or an asset, its assets, and its target (None: no own target,
    e.g. USDC inside a STABLES target that is not split)."""

    name: str
    kind: Kind
    assets: frozenset[str]
    target: Decimal | None
    leaf: bool
    """True when the row owns its assets' targets (an asset row with a target, or a class row
    whose class is not split): leaves partition the assets."""


@dataclass(frozen=True, slots=True)
class Targets:
    """Targets resolved against the universe: every class and asset row, in registry order."""

    rows: tuple[Row, ...]
    asset_class: Mapping[str, str] = field(default_factory=dict)

    @property
    def targeted(self) -> list[Row]:
        return [r for r in self.rows if r.target is not None]

    @property
    def leaves(self) -> list[Row]:
        return [r for r in self.rows if r.leaf]

    def with_targets(self, new: Mapping[str, Decimal]) -> Targets:
        """A copy with some rows' targets replaced (used by the momentum tilt)."""
        rows = tuple(
            Row(r.name, r.kind, r.assets, new.get(r.name, r.target), r.leaf)
            if r.target is not None
            else r
            for r in self.rows
        )
        return Targets(rows, self.asset_class)


def resolve_targets(strategy: StrategyConfig, universe: Universe) -> Targets:
    """Check the targets' names against the universe and build the drift rows.

    Errors name the field: ``strategy.targets.FOO: unknown asset or class``.
    """
    classes = {k: list(v) for k, v in universe.classes.items()}
    asset_class = {a: k for k, assets in classes.items() for a in assets}
    class_target: dict[str, Decimal] = {}
    split: dict[str, dict[str, Decimal]] = {}
    for name, value in strategy.targets.items():
        where = f"strategy.targets.{name}"
        if isinstance(value, dict):
            if name not in classes:
                raise ConfigError(f"{where}: a split must be a class (known: {', '.join(classes)})")
            for asset in value:
                if asset_class.get(asset) != name:
                    raise ConfigError(f"{where}.{asset}: not an asset of class {name}")
            split.setdefault(name, {}).update(value)
        elif name in classes:
            class_target[name] = value
        elif name in asset_class:
            klass = asset_class[name]
            split.setdefault(klass, {})[name] = value
        else:
            raise ConfigError(f"{where}: unknown asset or class")
    both = set(class_target) & set(split)
    if both:
        klass = sorted(both)[0]
        asset = sorted(split[klass])[0]
        raise ConfigError(
            f"strategy.targets.{asset}: class {klass} has its own target; split it as "
            f"{klass} = {{ {asset} = ... }} instead"
        )
    for klass, parts in split.items():
        class_target[klass] = sum(parts.values(), Decimal(0))

    rows: list[Row] = []
    for klass, assets in classes.items():
        is_split = klass in split
        rows.append(
            Row(
                klass, "class", frozenset(assets), class_target.get(klass, Decimal(0)), not is_split
            )
        )
        for asset in assets:
            target = split[klass].get(asset, Decimal(0)) if is_split else None
            rows.append(Row(asset, "asset", frozenset([asset]), target, is_split))
    return Targets(tuple(rows), asset_class)


def check_tradable(strategy: StrategyConfig, universe: Universe) -> None:
    """Every chain and symbol named in ``tradable``, ``costs`` and ``gas_reserve`` must exist."""
    for where, chains in (
        ("tradable", strategy.tradable),
        ("costs", strategy.costs),
        ("gas_reserve", strategy.gas_reserve),
    ):
        for chain in chains:
            if chain not in universe.chains:
                known = ", ".join(universe.chains)
                raise ConfigError(f"strategy.{where}.{chain}: unknown chain (known: {known})")
    for chain, symbols in strategy.tradable.items():
        for symbol in symbols:
            if universe.by_symbol(chain, symbol) is None:
                raise ConfigError(f"strategy.tradable.{chain}: unknown token {symbol!r} on {chain}")


def tradable_tokens(strategy: StrategyConfig, universe: Universe, chain: str) -> list[Token]:
    """The tokens the planner may trade on ``chain``, in registry order."""
    allowed = strategy.tradable.get(chain)
    tokens = universe.tokens_on(chain)
    if allowed is None:
        return tokens
    wanted = {s.lower() for s in allowed}
    return [t for t in tokens if t.symbol.lower() in wanted]


def reserve_raw(strategy: StrategyConfig, universe: Universe, chain: str) -> int:
    """The chain's gas reserve in native base units (rounded up: keep at least that much)."""
    amount = strategy.reserve(chain)
    return to_base_units(amount, universe.chains[chain].native_decimals, up=True)


def validate_all(strategy: StrategyConfig, universe: Universe) -> Targets:
    """Every registry-dependent check of the strategy; returns the resolved targets."""
    check_tradable(strategy, universe)
    return resolve_targets(strategy, universe)


def rows_by_name(rows: Sequence[Row]) -> dict[str, Row]:
    return {f"{r.kind}:{r.name}": r for r in rows}
