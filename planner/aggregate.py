"""Large plans under the pooled impact model: one small LP over amounts, then swaps, then sizes.

Above ``optimise.exact_max_swaps`` candidate swaps the exact MILP is too slow. But a plan's impact
depends only on the value each chain moves through each asset's pool, not on how a move is cut
into swaps, and a wallet may buy any token of its chain: so what a plan sells of each position
and buys of each asset on each chain decides its fee, impact and band rows, and how those
amounts are paired into swaps decides only its gas. Hence three steps, a bound, and where gas
matters a reselection:

1. **A relaxation**: pools of one chain alike to the band rows (same rows, same k) are one
   group, whose least cost of selling or buying a given amount is convex and tabulated exactly
   (positions in order of fee and gas per point, every position sold at least one swap; each
   pool's impact); one LP over the groups' amounts with those costs bounded below by their
   tangents, a chain's wallets balancing together, soft band rows, only the rows that need it
   (rows its answer leaves outside their band are added and it is solved again).
2. **Swaps**: each group's amount split as its tabulated optimum does; per chain the bought
   amounts shared out over wallets (north-west corner: the fewest pieces), then per wallet its
   sales matched to its purchases the same way, at most ``sells + buys - 1`` swaps; pieces
   under the minimum dropped, swaps trimmed to what the native coin pays gas for.
3. **Sizes**: unless those swaps already end inside the bands, one LP over that fixed set
   (impact over-estimated by chords around the volumes found, each bought row charged its
   share there), so the sizes are the best for those swaps.
4. **The bound**: the relaxation again, with tangents also around what the plan sells and
   buys, the impact each bought row loses (a chain's whole impact comes off what its swaps
   buy) and each row's band widened to where the plan ends it. Every simplification relaxes,
   so its cost is a lower bound of any plan that ends the rows there or better (up to the
   second-order effect of costs on the weights): ``Solution.gap`` measures the plan against
   it. Without the impact in the rows the bound was 20-25% under a dense plan; with it
   ~0.5-2.3% (bench/planner.py).
5. **Reselection**: the relaxation prices no gas for what is bought, so where gas is at least
   ``_RESELECT_GAS`` of the plan's cost (and it has at most ``_RESELECT_SWAPS`` swaps) the exact
   path's MILP chooses among its pairs, gas a fixed cost of each (``Solution.alternative``,
   with its own bound; the caller keeps the better plan after exact evaluation).

Array work and small LPs without a time limit: deterministic, near-linear in the positions.
Pair pools (``depth_usd_by_pair``) are not visible per position: every swap is priced through
its two asset pools here (the exact evaluation charges the pair pool).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from operator import attrgetter

import numpy as np
from scipy.sparse import csr_array

from rebalancer.planner.lp import Builder
from rebalancer.planner.optimise import (
    MAX_SLICES,
    PairTrade,
    Problem,
    Solution,
    exact_over,
    slices,
    soft_bands,
)

_GRID = 28
"""Points of each group's tabulated cost (the envelope of their tangents bounds it below)."""
_GRID_RATIO = 1.45
"""Ratio of consecutive distances of the grid points from its start."""
_GRID_NEAR = 10
"""Grid points of the bound, which has tangents around the plan's amounts too (``_NEAR``):
as tight as 28 at a third of the columns (bench/planner.py gaps the same)."""
_BISECT = 40
"""Bisection steps for the marginal cost at which a group sells what the LP says."""
_NEAR = np.array([0.9, 0.97, 1.0, 1.03, 1.1])
"""The bound's extra tangent points, as multiples of what the plan sells and buys per group."""
_POLISH = (0.7, 1.0, 1.4)
"""Breakpoints of the sizes LP's chords, as multiples of each pool's volume found."""
_POLISH_FINE = (0.8, 0.9, 1.0, 1.1, 1.2, 1.4)
"""The same, up to ``_FINE_SWAPS`` swaps: dense plans of 1,500-4,500 positions ~1-1.5%
cheaper; at 45,000 0.1% for 40% more LP time."""
_FINE_SWAPS = 2_000
_TOL = 1e-12
_RESELECT_GAS = 0.02
"""A plan whose gas is at least this share of its cost has its swaps reselected by the MILP
(``_reselected``): 3 chains x 20-40 tokens x 2-4 wallets, 1-6% cheaper for ~0.3-1.2 s more;
under it at most ~0.8% for ~0.3-1.6 s (3 x 50 x 10, gas ~1-2% of the cost: ~0.1%)."""
_RESELECT_SWAPS = 200
"""...up to this many swaps (the MILP takes ~0.3-0.9 s at 40-85 swaps, ~2.5 s at 170)."""


@dataclass
class _Data:
    """The problem as arrays: per slot, per account, per pool, per band row."""

    acc: np.ndarray
    asset: np.ndarray
    pool: np.ndarray
    cap: np.ndarray
    """what each slot may sell (0: nothing), within the run limit."""
    buyable: np.ndarray
    fee: np.ndarray
    gas: np.ndarray
    native_avail: np.ndarray
    chain: np.ndarray
    """per account."""
    n_chain: int
    pool_k: np.ndarray
    pool_chain: np.ndarray
    pool_asset: np.ndarray
    asset_rows: csr_array
    """asset x band row membership (0/1)."""
    sig: np.ndarray
    """per asset: its signature (the band rows it is in), as an id."""
    native_asset: np.ndarray
    """per account: its native coin's asset id (-1: not held anywhere)."""
    is_native: np.ndarray
    """per slot: the account's native slot."""
    lo: np.ndarray
    hi: np.ndarray
    val: np.ndarray
    tgt: np.ndarray
    leaf: np.ndarray


def _data(problem: Problem) -> _Data:
    slots, accounts = problem.slots, problem.accounts
    n = len(slots)
    # NOTE: attrgetter maps rather than generator expressions: ~10^4 slots, five fields
    acc = np.fromiter(map(attrgetter("account"), slots), np.int64, n)
    avail = np.fromiter(map(attrgetter("avail_pp"), slots), float, n)
    can_sell = np.fromiter(map(attrgetter("can_sell"), slots), bool, n)
    can_buy = np.fromiter(map(attrgetter("can_buy"), slots), bool, n)
    names: dict[str, int] = {}
    asset = np.fromiter((names.setdefault(s.asset, len(names)) for s in slots), np.int64, n)
    locked = np.array([a.locked for a in accounts], dtype=bool)
    fee = np.array([a.fee for a in accounts])
    gas = np.array([a.gas_pp for a in accounts])
    native_avail = np.array([a.native_avail_pp for a in accounts])
    chains: dict[str, int] = {}
    chain = np.array([chains.setdefault(a.chain, len(chains)) for a in accounts], dtype=np.int64)
    native_slot = np.array(
        [-1 if a.native_slot is None else a.native_slot for a in accounts], dtype=np.int64
    )
    # Problem.sell_cap, for every slot at once
    cap = np.where(can_sell & ~locked[acc], avail, 0.0)
    nat = native_slot[native_slot >= 0]
    is_native = np.zeros(n, dtype=bool)
    is_native[nat] = True
    cap[nat] = np.minimum(cap[nat], native_avail[acc[nat]] - gas[acc[nat]])
    cap = np.where((cap >= problem.min_pp) & (cap > 0), cap, 0.0)
    if problem.max_run_pp is not None:
        cap = np.minimum(cap, problem.max_run_pp)
    # one pool per (chain, asset): pools(account, a, a) is the asset's own pool, twice
    key = chain[acc] * len(names) + asset
    uniq, first, pool = np.unique(key, return_index=True, return_inverse=True)
    asset_list = list(names)
    pool_k = np.empty(len(uniq))
    for u, i in enumerate(first):
        a = asset_list[asset[i]]
        pool_k[u] = problem.pools(int(acc[i]), a, a)[0][1]
    rows = problem.rows
    r_of = problem.asset_rows()
    m_r, m_c = [], []
    for a, rs in r_of.items():
        if a in names:
            m_r.extend([names[a]] * len(rs))
            m_c.extend(rs)
    sig_id: dict[tuple[int, ...], int] = {}
    sig = np.array(
        [sig_id.setdefault(tuple(sorted(r_of.get(a, ()))), len(sig_id)) for a in names],
        dtype=np.int64,
    )
    asset_rows = csr_array(
        (np.ones(len(m_r)), (np.array(m_r, dtype=np.int64), np.array(m_c, dtype=np.int64))),
        shape=(len(names), len(rows)),
    )
    return _Data(
        acc=acc,
        asset=asset,
        pool=pool.ravel(),
        cap=cap,
        buyable=can_buy & ~locked[acc],
        fee=fee,
        gas=gas,
        native_avail=native_avail,
        chain=chain,
        n_chain=len(chains),
        pool_k=pool_k,
        pool_chain=uniq // len(names),
        pool_asset=uniq % len(names),
        asset_rows=asset_rows,
        sig=sig,
        native_asset=np.array([names.get(a.native_asset, -1) for a in accounts], dtype=np.int64),
        is_native=is_native,
        lo=np.array([r.lo for r in rows]),
        hi=np.array([r.hi for r in rows]),
        val=np.array([r.value_pp for r in rows]),
        tgt=np.array([r.target for r in rows]),
        leaf=np.array([r.leaf for r in rows], dtype=bool),
    )


def _row_terms(
    d: _Data, assets: np.ndarray, cols: np.ndarray, vals: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(band row, column, value) for each column ``cols[q]`` moving ``vals[q]`` points into
    every row of asset ``assets[q]`` (-1: none)."""
    ok = assets >= 0
    assets, cols, vals = assets[ok], cols[ok], vals[ok]
    ip, ix = d.asset_rows.indptr, d.asset_rows.indices
    counts = ip[assets + 1] - ip[assets]
    total = int(counts.sum())
    at = np.repeat(np.arange(len(assets)), counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    rows = ix[np.repeat(ip[assets], counts) + np.arange(total) - first]
    return rows, cols[at], vals[at]


def _bands(
    b: Builder,
    d: _Data,
    terms: tuple[np.ndarray, np.ndarray, np.ndarray],
    const: np.ndarray,
    cost_var: int,
) -> None:
    """Soft band rows (the total shrunk by the plan's cost) and the tie-break toward target of
    leaf rows, over the row terms ``terms`` plus constant moves ``const`` per row."""
    soft_bands(b, terms, d.lo, d.hi, d.val, d.tgt, d.leaf, const, cost_var)


def _grid(lo: np.ndarray, hi: np.ndarray, n: int = _GRID) -> np.ndarray:
    """Per group, ``n`` points from ``lo`` to ``hi``: ``lo + (hi - lo) * r**-j``, densest
    near ``lo``, ``lo`` itself first (ratio ``_GRID_RATIO`` at ``_GRID`` points; fewer points
    span the same range)."""
    r = _GRID_RATIO ** ((_GRID - 2.0) / (n - 2.0))
    steps = r ** (np.arange(n - 1) - (n - 2.0))
    pts = lo[:, None] + (hi - lo)[:, None] * steps[None, :]
    return np.concatenate([lo[:, None], pts], axis=1)


def _envelope(x: np.ndarray, f: np.ndarray, slope: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The lower envelope of the tangents ``f_j + slope_j * (X - x_j)`` of a convex function
    with ``f(0) = 0``, per row: (breakpoints ``[0, ..., x_last]``, slope of each piece)."""
    dx = slope[:, 1:] - slope[:, :-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        xi = (f[:, 1:] - f[:, :-1] - slope[:, 1:] * x[:, 1:] + slope[:, :-1] * x[:, :-1]) / -dx
    xi = np.where(dx > 0, xi, x[:, :-1])
    xi = np.clip(xi, x[:, :-1], x[:, 1:])
    pts = np.concatenate([np.zeros((len(x), 1)), xi, x[:, -1:]], axis=1)
    return np.maximum.accumulate(pts, axis=1), slope


def _sell_use(
    mu: np.ndarray, c: np.ndarray, k: np.ndarray, before: np.ndarray, cap: np.ndarray
) -> np.ndarray:
    """Points each slot sells when its pool sells up to the marginal cost ``mu`` (per slot):
    a pool's positions at cost ``c`` per point in order, impact ``k * V**2``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.clip((mu - c) / (2 * k) - before, 0.0, cap)


def _marginal(
    x: np.ndarray,
    c0: np.ndarray,
    top: np.ndarray,
    grp: np.ndarray,
    c: np.ndarray,
    k: np.ndarray,
    before: np.ndarray,
    cap: np.ndarray,
) -> np.ndarray:
    """Per group, the marginal cost at which its least-cost split sells ``x`` (bisection
    between its first position's cost ``c0`` and ``top``; the upper end of the last step)."""
    lo, hi = c0.copy(), top.copy()
    for _ in range(_BISECT):
        mid = (lo + hi) / 2
        got = np.bincount(grp, weights=_sell_use(mid[grp], c, k, before, cap), minlength=len(x))
        low = got < x
        lo = np.where(low, mid, lo)
        hi = np.where(low, hi, mid)
    return hi


def _borne(
    b: Builder,
    d: _Data,
    g_chain: np.ndarray,
    g_asset: np.ndarray,
    g_of_s: np.ndarray,
    xs: np.ndarray,
    g_of_w: np.ndarray,
    ws: np.ndarray,
    b_slope: np.ndarray,
    points: np.ndarray,
    k_sell: np.ndarray,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Row terms of the impact the bought rows lose: a swap's share of every pool it goes
    through comes off what it buys, so a chain's bought groups together lose its whole
    impact. Bounded below and valid for every plan: each group loses at least its own pools'
    impact (the tangents of its purchase cost), the chain's groups together at least
    ``k_sell * X**2`` of each group's sales ``X`` on top (the least impact of selling X, spread in
    proportion to depth), how that part falls on the groups is the LP's choice, and no group
    loses more than half of what it buys (the exact evaluation refuses such a swap). Without
    it the relaxation buys too little: impact of a few per cent of what is bought left the
    bound ~20% below a dense plan's cost. ``points``: per group, the sale amounts to put the
    least impact's tangents at (any are valid)."""
    n_g = len(g_chain)
    n_chain = d.n_chain
    bought = np.unique(g_of_w)
    sold = np.unique(g_of_s[k_sell[g_of_s] > 0])
    extra = b.vars(np.zeros(len(bought)), 0.0, np.inf)
    # each sold group's sales X and its least impact e >= k * (2 X x0 - x0**2) at its points
    total = b.vars(np.zeros(len(sold)), 0.0, np.inf)
    least = b.vars(np.zeros(len(sold)), 0.0, np.inf)
    pos = np.full(n_g, -1)
    pos[sold] = np.arange(len(sold))
    own = pos[g_of_s] >= 0
    b.rows(
        np.concatenate([pos[g_of_s[own]], np.arange(len(sold))]),
        np.concatenate([xs[own], total]),
        np.concatenate([np.ones(int(own.sum())), -np.ones(len(sold))]),
        np.zeros(len(sold)),
        0.0,
    )
    x0 = points[sold]
    k = k_sell[sold][:, None]
    g_i, j_i = np.nonzero(x0 > 0)
    n_t = len(g_i)
    b.rows(
        np.concatenate([np.arange(n_t), np.arange(n_t)]),
        np.concatenate([least[g_i], total[g_i]]),
        np.concatenate([np.ones(n_t), -2 * (k * x0)[g_i, j_i]]),
        -(k * x0**2)[g_i, j_i],
        np.inf,
    )
    # per chain: what the bought groups lose beyond their own pools covers the sales' least
    b.rows(
        np.concatenate([g_chain[bought], g_chain[sold]]),
        np.concatenate([extra, least]),
        np.concatenate([np.ones(len(bought)), -np.ones(len(sold))]),
        np.zeros(n_chain),
        np.inf,
    )
    # no more than half of what a group buys
    at = np.full(n_g, -1)
    at[bought] = np.arange(len(bought))
    b.rows(
        np.concatenate([at[g_of_w], np.arange(len(bought))]),
        np.concatenate([ws, extra]),
        np.concatenate([b_slope - 0.5, np.ones(len(bought))]),
        np.full(len(bought), -np.inf),
        0.0,
    )
    return [
        _row_terms(d, g_asset[g_of_w], ws, -b_slope),
        _row_terms(d, g_asset[bought], extra, -np.ones(len(bought))),
    ]


def _relaxation(
    problem: Problem,
    d: _Data,
    borne: bool = False,
    near: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, float, float, str]:
    """Step 1: points sold per slot and bought per pool, the LP's cost and objective (lower
    bounds) and its status.

    Pools of one chain whose assets are in the same band rows and whose k is the same are one
    group: the LP decides what each group sells and buys; the least cost of a group's sales
    ``G(X)`` (its positions in order of fee and gas per point, each pool's impact) and of its
    purchases (``k * W**2`` per pool, spread in proportion to depth) are convex, tabulated
    exactly on a grid of marginal costs and entered as the lower envelope of their tangents.
    Relaxed: a chain's wallets balance together, a pool's sales and purchases are priced
    apart (``k (S + W)**2 >= k S**2 + k W**2``), the native coin pays only for its own sale.
    ``borne`` (the bound, ``_bound``): the bought rows also lose impact (``_borne``), any gas
    beyond may come off the native coin at its cost; ``near`` (what a plan sells and buys per
    pool): tangents there too. Without ``borne``, what it buys is where the plan buys (the
    swaps follow it)."""
    n_pool = len(d.pool_k)
    sig = d.sig[d.pool_asset]
    kid = np.unique(d.pool_k, return_inverse=True)[1].ravel()
    n_sig = int(d.sig.max(initial=0)) + 1
    gkey = (d.pool_chain * n_sig + sig) * (kid.max(initial=0) + 1) + kid
    groups, pool_group = np.unique(gkey, return_inverse=True)
    pool_group = pool_group.ravel()
    n_g = len(groups)
    first_pool = np.zeros(n_g, dtype=np.int64)
    first_pool[pool_group[::-1]] = np.arange(n_pool)[::-1]
    g_chain = d.pool_chain[first_pool]
    g_asset = d.pool_asset[first_pool]
    # sales: per slot its fee and gas per point (every position sold is at least one swap,
    # and one per max_trade_pp)
    sell = np.flatnonzero(d.cap > 0)
    cap = d.cap[sell]
    size = cap if problem.max_trade_pp is None else np.minimum(cap, problem.max_trade_pp)
    a_s = d.acc[sell]
    gas_u = d.gas[a_s] / size
    c = d.fee[a_s] + gas_u
    order = np.lexsort((sell, c, d.pool[sell]))
    sell, cap, gas_u, c = sell[order], cap[order], gas_u[order], c[order]
    pool_s = d.pool[sell]
    csum = np.cumsum(cap)
    start = np.searchsorted(pool_s, pool_s)
    before = csum - cap - np.where(start > 0, csum[np.maximum(start - 1, 0)], 0.0)
    k_s = d.pool_k[pool_s]
    grp = pool_group[pool_s]
    has_sell = np.bincount(grp, minlength=n_g) > 0
    sell_pools = np.unique(pool_s)
    inv_ks = np.bincount(
        pool_group[sell_pools], weights=1 / np.maximum(d.pool_k[sell_pools], 1e-300), minlength=n_g
    )
    k_sell = np.where(inv_ks > 0, 1 / np.where(inv_ks > 0, inv_ks, 1.0), 0.0)
    c0 = np.full(n_g, np.inf)
    np.minimum.at(c0, grp, c)
    top = np.full(n_g, -np.inf)
    np.maximum.at(top, grp, c + 2 * k_s * (before + cap))
    c0 = np.where(has_sell, c0, 0.0)
    top = np.where(has_sell, np.maximum(top, c0), 0.0)

    def tabulate(mu: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per group at each marginal cost of ``mu``: what it sells, its cost, its gas."""
        shape = mu.shape
        x_t, f_t, gas_t = np.zeros(shape), np.zeros(shape), np.zeros(shape)
        for j in range(shape[1]):
            u = _sell_use(mu[grp, j], c, k_s, before, cap)
            vol = np.bincount(pool_s, weights=u, minlength=n_pool)
            x_t[:, j] = np.bincount(grp, weights=u, minlength=n_g)
            f_t[:, j] = np.bincount(grp, weights=c * u, minlength=n_g) + np.bincount(
                pool_group, weights=d.pool_k * vol**2, minlength=n_g
            )
            gas_t[:, j] = np.bincount(grp, weights=gas_u * u, minlength=n_g)
        return x_t, f_t, gas_t

    n_grid = _GRID if near is None else _GRID_NEAR
    mu = _grid(c0, top, n_grid)
    x_tab, f_tab, gas_tab = tabulate(mu)
    if near is not None:
        # tangents also where the plan sells (the marginal costs found by interpolating the
        # table: any point gives a valid tangent), so the bound is tight around the plan
        want = np.bincount(pool_group, weights=near[0], minlength=n_g)[:, None] * _NEAR
        j = np.clip((x_tab[:, :, None] < want[:, None, :]).sum(axis=1), 1, mu.shape[1] - 1)
        x0, x1 = np.take_along_axis(x_tab, j - 1, 1), np.take_along_axis(x_tab, j, 1)
        m0, m1 = np.take_along_axis(mu, j - 1, 1), np.take_along_axis(mu, j, 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.clip(np.where(x1 > x0, (want - x0) / (x1 - x0), 0.0), 0.0, 1.0)
        mu_near = m0 + t * (m1 - m0)
        tabs = [
            np.concatenate(pair, axis=1)
            for pair in zip((x_tab, f_tab, gas_tab, mu), (*tabulate(mu_near), mu_near), strict=True)
        ]
        order = np.argsort(tabs[3], axis=1, kind="stable")
        x_tab, f_tab, gas_tab, mu = (np.take_along_axis(a, order, 1) for a in tabs)
    s_pts, s_slope = _envelope(x_tab, f_tab, mu)
    s_width = np.diff(s_pts, axis=1)
    s_gas = np.diff(
        np.array([np.interp(s_pts[g], x_tab[g], gas_tab[g]) for g in range(n_g)]), axis=1
    ) / np.where(s_width > 0, s_width, 1.0)
    # purchases: W**2 / sum(1 / k) over the group's buyable pools
    buy_pools = np.unique(d.pool[d.buyable])
    inv_k = np.bincount(
        pool_group[buy_pools], weights=1 / np.maximum(d.pool_k[buy_pools], 1e-300), minlength=n_g
    )
    can_buy = inv_k > 0
    k_eff = np.where(can_buy, 1 / np.where(can_buy, inv_k, 1.0), 0.0)
    chain_total = np.bincount(d.chain[a_s], weights=cap, minlength=d.n_chain)
    w_top = chain_total[g_chain]
    w = _grid(np.zeros(n_g), w_top, n_grid)[:, 1:]
    if near is not None:
        w_near = np.bincount(pool_group, weights=near[1], minlength=n_g)[:, None] * _NEAR
        extra = np.minimum(w_near, w_top[:, None])
        w = np.sort(np.concatenate([w, np.maximum(extra, w[:, :1])], axis=1), axis=1)
    # the tangents at 0 and at each grid point meet half way between them
    mids = np.concatenate([w[:, :1] / 2, (w[:, :-1] + w[:, 1:]) / 2], axis=1)
    b_pts = np.concatenate([np.zeros((n_g, 1)), mids, w[:, -1:]], axis=1)
    b_slope = np.concatenate([np.zeros((n_g, 1)), 2 * k_eff[:, None] * w], axis=1)
    b_width = np.diff(b_pts, axis=1) * can_buy[:, None]
    # one column per piece of positive width
    keep_s = s_width.ravel() > 0
    keep_w = b_width.ravel() > 0
    g_of_s = np.repeat(np.arange(n_g), s_width.shape[1])[keep_s]
    g_of_w = np.repeat(np.arange(n_g), b_width.shape[1])[keep_w]
    s_slope, s_gas = s_slope.ravel()[keep_s], s_gas.ravel()[keep_s]
    b_slope = b_slope.ravel()[keep_w]
    b = Builder()
    xs = b.vars(s_slope, 0.0, s_width.ravel()[keep_s])
    ws = b.vars(b_slope, 0.0, b_width.ravel()[keep_w])
    # what a chain's wallets sell, they buy
    b.rows(
        np.concatenate([g_chain[g_of_s], g_chain[g_of_w]]),
        np.concatenate([xs, ws]),
        np.concatenate([np.ones(xs.size), -np.ones(ws.size)]),
        np.zeros(d.n_chain),
        0.0,
    )
    if problem.max_run_pp is not None:
        b.rows(np.zeros(xs.size, np.int64), xs, np.ones(xs.size), [-np.inf], problem.max_run_pp)
    fee_chain = np.full(d.n_chain, np.inf)
    np.minimum.at(fee_chain, d.chain, d.fee)
    nat_chain = np.full(d.n_chain, -1, dtype=np.int64)
    nat_chain[d.chain] = d.native_asset
    # the gas of the swaps beyond one per position sold (borne: a row above its band may
    # count on it; spending it costs as much as it takes off the native coin)
    burn = b.vars(np.ones(d.n_chain if borne else 0), 0.0, np.inf)
    cost_var = b.var(0.0)
    b.rows(
        np.zeros(xs.size + ws.size + burn.size + 1, dtype=np.int64),
        np.concatenate([xs, ws, burn, [cost_var]]),
        np.concatenate([s_slope, b_slope, np.ones(burn.size), [-1.0]]),
        [0.0],
        0.0,
    )
    parts = [
        _row_terms(d, g_asset[g_of_s], xs, -np.ones(xs.size)),
        _row_terms(d, nat_chain[g_chain[g_of_s]], xs, -s_gas),
        _row_terms(d, g_asset[g_of_w], ws, (1.0 - fee_chain[g_chain])[g_of_w]),
    ]
    if borne:
        # the sales' least impact needs tangents only around the plan's
        at = x_tab if near is None else want
        parts.extend(_borne(b, d, g_chain, g_asset, g_of_s, xs, g_of_w, ws, b_slope, at, k_sell))
        parts.append(_row_terms(d, nat_chain, burn, -np.ones(burn.size)))
    terms = tuple(np.concatenate([p[i] for p in parts]) for i in range(3))
    _bands(b, d, terms, np.zeros(len(d.lo)), cost_var)  # type: ignore[arg-type]
    res = b.solve_lp()
    if res.x is None:
        return np.zeros(len(d.cap)), np.zeros(n_pool), math.nan, math.nan, str(res.message)
    status = "optimal" if res.status == 0 else f"stopped early ({res.message})"
    if borne:  # the bound: its cost and objective are all that is read
        cost = float(res.x[cost_var])
        return np.zeros(len(d.cap)), np.zeros(n_pool), cost, float(res.fun), status
    x_g = np.bincount(g_of_s, weights=res.x[xs], minlength=n_g)
    w_g = np.bincount(g_of_w, weights=res.x[ws], minlength=n_g)
    # each group's sales as its least-cost split: the marginal cost where it sells x_g
    hi_mu = _marginal(x_g, c0, top, grp, c, k_s, before, cap)
    u = _sell_use(hi_mu[grp], c, k_s, before, cap)
    u *= np.where(
        x_g > 0, x_g / np.maximum(np.bincount(grp, weights=u, minlength=n_g), 1e-300), 0.0
    )[grp]
    sold = np.zeros(len(d.cap))
    sold[sell] = np.minimum(u, cap)
    bought = np.zeros(n_pool)
    share = 1 / np.maximum(d.pool_k[buy_pools], 1e-300)
    bought[buy_pools] = w_g[pool_group[buy_pools]] * share * k_eff[pool_group[buy_pools]]
    return sold, bought, float(res.x[cost_var]), float(res.fun), status


def _corner(
    ga: np.ndarray, xa: np.ndarray, gb: np.ndarray, xb: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """North-west corner per group: ``a`` and ``b`` sorted by group, with equal totals per
    group; returns (index in a, index in b, amount) of the pieces, at most ``len a + len b - 1``
    per group."""
    if not len(xa) or not len(xb):
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    ca, cb = np.cumsum(xa), np.cumsum(xb)
    cuts = np.unique(np.concatenate([ca, cb]))
    start = np.concatenate([[0.0], cuts[:-1]])
    width = cuts - start
    mid = start + width / 2
    ia = np.minimum(np.searchsorted(ca, mid), len(xa) - 1)
    ib = np.minimum(np.searchsorted(cb, mid), len(xb) - 1)
    keep = (width > _TOL * max(float(ca[-1]), 1.0)) & (ga[ia] == gb[ib])
    return ia[keep], ib[keep], width[keep]


def _scaled_to(group: np.ndarray, x: np.ndarray, total: np.ndarray) -> np.ndarray:
    """``x`` scaled within each group to sum to ``total[group]``."""
    have = np.bincount(group, weights=x, minlength=len(total))
    return x * np.where(have > 0, total / np.where(have > 0, have, 1.0), 0.0)[group]


def _swaps(
    problem: Problem, d: _Data, sold: np.ndarray, bought: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step 2: (sell slot, buy slot, points) of the swaps carrying the relaxation's amounts."""
    m = problem.min_pp * (1 - 1e-9)
    n_acc = len(d.fee)
    sold = np.where(sold >= m, sold, 0.0)
    sell = np.flatnonzero(sold > 0)
    supply = np.bincount(d.acc[sell], weights=sold[sell], minlength=n_acc)
    # per chain, the bought amounts shared out over its wallets (the fewest pieces)
    chain_supply = np.bincount(d.chain, weights=supply, minlength=d.n_chain)
    pools = np.flatnonzero(bought > 0)
    demand = _scaled_to(d.pool_chain[pools], bought[pools], chain_supply)
    order_p = np.lexsort((-demand, d.pool_chain[pools]))
    pools, demand = pools[order_p], demand[order_p]
    accs = np.flatnonzero(supply > 0)
    accs = accs[np.lexsort((-supply[accs], d.chain[accs]))]
    ia, ib, amt = _corner(d.chain[accs], supply[accs], d.pool_chain[pools], demand)
    piece_acc, piece_pool = accs[ia], pools[ib]
    # the account's token of that pool's asset
    buy_slots = np.flatnonzero(d.buyable)
    n_pool = len(d.pool_k)
    slot_key = d.acc[buy_slots] * n_pool + d.pool[buy_slots]
    by_key = np.argsort(slot_key, kind="stable")
    slot_key, buy_slots = slot_key[by_key], buy_slots[by_key]
    want = piece_acc * n_pool + piece_pool
    at = np.minimum(np.searchsorted(slot_key, want), max(len(slot_key) - 1, 0))
    ok = (amt >= m) & (slot_key[at] == want) if len(slot_key) else np.zeros(len(want), bool)
    piece_acc, q, amt = piece_acc[ok], buy_slots[at[ok]], amt[ok]
    amt = _scaled_to(piece_acc, amt, supply)
    # per wallet: its sales matched to its purchases, largest first
    has_buy = np.bincount(piece_acc, minlength=n_acc) > 0
    sell = sell[has_buy[d.acc[sell]]]
    sell = sell[np.lexsort((-sold[sell], d.acc[sell]))]
    order_q = np.lexsort((-amt, piece_acc))
    piece_acc, q, amt = piece_acc[order_q], q[order_q], amt[order_q]
    ia, ib, x = _corner(d.acc[sell], sold[sell], piece_acc, amt)
    p, q = sell[ia], q[ib]
    keep = (x >= m) & (d.asset[p] != d.asset[q])
    return p[keep], q[keep], x[keep]


def _slices(problem: Problem, x: np.ndarray) -> np.ndarray:
    """Slices of each swap under ``max_trade_pp`` (1 without it)."""
    if problem.max_trade_pp is None:
        return np.ones(len(x), dtype=np.int64)
    t = problem.max_trade_pp * (1 - 1e-7)
    return np.clip(np.ceil(x / t - 1e-9), 1, MAX_SLICES).astype(np.int64)


def _trim(
    problem: Problem, d: _Data, p: np.ndarray, q: np.ndarray, x: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Largest swaps first, the ones each wallet's native coin can pay gas (and a native sale
    of at least the minimum per slice) for."""
    n = _slices(problem, x)
    a = d.acc[p]
    order = np.lexsort((-x, a))
    p, q, x, n, a = p[order], q[order], x[order], n[order], a[order]
    need = n * (d.gas[a] + np.where(d.is_native[p], problem.min_pp, 0.0))
    csum = np.cumsum(need)
    first = np.searchsorted(a, a)  # start of each account's block (sorted by account)
    before = np.where(first > 0, csum[np.maximum(first - 1, 0)], 0.0)
    keep = csum - before <= d.native_avail[a]
    return p[keep], q[keep], x[keep]


def _pools_of(d: _Data, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """(swap, pool) incidence as two columns: each swap through its two asset pools."""
    n = len(p)
    return np.stack(
        [np.concatenate([np.arange(n), np.arange(n)]), np.concatenate([d.pool[p], d.pool[q]])]
    )


def _polish(
    problem: Problem, d: _Data, p: np.ndarray, q: np.ndarray, x0: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float, str]:
    """Step 3: the best sizes of the swaps (p, q) (``x0`` the first guess); returns sizes,
    slices, objective and status."""
    n_sw = len(p)
    n = _slices(problem, x0)
    a = d.acc[p]
    b = Builder()
    ub = d.cap[p].copy()
    if problem.max_trade_pp is not None:
        ub = np.minimum(ub, n * problem.max_trade_pp * (1 - 1e-7))
    lb = np.minimum(n * problem.min_pp, ub)
    xs = b.vars(d.fee[a], lb, ub)
    inc_s, inc_p = _pools_of(d, p, q)
    n_pool = len(d.pool_k)
    vol = np.bincount(inc_p, weights=x0[inc_s], minlength=n_pool)
    top = np.bincount(inc_p, weights=ub[inc_s], minlength=n_pool)
    used = np.flatnonzero(vol > 0)
    chords = _POLISH_FINE if n_sw <= _FINE_SWAPS else _POLISH
    pts = np.minimum(vol[used, None] * np.asarray(chords)[None, :], top[used, None])
    pts = np.concatenate([np.zeros((len(used), 1)), pts, top[used, None]], axis=1)
    pts = np.maximum.accumulate(pts, axis=1)
    widths = np.diff(pts, axis=1)
    k = d.pool_k[used]
    slope = k[:, None] * (pts[:, :-1] + pts[:, 1:])  # chords: over-estimate
    y = b.vars(slope.ravel(), 0.0, widths.ravel()).reshape(widths.shape)
    local = np.full(n_pool, -1)
    local[used] = np.arange(len(used))
    b.rows(
        np.concatenate([np.repeat(np.arange(len(used)), widths.shape[1]), local[inc_p]]),
        np.concatenate([y.ravel(), xs[inc_s]]),
        np.concatenate([np.ones(y.size), -np.ones(len(inc_s))]),
        np.zeros(len(used)),
        np.inf,
    )
    # never sell more than held
    # (a slot sold by one swap only is held to it by the swap's bound)
    slots, slot_row, count = np.unique(p, return_inverse=True, return_counts=True)
    shared = count[slot_row] > 1
    local_slot = np.cumsum(count > 1) - 1
    b.rows(
        local_slot[slot_row[shared]],
        xs[shared],
        np.ones(int(shared.sum())),
        np.full(int((count > 1).sum()), -np.inf),
        d.cap[slots[count > 1]],
    )
    gas_acc = np.bincount(a, weights=n * d.gas[a], minlength=len(d.fee))
    nat = np.flatnonzero(d.is_native[p])
    if len(nat):
        accs, acc_row = np.unique(a[nat], return_inverse=True)
        b.rows(
            acc_row,
            xs[nat],
            np.ones(len(nat)),
            np.full(len(accs), -np.inf),
            d.native_avail[accs] - gas_acc[accs],
        )
    if problem.max_run_pp is not None:
        b.rows(np.zeros(n_sw, dtype=np.int64), xs, np.ones(n_sw), [-np.inf], problem.max_run_pp)
    cost_var = b.var(0.0)
    gas_total = float(gas_acc.sum())
    b.rows(
        np.zeros(n_sw + y.size + 1, dtype=np.int64),
        np.concatenate([xs, y.ravel(), [cost_var]]),
        np.concatenate([d.fee[a], slope.ravel(), [-1.0]]),
        [-gas_total],
        -gas_total,
    )
    # the bought row gets the value less fee and the swap's impact share at the volumes found
    share = np.bincount(inc_s, weights=d.pool_k[inc_p] * vol[inc_p], minlength=n_sw)
    share = np.minimum(share, 0.5)  # beyond, the exact evaluation refuses the swap
    parts = [
        _row_terms(d, d.asset[p], xs, -np.ones(n_sw)),
        _row_terms(d, d.asset[q], xs, 1.0 - d.fee[a] - share),
    ]
    terms = tuple(np.concatenate([pt[i] for pt in parts]) for i in range(3))
    # gas is paid from each wallet's native coin: a constant move of its rows
    gr, _, gv = _row_terms(d, d.native_asset, np.arange(len(d.fee)), -gas_acc)
    const = np.bincount(gr, weights=gv, minlength=len(d.lo))
    _bands(b, d, terms, const, cost_var)  # type: ignore[arg-type]
    res = b.solve_lp()
    if res.x is None:
        return x0, n, math.nan, f"sizes LP found no solution: {res.message}"
    status = "optimal" if res.status == 0 else f"stopped early ({res.message})"
    return np.asarray(res.x[xs]), n, float(res.fun), status


def _inside(
    problem: Problem, d: _Data, p: np.ndarray, q: np.ndarray, x: np.ndarray, n: np.ndarray
) -> bool:
    """Do the swaps end every band row inside its interval under the pooled model (each
    bought row less its swap's share of impact at the final volumes, the total less the
    cost)? Then the sizes need no LP."""
    if problem.max_trade_pp is not None and (x > n * problem.max_trade_pp * (1 - 1e-7)).any():
        return False
    if (x < n * problem.min_pp).any() or (
        np.bincount(p, weights=x) > d.cap[: p.max() + 1] + 1e-12
    ).any():
        return False
    a = d.acc[p]
    gas_acc = np.bincount(a, weights=n * d.gas[a], minlength=len(d.fee))
    nat = d.is_native[p]
    spent = gas_acc + np.bincount(a[nat], weights=x[nat], minlength=len(d.fee))
    if (spent > np.maximum(d.native_avail, 0.0) + 1e-12).any():
        return False
    after, cost = _achieved(d, p, q, x, n)
    return bool(
        np.all(after + d.lo * cost / 100 >= d.lo) and np.all(after + d.hi * cost / 100 <= d.hi)
    )


def _achieved(
    d: _Data, p: np.ndarray, q: np.ndarray, x: np.ndarray, n: np.ndarray
) -> tuple[np.ndarray, float]:
    """Each band row after the swaps under the pooled model (each bought row less its swap's
    share of impact at the final volumes, the native coin less the gas), and their cost."""
    inc_s, inc_p = _pools_of(d, p, q)
    vol = np.bincount(inc_p, weights=x[inc_s], minlength=len(d.pool_k))
    rate = np.bincount(inc_s, weights=d.pool_k[inc_p] * vol[inc_p], minlength=len(p))
    a = d.acc[p]
    gas_acc = np.bincount(a, weights=n * d.gas[a], minlength=len(d.fee))
    cost = float(np.sum(d.fee[a] * x) + np.sum(d.pool_k * vol**2) + gas_acc.sum())
    idx = np.arange(len(p))
    move = np.zeros(len(d.lo))
    for r, _, v in (
        _row_terms(d, d.asset[p], idx, -x),
        _row_terms(d, d.asset[q], idx, x * (1 - d.fee[a] - rate)),
        _row_terms(d, d.native_asset, np.arange(len(d.fee)), -gas_acc),
    ):
        move += np.bincount(r, weights=v, minlength=len(d.lo))
    return d.val + move, cost


def _restricted(d: _Data, active: np.ndarray) -> _Data:
    """``d`` with only the ``active`` band rows (signatures over those rows alone)."""
    rows = d.asset_rows[:, np.flatnonzero(active)].tocsr()
    ids: dict[tuple[int, ...], int] = {}
    sig = np.array(
        [
            ids.setdefault(tuple(rows.indices[rows.indptr[a] : rows.indptr[a + 1]]), len(ids))
            for a in range(rows.shape[0])
        ],
        dtype=np.int64,
    )
    return replace(
        d,
        asset_rows=rows,
        sig=sig,
        lo=d.lo[active],
        hi=d.hi[active],
        val=d.val[active],
        tgt=d.tgt[active],
        leaf=d.leaf[active],
    )


def _rows_generated(
    problem: Problem, d: _Data
) -> tuple[tuple[np.ndarray, np.ndarray, float, float, str], np.ndarray]:
    """The relaxation over the band rows that need it: first those outside their band now,
    then again with every row its answer leaves outside, until it leaves none (dropping rows
    only relaxes it, so each answer is a lower bound; far fewer rows, far fewer groups)."""
    active = (d.val < d.lo) | (d.val > d.hi)
    fee_chain = np.full(d.n_chain, np.inf)
    np.minimum.at(fee_chain, d.chain, d.fee)
    nat_chain = np.full(d.n_chain, -1, dtype=np.int64)
    nat_chain[d.chain] = d.native_asset
    while True:
        sub = d if active.all() else _restricted(d, active)
        got = _relaxation(problem, sub)
        sold, bought, cost, bound, _ = got
        if math.isnan(bound) or active.all():
            return got, active
        size = d.cap if problem.max_trade_pp is None else np.minimum(d.cap, problem.max_trade_pp)
        gas = np.where(sold > 0, d.gas[d.acc] * sold / np.maximum(size, 1e-300), 0.0)
        n_pool = len(d.pool_k)
        parts = [
            _row_terms(d, d.asset, np.arange(len(sold)), -sold),
            _row_terms(d, d.native_asset[d.acc], np.arange(len(sold)), -gas),
            _row_terms(
                d,
                d.pool_asset,
                np.arange(n_pool),
                bought * (1 - fee_chain[d.pool_chain]),
            ),
        ]
        move = np.zeros(len(d.lo))
        for r, _, v in parts:
            move += np.bincount(r, weights=v, minlength=len(d.lo))
        after = d.val + move
        tol = 1e-9
        out = (after + d.lo * cost / 100 < d.lo - tol) | (after + d.hi * cost / 100 > d.hi + tol)
        if not (out & ~active).any():
            return got, active
        active |= out


def _bound(
    problem: Problem,
    d: _Data,
    active: np.ndarray,
    after: np.ndarray,
    cost: float,
    near: tuple[np.ndarray, np.ndarray],
) -> tuple[float, float] | None:
    """(cost, objective) lower bounds of any plan that ends each band row where these swaps
    do or better (``after``, at their ``cost``): the relaxation over the ``active`` rows with
    the impact the bought rows lose (``_borne``), tangents also around what the plan sells and
    buys (``near``, per pool), each row's band widened to where the plan leaves it (a plan
    may stop a little short of the rows it aims for, inside the band's edge margin: the plain
    bound, which aims for them, would then be above it). None if it finds no solution."""
    sub = d if active.all() else _restricted(d, active)
    reach = after[active] / max(1 - cost / 100, 1e-9)
    sub = replace(sub, lo=np.minimum(sub.lo, reach), hi=np.maximum(sub.hi, reach))
    _, _, bound_cost, bound, _ = _relaxation(problem, sub, borne=True, near=near)
    return None if math.isnan(bound) else (bound_cost, bound)


def _through_pairs(problem: Problem, d: _Data, p: np.ndarray, q: np.ndarray) -> bool:
    """Does a swap go through a pair's own pool? This path prices every swap through its two
    asset pools, so its bound does not hold for those (the exact evaluation charges them)."""
    slots = problem.slots
    seen = set(zip(d.acc[p].tolist(), p.tolist(), d.asset[q].tolist(), strict=True))
    buy = dict(zip(d.asset[q].tolist(), q.tolist(), strict=True))
    return any(
        len(problem.pools(acc, slots[i].asset, slots[buy[b]].asset)) == 1 for acc, i, b in seen
    )


def solve(problem: Problem) -> Solution:
    """The relaxation, the swaps, their sizes (see the module)."""
    d = _data(problem)
    if not (d.cap > 0).any() or not d.buyable.any():
        return Solution([], "no candidate trades", 0, 0, 0.0, "decomposed")
    (sold, bought, bound_cost, bound, status), active = _rows_generated(problem, d)
    if math.isnan(bound):
        return Solution([], f"decomposed LP found no solution: {status}", 0, 0, None, "decomposed")
    support = int((sold > 0).sum() + (bought > 0).sum())
    p, q, x = _swaps(problem, d, sold, bought)
    p, q, x = _trim(problem, d, p, q, x)
    if not len(p):
        return Solution([], status, support, 0, 0.0, "decomposed", bound, 0.0, bound_cost)
    n = _slices(problem, x)
    objective = math.nan
    if not _inside(problem, d, p, q, x, n):
        x, n, objective, polish_status = _polish(problem, d, p, q, x)
        if polish_status != "optimal":
            status = f"{status}; {polish_status}"
    keep = x > _TOL
    p, q, x, n = p[keep], q[keep], x[keep], n[keep]
    relaxed = (bound, bound_cost)
    sol = _finished(problem, d, active, relaxed, p, q, x, n, status, support, objective)
    gas = float(np.sum(n * d.gas[d.acc[p]]))
    gassy = sol.cost_pp is not None and gas >= _RESELECT_GAS * sol.cost_pp > 0
    if len(p) <= _RESELECT_SWAPS and gassy:
        found = _reselected(problem, p, q)
        if found is not None:
            sol.alternative = _finished(problem, d, active, relaxed, *found, support)
    return sol


def _finished(
    problem: Problem,
    d: _Data,
    active: np.ndarray,
    relaxed: tuple[float, float],
    p: np.ndarray,
    q: np.ndarray,
    x: np.ndarray,
    n: np.ndarray,
    status: str,
    support: int,
    objective: float = math.nan,
) -> Solution:
    """The swaps (p, q) of sizes x in n slices each as a Solution, with their bound (the
    relaxation's, ``relaxed``, if ``_bound`` finds none)."""
    after, cost = _achieved(d, p, q, x, n)
    n_pool = len(d.pool_k)
    near = (
        np.bincount(d.pool[p], weights=x, minlength=n_pool),
        np.bincount(d.pool[q], weights=x, minlength=n_pool),
    )
    lower: tuple[float | None, float | None] = relaxed
    tight = _bound(problem, d, active, after, cost, near)
    if tight is not None:
        lower = (tight[1], tight[0])
    if problem.pair_pools and _through_pairs(problem, d, p, q):
        lower = (None, None)
        status = f"{status}; no bound: swaps through pair pools (depth_usd_by_pair)"
    part = x / n
    trades = [
        PairTrade(int(i), int(j), float(v))
        for i, j, v, c in zip(p.tolist(), q.tolist(), part.tolist(), n.tolist(), strict=True)
        for _ in range(c)
    ]
    if math.isnan(objective):
        objective = cost
    return Solution(
        trades, status, support, len(p), objective, "decomposed", lower[0], cost, lower[1]
    )


def _reselected(
    problem: Problem, p: np.ndarray, q: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str] | None:
    """The MILP over the plan's own pairs: which to make, gas a fixed cost of each. The
    relaxation prices no gas for what is bought, so where gas is a good share of the cost
    its swaps spread purchases over more pools than they are worth (3 chains x 30 tokens x 3
    wallets: 85 swaps 2.6% above the exact plan; reselected, 58 swaps and 2.4% under it).
    Returns its swaps as (sell, buy, points, slices) and its status."""
    pairs = sorted(set(zip(p.tolist(), q.tolist(), strict=True)))
    found = exact_over(problem, slices(problem, pairs))
    if not found.trades:
        return None
    sizes: dict[tuple[int, int], list[float]] = {}
    for t in found.trades:
        sizes.setdefault((t.sell, t.buy), []).append(t.x_pp)
    keys = sorted(sizes)
    return (
        np.array([i for i, _ in keys], dtype=np.int64),
        np.array([j for _, j in keys], dtype=np.int64),
        np.array([sum(sizes[k]) for k in keys]),
        np.array([len(sizes[k]) for k in keys], dtype=np.int64),
        f"{found.status}; swaps reselected by the MILP (gas a large share of the cost)",
    )
