"""The strategy part of the config: targets, bands, costs, triggers, tax. Pure data, validated once.

It is the ``[strategy]`` table of the portfolio config. Names that need the token registry (assets,
classes, chains, token symbols) are checked later by ``planner.targets.resolve``, which sees the
registry; everything that can be checked alone is checked here.

Example::

    [strategy]
    band_pp = 5                   # absolute band, percentage points
    band_rel_pct = 25             # relative band, % of target (the 5/25 rule: the tighter wins)
    min_trade_usd = 50
    mode = "band_edge"            # or "target"

    [strategy.targets]
    BTC = 40
    ETH = 30
    STABLES = 10
    ALTS = { SOL = 10, AVAX = 5, LINK = 5 }   # a class split into assets

    [strategy.gas_reserve]
    ethereum = "0.02"             # ETH kept for gas, never sold

    [strategy.costs.ethereum]
    gas_per_swap_usd = 6
    fee_bps = 10
    depth_usd = 20000000
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_HUNDRED = Decimal(100)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _non_negative(name: str, v: Decimal) -> Decimal:
    if not v.is_finite() or v < 0:
        raise ValueError(f"{name} = {v} must be a non-negative number")
    return v


class CostModel(_Model):
    """What one swap costs on one chain: gas, the aggregator's fee and price impact.

    Price impact of a swap worth ``V`` USD from asset ``a`` to asset ``b`` alone is modelled as
    a constant-product pool on each leg: ``impact_usd = V**2 * (1/depth_a + 1/depth_b)``, or
    ``V**2 / depth_pair`` when the pair has its own depth; a plan charges it per pool on the
    total it trades through the pool (``pools``). ``depth`` is the USD liquidity on one
    side of the market: a trade of ``depth`` would move the price by about 100%.
    """

    gas_per_swap_usd: Decimal | None = None
    """Gas for one swap in USD. Give this or ``gas_per_swap_native``; neither means 1 USD."""

    gas_per_swap_native: Decimal | None = None
    """Gas for one swap in units of the chain's native coin (e.g. ``"0.0015"`` ETH)."""

    fee_bps: Decimal = Decimal(10)
    """Aggregator and pool fee in basis points of the value sold."""

    depth_usd: Decimal = Decimal(10_000_000)
    """Default market depth in USD for every asset on this chain."""

    depth_usd_by_asset: dict[str, Decimal] = Field(default_factory=dict)
    """Depth per asset (``BONK = 300000``), overriding ``depth_usd``."""

    depth_usd_by_pair: dict[str, Decimal] = Field(default_factory=dict)
    """Depth per asset pair as ``"SOL/USDC"`` (either order), overriding both legs."""

    @field_validator("gas_per_swap_usd", "gas_per_swap_native")
    @classmethod
    def _gas(cls, v: Decimal | None) -> Decimal | None:
        return None if v is None else _non_negative("gas per swap", v)

    @field_validator("fee_bps")
    @classmethod
    def _fee(cls, v: Decimal) -> Decimal:
        if not v.is_finite() or not Decimal(0) <= v <= Decimal(1000):
            raise ValueError(f"fee_bps = {v} must be from 0 to 1000")
        return v

    @field_validator("depth_usd")
    @classmethod
    def _depth(cls, v: Decimal) -> Decimal:
        if not v.is_finite() or v <= 0:
            raise ValueError(f"depth_usd = {v} must be above 0")
        return v

    @field_validator("depth_usd_by_asset", "depth_usd_by_pair")
    @classmethod
    def _depths(cls, v: dict[str, Decimal]) -> dict[str, Decimal]:
        for key, depth in v.items():
            if not depth.is_finite() or depth <= 0:
                raise ValueError(f"depth for {key} = {depth} must be above 0")
        return v

    @model_validator(mode="after")
    def _one_gas(self) -> CostModel:
        if self.gas_per_swap_usd is not None and self.gas_per_swap_native is not None:
            raise ValueError("give gas_per_swap_usd or gas_per_swap_native, not both")
        return self

    def depth(self, asset: str) -> Decimal:
        """The depth used for one leg in ``asset``."""
        return self.depth_usd_by_asset.get(asset, self.depth_usd)

    def impact_coefficient(self, sell_asset: str, buy_asset: str) -> Decimal:
        """``k`` in ``impact_usd = k * V**2`` for one swap worth ``V`` USD alone (a plan charges
        impact per pool on its total: ``pools``)."""
        for key in (f"{sell_asset}/{buy_asset}", f"{buy_asset}/{sell_asset}"):
            if key in self.depth_usd_by_pair:
                return 1 / self.depth_usd_by_pair[key]
        return 1 / self.depth(sell_asset) + 1 / self.depth(buy_asset)

    def pools(self, sell_asset: str, buy_asset: str) -> tuple[tuple[str, Decimal], ...]:
        """The liquidity a swap of ``sell_asset`` for ``buy_asset`` goes through, as (pool, k):
        its pair's pool (``pair:A/B``, sorted) when ``depth_usd_by_pair`` names it, else each
        asset's market (``asset:A``). Pools are shared by every swap on the chain: a plan's
        impact is ``k * V**2`` per pool on the total ``V`` traded through it, so splitting a
        move into more swaps of the same markets saves no impact."""
        for key in (f"{sell_asset}/{buy_asset}", f"{buy_asset}/{sell_asset}"):
            if key in self.depth_usd_by_pair:
                name = "/".join(sorted((sell_asset, buy_asset)))
                return ((f"pair:{name}", 1 / self.depth_usd_by_pair[key]),)
        return (
            (f"asset:{sell_asset}", 1 / self.depth(sell_asset)),
            (f"asset:{buy_asset}", 1 / self.depth(buy_asset)),
        )

    def fee_usd(self, value_usd: Decimal) -> Decimal:
        """The fee of a swap worth ``value_usd`` USD."""
        return value_usd * self.fee_bps / Decimal(10_000)

    def gas_usd(self, native_price: Decimal | None) -> Decimal:
        """One swap's gas in USD: ``gas_per_swap_usd`` (1 USD when neither gas field is set),
        or ``gas_per_swap_native`` at the native coin's price (0 without a price)."""
        if self.gas_per_swap_native is not None:
            return self.gas_per_swap_native * native_price if native_price else Decimal(0)
        return self.gas_per_swap_usd if self.gas_per_swap_usd is not None else Decimal(1)


def default_costs() -> dict[str, CostModel]:
    return {
        "ethereum": CostModel(gas_per_swap_usd=Decimal(6), fee_bps=Decimal(10)),
        "avalanche": CostModel(gas_per_swap_usd=Decimal("0.10"), fee_bps=Decimal(10)),
        "solana": CostModel(gas_per_swap_usd=Decimal("0.02"), fee_bps=Decimal(10)),
    }


def default_reserve() -> dict[str, Decimal]:
    return {"ethereum": Decimal("0.01"), "avalanche": Decimal("0.5"), "solana": Decimal("0.05")}


class VolatilityBands(_Model):
    """Bands that widen in volatile markets, so noise does not trigger trades.

    ``sigma = stdev(ln(p[t] / p[t-1]) over the last `window` returns) * sqrt(periods_per_year)``;
    ``band_eff = band * clamp(sigma / (reference_vol_pct / 100), 1, max_multiplier)``.
    A class uses the value-weighted sigma of its assets. Assets without history keep their band.
    """

    window: int = Field(default=30, ge=2, le=10_000)
    """How many of the latest returns of the price history to use."""

    reference_vol_pct: Decimal = Field(default=Decimal(60), gt=0, le=1000)
    """Annualised volatility (%) at or below which the configured band applies unchanged."""

    max_multiplier: Decimal = Field(default=Decimal(2), ge=1, le=10)
    """The band never widens beyond this multiple."""

    periods_per_year: int = Field(default=365, ge=1, le=525_600)
    """Price points per year in the history (365 for daily closes)."""


class MomentumTilt(_Model):
    """Lean targets toward what has been rising (a trend tilt), within a cap.

    ``r = p[now] / p[now - lookback] - 1``; ``tilt = clamp(strength * r, -max_tilt, +max_tilt)``;
    ``target' = target * (1 + tilt)``, then all targets are scaled again to sum to 100.
    """

    lookback: int = Field(default=90, ge=1, le=10_000)
    """Price points between the two prices compared."""

    strength: Decimal = Field(default=Decimal("0.5"), ge=0, le=10)
    """Tilt per unit of lookback return."""

    max_tilt_pct: Decimal = Field(default=Decimal(20), ge=0, le=100)
    """The largest change of a target, in % of that target."""


class Triggers(_Model):
    """When a rebalance runs. Each trigger is documented with its formula in planner.triggers."""

    threshold: bool = True
    """Fire when a row's drift is outside its band: ``|weight - target| > band``."""

    min_interval_days: Decimal = Field(default=Decimal(0), ge=0, le=3650)
    """Never rebalance sooner than this after the last rebalance, whatever the drift."""

    max_interval_days: Decimal | None = Field(default=None, gt=0, le=3650)
    """Rebalance at least this often, even within bands (calendar rebalancing)."""

    volatility: VolatilityBands | None = None
    """Volatility-scaled bands; off unless the table is given."""

    momentum: MomentumTilt | None = None
    """Momentum tilt of the targets; off unless the table is given."""

    @model_validator(mode="after")
    def _order(self) -> Triggers:
        if self.max_interval_days is not None and self.max_interval_days < self.min_interval_days:
            raise ValueError(
                f"max_interval_days = {self.max_interval_days} is below "
                f"min_interval_days = {self.min_interval_days}"
            )
        return self


class TaxConfig(_Model):
    """Tax lots: which lots a sale consumes and whether the planner minimises tax."""

    method: Literal["fifo", "hifo", "specific"] = "fifo"
    """Lot selection: oldest first, highest cost first, or the lots the planner picks (loss lots
    first, then long-term gains, then short-term gains: the least tax)."""

    aware: bool = False
    """Add the estimated tax of each sale to the plan's cost, so the optimiser prefers sales with
    less tax (loss lots first), all else equal."""

    short_term_rate_pct: Decimal = Field(default=Decimal(30), ge=0, le=100)
    """Tax rate on short-term gains, percent."""

    long_term_rate_pct: Decimal = Field(default=Decimal(15), ge=0, le=100)
    """Tax rate on long-term gains, percent."""

    long_term_days: int = Field(default=365, ge=0, le=36_500)
    """A lot held longer than this many days is long-term."""

    harvest_min_loss_usd: Decimal = Field(default=Decimal(500), ge=0)
    """``harvest`` lists assets whose unrealised loss is at least this much."""

    harvest: bool = False
    """With ``aware``: the plan may add a harvest swap, selling a token of an asset held at a
    loss for another token of the same asset on the same chain (WBTC -> cbBTC), so the loss is
    realised and the exposure stays, when the tax saved beats the swap's modelled cost (fee,
    impact and gas)."""

    repurchase_wait_days: int = Field(default=0, ge=0, le=3_650)
    """A token sold at a loss is not bought back for this many days (0: no rule). Some
    jurisdictions disallow a loss when the same security is bought back within a window (the US
    wash-sale rule: 30 days); whether another token of the same asset is the same security is
    for your jurisdiction to say. While it waits, the plan neither buys nor sells that token
    and no harvest swap goes into it."""


def _targets() -> dict[str, Decimal | dict[str, Decimal]]:
    return {"BTC": Decimal(40), "ETH": Decimal(30), "ALTS": Decimal(20), "STABLES": Decimal(10)}


class TradeLimits(_Model):
    """Size limits on the plan's trades; the application passes in its ``[policy]`` values.

    ``max_trade_usd``: a swap worth more is planned as slices, each its own trade within the
    limit (each slice pays its own gas). ``max_run_usd``: the plan trades at most this much in
    total and says what it left for the next run. None: no limit."""

    max_trade_usd: Decimal | None = None
    max_run_usd: Decimal | None = None

    @field_validator("max_trade_usd", "max_run_usd")
    @classmethod
    def _positive(cls, v: Decimal | None) -> Decimal | None:
        if v is not None and (not v.is_finite() or v <= 0):
            raise ValueError(f"limit {v} must be above 0")
        return v


class StrategyConfig(_Model):
    """What the portfolio should look like, how far it may drift, and what trading costs."""

    targets: dict[str, Decimal | dict[str, Decimal]] = Field(default_factory=lambda: _targets())
    """Target weight in percent per asset class or asset; must sum to 100. A class may be split
    into assets with a table (``ALTS = { SOL = 10, AVAX = 5, LINK = 5 }``: ALTS is 20, its other
    assets 0). An asset named alone stands for itself in its class; a name that is both a class
    and an asset (BTC) is the class. Classes never named have target 0."""

    band_pp: Decimal = Decimal(5)
    """Absolute band in percentage points: a weight further than this from target triggers."""

    band_rel_pct: Decimal | None = None
    """Relative band in % of the target (25 means 25% of a 20% target = 5 points). When set, the
    band is ``min(band_pp, max(band_rel_pct / 100 * target, band_floor_pp))``."""

    band_floor_pp: Decimal = Decimal("0.5")
    """Smallest band the relative rule may give, so tiny targets do not trigger on dust."""

    mode: Literal["target", "band_edge"] = "band_edge"
    """``band_edge``: trade just enough to bring each row inside its band (cheapest);
    ``target``: trade every targeted row back to its target (within ``target_tolerance_pp``)."""

    target_tolerance_pp: Decimal = Decimal("0.5")
    """In ``target`` mode, how close to target a row must end."""

    edge_margin_pct: Decimal = Decimal(10)
    """In ``band_edge`` mode, aim this % of the band inside its edge, so a small price move
    does not trigger again at once (also absorbs rounding)."""

    min_trade_usd: Decimal = Decimal(50)
    """No trade smaller than this value in USD."""

    slippage_bps: Decimal = Decimal(50)
    """``min_out = expected_out * (1 - slippage_bps / 10000)``, rounded down."""

    gas_reserve: dict[str, Decimal] = Field(default_factory=default_reserve)
    """Per chain, native coin kept in each wallet for gas (decimal string of units, e.g.
    ``ethereum = "0.02"``); never sold, and gas of the plan's swaps is paid on top of it.
    Chains not listed keep the default (0.01 ETH, 0.5 AVAX, 0.05 SOL; 0 elsewhere)."""

    costs: dict[str, CostModel] = Field(default_factory=default_costs)
    """Cost model per chain; a chain not listed keeps its default (Ethereum 6 USD gas, Avalanche
    0.10, Solana 0.02, all 10 bps fee) or, for other chains, ``CostModel()``."""

    tradable: dict[str, list[str]] = Field(default_factory=dict)
    """Per chain, the token symbols the planner may sell or buy there; a chain not listed: all
    registry tokens of that chain."""

    price_max_deviation_pct: Decimal = Decimal(2)
    """Refuse to plan when two price sources disagree on an asset by more than this %."""

    triggers: Triggers = Field(default_factory=Triggers)
    """When a rebalance runs: thresholds, calendar, volatility bands, momentum tilt."""

    tax: TaxConfig = Field(default_factory=TaxConfig)
    """Tax lots and tax-aware planning."""

    on_unreachable: Literal["best_effort", "refuse"] = "best_effort"
    """When no plan can bring every row inside its band (the plan says so first, with why):
    ``best_effort`` still trades to come as close as the holdings allow; ``refuse`` trades
    nothing (the plan lists what blocks it). A plan held back only by ``policy.max_run_usd`` is
    reachable: the rest is left for the next run."""

    @field_validator("targets")
    @classmethod
    def _sum_to_100(
        cls, v: dict[str, Decimal | dict[str, Decimal]]
    ) -> dict[str, Decimal | dict[str, Decimal]]:
        total = Decimal(0)
        for name, pct in v.items():
            parts = pct if isinstance(pct, dict) else {name: pct}
            if isinstance(pct, dict) and not pct:
                raise ValueError(f"target {name} is an empty split")
            for part, value in parts.items():
                if not value.is_finite() or value < 0:
                    raise ValueError(f"target {part} = {value} is negative")
                total += value
        if abs(total - _HUNDRED) > Decimal("0.01"):
            raise ValueError(f"targets sum to {total}, not 100")
        return v

    @field_validator("band_pp")
    @classmethod
    def _band(cls, v: Decimal) -> Decimal:
        if not v.is_finite() or not Decimal(0) < v <= Decimal(50):
            raise ValueError(f"band_pp = {v} must be above 0 and at most 50")
        return v

    @field_validator("band_rel_pct")
    @classmethod
    def _band_rel(cls, v: Decimal | None) -> Decimal | None:
        if v is not None and (not v.is_finite() or not Decimal(0) < v <= _HUNDRED):
            raise ValueError(f"band_rel_pct = {v} must be above 0 and at most 100")
        return v

    @field_validator("band_floor_pp", "target_tolerance_pp")
    @classmethod
    def _small_pp(cls, v: Decimal) -> Decimal:
        if not v.is_finite() or not Decimal(0) < v <= Decimal(50):
            raise ValueError(f"{v} must be above 0 and at most 50 points")
        return v

    @field_validator("edge_margin_pct")
    @classmethod
    def _margin(cls, v: Decimal) -> Decimal:
        if not v.is_finite() or not Decimal(0) <= v < Decimal(90):
            raise ValueError(f"edge_margin_pct = {v} must be from 0 to below 90")
        return v

    @field_validator("min_trade_usd", "price_max_deviation_pct")
    @classmethod
    def _nonneg(cls, v: Decimal) -> Decimal:
        return _non_negative("value", v)

    @field_validator("slippage_bps")
    @classmethod
    def _slippage(cls, v: Decimal) -> Decimal:
        if not v.is_finite() or not Decimal(0) <= v <= Decimal(5000):
            raise ValueError(f"slippage_bps = {v} must be from 0 to 5000")
        return v

    @field_validator("gas_reserve")
    @classmethod
    def _reserve(cls, v: dict[str, Decimal]) -> dict[str, Decimal]:
        for chain, amount in v.items():
            if not amount.is_finite() or amount < 0:
                raise ValueError(f"gas_reserve.{chain} = {amount} must be a non-negative amount")
        return v

    def band_for(self, target: Decimal) -> Decimal:
        """The band (points) around ``target``: absolute, or the tighter of the two rules."""
        if self.band_rel_pct is None or target <= 0:
            return self.band_pp
        relative = max(self.band_rel_pct / _HUNDRED * target, self.band_floor_pp)
        return min(self.band_pp, relative)

    def cost_model(self, chain: str) -> CostModel:
        """The chain's cost model (its default when the chain has none configured)."""
        return self.costs.get(chain) or default_costs().get(chain) or CostModel()

    def reserve(self, chain: str) -> Decimal:
        """The chain's gas reserve in native units (its default when not configured)."""
        return self.gas_reserve.get(chain, default_reserve().get(chain, Decimal(0)))
