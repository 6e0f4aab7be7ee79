"""What a plan did not do, and why: the ``skipped`` entries of a plan.

Three things can be left undone: a proposed trade (too small, no route, the wallet's gas
reserve), a whole account (its native coin is at its reserve) and a target row that still misses
its goal after the plan (the trades it needs are too small, the markets too shallow for them,
no wallet can pay their gas, the run limit is reached, they need a transfer or a bridge, or no
trade can close it). Each has its model; JSON keys and their order are those of the plan file
(../shared/CLI.md).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Tag

from rebalancer.core.documents import DecimalText, Document, Str


class SkipReason(StrEnum):
    UNDER_MINIMUM = "under_minimum"
    """Below ``min_trade_usd``, or closing the gap costs more than it fixes."""
    DEPTH = "depth"
    """The markets are too shallow for the move: price impact eats what it buys."""
    NO_ROUTE = "no_route"
    """Nothing tradable to buy or sell, not enough liquidity, or costs above the value."""
    RESERVE = "reserve"
    """The native coin is at or below its gas reserve."""
    NEEDS_TRANSFER = "needs_transfer"
    """Only moving value between wallets on one chain can close the gap."""
    NEEDS_BRIDGE = "needs_bridge"
    """Only moving value between chains can close the gap."""
    INFEASIBLE = "infeasible"
    """The bands cannot all be met, even moving value freely."""
    RUN_LIMIT = "run_limit"
    """``policy.max_run_usd`` is reached: the rest is left for the next run."""
    UNREACHABLE = "unreachable"
    """``strategy.on_unreachable = "refuse"`` and the bands cannot be reached."""


class TradeSkip(Document):
    """A proposed trade the plan does not make."""

    chain: Str
    wallet: Str
    sell: Str
    """Token symbols."""
    buy: Str
    reason: SkipReason
    value_usd: DecimalText | None = None
    """What it would have traded (``under_minimum`` only)."""
    detail: Str

    def subject(self) -> str:
        return f"{self.chain} {self.wallet} {self.sell} {self.buy}"


class AccountSkip(Document):
    """A wallet that cannot trade at all."""

    reason: SkipReason
    chain: Str
    wallet: Str
    detail: Str

    def subject(self) -> str:
        return f"{self.chain} {self.wallet}"


class GoalSkip(Document):
    """A target row (asset class or asset) still outside its goal after the plan."""

    name: Str
    kind: Literal["class", "asset"]
    amount_usd: DecimalText
    """How far off it stays."""
    weight_pct: DecimalText
    reason: SkipReason
    chains: Str | None = None
    """Comma-separated chains to bridge to or from (``needs_bridge`` only)."""
    detail: Str

    def subject(self) -> str:
        return self.name


class PlanSkip(Document):
    """What the whole plan leaves undone (the run limit reached, or unreachable bands refused)."""

    reason: SkipReason
    amount_usd: DecimalText | None = None
    """What is left for the next run (``run_limit`` only)."""
    detail: Str

    def subject(self) -> str:
        return "plan"


def _kind(v: Any) -> str:
    if isinstance(v, dict):
        if "name" in v:
            return "goal"
        return "trade" if "sell" in v else "account" if "chain" in v else "plan"
    if isinstance(v, GoalSkip):
        return "goal"
    if isinstance(v, TradeSkip):
        return "trade"
    return "account" if isinstance(v, AccountSkip) else "plan"


Skip = Annotated[
    Annotated[TradeSkip, Tag("trade")]
    | Annotated[AccountSkip, Tag("account")]
    | Annotated[GoalSkip, Tag("goal")]
    | Annotated[PlanSkip, Tag("plan")],
    Discriminator(_kind),
]
SKIP_TAGS = frozenset({"trade", "account", "goal", "plan"})


def skip_json(s: TradeSkip | AccountSkip | GoalSkip | PlanSkip) -> dict[str, Any]:
    """The entry as the plan file holds it (optional keys only where they apply)."""
    out: dict[str, Any] = s.model_dump(mode="json", exclude_none=True)
    return out
