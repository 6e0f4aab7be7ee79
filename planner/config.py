"""The strategy part of the config: targets and bands. Pure data, validated once."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class StrategyConfig(BaseModel):
    """What the portfolio should look like and how far it may drift."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    targets: dict[str, Decimal] = Field(
        default_factory=lambda: {
            "BTC": Decimal(40),
            "ETH": Decimal(30),
            "ALTS": Decimal(20),
            "STABLES": Decimal(10),
        }
    )
    """Target weight in percent per asset class (or asset); must sum to 100."""

    band_pp: Decimal = Decimal(5)
    """Absolute band in percentage points: a weight further than this from target triggers."""

    @field_validator("targets")
    @classmethod
    def _sum_to_100(cls, v: dict[str, Decimal]) -> dict[str, Decimal]:
        for name, pct in v.items():
            if pct < 0:
                raise ValueError(f"target {name} = {pct} is negative")
        total = sum(v.values(), Decimal(0))
        if abs(total - 100) > Decimal("0.01"):
            raise ValueError(f"targets sum to {total}, not 100")
        return v

    @field_validator("band_pp")
    @classmethod
    def _band(cls, v: Decimal) -> Decimal:
        if not Decimal(0) < v <= Decimal(50):
            raise ValueError(f"band_pp = {v} must be above 0 and at most 50")
        return v
