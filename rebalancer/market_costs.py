"""Network costs from the chains themselves, for the planner's cost model.

The gas price comes from the chain: EVM ``eth_feeHistory`` (next block's base fee plus the
median tip of the last blocks), Solana ``getRecentPrioritizationFees`` (the median priority fee
per compute unit, plus the 5,000-lamport signature fee). It is multiplied by the gas a swap of
that kind uses (``SWAP_GAS``: documented defaults until measured ones are recorded) and valued at
the oracle price of the native coin. Market depth per asset is fitted from the aggregators'
quotes at two sizes (``quote_prices.fetch_depths``). A ``gas_per_swap_usd``,
``gas_per_swap_native`` or ``depth_usd_by_asset`` typed in ``[strategy.costs.CHAIN]`` stays an
override. The plan shows each cost input and whether it was
measured, configured or assumed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from decimal import Decimal
from statistics import median
from typing import TYPE_CHECKING, Any

from rebalancer.core.errors import ChainError

if TYPE_CHECKING:
    from rebalancer.config import Config
    from rebalancer.journal import Journal
    from rebalancer.market_prices import MarketPrices
    from rebalancer.portfolio import Snapshot
    from rebalancer.services import Services

# Gas of one aggregator swap, by family, before any swap was recorded: a 1inch swap through one
# or two Uniswap pools uses ~120-200k gas (simulations on the local worlds: 130-190k) plus an
# exact approval (~46k); a Jupiter swap asks for up to ~300k compute units and pays one
# 5,000-lamport signature. Once swaps have landed, the median of the last 20 recorded for the
# chain and aggregator (receipts' gasUsed, computeUnitsConsumed) is used instead.
SWAP_GAS = {"evm": 230_000, "solana": 300_000}
APPROVAL_GAS = 46_000  # added to a recorded EVM swap unless approvals are unlimited
AGGREGATOR = {"evm": "1inch", "solana": "jupiter"}
LAMPORTS_PER_SIGNATURE = 5_000
FEE_HISTORY_BLOCKS = 10


async def _gas_price(family: str, url: str, client: Any) -> tuple[int, str]:
    """(price per gas unit in base units (wei, or micro-lamports per CU), how it was read)."""
    if family == "evm":
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "eth_feeHistory",
            "params": [hex(FEE_HISTORY_BLOCKS), "latest", [50]],
        }
        r = await client.post(url, json=body)
        result = r.json().get("result") or {}
        try:
            base = int(str(result["baseFeePerGas"][-1]), 16)
            tips = [int(str(t[0]), 16) for t in result.get("reward") or [] if t]
        except (KeyError, IndexError, TypeError, ValueError):
            raise ChainError(f"eth_feeHistory answered {str(result)[:80]!r}") from None
        tip = int(median(tips)) if tips else 0
        return base + tip, "eth_feeHistory (base fee + median tip)"
    body = {"jsonrpc": "2.0", "id": 1, "method": "getRecentPrioritizationFees", "params": []}
    r = await client.post(url, json=body)
    result = r.json().get("result")
    if not isinstance(result, list):
        raise ChainError(f"getRecentPrioritizationFees answered {str(result)[:80]!r}")
    fees = [int(x.get("prioritizationFee", 0)) for x in result if isinstance(x, dict)]
    return (int(median(fees)) if fees else 0), "getRecentPrioritizationFees (median)"


def _configured_gas(config: Config, chain: str) -> bool:
    s = config.strategy
    cm = s.costs.get(chain) if "costs" in s.model_fields_set else None
    return cm is not None and bool(
        {"gas_per_swap_usd", "gas_per_swap_native"} & cm.model_fields_set
    )


async def measure_costs(
    services: Services, snap: Snapshot, market: MarketPrices
) -> tuple[Config, dict[str, Any]]:
    """:func:`measure` with the command's Services: the gas prices, the depth fit from the
    quotes (when the quotes are in use) and the gas the journal recorded."""
    from rebalancer.quote_prices import fit_depths

    config, registry = services.config, services.registry
    depths = None
    if market.quotes is not None:  # NOTE: the aggregators are in use for this refresh
        known = dict(market.quotes.table)
        depths = await fit_depths(services, snap.holdings, market.usd, market.usd, known)
    chains = [c for c in config.chains if not _configured_gas(config, c)]
    got = await asyncio.gather(
        *(_gas_price(registry.chains[c].family, services.urls[c], services.client) for c in chains),
        return_exceptions=True,
    )
    return measure(
        config,
        registry,
        dict(zip(chains, got, strict=True)),
        market.usd,
        depths,
        recorded_gas(config, registry),
    )


def measure(
    config: Config,
    registry: Any,
    measured: Mapping[str, tuple[int, str] | BaseException],
    prices: Mapping[str, Decimal],
    depths: Mapping[str, tuple[str, Decimal | None, str]] | None = None,
    recorded: Mapping[str, list[int]] | None = None,
) -> tuple[Config, dict[str, Any]]:
    """The config with each chain's gas per swap from its measured gas price (unless
    configured) and the market depths fitted from quotes (``depths``; a typed
    ``depth_usd_by_asset`` wins), and the cost inputs with their provenance for the plan."""
    strategy = config.strategy
    costs = {c: strategy.cost_model(c) for c in config.chains}
    inputs: dict[str, Any] = {}
    for chain in config.chains:
        info = registry.chains[chain]
        cm = costs[chain]
        typed = "costs" in strategy.model_fields_set and chain in strategy.costs
        fee = "configured" if typed else "assumed (default)"
        row: dict[str, Any] = {
            "fee_bps": {"value": str(cm.fee_bps), "source": fee},
            "depth_usd": {"value": str(cm.depth_usd), "source": fee},
        }
        got = measured.get(chain)
        if _configured_gas(config, chain):
            row["gas_per_swap"] = {"source": "configured"}
        elif isinstance(got, tuple) and info.native_asset in prices:
            price, how = got
            units = SWAP_GAS[info.family]
            units_from = "assumed (SWAP_GAS default)"
            seen = (recorded or {}).get(chain) or []
            if seen:
                units = int(median(seen))
                units_from = f"median of the last {len(seen)} swaps recorded"
                if info.family == "evm" and not config.policy.unlimited_approval:
                    units += APPROVAL_GAS
                    units_from += f" + {APPROVAL_GAS:,} for the approval"
            if info.family == "evm":
                raw = price * units
                shown = {"value": str(Decimal(price).scaleb(-9)), "unit": "gwei", "source": how}
            else:
                raw = LAMPORTS_PER_SIGNATURE + price * units // 1_000_000
                shown = {"value": str(price), "unit": "micro-lamports/CU", "source": how}
            native = Decimal(raw).scaleb(-info.native_decimals)
            costs[chain] = cm.model_copy(
                update={"gas_per_swap_native": native, "gas_per_swap_usd": None}
            )
            row["gas_price"] = shown
            row["gas_units_per_swap"] = {"value": units, "source": units_from}
            row["gas_per_swap"] = {
                "native": str(native),
                "usd": str((native * prices[info.native_asset]).quantize(Decimal("0.0001"))),
                "source": "measured gas price x assumed gas",
            }
        else:
            why = str(got) if isinstance(got, BaseException) else "no native price"
            row["gas_per_swap"] = {"source": f"assumed (default; not measured: {why})"}
        fitted: dict[str, Any] = {}
        by_asset = dict(costs[chain].depth_usd_by_asset)
        for asset, (where, depth, how) in sorted((depths or {}).items()):
            if where != chain:
                continue
            if asset in cm.depth_usd_by_asset and typed:
                fitted[asset] = {"value": str(cm.depth_usd_by_asset[asset]), "source": "configured"}
            elif depth is not None and depth > 0:
                by_asset[asset] = depth
                fitted[asset] = {"value": str(depth), "source": how}
            else:
                fitted[asset] = {"value": str(cm.depth(asset)), "source": f"assumed ({how})"}
        if fitted:
            costs[chain] = costs[chain].model_copy(update={"depth_usd_by_asset": by_asset})
            row["depth_usd_by_asset"] = fitted
        inputs[chain] = row
    new = strategy.model_copy(update={"costs": costs})
    return config.model_copy(update={"strategy": new}), inputs


def recorded_gas(config: Config, registry: Any) -> dict[str, list[int]]:
    """Per configured chain, the gas of the last swaps the journal recorded (none yet: [])."""
    import os

    from rebalancer.journal import Journal
    from rebalancer.services import journal_path

    path = journal_path(config, os.environ)
    if not path.exists():
        return {}
    journal = Journal(path)
    try:
        return {
            c: journal.swap_gas(c, AGGREGATOR[registry.chains[c].family]) for c in config.chains
        }
    finally:
        journal.close()


async def record_landed(services: Services, journal: Journal, results: list[Any]) -> None:
    """Record the gas each confirmed swap of a run used (EVM receipt ``gasUsed``, Solana
    ``computeUnitsConsumed``), one batch per chain; best effort: a node that does not say
    leaves nothing recorded."""
    registry = services.registry
    by_chain: dict[str, list[str]] = {}
    for r in results:
        if r.status == "confirmed" and r.tx:
            by_chain.setdefault(r.chain, []).append(r.tx)

    async def one(chain: str, txs: list[str]) -> list[tuple[str, int]]:
        family = registry.chains[chain].family
        calls: list[tuple[str, list[Any]]]
        if family == "evm":
            calls = [("eth_getTransactionReceipt", [tx]) for tx in txs]
        else:
            cfg = {"encoding": "json", "maxSupportedTransactionVersion": 0}
            calls = [("getTransaction", [tx, {**cfg, "commitment": "confirmed"}]) for tx in txs]
        body = [
            {"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)
        ]
        answers = (await services.client.post(services.urls[chain], json=body)).json()
        got: list[tuple[str, int]] = []
        for a in sorted(answers, key=lambda a: a.get("id", 0)) if isinstance(answers, list) else []:
            result = a.get("result") or {}
            tx = txs[int(a.get("id", 0))]
            if family == "evm" and "gasUsed" in result:
                got.append((tx, int(str(result["gasUsed"]), 16)))
            elif family != "evm":
                units = (result.get("meta") or {}).get("computeUnitsConsumed")
                if isinstance(units, int):
                    got.append((tx, units))
        return got

    chains = list(by_chain)
    done = await asyncio.gather(*(one(c, by_chain[c]) for c in chains), return_exceptions=True)
    for chain, got in zip(chains, done, strict=True):
        if isinstance(got, BaseException):
            continue
        for tx, gas in got:
            journal.record_swap_gas(tx, chain, services.aggregator_name(chain), gas)
