"""``rebalancer plan``: the cheapest trades that bring the portfolio back within its bands.

``--snapshot FILE`` plans offline; ``-o PLAN`` writes the plan document (the same JSON as
``--json``, keys per ../shared/CLI.md) for ``simulate``/``apply`` to read.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from rebalancer.commands.drift import Inputs, load_inputs, refuse_partial
from rebalancer.core.errors import ConfigError
from rebalancer.documents.plan import PlanFile
from rebalancer.output import emit_json


def build(inputs: Inputs, force: bool = False) -> Any:
    """The plan for these inputs (the planner is pure; this only passes things in)."""
    from rebalancer.planner.plan import make_plan

    return make_plan(
        inputs.portfolio,
        inputs.targets,
        inputs.config.strategy,
        inputs.registry,
        now=inputs.now,
        last_rebalance=inputs.last_rebalance,
        history=inputs.history,
        lots=inputs.lots,
        force=force,
        limits=inputs.config.trade_limits(),
    )


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

    inputs = load_inputs(args, lots_arg=args.lots, costs=True)
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
