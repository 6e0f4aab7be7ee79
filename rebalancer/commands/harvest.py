"""``rebalancer harvest``: assets with an unrealised loss worth harvesting, and a substitute.

Coordinated with the plan: a candidate the plan already sells is marked, since choosing the
loss lots for that sale realises the loss without an extra trade.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from rebalancer.commands.drift import Inputs, load_inputs
from rebalancer.commands.plan import build
from rebalancer.core.errors import ConfigError
from rebalancer.output import emit_json

if TYPE_CHECKING:
    from rebalancer.planner.drift import Drift


def run(args: argparse.Namespace) -> int:
    from rebalancer.planner.harvest import harvest_candidates
    from rebalancer.planner.render import harvest_json, harvest_text

    inputs = load_inputs(args, lots_arg=args.lots)
    if not inputs.lots:
        raise ConfigError(
            "no tax lots: give --lots CSV (date,asset,amount,cost_basis_usd) or a "
            'snapshot with "lots"'
        )
    plan = None if inputs.failures else build(inputs)
    strategy = inputs.config.strategy
    drift = plan.before if plan is not None else _drift(inputs)
    cands = harvest_candidates(
        inputs.portfolio, drift, inputs.lots, strategy, inputs.registry, plan
    )
    threshold = strategy.tax.harvest_min_loss_usd
    if args.json:
        emit_json(harvest_json(cands, threshold))
    else:
        print(harvest_text(cands, threshold))
    return 0


def _drift(inputs: Inputs) -> Drift:
    """Drift alone, when no plan can be made (unread balances)."""
    from rebalancer.planner.drift import compute_drift

    return compute_drift(
        inputs.portfolio,
        inputs.targets,
        inputs.config.strategy,
        now=inputs.now,
        history=inputs.history,
    )
