"""JSON documents and aligned text tables for drift, plan and harvest (strings only, no I/O).

JSON keys follow ../shared/CLI.md. Exact values are strings: integer base units (``amount_in``,
``expected_out``, ``min_out``) as decimal integers, USD and percentages as decimal strings
(USD to the cent, percentages to 4 places), so no script ever sees a rounded float.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from rebalancer.core.display import short_units
from rebalancer.core.types import Token
from rebalancer.planner.drift import Drift, DriftRow
from rebalancer.planner.model import from_base_units
from rebalancer.planner.plan import Plan, Trade
from rebalancer.planner.skips import GoalSkip, skip_json
from rebalancer.planner.tax import HarvestCandidate

if TYPE_CHECKING:
    from rebalancer.planner.harvest import HarvestSwap

_CENT = Decimal("0.01")
_PCT = Decimal("0.0001")


def units(v: Decimal) -> str:
    """A token amount as plain decimal text (no exponent)."""
    return "0" if v == 0 else format(v.normalize(), "f")


def usd(v: Decimal) -> str:
    return str(v.quantize(_CENT))


def pct(v: Decimal | None) -> str | None:
    return None if v is None else str(v.quantize(_PCT))


def row_json(r: DriftRow) -> dict[str, Any]:
    return {
        "name": r.name,
        "kind": r.kind,
        "value_usd": usd(r.value_usd),
        "weight_pct": pct(r.weight_pct),
        "target_pct": pct(r.target_pct),
        "drift_pp": pct(r.drift_pp),
        "band_pp": pct(r.band_pp),
        "triggered": r.triggered,
    }


def drift_json(d: Drift) -> dict[str, Any]:
    return {
        "total_usd": usd(d.total_usd),
        "band_pp": pct(d.band_pp),
        "rows": [row_json(r) for r in d.rows],
        "triggered": d.triggered,
        "max_drift_pp": pct(d.max_drift_pp),
        "triggers": [{"name": t.name, "fired": t.fired, "detail": t.detail} for t in d.triggers],
    }


def token_json(t: Token) -> dict[str, Any]:
    return {"symbol": t.symbol, "id": t.id, "asset": t.asset, "decimals": t.decimals}


def trade_json(t: Trade) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": t.id,
        "chain": t.chain,
        "wallet": t.wallet,
        "sell": token_json(t.sell),
        "buy": token_json(t.buy),
        "amount_in": str(t.amount_in),
        "expected_out": str(t.expected_out),
        "min_out": str(t.min_out),
        "value_usd": usd(t.value_usd),
        "est_cost_usd": usd(t.est_cost_usd),
        "fee_usd": usd(t.fee_usd),
        "impact_usd": usd(t.impact_usd),
        "gas_usd": usd(t.gas_usd),
        "gas_native": str(t.gas_native),
        "reason": t.reason,
    }
    if t.realised is not None:
        r = t.realised
        out["realised"] = {
            "gain_usd": usd(r.gain_usd),
            "short_term_gain_usd": usd(r.short_term_gain_usd),
            "long_term_gain_usd": usd(r.long_term_gain_usd),
            "tax_usd": usd(r.tax_usd),
            "lots": [{"id": u.lot_id, "amount": units(u.amount)} for u in r.uses],
            "uncovered_amount": units(r.uncovered_amount),
        }
    return out


def plan_json(p: Plan, created_at: datetime, as_of: datetime | None = None) -> dict[str, Any]:
    """The plan document: ``plan --json`` output and the PLAN file ``apply`` reads."""
    return {
        "created_at": created_at.isoformat(),
        "as_of": None if as_of is None else as_of.isoformat(),
        "mode": p.mode,
        "method": p.method,
        "triggered": p.before.triggered,
        "reachable": p.reachable,
        "unreachable_why": p.unreachable_why,
        "left_for_next_run_usd": None if p.left_usd is None else usd(p.left_usd),
        "total_usd": usd(p.total_usd),
        "trades": [trade_json(t) for t in p.trades],
        "skipped": [skip_json(s) for s in p.skipped],
        "before": [row_json(r) for r in p.before.rows],
        "after": [row_json(r) for r in p.after],
        "before_max_drift_pp": pct(p.before.max_drift_pp),
        "after_max_drift_pp": pct(p.after_max_drift_pp),
        "est_cost_usd": usd(p.est_cost_usd),
        "est_tax_usd": usd(p.est_tax_usd),
        "naive_cost_usd": None if p.naive_cost_usd is None else usd(p.naive_cost_usd),
        "solver": dict(p.solver),
    }


def _swap_json(s: HarvestSwap, in_plan: Collection[tuple[str, str, str, str]]) -> dict[str, Any]:
    return {
        "chain": s.chain,
        "wallet": s.wallet,
        "sell": s.sell.symbol,
        "buy": None if s.buy is None else s.buy.symbol,
        "asset": s.sell.asset,
        "amount": units(s.amount),
        "loss_usd": usd(s.loss_usd),
        "saving_usd": usd(s.saving_usd),
        "cost_usd": usd(s.cost_usd),
        "net_usd": usd(s.net_usd),
        "worth_it": bool(s.trades),
        "in_plan": s.buy is not None
        and (s.chain, s.wallet, s.sell.id, s.buy.id) in in_plan
        and bool(s.trades),
        "note": s.note,
    }


def harvest_json(
    cands: Sequence[HarvestCandidate],
    threshold: Decimal,
    swaps: Sequence[HarvestSwap] = (),
    in_plan: Collection[tuple[str, str, str, str]] = (),
) -> dict[str, Any]:
    return {
        "swaps": [_swap_json(s, in_plan) for s in swaps],
        "threshold_usd": usd(threshold),
        "total_loss_usd": usd(sum((c.unrealised_loss_usd for c in cands), Decimal(0))),
        "candidates": [
            {
                "asset": c.asset,
                "class": c.klass,
                "amount": units(c.amount),
                "value_usd": usd(c.value_usd),
                "unrealised_loss_usd": usd(c.unrealised_loss_usd),
                "lots": list(c.lot_ids),
                "substitute": c.substitute,
                "planned_sell_usd": usd(c.planned_sell_usd),
                "note": c.note,
            }
            for c in cands
        ],
    }


# -- text ---------------------------------------------------------------------------------------
def table(header: Sequence[str], rows: Iterable[Sequence[str]], right: Iterable[int] = ()) -> str:
    """Columns padded to their widest cell; ``right`` holds the indexes aligned right."""
    body = [list(map(str, r)) for r in rows]
    widths = [len(h) for h in header]
    for r in body:
        for i, cell in enumerate(r):
            widths[i] = max(widths[i], len(cell))
    right_set = set(right)

    def fmt(cells: Sequence[str]) -> str:
        parts = [
            c.rjust(widths[i]) if i in right_set else c.ljust(widths[i])
            for i, c in enumerate(cells)
        ]
        return "  ".join(parts).rstrip()

    lines = [fmt(header), fmt(["-" * w for w in widths])]
    lines.extend(fmt(r) for r in body)
    return "\n".join(lines)


def _num(v: Decimal | None, places: str = "0.01", sign: bool = False) -> str:
    if v is None:
        return "-"
    q = v.quantize(Decimal(places))
    return f"{q:+,}" if sign else f"{q:,}"


def drift_rows_text(rows: Sequence[DriftRow]) -> str:
    return table(
        ["name", "kind", "value usd", "weight %", "target %", "drift pp", "band pp", "out"],
        [
            [
                r.name if r.kind == "class" else f"  {r.name}",
                r.kind,
                _num(r.value_usd),
                _num(r.weight_pct),
                _num(r.target_pct),
                _num(r.drift_pp, sign=True),
                _num(r.band_pp),
                "YES" if r.triggered else "",
            ]
            for r in rows
        ],
        right=range(2, 7),
    )


def drift_text(d: Drift) -> str:
    lines = [
        f"total {_num(d.total_usd)} USD, band {d.band_pp} pp, "
        f"max drift {_num(d.max_drift_pp)} pp, rebalance: {'YES' if d.triggered else 'no'}",
        "",
        drift_rows_text(d.rows),
        "",
        "triggers:",
    ]
    lines.extend(f"  {t.name:<11} {'FIRED' if t.fired else '-':<5} {t.detail}" for t in d.triggers)
    return "\n".join(lines)


def _amount(raw: int, token: Token) -> str:
    """Token units to a few significant digits, for the text table (the JSON stays exact)."""
    return f"{short_units(from_base_units(raw, token.decimals))} {token.symbol}"


def _solver_note(p: Plan) -> str:
    """How the optimiser found the plan it kept, and how far above the least cost it may be
    (the decomposed path's gap to its lower bound, ``optimise.Solution.gap``)."""
    how, gap = p.solver.get("method"), p.solver.get("gap")
    if p.method != "optimised" or how not in ("exact", "decomposed"):
        return ""
    if not isinstance(gap, float | int):
        return f" ({how}, no lower bound)"
    if how == "exact" and gap < 1e-6:
        return " (exact optimum)"
    return f" ({how}: cost within {gap * 100:.2g}% of a lower bound)"


def plan_text(p: Plan) -> str:
    lines = []
    if not p.reachable:
        lines += [f"bands NOT reachable: {p.unreachable_why}", ""]
    lines.append(
        f"total {_num(p.total_usd)} USD, mode {p.mode}, rebalance: "
        f"{'YES' if p.before.triggered else 'no'}, method {p.method}{_solver_note(p)}"
    )
    if p.left_usd is not None:
        lines.append(
            f"policy.max_run_usd reached: about {_num(p.left_usd)} USD left for the next run"
        )
    if p.trades:
        lines += [
            "",
            table(
                [
                    "id",
                    "chain",
                    "wallet",
                    "sell",
                    "buy (expected)",
                    "min out",
                    "value usd",
                    "cost usd",
                ],
                [
                    [
                        t.id,
                        t.chain,
                        t.wallet,
                        _amount(t.amount_in, t.sell),
                        _amount(t.expected_out, t.buy),
                        _amount(t.min_out, t.buy),
                        _num(t.value_usd),
                        _num(t.est_cost_usd),
                    ]
                    for t in p.trades
                ],
                right=(6, 7),
            ),
            "",
            "why:",
        ]
        lines.extend(f"  {t.id}  {t.reason}" for t in p.trades)
    else:
        lines += ["", "no trades"]
    if p.skipped:
        lines += ["", "not done:"]
        for s in p.skipped:
            amount = f" {s.amount_usd} USD" if isinstance(s, GoalSkip) else ""
            lines.append(f"  {s.reason:<14} {s.subject()}{amount}: {s.detail}")
    naive = "-" if p.naive_cost_usd is None else _num(p.naive_cost_usd)
    lines += [
        "",
        f"estimated cost {_num(p.est_cost_usd)} USD (naive plan: {naive} USD), "
        f"estimated tax {_num(p.est_tax_usd)} USD",
        f"max drift {_num(p.before.max_drift_pp)} pp before, {_num(p.after_max_drift_pp)} pp after",
        "",
        "after the plan:",
        drift_rows_text(p.after),
    ]
    return "\n".join(lines)


def harvest_text(cands: Sequence[HarvestCandidate], threshold: Decimal) -> str:
    if not cands:
        return f"no asset has an unrealised loss of {threshold} USD or more"
    return table(
        ["asset", "class", "amount", "loss usd", "lots", "substitute", "note"],
        [
            [
                c.asset,
                c.klass,
                short_units(c.amount),
                _num(c.unrealised_loss_usd),
                ",".join(c.lot_ids),
                c.substitute or "-",
                c.note,
            ]
            for c in cands
        ],
        right=(2, 3),
    )


def swaps_text(swaps: Sequence[HarvestSwap], in_plan: Collection[tuple[str, str, str, str]]) -> str:
    """Same-asset harvest swaps: the tax saved net of the swap's modelled cost."""
    rows = []
    for s in swaps:
        d = _swap_json(s, in_plan)
        rows.append(
            [
                s.chain,
                f"{d['sell']} -> {d['buy'] or '-'}",
                short_units(s.amount),
                _num(s.loss_usd),
                _num(s.saving_usd),
                _num(s.cost_usd),
                _num(s.net_usd),
                "yes" if d["in_plan"] else "no",
                s.note,
            ]
        )
    return "same-asset harvest swaps:\n" + table(
        [
            "chain",
            "swap",
            "amount",
            "loss usd",
            "saved usd",
            "cost usd",
            "net usd",
            "in plan",
            "note",
        ],
        rows,
        right=(2, 3, 4, 5, 6),
    )
