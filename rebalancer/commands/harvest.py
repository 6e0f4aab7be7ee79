"""``rebalancer harvest``: assets with an unrealised loss worth harvesting, and a substitute.

The lots are the journal's book (``lots import`` plus every confirmed swap), or ``--lots CSV``
as an override. Coordinated with the plan: a candidate the plan already sells is marked, since
choosing the loss lots for that sale realises the loss without an extra trade. The same-asset
harvest swaps (WBTC -> cbBTC) are listed with the tax they save net of the planner's cost of
the swap; ``in_plan`` says whether the plan makes them (``strategy.tax.aware`` and
``strategy.tax.harvest`` on).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from rebalancer.commands.drift import Inputs, load_inputs
from rebalancer.commands.plan import build_with_harvest, repurchase_waits
from rebalancer.core.errors import ConfigError
from rebalancer.output import emit_json

if TYPE_CHECKING:
    from rebalancer.planner.drift import Drift


def run(args: argparse.Namespace) -> int:
    from rebalancer.planner.context import make_context
    from rebalancer.planner.harvest import harvest_candidates, harvest_swaps
    from rebalancer.planner.render import harvest_json, harvest_text, swaps_text

    inputs = load_inputs(args, lots_arg=args.lots, costs=True, book=True)
    if not inputs.lots:
        raise ConfigError(
            "no tax lots: import some with `rebalancer lots import CSV`, or give --lots CSV "
            '(date,asset,amount,cost_basis_usd) or a snapshot with "lots"'
        )
    plan, base = (None, None) if inputs.failures else build_with_harvest(inputs)
    strategy = inputs.config.strategy
    drift = plan.before if plan is not None else _drift(inputs)
    cands = harvest_candidates(
        inputs.portfolio, drift, inputs.lots, strategy, inputs.registry, plan
    )
    swaps = []
    if base is not None:
        ctx = make_context(
            inputs.portfolio,
            strategy,
            inputs.registry,
            drift,
            inputs.lots,
            inputs.now.date(),
            inputs.config.trade_limits(),
        )
        swaps = harvest_swaps(ctx, base.trades, repurchase_waits(inputs))
    in_plan = {(t.chain, t.wallet, t.sell.id, t.buy.id) for t in plan.trades} if plan else set()
    threshold = strategy.tax.harvest_min_loss_usd
    if args.json:
        emit_json(harvest_json(cands, threshold, swaps, in_plan))
    else:
        print(harvest_text(cands, threshold))
        if swaps:
            print()
            print(swaps_text(swaps, in_plan))
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
