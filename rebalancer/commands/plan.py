"""``rebalancer plan``: the cheapest trades that bring the portfolio back within its bands.

``--snapshot FILE`` plans offline; ``-o PLAN`` writes the plan document (the same JSON as
``--json``, keys per ../shared/CLI.md) for ``simulate``/``apply`` to read.
"""

from __future__ import annotations

import argparse
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from rebalancer.commands.drift import Inputs, load_inputs, refuse_partial
from rebalancer.core.errors import ConfigError
from rebalancer.documents.plan import PlanFile
from rebalancer.output import emit_json


def build(inputs: Inputs, force: bool = False) -> Any:
    """The plan for these inputs (the planner is pure; this only passes things in), with the
    harvest swaps that beat their cost when ``strategy.tax.aware`` and ``.harvest`` are on."""
    return build_with_harvest(inputs, force)[0]


def repurchase_waits(inputs: Inputs) -> dict[str, date]:
    """Token id -> the day its repurchase wait ends (``strategy.tax.repurchase_wait_days``
    after the journal's last sale of it at a loss), for tokens still waiting at ``now``."""
    book = inputs.book
    days = inputs.config.strategy.tax.repurchase_wait_days
    if book is None or days <= 0:
        return {}
    return {tid: until.date() for tid, until in book.blocked_buys(inputs.now, days).items()}


def _without(strategy: Any, registry: Any, waits: dict[str, date]) -> Any:
    """The strategy with every waiting token taken out of its chain's ``tradable`` list (the
    planner's own input for which tokens it may trade)."""
    from rebalancer.planner.model import tradable_tokens

    tradable = dict(strategy.tradable)
    for chain in registry.chains:
        tokens = tradable_tokens(strategy, registry, chain)
        if any(t.id in waits for t in tokens):
            tradable[chain] = [t.symbol for t in tokens if t.id not in waits]
    return strategy.model_copy(update={"tradable": tradable})


def build_with_harvest(inputs: Inputs, force: bool = False) -> tuple[Any, Any]:
    """The plan, and the plan before its harvest swaps (``harvest`` looks at the swaps
    beside it)."""
    from rebalancer.planner.harvest import with_harvest
    from rebalancer.planner.plan import make_plan

    waits = repurchase_waits(inputs)
    strategy = inputs.config.strategy
    planned = _without(strategy, inputs.registry, waits) if waits else strategy
    limits = inputs.config.trade_limits()
    plan = make_plan(
        inputs.portfolio,
        inputs.targets,
        planned,
        inputs.registry,
        now=inputs.now,
        last_rebalance=inputs.last_rebalance,
        history=inputs.history,
        lots=inputs.lots,
        force=force,
        limits=limits,
    )
    harvested, _swaps = with_harvest(
        plan,
        inputs.portfolio,
        strategy,
        inputs.registry,
        inputs.lots,
        inputs.now.date(),
        limits,
        waits,
    )
    return harvested, plan


def document(inputs: Inputs, plan: Any) -> PlanFile:
    """The plan document, with each trade's configured wallet name added; validated as
    ``apply`` will read it, so what is written can be read back."""
    from rebalancer.planner.render import plan_json

    doc = plan_json(plan, inputs.read_at or datetime.now(UTC), inputs.as_of)
    for t in doc["trades"]:
        t["wallet_name"] = inputs.names.get((t["chain"], t["wallet"]), t["wallet"])
    if inputs.cost_inputs:
        doc["cost_inputs"] = inputs.cost_inputs
    return PlanFile.of(doc, "plan")


def cost_lines(cost_inputs: dict[str, Any]) -> list[str]:
    """One line per chain: where each cost input came from (measured, configured, assumed)."""
    lines = []
    for chain, row in cost_inputs.items():
        gas = row.get("gas_per_swap", {})
        price = row.get("gas_price")
        if "usd" in gas and price is not None:
            shown = (
                f"gas {price['value']} {price['unit']} (measured: {price['source']}) x "
                f"{row['gas_units_per_swap']['value']:,} ({row['gas_units_per_swap']['source']}) "
                f"= ${gas['usd']} per swap"
            )
        else:
            shown = f"gas per swap {gas.get('source', 'assumed')}"
        line = (
            f"  {chain}: {shown}; fee {row['fee_bps']['value']} bps and depth "
            f"${Decimal(row['depth_usd']['value']):,.0f} {row['fee_bps']['source']}"
        )
        fitted = {
            a: d["value"]
            for a, d in row.get("depth_usd_by_asset", {}).items()
            if str(d["source"]).startswith("fitted")
        }
        if fitted:
            shown_fit = ", ".join(f"{a} ${Decimal(v):,.0f}" for a, v in fitted.items())
            line += f"; depth fitted from quotes: {shown_fit}"
        lines.append(line)
    return lines


def run(args: argparse.Namespace) -> int:
    from rebalancer.planner.render import plan_text

    inputs = load_inputs(args, lots_arg=args.lots, costs=True, book=True)
    refuse_partial(inputs)
    plan = build(inputs, force=args.force)
    doc = document(inputs, plan)
    if args.output:
        try:
            Path(args.output).write_text(doc.text(), encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"-o {args.output!r}: cannot write: {exc.strerror}") from None
    if args.json:
        emit_json(doc.as_json())
    else:
        print(plan_text(plan))
        if inputs.cost_inputs:
            print("\ncost inputs:")
            print("\n".join(cost_lines(inputs.cost_inputs)))
        if args.output:
            print(f"\nplan written to {args.output}")
    return 0
