"""The trade optimiser: which swaps, where, and how large, at least cost. HiGHS via scipy.

The model. A swap sells one token for another in one wallet on one chain. It costs the chain's
fee on the value sold and the chain's gas, a fixed cost paid once per swap; it is at least
``min_pp`` and at most ``max_trade_pp`` (a larger move is the fewest slices of one pair within
it, equal parts, each its own swap paying its own gas); price impact is per *pool*
(``CostModel.pools``: a pair's pool, or each asset's market on the chain), ``k * V**2`` on the
volume ``V`` of every swap of the chain through it, so splitting a move saves no impact; the
run trades at most ``max_run_pp``; gas and native sales come out of the native coin above its
reserve; nothing is sold beyond what is held; every targeted row should end inside its goal
interval, measured against the total after costs. Band rows are soft (a slack with a large
penalty), so the program always has a solution: the best feasible one when the bands cannot
all be met. Units are percentage points of the portfolio's total (well scaled).

**Exact** (up to ``exact_max_swaps``: 400 candidate swaps, 1,200 with tax or pair pools): a
MILP over *every* pair of every wallet whose two tokens differ in some targeted row (a pair
that changes no row only costs money; no other pair is pruned), one on/off binary per swap
(gas, minimum size), each pool's convex impact by chords on geometric breakpoints of its
volume. A node limit bounds it, never a time limit. From ``DECOMPOSED_BESIDE`` candidate
swaps it begins from the decomposed plan (a MIP start), which the caller also weighs.

**Decomposed** (above it: from a few wallets x tens of tokens to tens x hundreds):
``planner.aggregate``: a plan's fee, impact and band rows depend only on what it sells of each
position and buys of each asset per chain, not on how that is cut into swaps; so one small LP
over those amounts (a lower bound), then per wallet the fewest swaps that carry them, then one
LP over their sizes. ``Solution.gap`` is the plan's model cost against that bound. Where gas
is a good share of the cost, the exact MILP reselects among that plan's own pairs
(``Solution.alternative``; the caller keeps the better after exact evaluation). Tax-aware
plans this large keep an older path: (1) per wallet, a leg LP finds the positions and rows
worth trading; (2) the pair program over those sells x each wallet's bought rows, relaxed; (3)
pairs used at the minimum size or more fixed on, solved again; its gap is against the
relaxation.

The exact MILP ends with a polish: the on-set fixed, breakpoints re-centred on each pool's
volume and each bought row charged its swaps' share of impact, so sizes are exact to well
under 1% of impact. The caller turns the result into integer base units and checks every
constraint again in exact arithmetic (``planner.evaluate``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from rebalancer.core.types import Token
from rebalancer.planner.evaluate import MAX_SLICES as _EVAL_MAX_SLICES
from rebalancer.planner.lp import Builder

BIG = 1000.0
"""Penalty per point of band violation (cost is also in points of the total: 1000x)."""
EPS_DEV = 1e-6
"""Tie-break per point of distance from target, far below any trading cost per point."""
EXACT_MAX_SWAPS = 1200
"""Up to this many candidate swaps (sells x buys of every wallet, then slices counted) the plan
is an exact MILP; above it the problem is decomposed (see the module docstring). It holds for
tax-aware plans and plans through pair pools, whose decomposed paths are weaker (the tax one
is older; the pooled one cannot bound a pair pool); other plans: ``POOLED_EXACT_MAX_SWAPS``."""
POOLED_EXACT_MAX_SWAPS = 400
"""Plans without tax or pair pools are decomposed above this many candidate swaps: on 12
portfolios of 3 chains x 12-25 tokens x 2-4 wallets (479-929 candidate swaps) the decomposed
plan cost 0.9965-1.0006x the better of it and the MILP's (the MILP's won 4 times, by at most
0.06%), in 0.03-0.52 s instead of 1-8 s (bench/planner.py, ``mid_size``)."""
DECOMPOSED_BESIDE = 150
"""From this many candidate swaps the exact path first asks for the decomposed plan, begins
the MILP from it (39 portfolios of 150-400 candidate swaps: ~2.5x less time, cost 0.999-1.0037x,
mean 1.0003x) and keeps it as ``Solution.alternative``: the caller keeps whichever is better
after exact evaluation (see ``solve``). Below it the start saved ~0.1 s a plan but cost the
demo's plan (~85 candidate swaps) 1.4% more."""
NODE_LIMIT = 2_000
"""Branch-and-bound nodes of the exact MILP (deterministic; the answer never depends on time)."""
MIP_GAP = 5e-3
"""The exact MILP stops when its incumbent is proven within 0.5% of the optimum (its
relaxation is loose where a move is split over several pools, so proving 0.1% can take
minutes for a gain far below the model's own accuracy)."""
MAX_SLICES = _EVAL_MAX_SLICES
"""Most slices of one pair under ``max_trade_pp`` in one run."""
_RATIO = math.sqrt(2)
_SEGMENTS = 14
_LEG_SEGMENTS = (0.0, 1 / 8, 1 / 4, 1 / 2, 1.0)
_DECOMPOSED_SEGMENTS = 8
_POLISH = (0.25, 0.5, 1 / math.sqrt(2), 1 / 1.19, 1.0, 1.19, math.sqrt(2), 2.0)


@dataclass(slots=True)
class Account:
    """One wallet on one chain: what a swap costs there, and the native coin it may spend."""

    chain: str
    wallet: str
    fee: float
    gas_pp: float
    native_asset: str
    native_slot: int | None
    native_avail_pp: float
    locked: bool


@dataclass(slots=True)
class Slot:
    """One token in one account that the optimiser may sell (``avail_pp`` > 0) or buy."""

    account: int
    token: Token
    asset: str
    value_pp: float
    avail_pp: float
    can_sell: bool
    can_buy: bool


@dataclass(slots=True)
class ConRow:
    """A band row for the solver: its assets, value now, and the interval it must end in."""

    key: str
    assets: frozenset[str]
    value_pp: float
    lo: float
    hi: float
    target: float
    leaf: bool


@dataclass(slots=True)
class Problem:
    """Everything the optimiser sees, in points of the portfolio total."""

    accounts: list[Account]
    slots: list[Slot]
    rows: list[ConRow]
    min_pp: float
    impact: Callable[[int, str, str], float]
    """(account, sell asset, buy asset) -> the k of one swap alone (the sum of its pools' k)."""
    pools: Callable[[int, str, str], tuple[tuple[int, float], ...]]
    """(account, sell asset, buy asset) -> the pools the swap goes through, as (pool index, k):
    a plan's impact is ``k * V_P**2`` per pool on the points ``V_P`` traded through it by
    every swap of its chain (``CostModel.pools``)."""
    tax: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    """asset -> convex segments (capacity in points, tax per point sold)."""
    max_trade_pp: float | None = None
    max_run_pp: float | None = None
    pair_pools: bool = False
    """Does any chain name pair depths (``depth_usd_by_pair``)? Only then can a swap go
    through a pair's own pool."""

    def asset_rows(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for i, r in enumerate(self.rows):
            for a in r.assets:
                out.setdefault(a, []).append(i)
        return out

    def sell_cap(self, i: int) -> float:
        """What slot ``i`` may sell (a native slot keeps one swap's gas); 0 if nothing."""
        s = self.slots[i]
        acc = self.accounts[s.account]
        if acc.locked or not s.can_sell:
            return 0.0
        cap = s.avail_pp
        if i == acc.native_slot:
            cap = min(cap, acc.native_avail_pp - acc.gas_pp)
        return cap if cap >= self.min_pp and cap > 0 else 0.0


@dataclass(frozen=True, slots=True)
class PairTrade:
    """A swap the optimiser chose: sell ``x_pp`` points of slot ``sell`` for slot ``buy``."""

    sell: int
    buy: int
    x_pp: float


@dataclass(slots=True)
class Solution:
    trades: list[PairTrade]
    status: str
    stage1_support: int
    pairs: int
    objective: float | None
    method: str = "exact"
    bound: float | None = None
    """A lower bound of the objective over the candidate swaps (relaxation or MILP bound)."""
    cost_pp: float | None = None

    bound_cost_pp: float | None = None
    """The decomposed mode's lower bound of the cost alone (its relaxation)."""
    alternative: Solution | None = None
    """Another plan of the same problem for the caller to evaluate too, keeping the better:
    beside the exact path's, the decomposed plan (``DECOMPOSED_BESIDE``); beside a decomposed
    plan, its swaps reselected by the MILP (``aggregate._reselected``)."""

    def chain(self) -> list[Solution]:
        """This plan, then its alternative, then the alternative's, and so on."""
        out: list[Solution] = []
        at: Solution | None = self
        while at is not None:
            out.append(at)
            at = at.alternative
        return out

    @property
    def gap(self) -> float | None:
        """How far above its lower bound the plan may be: the MILP's own gap, or (decomposed)
        (cost - bound) / bound against a relaxation (``aggregate._bound``: any plan ending the
        band rows where this one does costs at least ``bound_cost_pp``)."""
        if self.bound_cost_pp is not None and self.cost_pp is not None:
            return max(0.0, self.cost_pp - self.bound_cost_pp) / max(self.bound_cost_pp, 1e-12)
        if self.objective is None or self.bound is None:
            return None
        return max(0.0, self.objective - self.bound) / max(abs(self.bound), 1e-9)


# -- candidate swaps ----------------------------------------------------------------------------
def signatures(problem: Problem) -> dict[str, tuple[int, ...]]:
    """asset -> the targeted rows it belongs to: two tokens with one signature are the same to
    every band row."""
    out: dict[str, tuple[int, ...]] = {}
    for a, rows in problem.asset_rows().items():
        out[a] = tuple(sorted(rows))
    for s in problem.slots:
        out.setdefault(s.asset, ())
    return out


def all_pairs(problem: Problem) -> list[tuple[int, int]]:
    """Every (sell, buy) pair of every unlocked wallet that changes some targeted row."""
    sig = signatures(problem)
    by_account: dict[int, list[int]] = {}
    for idx, s in enumerate(problem.slots):
        by_account.setdefault(s.account, []).append(idx)
    out: list[tuple[int, int]] = []
    for a in sorted(by_account):
        if problem.accounts[a].locked:
            continue
        idxs = by_account[a]
        sells = [i for i in idxs if problem.sell_cap(i) > 0]
        buys = [j for j in idxs if problem.slots[j].can_buy]
        for i in sells:
            si = sig[problem.slots[i].asset]
            out.extend((i, j) for j in buys if sig[problem.slots[j].asset] != si)
    return out


def pair_bound(problem: Problem, sliced: bool = True) -> int:
    """An upper bound on the exact candidate swaps (sells x buys per wallet, times
    ``MAX_SLICES`` under ``max_trade_pp`` unless not ``sliced``), cheap to count."""
    sells: dict[int, int] = {}
    buys: dict[int, int] = {}
    for idx, s in enumerate(problem.slots):
        if problem.sell_cap(idx) > 0:
            sells[s.account] = sells.get(s.account, 0) + 1
        if s.can_buy:
            buys[s.account] = buys.get(s.account, 0) + 1
    if problem.max_trade_pp is None or not sliced:
        return sum(n * buys.get(a, 0) for a, n in sells.items())
    return sum(n * buys.get(a, 0) * MAX_SLICES for a, n in sells.items())


def slices(problem: Problem, pairs: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Each pair once per slice it may need under ``max_trade_pp`` (the same pair repeated)."""
    cap_t = problem.max_trade_pp
    out: list[tuple[int, int]] = []
    seen: set[tuple[int, int]] = set()
    for i, j in pairs:
        if (i, j) in seen:
            continue
        seen.add((i, j))
        n = 1
        if cap_t is not None:
            cap = problem.sell_cap(i)
            if problem.max_run_pp is not None:
                cap = min(cap, problem.max_run_pp)
            n = min(MAX_SLICES, max(1, math.ceil(cap / cap_t - 1e-9)))
        out.extend([(i, j)] * n)
    return out


def _valid(problem: Problem, i: int, j: int) -> bool:
    si, sj = problem.slots[i], problem.slots[j]
    return (
        si.account == sj.account and si.asset != sj.asset and sj.can_buy and problem.sell_cap(i) > 0
    )


# -- the decomposed mode: legs, then pairs ------------------------------------------------------
def legs(
    problem: Problem,
) -> tuple[dict[int, float], dict[tuple[int, tuple[int, ...]], tuple[int, float]], float | None]:
    """Leg LP: which positions to sell, how much, and what each wallet buys with it.

    One sell leg per sellable position, priced as a swap into the wallet's deepest bought
    token (fee, convex impact by chords, gas as a relaxed fixed cost with the perspective
    strengthening); one buy leg per wallet and row signature (its deepest token), free; per
    wallet what is bought equals what is sold after costs; soft band rows; the run limit.
    Returns sells (slot -> points), bought ((account, signature) -> (slot, points)) and the
    objective."""
    sig = signatures(problem)
    best_buy: dict[tuple[int, tuple[int, ...]], tuple[float, int]] = {}
    sell_slots: list[int] = []
    caps: list[float] = []
    sellable: dict[int, float] = {}
    for idx, s in enumerate(problem.slots):
        if problem.accounts[s.account].locked:
            continue
        c = problem.sell_cap(idx)
        if c > 0:
            sell_slots.append(idx)
            caps.append(c)
            sellable[s.account] = sellable.get(s.account, 0.0) + c
        if s.can_buy and sig[s.asset]:
            k = problem.impact(s.account, s.asset, s.asset)
            key = (s.account, sig[s.asset])
            if key not in best_buy or k < best_buy[key][0]:
                best_buy[key] = (k, idx)
    groups = sorted(g for g in best_buy if sellable.get(g[0], 0.0) > 0)
    if not sell_slots or not groups:
        return {}, {}, None
    deepest: dict[int, str] = {}
    for g in groups:
        k, idx = best_buy[g]
        a = g[0]
        if a not in deepest or k < best_buy[(a, sig[deepest[a]])][0]:
            deepest[a] = problem.slots[idx].asset
    n_sell = len(sell_slots)
    acc_s = np.array([problem.slots[i].account for i in sell_slots])
    fee = np.array([problem.accounts[a].fee for a in acc_s])
    gas = np.array([problem.accounts[a].gas_pp for a in acc_s])
    k_s = np.array(
        [
            problem.impact(problem.slots[i].account, problem.slots[i].asset, deepest[a])
            for i, a in zip(sell_slots, acc_s, strict=True)
        ]
    )
    cap = np.array(caps)
    b = Builder()
    fr = np.asarray(_LEG_SEGMENTS)
    lo_x = cap[:, None] * fr[None, :-1]
    hi_x = cap[:, None] * fr[None, 1:]
    widths = hi_x - lo_x
    slope = k_s[:, None] * (lo_x + hi_x)
    seg = b.vars((fee[:, None] + slope).ravel(), 0.0, widths.ravel()).reshape(slope.shape)
    n_seg = seg.shape[1]
    on = b.vars(gas, 0.0, 1.0)
    b.rows(
        np.concatenate([np.arange(n_sell * n_seg), np.arange(n_sell * n_seg)]),
        np.concatenate([seg.ravel(), np.repeat(on, n_seg)]),
        np.concatenate([np.ones(n_sell * n_seg), -widths.ravel()]),
        np.full(n_sell * n_seg, -np.inf),
        0.0,
    )
    buy_slots = [best_buy[g][1] for g in groups]
    acc_b = np.array([g[0] for g in groups])
    buy = b.vars(np.zeros(len(groups)), 0.0, np.array([sellable[a] for a in acc_b]))
    # per wallet: what the buys get equals what the sells give, after fee and impact
    accounts, inv = np.unique(np.concatenate([acc_s, acc_b]), return_inverse=True)
    s_row, b_row = inv[:n_sell], inv[n_sell:]
    b.rows(
        np.concatenate([np.repeat(s_row, n_seg), b_row]),
        np.concatenate([seg.ravel(), buy]),
        np.concatenate([-(1.0 - fee[:, None] - slope).ravel(), np.ones(len(groups))]),
        np.zeros(len(accounts)),
        0.0,
    )
    asset_rows = problem.asset_rows()
    e_rows: list[int] = []
    e_cols: list[np.ndarray] = []
    e_vals: list[np.ndarray] = []
    for n, idx in enumerate(sell_slots):
        for ri in asset_rows.get(problem.slots[idx].asset, ()):
            e_rows.extend([ri] * n_seg)
            e_cols.append(seg[n])
            e_vals.append(np.full(n_seg, -1.0))
    for n, idx in enumerate(buy_slots):
        for ri in asset_rows.get(problem.slots[idx].asset, ()):
            e_rows.append(ri)
            e_cols.append(buy[n : n + 1])
            e_vals.append(np.ones(1))
    if e_rows:
        r_arr = np.array(e_rows)
        touched, t_of = np.unique(r_arr, return_inverse=True)
        n_t = len(touched)
        vlo = b.vars(np.full(n_t, BIG))
        vhi = b.vars(np.full(n_t, BIG))
        lo = np.array([problem.rows[r].lo - problem.rows[r].value_pp for r in touched])
        hi = np.array([problem.rows[r].hi - problem.rows[r].value_pp for r in touched])
        b.rows(
            np.concatenate([t_of, np.arange(n_t), np.arange(n_t)]),
            np.concatenate([*e_cols, vlo, vhi]),
            np.concatenate([*e_vals, np.ones(n_t), -np.ones(n_t)]),
            lo,
            hi,
        )
    if problem.max_run_pp is not None:
        b.rows(
            np.zeros(n_sell * n_seg, dtype=np.int64),
            seg.ravel(),
            np.ones(n_sell * n_seg),
            [-np.inf],
            problem.max_run_pp,
        )
    res = b.solve(False)
    if res.x is None:
        return {}, {}, None
    amounts = res.x[seg].sum(axis=1)
    sells = {sell_slots[n]: float(amounts[n]) for n in range(n_sell) if amounts[n] > 1e-9}
    bought = {
        g: (buy_slots[n], float(res.x[buy[n]]))
        for n, g in enumerate(groups)
        if res.x[buy[n]] > 1e-9
    }
    return sells, bought, float(res.fun)


def matched(
    problem: Problem,
    sells: dict[int, float],
    bought: dict[tuple[int, tuple[int, ...]], tuple[int, float]],
) -> tuple[list[tuple[int, int]], list[float]]:
    """Per wallet, the leg LP's sells matched to its buys, largest first (north-west corner):
    the fewest swaps that carry those amounts. Returns swaps and their sizes."""
    by_buy: dict[int, list[tuple[int, float]]] = {}
    for (a, _), (j, x) in bought.items():
        by_buy.setdefault(a, []).append((j, x))
    by_sell: dict[int, list[tuple[int, float]]] = {}
    for i, x in sells.items():
        by_sell.setdefault(problem.slots[i].account, []).append((i, x))
    swaps: list[tuple[int, int]] = []
    sizes: list[float] = []
    for a in sorted(by_sell):
        sl = sorted(by_sell[a], key=lambda t: (-t[1], t[0]))
        bl = sorted(by_buy.get(a, []), key=lambda t: (-t[1], t[0]))
        if not bl:
            continue
        total_b = sum(x for _, x in bl)
        total_s = sum(x for _, x in sl)
        scale = total_s / total_b if total_b > 0 else 1.0
        bl = [(j, x * scale) for j, x in bl]
        si = bj = 0
        s_left, b_left = sl[0][1], bl[0][1]
        while si < len(sl) and bj < len(bl):
            step = min(s_left, b_left)
            if step > 1e-12 and problem.slots[sl[si][0]].asset != problem.slots[bl[bj][0]].asset:
                swaps.append((sl[si][0], bl[bj][0]))
                sizes.append(step)
            s_left -= step
            b_left -= step
            if s_left <= 1e-12:
                si += 1
                s_left = sl[si][1] if si < len(sl) else 0.0
            if b_left <= 1e-12:
                bj += 1
                b_left = bl[bj][1] if bj < len(bl) else 0.0
    return swaps, sizes


def decomposed_pairs(
    problem: Problem,
    sells: dict[int, float],
    bought: dict[tuple[int, tuple[int, ...]], tuple[int, float]],
) -> list[tuple[int, int]]:
    """Per wallet, every sold position with every row the wallet buys (its deepest token)."""
    sig = signatures(problem)
    by_account: dict[int, list[int]] = {}
    for (a, _), (j, _) in sorted(bought.items()):
        by_account.setdefault(a, []).append(j)
    out: list[tuple[int, int]] = []
    for i in sorted(sells):
        si = problem.slots[i]
        out.extend(
            (i, j)
            for j in by_account.get(si.account, ())
            if sig[problem.slots[j].asset] != sig[si.asset]
        )
    return out


# -- the pair program -----------------------------------------------------------------------------
def _breakpoints(cap: np.ndarray, around: np.ndarray | None, segments: int) -> np.ndarray:
    """Per pool, ``[0, b_1, ..., cap]``: geometric (ratio sqrt 2) below ``cap``, or re-centred
    on ``around`` (the volume found), for the polish."""
    if around is None:
        ratio = _RATIO if segments == _SEGMENTS else 2.0
        powers = ratio ** (np.arange(segments) - (segments - 1.0))
        pts = cap[:, None] * powers[None, :]
    else:
        pts = np.minimum(around[:, None] * np.asarray(_POLISH)[None, :], cap[:, None])
        pts = np.concatenate([pts, cap[:, None]], axis=1)
    return np.concatenate([np.zeros((len(cap), 1)), np.maximum.accumulate(pts, axis=1)], axis=1)


def swap_pools(
    problem: Problem, swaps: Sequence[tuple[int, int]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (swap, pool) incidence of ``swaps``: swap index, pool index and the pool's k per
    entry (a swap goes through one pair pool or its two assets' pools)."""
    slots = problem.slots
    e_swap: list[int] = []
    e_pool: list[int] = []
    e_k: list[float] = []
    cache: dict[tuple[int, str, str], tuple[tuple[int, float], ...]] = {}
    for n, (i, j) in enumerate(swaps):
        key = (slots[i].account, slots[i].asset, slots[j].asset)
        got = cache.get(key)
        if got is None:
            got = cache[key] = problem.pools(*key)
        for p, k in got:
            e_swap.append(n)
            e_pool.append(p)
            e_k.append(k)
    pools = np.array(e_pool, dtype=np.int64)
    # NOTE: dense pool numbering local to these swaps
    _, local = np.unique(pools, return_inverse=True)
    return np.array(e_swap, dtype=np.int64), local.astype(np.int64), np.array(e_k)


def program(
    problem: Problem,
    swaps: Sequence[tuple[int, int]],
    kind: str,
    around: Sequence[float] | None = None,
    segments: int = _SEGMENTS,
    lower: bool = False,
    start: Sequence[PairTrade] = (),
) -> Solution:
    """One solve of the pair program over ``swaps`` (a pair repeated is one slice each):
    ``milp`` (binaries), ``relaxed`` (binaries in [0, 1]) or ``fixed`` (every swap on: gas
    paid, size at least the minimum). Impact is per pool on the volume of every swap through
    it (``around``: the sizes found before, to re-centre the pools' pieces and to charge each
    bought row its swap's share of impact). ``start``: a plan's trades, the MILP's first
    incumbent (its swaps on, the first slices of a pair as many as it has)."""
    slots, accounts = problem.slots, problem.accounts
    n_p = len(swaps)
    si = np.array([i for i, _ in swaps])
    acc_of = np.array([slots[i].account for i in si])
    fee = np.array([accounts[a].fee for a in acc_of])
    gas = np.array([accounts[a].gas_pp for a in acc_of])
    native = np.array([i == accounts[slots[i].account].native_slot for i in si])
    cap = np.array([problem.sell_cap(i) for i in si])
    if problem.max_trade_pp is not None:
        # NOTE: a hair inside the limit, so rounding to base units never crosses it
        cap = np.minimum(cap, problem.max_trade_pp * (1 - 1e-7))
    if problem.max_run_pp is not None:
        cap = np.minimum(cap, problem.max_run_pp)
    e_swap, e_pool, e_k = swap_pools(problem, swaps)
    n_pool = int(e_pool.max()) + 1 if len(e_pool) else 0
    pool_k = np.zeros(n_pool)
    pool_k[e_pool] = e_k
    # a pool's volume is at most what its swaps can sell (each sold slot counted once)
    pool_cap = np.zeros(n_pool)
    seen_slot: set[tuple[int, int]] = set()
    for n, p in zip(e_swap, e_pool, strict=True):
        if (int(si[n]), int(p)) not in seen_slot:
            seen_slot.add((int(si[n]), int(p)))
            pool_cap[p] += problem.sell_cap(int(si[n]))
    if problem.max_run_pp is not None:
        pool_cap = np.minimum(pool_cap, problem.max_run_pp)
    pool_cap = np.maximum(pool_cap, 1e-12)
    vol_hat = None
    share = np.zeros(n_p)
    if around is not None:
        a_arr = np.asarray(around, dtype=float)
        vol_hat = np.zeros(n_pool)
        np.add.at(vol_hat, e_pool, a_arr[e_swap])
        np.add.at(share, e_swap, e_k * vol_hat[e_pool])
        vol_hat = np.maximum(vol_hat, 1e-12)
    pts = _breakpoints(pool_cap, vol_hat, segments)
    widths = np.diff(pts, axis=1)
    # chords over-estimate impact (the plan is conservative); ``lower``: each piece at the
    # slope of its left end, which under-estimates it, so a relaxation is a true lower bound
    slope = pool_k[:, None] * (2 * pts[:, :-1] if lower else pts[:, :-1] + pts[:, 1:])
    b = Builder()
    on = b.vars(gas, 1.0 if kind == "fixed" else 0.0, 1.0, integer=kind == "milp")
    x = b.vars(fee, 0.0, cap)
    seg = b.vars(slope.ravel(), 0.0, widths.ravel()).reshape(widths.shape)
    n_seg = seg.shape[1]
    # each pool's pieces carry the volume of its swaps
    b.rows(
        np.concatenate([e_pool, np.repeat(np.arange(n_pool), n_seg)]),
        np.concatenate([x[e_swap], seg.ravel()]),
        np.concatenate([np.ones(len(e_swap)), -np.ones(n_pool * n_seg)]),
        np.zeros(n_pool),
        0.0,
    )
    idx = np.arange(n_p)
    if kind != "fixed":
        b.rows(
            np.concatenate([idx, idx]),
            np.concatenate([x, on]),
            np.concatenate([np.ones(n_p), -cap]),
            np.full(n_p, -np.inf),
            0.0,
        )
        # swaps of one sell slot whose bought tokens are interchangeable (same rows, same
        # pools; slices of one pair are the extreme case): use them in order, so branch and
        # bound does not explore their permutations
        sig = signatures(problem)
        pools_of: list[list[int]] = [[] for _ in range(n_p)]
        for n, p in zip(e_swap, e_pool, strict=True):
            pools_of[n].append(int(p))
        key = [(i, sig[slots[j].asset], tuple(pools_of[n])) for n, (i, j) in enumerate(swaps)]
        order = sorted(range(n_p), key=lambda n: (key[n], swaps[n][1], n))
        same_prev = [
            (order[q - 1], order[q]) for q in range(1, n_p) if key[order[q]] == key[order[q - 1]]
        ]
        if same_prev:
            prev = np.array([p for p, _ in same_prev])
            s_arr = np.array([n for _, n in same_prev])
            m_ = len(s_arr)
            b.rows(
                np.concatenate([np.arange(m_), np.arange(m_)]),
                np.concatenate([on[prev], on[s_arr]]),
                np.concatenate([np.ones(m_), -np.ones(m_)]),
                np.zeros(m_),
                np.inf,
            )
    if problem.min_pp > 0:
        b.rows(
            np.concatenate([idx, idx]),
            np.concatenate([x, on]),
            np.concatenate([np.ones(n_p), np.full(n_p, -problem.min_pp)]),
            np.zeros(n_p),
            np.inf,
        )
    if problem.max_trade_pp is not None:
        # the fewest slices: a pair's next slice only once the one before is full
        nxt = [n for n in range(1, n_p) if swaps[n] == swaps[n - 1]]
        if nxt:
            nx = np.array(nxt)
            b.rows(
                np.concatenate([np.arange(len(nx)), np.arange(len(nx))]),
                np.concatenate([x[nx - 1], on[nx]]),
                np.concatenate([np.ones(len(nx)), -cap[nx - 1]]),
                np.zeros(len(nx)),
                np.inf,
            )
    # the plan's total cost as one variable, so each band row refers to it once (sparse)
    cost_var = b.var(0.0)
    b.rows(
        np.zeros(2 * n_p + n_pool * n_seg + 1, dtype=np.int64),
        np.concatenate([x, on, seg.ravel(), [cost_var]]),
        np.concatenate([fee, gas, slope.ravel(), [-1.0]]),
        [0.0],
        0.0,
    )
    # never sell more than held
    sold, sold_row = np.unique(si, return_inverse=True)
    b.rows(
        sold_row,
        x,
        np.ones(n_p),
        np.full(len(sold), -np.inf),
        np.array([problem.sell_cap(i) for i in sold]),
    )
    # gas and native sales come out of the native coin above its reserve
    accs, acc_row = np.unique(acc_of, return_inverse=True)
    b.rows(
        np.concatenate([acc_row, acc_row[native]]),
        np.concatenate([on, x[native]]),
        np.concatenate([gas, np.ones(int(native.sum()))]),
        np.full(len(accs), -np.inf),
        np.array([max(accounts[a].native_avail_pp, 0.0) for a in accs]),
    )
    if problem.max_run_pp is not None:
        b.rows(np.zeros(n_p, dtype=np.int64), x, np.ones(n_p), [-np.inf], problem.max_run_pp)
    _band_rows(b, problem, swaps, x, on, 1.0 - fee - share, gas, cost_var)
    if problem.tax:
        _tax_rows(
            b,
            problem,
            {
                a: [(int(x[n]), 1.0) for n in range(n_p) if slots[swaps[n][0]].asset == a]
                for a in problem.tax
            },
        )
    options: dict[str, object] = {}
    first = None
    if kind == "milp":
        options.update(node_limit=NODE_LIMIT, mip_rel_gap=MIP_GAP)
        if start:
            left: dict[tuple[int, int], int] = {}
            for t in start:
                left[(t.sell, t.buy)] = left.get((t.sell, t.buy), 0) + 1
            values = np.zeros(n_p)
            for n, pair in enumerate(swaps):
                if left.get(pair, 0) > 0:
                    left[pair] -= 1
                    values[n] = 1.0
            first = (on, values)
    res = b.solve(kind == "milp", options, first)
    sol_x = res.x
    if sol_x is None:
        return Solution([], f"{kind} found no solution: {res.message}", 0, n_p, None, kind)
    amounts = sol_x[x]
    trades = [
        PairTrade(i, j, float(amounts[n]))
        for n, (i, j) in enumerate(swaps)
        if (sol_x[on[n]] > 0.5 or kind == "relaxed") and amounts[n] > 1e-12
    ]
    status = "optimal" if res.status == 0 else f"stopped early ({res.message})"
    bound = float(res.fun)
    if kind == "milp":
        dual = getattr(res, "mip_dual_bound", None)
        bound = float(dual) if dual is not None and np.isfinite(dual) else bound
    return Solution(trades, status, 0, n_p, float(res.fun), kind, bound, float(sol_x[cost_var]))


def _band_rows(
    b: Builder,
    problem: Problem,
    swaps: Sequence[tuple[int, int]],
    x: np.ndarray,
    on: np.ndarray,
    out: np.ndarray,
    gas: np.ndarray,
    cost_var: int,
) -> None:
    """Soft band rows with the total shrunk by the plan's cost (a bought row gets ``out`` per
    point sold), and the tie-break toward target of leaf rows."""
    slots, accounts = problem.slots, problem.accounts
    asset_rows = problem.asset_rows()
    e_row: list[int] = []
    e_pair: list[int] = []
    e_kind: list[int] = []  # 0 buy, 1 sell, 2 gas from the native coin
    for n, (i, j) in enumerate(swaps):
        for kind_code, asset in (
            (0, slots[j].asset),
            (1, slots[i].asset),
            (2, accounts[slots[i].account].native_asset),
        ):
            for ri in asset_rows.get(asset, ()):
                e_row.append(ri)
                e_pair.append(n)
                e_kind.append(kind_code)
    if not e_row:
        return
    er, ep, ek = np.array(e_row), np.array(e_pair), np.array(e_kind)
    touched = np.unique(er[ek < 2])
    local = np.full(len(problem.rows), -1)
    local[touched] = np.arange(len(touched))
    keep = local[er] >= 0
    er, ep, ek = er[keep], ep[keep], ek[keep]
    ex_rows = local[er]
    ex_cols = np.where(ek < 2, x[ep], on[ep])
    ex_vals = np.where(ek == 0, out[ep], np.where(ek == 1, -1.0, -gas[ep]))
    rows = [problem.rows[r] for r in touched]
    soft_bands(
        b,
        (ex_rows, ex_cols, ex_vals),
        np.array([r.lo for r in rows]),
        np.array([r.hi for r in rows]),
        np.array([r.value_pp for r in rows]),
        np.array([r.target for r in rows]),
        np.array([r.leaf for r in rows], dtype=bool),
        np.zeros(len(rows)),
        cost_var,
    )


def soft_bands(
    b: Builder,
    terms: tuple[np.ndarray, np.ndarray, np.ndarray],
    lo: np.ndarray,
    hi: np.ndarray,
    val: np.ndarray,
    tgt: np.ndarray,
    leaf: np.ndarray,
    const: np.ndarray,
    cost_var: int,
) -> None:
    """Soft band rows over the row terms (row, column, value) plus constant moves ``const``,
    with the total shrunk by the plan's cost (each row ``lo <= val + const + terms`` and
    ``<= hi`` of what is left, a slack at ``BIG`` per point), and the tie-break toward target
    of ``leaf`` rows."""
    er, ec, ev = terms
    n_r = len(lo)
    if not n_r:
        return
    idx = np.arange(n_r)
    for bound, sign, lo_rhs, hi_rhs in (
        (lo, 1.0, lo - val - const, np.inf),
        (hi, -1.0, -np.inf, hi - val - const),
    ):
        slack = b.vars(np.full(n_r, BIG))
        b.rows(
            np.concatenate([er, idx, idx]),
            np.concatenate([ec, np.full(n_r, cost_var), slack]),
            np.concatenate([ev, bound / 100, np.full(n_r, sign)]),
            np.broadcast_to(lo_rhs, (n_r,)),
            hi_rhs,
        )
    leaves = np.flatnonzero(leaf)
    if len(leaves):
        pos = np.full(n_r, -1)
        pos[leaves] = np.arange(len(leaves))
        sel = pos[er] >= 0
        dev = b.vars(np.full(len(leaves), EPS_DEV))
        gap = (tgt - val - const)[leaves]
        li = np.arange(len(leaves))
        for sign, lo_rhs, hi_rhs in ((-1.0, -np.inf, gap), (1.0, gap, np.inf)):
            b.rows(
                np.concatenate([pos[er[sel]], li]),
                np.concatenate([ec[sel], dev]),
                np.concatenate([ev[sel], np.full(len(leaves), sign)]),
                np.broadcast_to(lo_rhs, (len(leaves),)),
                hi_rhs,
            )


def _tax_rows(b: Builder, problem: Problem, tax_terms: dict[str, list[tuple[int, float]]]) -> None:
    """Sold value of each asset is covered by its tax segments, cheapest filled first."""
    for asset, terms in tax_terms.items():
        segments = problem.tax.get(asset)
        if not segments or not terms:
            continue
        segs = [(b.var(rate, 0.0, cap), -1.0) for cap, rate in segments]
        b.row([*terms, *segs], -np.inf, 0.0)


def _rounded(problem: Problem, relaxed: Sequence[PairTrade]) -> list[tuple[int, int]]:
    """The relaxed swaps used at the minimum size or more, largest first, trimmed so that the
    fixed program is feasible: every wallet pays full gas, every sold slot and the run fit the
    minimum size of each swap kept."""
    m = problem.min_pp
    native_left = {a: acc.native_avail_pp for a, acc in enumerate(problem.accounts)}
    sell_left: dict[int, float] = {}
    run_left = problem.max_run_pp if problem.max_run_pp is not None else math.inf
    keep = []
    for t in sorted(relaxed, key=lambda t: (-t.x_pp, t.sell, t.buy)):
        if t.x_pp < m * (1 - 1e-9):
            continue
        s = problem.slots[t.sell]
        acc = problem.accounts[s.account]
        need_native = acc.gas_pp + (m if t.sell == acc.native_slot else 0.0)
        left = sell_left.get(t.sell, problem.sell_cap(t.sell))
        if need_native > native_left[s.account] or m > left or m > run_left:
            continue
        native_left[s.account] -= need_native
        sell_left[t.sell] = left - m
        run_left -= m
        keep.append((t.sell, t.buy))
    keep.sort()
    return keep


def solve(problem: Problem, extra_pairs: Sequence[tuple[int, int]] = ()) -> Solution:
    """Exact MILP over every pair when the problem is small enough, else decomposed; then the
    polish. ``extra_pairs`` (the naive plan's) are always offered."""
    support = 0
    swaps: list[tuple[int, int]] = []
    limit = exact_max_swaps(problem)
    small = pair_bound(problem, sliced=False) <= limit
    # NOTE: the decomposed path without tax never reads them (a dense naive plan has ~10^4)
    extra = (
        [(i, j) for i, j in extra_pairs if _valid(problem, i, j)] if small or problem.tax else []
    )
    if small:
        swaps = slices(problem, sorted({*all_pairs(problem), *extra}))
        if not swaps:
            return Solution([], "no candidate trades", 0, 0, 0.0)
    from rebalancer.planner import aggregate  # NOTE: here: it imports this module

    if swaps and len(swaps) <= limit:
        beside = None
        start: Sequence[PairTrade] = ()
        if len(swaps) >= DECOMPOSED_BESIDE and not problem.tax:
            # NOTE: the MILP's optimum is of its own model (rows charged no impact, chords of
            # impact). The decomposed plan beside it (its swaps reselected by the MILP where
            # gas matters), evaluated exactly too, was ~0.8-2% cheaper at 150-760 candidate
            # swaps, 15% at 929 ($50 against $59); the caller keeps the better. The MILP
            # begins from it too: it proves its 0.5% gap ~2x sooner from there
            beside = aggregate.solve(problem)
            start = min(beside.chain(), key=lambda s: score(problem, s.trades)).trades
        sol = exact_over(problem, swaps, start)
        sol.stage1_support = support
        sol.alternative = beside
        return sol
    if not problem.tax:
        return aggregate.solve(problem)
    else:
        sells, bought, _ = legs(problem)
        support = len(sells) + len(bought)
        candidates = slices(problem, sorted({*decomposed_pairs(problem, sells, bought), *extra}))
        if not candidates:
            return Solution([], "no candidate trades", support, 0, 0.0, "decomposed")
        relaxed = program(problem, candidates, "relaxed", segments=_DECOMPOSED_SEGMENTS, lower=True)
        keep = _rounded(problem, relaxed.trades)
        size_of = {(t.sell, t.buy): t.x_pp for t in relaxed.trades}
        sol = program(problem, keep, "fixed", [size_of[p] for p in keep]) if keep else relaxed
        if sol.objective is None:  # cannot happen after the trim; never fall back silently
            sol = relaxed
        sol.method = "decomposed"
        sol.bound = relaxed.objective
        sol.bound_cost_pp = relaxed.cost_pp
        sol.pairs = len(candidates)
        sol.stage1_support = support
        return sol


def exact_max_swaps(problem: Problem) -> int:
    """The most candidate swaps ``problem`` is solved exactly with (``EXACT_MAX_SWAPS``,
    ``POOLED_EXACT_MAX_SWAPS``)."""
    if problem.tax or problem.pair_pools:
        return EXACT_MAX_SWAPS
    return min(EXACT_MAX_SWAPS, POOLED_EXACT_MAX_SWAPS)


def exact_over(
    problem: Problem, swaps: Sequence[tuple[int, int]], start: Sequence[PairTrade] = ()
) -> Solution:
    """The MILP over ``swaps`` (every pair of every wallet on the exact path; ``start``: a
    plan to begin from), then the polish of the swaps it chose, kept if better under the
    pooled model (``score``)."""
    sol = program(problem, swaps, "milp", start=start)
    sol.method = "exact"
    on = [(t.sell, t.buy) for t in sol.trades]
    if on:
        polished = program(problem, on, "fixed", [t.x_pp for t in sol.trades])
        found = polished.objective is not None and sol.objective is not None
        if found and score(problem, polished.trades) <= score(problem, sol.trades) + 1e-9:
            sol.trades = polished.trades
            sol.cost_pp = polished.cost_pp
            sol.objective = polished.objective
    sol.trades = _equal_slices(sol.trades)
    return sol


def score(problem: Problem, trades: Sequence[PairTrade]) -> float:
    """The pooled model's objective of ``trades``: their cost, plus ``BIG`` per point a band
    row ends outside its interval, each bought row less its swap's share of impact at the
    trades' own volumes (as the exact evaluation charges it). The MILP charges the rows no
    impact and the polish a share at the volumes found, so their own objectives are not
    comparable: the MILP's looked cheaper where it bought short of a band (a row buying
    through shallow markets)."""
    slots, accounts = problem.slots, problem.accounts
    vol: dict[int, float] = {}
    k_of: dict[int, float] = {}
    legs: list[tuple[PairTrade, Account, tuple[tuple[int, float], ...]]] = []
    for t in trades:
        a = slots[t.sell].account
        pools = problem.pools(a, slots[t.sell].asset, slots[t.buy].asset)
        for idx, k in pools:
            vol[idx] = vol.get(idx, 0.0) + t.x_pp
            k_of[idx] = k
        legs.append((t, accounts[a], pools))
    cost = sum(k_of[i] * v * v for i, v in vol.items())
    move: dict[str, float] = {}
    for t, acc, pools in legs:
        share = sum(k * vol[i] for i, k in pools)
        cost += acc.fee * t.x_pp + acc.gas_pp
        sell, buy = slots[t.sell].asset, slots[t.buy].asset
        move[sell] = move.get(sell, 0.0) - t.x_pp
        move[buy] = move.get(buy, 0.0) + t.x_pp * (1 - acc.fee - share)
        move[acc.native_asset] = move.get(acc.native_asset, 0.0) - acc.gas_pp
    shrink = 1 - cost / 100
    out = 0.0
    for r in problem.rows:
        after = r.value_pp + sum(move.get(a, 0.0) for a in r.assets)
        out += max(0.0, r.lo * shrink - after) + max(0.0, after - r.hi * shrink)
    return cost + BIG * out


def _equal_slices(trades: Sequence[PairTrade]) -> list[PairTrade]:
    """Slices of one pair as equal parts of its total (the program fills them in order; equal
    parts move the same value with less impact and no more gas)."""
    groups: dict[tuple[int, int], list[float]] = {}
    for t in trades:
        groups.setdefault((t.sell, t.buy), []).append(t.x_pp)
    out: list[PairTrade] = []
    for (i, j), sizes in groups.items():
        part = sum(sizes) / len(sizes)
        out.extend(PairTrade(i, j, part) for _ in sizes)
    return out


def pooled_feasible(problem: Problem, rows: Sequence[ConRow], level: str) -> bool:
    """Could the bands be met ignoring costs and minimum sizes, if value could move freely
    between positions of one ``account``, between wallets of one ``chain``, or ``all`` across
    chains? Tells "needs transfer" and "needs bridge" apart from "infeasible"."""
    b = Builder()
    groups: dict[tuple[str, str], tuple[float, bool]] = {}
    for s in problem.slots:
        acc = problem.accounts[s.account]
        if acc.locked:
            continue
        pool = {"account": f"{acc.chain}/{acc.wallet}", "chain": acc.chain}.get(level, "")
        avail, buyable = groups.get((pool, s.asset), (0.0, False))
        sellable = s.avail_pp if s.can_sell else 0.0
        groups[(pool, s.asset)] = (avail + sellable, buyable or s.can_buy)
    asset_index: dict[str, list[int]] = {}
    pool_terms: dict[str, list[tuple[int, float]]] = {}
    for (pool, asset), (avail, buyable) in sorted(groups.items()):
        v = b.var(0.0, -avail, np.inf if buyable else 0.0)
        asset_index.setdefault(asset, []).append(v)
        pool_terms.setdefault(pool, []).append((v, 1.0))
    for terms in pool_terms.values():
        b.row(terms, 0.0, 0.0)
    for r in rows:
        terms = [(v, 1.0) for a in r.assets for v in asset_index.get(a, ())]
        if not terms:
            if not r.lo - 1e-9 <= r.value_pp <= r.hi + 1e-9:
                return False
            continue
        b.row(terms, r.lo - r.value_pp, r.hi - r.value_pp)
    if not b.n:
        return False
    res = b.solve(False)
    return bool(res.status == 0)
