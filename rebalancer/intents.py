"""What a run trades and what became of it: the intents (parsed once from a plan file or the
planner's trades) and the results the commands print and journal.

An EVM trade may need an approval first; its journal row, and its files in an export, are
named ``approval_id(trade)`` (``<trade>-approve``, safe in a file name), and the reset of a
leftover allowance that a token approving only from zero needs before it ``reset_id(trade)``
(``<trade>-approve-reset``). Journals written before that used ``<trade>/approve``; readers
accept all (``approval_ids``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING, Any

from rebalancer.core.errors import ConfigError
from rebalancer.core.types import Token

if TYPE_CHECKING:
    from rebalancer.documents.plan import PlanFile


def approval_id(trade_id: str) -> str:
    """The journal row and export file stem of a trade's approval."""
    return f"{trade_id}-approve"


def reset_id(trade_id: str) -> str:
    """The journal row and export file stem of the reset of a leftover allowance to 0 that a
    token approving only from zero (mainnet USDT) needs before the approval."""
    return f"{trade_id}-approve-reset"


def approval_ids(trade_id: str) -> tuple[str, str, str]:
    """The approval's row id now, as journals before ``-approve`` spelled it, and the reset's."""
    return approval_id(trade_id), f"{trade_id}/approve", reset_id(trade_id)


def pre_swap_ids(trade_id: str, count: int) -> list[str]:
    """The row ids of the ``count`` transactions sent before a trade's swap, in order."""
    return [reset_id(trade_id), approval_id(trade_id)][2 - count :] if count else []


@dataclass(frozen=True)
class TradeIntent:
    """One trade the plan asks for, with the planner's independent expectations."""

    id: str
    chain: str
    wallet: str
    sell: Token
    buy: Token
    amount_in: int
    expected_out: int
    min_out: int
    value_usd: Decimal


@dataclass
class TradeResult:
    """What became of one trade in this run."""

    id: str
    chain: str
    wallet: str
    sell: str
    buy: str
    amount_in: int
    status: str  # simulated | confirmed | failed | refused | skipped | dropped | pending
    tx: str | None = None
    min_out: int | None = None
    quoted_out: int | None = None
    simulated_out: int | None = None
    realised_out: int | None = None
    method: str | None = None
    reason: str | None = None
    sell_decimals: int = 0
    buy_decimals: int = 0

    @classmethod
    def of(cls, t: TradeIntent, status: str, **kw: Any) -> TradeResult:
        """The result of intent ``t``: its id, chain, wallet, tokens and amount, ``status``, and
        ``kw`` (tx, outs, reason...)."""
        return cls(
            t.id,
            t.chain,
            t.wallet,
            t.sell.symbol,
            t.buy.symbol,
            t.amount_in,
            status,
            sell_decimals=t.sell.decimals,
            buy_decimals=t.buy.decimals,
            **kw,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "chain": self.chain,
            "wallet": self.wallet,
            "sell": self.sell,
            "buy": self.buy,
            "amount_in": str(self.amount_in),
            "status": self.status,
            "tx": self.tx,
            "min_out": None if self.min_out is None else str(self.min_out),
            "quoted_out": None if self.quoted_out is None else str(self.quoted_out),
            "simulated_out": None if self.simulated_out is None else str(self.simulated_out),
            "realised_out": None if self.realised_out is None else str(self.realised_out),
            "simulation": self.method,
            "reason": self.reason,
            "sell_decimals": self.sell_decimals,
            "buy_decimals": self.buy_decimals,
        }


def plan_legs(doc: PlanFile, registry: Any) -> list[tuple[Any, Token, Token, int, int]]:
    """Each trade of a plan file with its tokens and amounts, checked without a price or a
    node (an unknown token, an absurd amount, a token off the trade's chain is exit 2): a bad
    file is named before the command asks a chain for its clock or its prices."""
    from rebalancer.core import bounds

    out = []
    for i, t in enumerate(doc.trades):
        where = f"plan trades[{i}]"
        sell, buy = registry.by_id(t.sell.id), registry.by_id(t.buy.id)
        if sell is None or buy is None:
            raise ConfigError(f"{where}: unknown token {t.sell.id if sell is None else t.buy.id}")
        amount_in = bounds.raw_amount(t.amount_in, f"{where}.amount_in", sell.decimals)
        min_out = bounds.raw_amount(t.min_out, f"{where}.min_out", buy.decimals)
        if sell.chain != t.chain or buy.chain != t.chain:
            raise ConfigError(f"{where}: tokens are not on chain {t.chain!r}")
        out.append((t, sell, buy, amount_in, min_out))
    return out


def intents_from_plan(
    doc: PlanFile, registry: Any, prices: Mapping[str, Decimal]
) -> list[TradeIntent]:
    """The trades of a plan file (validated as it was read: ids, amounts, types), resolved
    against the registry; an unknown token or a missing price is exit 2.

    The file says what to trade; what the trade is worth is not taken from it: the value
    (for the size limits and the fee budget) and the independent expected output (for the
    price checks) are recomputed from the config's ``[prices]``, so an old or edited plan
    cannot switch a policy check off.
    """
    out = []
    for i, (t, sell, buy, amount_in, min_out) in enumerate(plan_legs(doc, registry)):
        for token in (sell, buy):
            if token.asset not in prices:
                raise ConfigError(
                    f"plan trades[{i}]: no [prices] entry for {token.asset}: a plan is applied "
                    "at the config's prices"
                )
        value = Decimal(amount_in).scaleb(-sell.decimals) * prices[sell.asset]
        expected = int(
            (value / prices[buy.asset]).scaleb(buy.decimals).to_integral_value(ROUND_FLOOR)
        )
        out.append(
            TradeIntent(t.id, t.chain, t.wallet, sell, buy, amount_in, expected, min_out, value)
        )
    return out


def intents_from_trades(trades: Sequence[Any]) -> list[TradeIntent]:
    """The planner's Trade objects as intents (``run`` plans and applies in one go)."""
    return [
        TradeIntent(
            t.id,
            t.chain,
            t.wallet,
            t.sell,
            t.buy,
            t.amount_in,
            t.expected_out,
            t.min_out,
            t.value_usd,
        )
        for t in trades
    ]
