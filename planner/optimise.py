"""The trade optimiser: which swaps, where, and how large, at least cost. HiGHS via scipy.

Why two stages. The exact problem is a mixed-integer program over *pairs* (sell token i for token
j in one wallet on one chain): each pair has an on/off binary so that gas is paid per swap and no
swap is below the minimum size. Over every pair of every wallet that is far too big (500 assets
give 250,000 pairs per wallet), so:

1. **Candidate LP** (continuous): one sell leg per position and one buy leg per wallet and leaf
   row, each with half the fee, gas spread over a reference trade, and its own convex price
   impact; soft band rows. Its support is the short list of positions worth trading.
2. **Pair program** over the LP's legs matched per wallet (north-west corner, plus each sell with
   the largest buy and vice versa) and the naive plan's pairs (so it can always do at least as
   well as the naive plan). It has exact gas per swap (on/off), the minimum size
   (``x >= m * on``), convex piecewise-linear price impact (``k * x**2`` by chords, which
   over-estimate slightly: the plan is conservative), gas paid from the native coin above its
   reserve, the post-trade total (costs shrink it) in every band row, and in tax-aware mode the
   tax of each asset's sales as a convex piecewise-linear function of the amount sold.

   Up to ``MILP_MAX_PAIRS`` candidate pairs this is solved as a true MILP (``milp`` with binaries
   and a node limit). Above that, MILP time grows quickly with the number of binaries, so it is
   **LP + rounding**: the binaries are relaxed to [0, 1]; the pairs the LP uses at the minimum
   size or more are fixed on (full gas, size at least the minimum), the rest dropped, and the LP
   solved again with only those. On the benchmark this is as good as the MILP (within 0.1%).

Band rows are soft (a slack with a large penalty), so the program always has a solution: the
best feasible one when the bands cannot all be met. Units inside the solver are percentage points
of the portfolio's total (well scaled). The caller turns the result into integer base units and
checks every constraint again in exact arithmetic (``planner.plan``), then keeps the better of
this plan, the naive plan and doing nothing. Deterministic: HiGHS is, for the same model, and
the node limit (not the time limit, a safety net only) bounds the MILP.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import csr_array

from rebalancer.core.types import Token

BIG = 1000.0
"""Penalty per point of band violation (cost is also in points of the total: 1000x)."""
EPS_DEV = 1e-4
"""Tie-break per point of distance from target, far below any trading cost per point."""
_SEGMENTS = (0.0, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0)
TIME_LIMIT_S = 20.0
"""A safety net only (a time limit makes results depend on machine speed): the node limit
and the LP fallback keep normal runs far below it."""


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
    """(account, sell asset, buy asset) -> k with impact_pp = k * x_pp**2."""
    tax: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    """asset -> convex segments (capacity in points, tax per point sold)."""

    def asset_rows(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for i, r in enumerate(self.rows):
            for a in r.assets:
                out.setdefault(a, []).append(i)
        return out


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


def _fill(x: object, k: int) -> np.ndarray:
    """``x`` as a float array of length ``k`` (a scalar is repeated)."""
    a = np.asarray(x, dtype=float).ravel()
    return a if a.size == k else np.full(k, a[0])


class _Builder:
    """Collects variables and constraint rows as sparse triplets, in numpy chunks."""

    def __init__(self) -> None:
        self.n = 0
        self.m = 0
        self._cost: list[np.ndarray] = []
        self._lb: list[np.ndarray] = []
        self._ub: list[np.ndarray] = []
        self._int: list[np.ndarray] = []
        self._r: list[np.ndarray] = []
        self._c: list[np.ndarray] = []
        self._v: list[np.ndarray] = []
        self._rlo: list[np.ndarray] = []
        self._rhi: list[np.ndarray] = []

    def vars(
        self, cost: object, lb: object = 0.0, ub: object = np.inf, integer: bool = False
    ) -> np.ndarray:
        c = np.asarray(cost, dtype=float).ravel()
        k = len(c)
        self._cost.append(c)
        self._lb.append(_fill(lb, k))
        self._ub.append(_fill(ub, k))
        self._int.append(np.full(k, 1 if integer else 0))
        idx = np.arange(self.n, self.n + k)
        self.n += k
        return idx

    def var(self, cost: float, lb: float = 0.0, ub: float = np.inf, integer: bool = False) -> int:
        return int(self.vars([cost], lb, ub, integer)[0])

    def rows(self, local: object, cols: object, vals: object, lo: object, hi: object) -> None:
        """Add ``len(lo)`` rows; entries name their row by ``local`` index among them."""
        lo_a = np.asarray(lo, dtype=float).ravel()
        k = len(lo_a)
        self._r.append(np.asarray(local, dtype=np.int64).ravel() + self.m)
        self._c.append(np.asarray(cols, dtype=np.int64).ravel())
        self._v.append(np.asarray(vals, dtype=float).ravel())
        self._rlo.append(lo_a)
        self._rhi.append(_fill(hi, k))
        self.m += k

    def row(self, terms: Sequence[tuple[int, float]], lo: float, hi: float) -> None:
        cols = [t[0] for t in terms]
        vals = [t[1] for t in terms]
        self.rows(np.zeros(len(cols), dtype=np.int64), cols, vals, [lo], [hi])

    def add_cost(self, cols: object, deltas: object) -> None:
        """Change the cost of existing variables (applied when the arrays are built)."""
        self._extra_cost = getattr(self, "_extra_cost", [])
        self._extra_cost.append((np.asarray(cols, dtype=np.int64), np.asarray(deltas, float)))

    def solve(self, integer: bool, options: dict[str, object]) -> object:
        cost = np.concatenate(self._cost) if self._cost else np.zeros(0)
        for cols, deltas in getattr(self, "_extra_cost", []):
            np.add.at(cost, cols, deltas)
        a = csr_array(
            (np.concatenate(self._v), (np.concatenate(self._r), np.concatenate(self._c))),
            shape=(self.m, self.n),
        )
        return milp(
            cost,
            integrality=np.concatenate(self._int) if integer else None,
            bounds=Bounds(np.concatenate(self._lb), np.concatenate(self._ub)),
            constraints=LinearConstraint(a, np.concatenate(self._rlo), np.concatenate(self._rhi)),
            # NOTE: presolve off: on these sparse, small programs HiGHS's presolve costs more
            # than it saves (bench/planner.py: 3x50x10 ~53 -> ~43 ms, same plan costs).
            options={**options, "presolve": False},
        )


_LEG_SEGMENTS = (0.0, 1 / 4, 1 / 2, 1.0)


def _segments(
    b: _Builder, fixed: np.ndarray, k: np.ndarray, cap: np.ndarray, fractions: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Per item, convex piecewise-linear pieces of ``fixed * x + k * x**2`` on ``[0, cap]``
    (chords between the ``fractions`` of ``cap``). Returns (vars, slopes), both items x pieces."""
    fr = np.asarray(fractions)
    lo_x = cap[:, None] * fr[None, :-1]
    hi_x = cap[:, None] * fr[None, 1:]
    slope = k[:, None] * (lo_x + hi_x)
    v = b.vars(fixed[:, None] + slope, 0.0, hi_x - lo_x)
    return v.reshape(slope.shape), slope


def _row_entries(
    problem: Problem, items: Sequence[int], slot_of: Sequence[int]
) -> tuple[list[int], list[int]]:
    """(row, item) for every band row containing each item's asset."""
    asset_rows = problem.asset_rows()
    rows: list[int] = []
    which: list[int] = []
    for n in items:
        for ri in asset_rows.get(problem.slots[slot_of[n]].asset, ()):
            rows.append(ri)
            which.append(n)
    return rows, which


def stage1(problem: Problem) -> tuple[dict[int, float], dict[int, float], str]:
    """Candidate LP: which slots are worth selling and buying (see the module docstring).

    One sell leg per sellable position; one buy leg per wallet and leaf row (its deepest
    token), sized at most what the wallet can sell. Each leg costs half the fee, half the gas
    spread over a reference trade, and its own convex price impact, so the LP spreads large
    moves over positions the way the exact pair program would."""
    ref_pp = max(problem.min_pp, 1.0)
    leaf_of: dict[str, int] = {}
    for ri, r in enumerate(problem.rows):
        if r.leaf:
            for a in r.assets:
                leaf_of[a] = ri
    sell_slots: list[int] = []
    sell_cap: list[float] = []
    best_buy: dict[tuple[int, int], tuple[float, int]] = {}
    sellable: dict[int, float] = {}
    for idx, s in enumerate(problem.slots):
        acc = problem.accounts[s.account]
        if acc.locked:
            continue
        if s.can_sell:
            ub = s.avail_pp
            if idx == acc.native_slot:
                ub = min(ub, acc.native_avail_pp - acc.gas_pp)
            if ub > 0:
                sell_slots.append(idx)
                sell_cap.append(ub)
                sellable[s.account] = sellable.get(s.account, 0.0) + ub
        leaf = leaf_of.get(s.asset)
        if s.can_buy and leaf is not None:
            k = problem.impact(s.account, s.asset, s.asset)
            key = (s.account, leaf)
            if key not in best_buy or k < best_buy[key][0]:
                best_buy[key] = (k, idx)
    buy_slots = [idx for (a, _), (_, idx) in sorted(best_buy.items()) if sellable.get(a, 0.0) > 0]
    if not sell_slots or not buy_slots:
        return {}, {}, "nothing tradable"
    legs = sell_slots + buy_slots
    n_sell = len(sell_slots)
    acc_of = np.array([problem.slots[i].account for i in legs])
    fee = np.array([problem.accounts[a].fee for a in acc_of])
    gas = np.array([problem.accounts[a].gas_pp for a in acc_of])
    k_leg = np.array(
        [
            problem.impact(problem.slots[i].account, problem.slots[i].asset, problem.slots[i].asset)
            / 2
            for i in legs
        ]
    )
    cap = np.array(sell_cap + [sellable[problem.slots[i].account] for i in buy_slots])
    b = _Builder()
    seg, slope = _segments(b, fee / 2 + gas / (2 * ref_pp), k_leg, cap, _LEG_SEGMENTS)
    n_seg = seg.shape[1]
    is_sell = np.arange(len(legs)) < n_sell
    # per wallet: what the buys get equals what the sells give, after fee and impact
    accounts, acc_row = np.unique(acc_of, return_inverse=True)
    coef = np.where(is_sell[:, None], -(1.0 - fee[:, None] - slope), 1.0)
    b.rows(np.repeat(acc_row, n_seg), seg, coef, np.zeros(len(accounts)), 0.0)
    # band rows: value changes by buys (net of impact) minus sells; soft, ranged
    rows, which = _row_entries(problem, range(len(legs)), legs)
    if rows:
        r_arr = np.array(rows)
        w_arr = np.array(which)
        touched, t_of = np.unique(r_arr, return_inverse=True)
        vals = np.where(is_sell[w_arr, None], -1.0, 1.0 - slope[w_arr])
        n_t = len(touched)
        vlo = b.vars(np.full(n_t, BIG))
        vhi = b.vars(np.full(n_t, BIG))
        lo = np.array([problem.rows[r].lo - problem.rows[r].value_pp for r in touched])
        hi = np.array([problem.rows[r].hi - problem.rows[r].value_pp for r in touched])
        b.rows(
            np.concatenate([np.repeat(t_of, n_seg), np.arange(n_t), np.arange(n_t)]),
            np.concatenate([seg[w_arr].ravel(), vlo, vhi]),
            np.concatenate([vals.ravel(), np.ones(n_t), -np.ones(n_t)]),
            lo,
            hi,
        )
        # linear tie-break toward target on leaf rows (stage 2 uses the exact distance)
        sign = np.array(
            [
                0.0
                if not problem.rows[r].leaf
                else (EPS_DEV if problem.rows[r].value_pp >= problem.rows[r].target else -EPS_DEV)
                for r in touched
            ]
        )
        b.add_cost(seg[w_arr].ravel(), (sign[t_of][:, None] * vals).ravel())
    _tax_rows(
        b,
        problem,
        {
            a: [
                (int(v), 1.0)
                for n in range(n_sell)
                if problem.slots[legs[n]].asset == a
                for v in seg[n]
            ]
            for a in problem.tax
        },
    )
    res = b.solve(False, {"time_limit": TIME_LIMIT_S})
    if res.x is None:  # type: ignore[attr-defined]
        return {}, {}, f"candidate LP failed: {res.message}"  # type: ignore[attr-defined]
    amounts = res.x[seg].sum(axis=1)  # type: ignore[attr-defined]
    sells = {legs[n]: float(amounts[n]) for n in range(n_sell) if amounts[n] > 1e-9}
    buys = {legs[n]: float(amounts[n]) for n in range(n_sell, len(legs)) if amounts[n] > 1e-9}
    return sells, buys, "ok"


def _tax_rows(b: _Builder, problem: Problem, tax_terms: dict[str, list[tuple[int, float]]]) -> None:
    """Sold value of each asset is covered by its tax segments, cheapest filled first."""
    for asset, terms in tax_terms.items():
        segments = problem.tax.get(asset)
        if not segments or not terms:
            continue
        segs = [(b.var(rate, 0.0, cap), -1.0) for cap, rate in segments]
        b.row([*terms, *segs], -np.inf, 0.0)


MILP_MAX_PAIRS = 80
"""Above this many candidate pairs the MILP gets slow; stage 2 is then an LP with rounding."""


def candidate_pairs(
    problem: Problem, sells: dict[int, float], buys: dict[int, float]
) -> list[tuple[int, int]]:
    """Pairs to offer stage 2, per wallet: every sell with every buy when there are few;
    otherwise the LP's legs matched in order of size (north-west corner), plus each sell with
    the largest buy and each buy with the largest sell."""
    by_sell: dict[int, list[int]] = {}
    by_buy: dict[int, list[int]] = {}
    for i in sells:
        by_sell.setdefault(problem.slots[i].account, []).append(i)
    for j in buys:
        by_buy.setdefault(problem.slots[j].account, []).append(j)
    out: list[tuple[int, int]] = []
    for a in sorted(by_sell):
        sl = sorted(by_sell[a], key=lambda i: (-sells[i], i))
        bl = sorted(by_buy.get(a, []), key=lambda j: (-buys[j], j))
        if not bl:
            continue
        if len(sl) * len(bl) <= 12:
            out.extend((i, j) for i in sl for j in bl)
            continue
        out.extend((i, bl[0]) for i in sl)
        out.extend((sl[0], j) for j in bl[1:])
        si = bj = 0
        s_left, b_left = sells[sl[0]], buys[bl[0]]
        while si < len(sl) and bj < len(bl):
            out.append((sl[si], bl[bj]))
            step = min(s_left, b_left)
            s_left -= step
            b_left -= step
            if s_left <= 1e-12:
                si += 1
                s_left = sells[sl[si]] if si < len(sl) else 0.0
            if b_left <= 1e-12:
                bj += 1
                b_left = buys[bl[bj]] if bj < len(bl) else 0.0
    return out


def stage2(
    problem: Problem,
    candidates: Sequence[tuple[int, int]],
    node_limit: int = 5_000,
    relax: bool | None = None,
) -> Solution:
    """Pair MILP over the candidates (see the module docstring). With many candidates (or
    ``relax``) the binaries are relaxed and rounded: pairs the LP uses at the minimum size or
    more are fixed on (gas paid in full, size at least the minimum), the rest dropped, and the
    LP solved again."""
    pairs: list[tuple[int, int]] = []
    seen: set[tuple[int, int]] = set()
    for i, j in candidates:
        si, sj = problem.slots[i], problem.slots[j]
        if (i, j) in seen or si.asset == sj.asset or si.account != sj.account:
            continue
        if problem.accounts[si.account].locked or not si.can_sell or not sj.can_buy:
            continue
        if si.avail_pp < problem.min_pp or si.avail_pp <= 0:
            continue
        seen.add((i, j))
        pairs.append((i, j))
    if not pairs:
        return Solution([], "no candidate trades", 0, 0, 0.0)
    if relax is None:
        relax = len(pairs) > MILP_MAX_PAIRS
    if not relax:
        return _pair_program(problem, pairs, "milp", node_limit)
    first = _pair_program(problem, pairs, "relaxed", node_limit)
    keep = [(t.sell, t.buy) for t in first.trades if t.x_pp >= problem.min_pp * (1 - 1e-9)]
    if not keep:
        return first
    if len(keep) == len(first.trades) and _gas_fits(problem, first.trades):
        # every pair used is at least the minimum and the wallets can pay full gas for all:
        # the relaxed answer is already a valid plan; fixing the pairs on would not move it
        first.status = f"LP + rounding ({first.status})"
        return first
    second = _pair_program(problem, keep, "fixed", node_limit)
    second.pairs = len(pairs)
    second.status = f"LP + rounding ({second.status})"
    return second


def _gas_fits(problem: Problem, trades: Sequence[PairTrade]) -> bool:
    """Can every wallet pay full gas for its trades (and its native sales) above reserve?"""
    spend: dict[int, float] = {}
    for t in trades:
        a = problem.slots[t.sell].account
        acc = problem.accounts[a]
        native = t.x_pp if t.sell == acc.native_slot else 0.0
        spend[a] = spend.get(a, 0.0) + acc.gas_pp + native
    return all(v <= problem.accounts[a].native_avail_pp for a, v in spend.items())


def _pair_program(
    problem: Problem, pairs: list[tuple[int, int]], kind: str, node_limit: int
) -> Solution:
    """One solve of the pair program: ``milp`` (binaries), ``relaxed`` (binaries in [0, 1]) or
    ``fixed`` (every pair on: gas paid, size at least the minimum)."""
    slots, accounts = problem.slots, problem.accounts
    n_p = len(pairs)
    si = np.array([i for i, _ in pairs])
    acc_of = np.array([slots[i].account for i in si])
    fee = np.array([accounts[a].fee for a in acc_of])
    gas = np.array([accounts[a].gas_pp for a in acc_of])
    native = np.array([i == accounts[slots[i].account].native_slot for i in si])
    nat_avail = np.array([accounts[a].native_avail_pp for a in acc_of])
    cap = np.array([slots[i].avail_pp for i in si])
    cap = np.where(native, np.minimum(cap, nat_avail - gas), cap)
    k = np.array(
        [problem.impact(slots[i].account, slots[i].asset, slots[j].asset) for i, j in pairs]
    )
    b = _Builder()
    on = b.vars(gas, 1.0 if kind == "fixed" else 0.0, 1.0, integer=kind == "milp")
    seg, slope = _segments(b, fee, k, cap, _SEGMENTS)
    n_seg = seg.shape[1]
    seg_pair = np.repeat(np.arange(n_p), n_seg)
    ones = np.ones(n_p * n_seg)
    # on/off and minimum size: m * on <= x <= cap * on
    b.rows(
        np.concatenate([seg_pair, np.arange(n_p)]),
        np.concatenate([seg.ravel(), on]),
        np.concatenate([ones, -cap]),
        np.full(n_p, -np.inf),
        0.0,
    )
    if problem.min_pp > 0:
        b.rows(
            np.concatenate([seg_pair, np.arange(n_p)]),
            np.concatenate([seg.ravel(), on]),
            np.concatenate([ones, np.full(n_p, -problem.min_pp)]),
            np.zeros(n_p),
            np.inf,
        )
    # the plan's total cost as one variable, so each band row refers to it once (sparse)
    cost_var = b.var(0.0)
    b.rows(
        np.zeros(n_p * n_seg + n_p + 1, dtype=np.int64),
        np.concatenate([seg.ravel(), on, [cost_var]]),
        np.concatenate([(fee[:, None] + slope).ravel(), gas, [-1.0]]),
        [0.0],
        0.0,
    )
    # never sell more than held
    sold, sold_row = np.unique(si, return_inverse=True)
    b.rows(
        sold_row[seg_pair],
        seg.ravel(),
        ones,
        np.full(len(sold), -np.inf),
        np.array([slots[i].avail_pp for i in sold]),
    )
    # gas and native sales come out of the native coin above its reserve
    accs, acc_row = np.unique(acc_of, return_inverse=True)
    nat_seg = native[seg_pair]
    b.rows(
        np.concatenate([acc_row, acc_row[seg_pair][nat_seg]]),
        np.concatenate([on, seg.ravel()[nat_seg]]),
        np.concatenate([gas, ones[nat_seg]]),
        np.full(len(accs), -np.inf),
        np.array([max(accounts[a].native_avail_pp, 0.0) for a in accs]),
    )
    # band rows, with the total shrunk by the plan's cost
    asset_rows = problem.asset_rows()
    e_row: list[int] = []
    e_pair: list[int] = []
    e_kind: list[int] = []  # 0 buy, 1 sell, 2 gas from the native coin
    for n, (i, j) in enumerate(pairs):
        for kind_code, asset in (
            (0, slots[j].asset),
            (1, slots[i].asset),
            (2, accounts[slots[i].account].native_asset),
        ):
            for ri in asset_rows.get(asset, ()):
                e_row.append(ri)
                e_pair.append(n)
                e_kind.append(kind_code)
    er, ep, ek = np.array(e_row), np.array(e_pair), np.array(e_kind)
    touched = np.unique(er[ek < 2])
    local = np.full(len(problem.rows), -1)
    local[touched] = np.arange(len(touched))
    keep = local[er] >= 0
    er, ep, ek = er[keep], ep[keep], ek[keep]
    segs_mask = ek < 2
    sp = ep[segs_mask]
    seg_vals = np.where((ek[segs_mask] == 0)[:, None], 1.0 - fee[sp, None] - slope[sp], -1.0)
    ex_rows = np.concatenate([np.repeat(local[er[segs_mask]], n_seg), local[er[~segs_mask]]])
    ex_cols = np.concatenate([seg[sp].ravel(), on[ep[~segs_mask]]])
    ex_vals = np.concatenate([seg_vals.ravel(), -gas[ep[~segs_mask]]])
    n_t = len(touched)
    rlo = np.array([problem.rows[r].lo for r in touched])
    rhi = np.array([problem.rows[r].hi for r in touched])
    val = np.array([problem.rows[r].value_pp for r in touched])
    tgt = np.array([problem.rows[r].target for r in touched])
    leaf = np.array([problem.rows[r].leaf for r in touched], dtype=bool)
    t_idx = np.arange(n_t)
    for bound, sign, lo_rhs, hi_rhs in (
        (rlo, 1.0, rlo - val, np.inf),
        (rhi, -1.0, -np.inf, rhi - val),
    ):
        slack = b.vars(np.full(n_t, BIG))
        b.rows(
            np.concatenate([ex_rows, t_idx, t_idx]),
            np.concatenate([ex_cols, np.full(n_t, cost_var), slack]),
            np.concatenate([ex_vals, bound / 100, np.full(n_t, sign)]),
            np.broadcast_to(lo_rhs, (n_t,)),
            hi_rhs,
        )
    # tie-break: distance from target of leaf rows
    n_l = int(leaf.sum())
    if n_l:
        leaf_local = np.full(n_t, -1)
        leaf_local[leaf] = np.arange(n_l)
        mask = leaf_local[ex_rows] >= 0
        dev = b.vars(np.full(n_l, EPS_DEV))
        l_idx = np.arange(n_l)
        for sign, lo_rhs, hi_rhs in (
            (-1.0, -np.inf, (tgt - val)[leaf]),
            (1.0, (tgt - val)[leaf], np.inf),
        ):
            b.rows(
                np.concatenate([leaf_local[ex_rows[mask]], l_idx]),
                np.concatenate([ex_cols[mask], dev]),
                np.concatenate([ex_vals[mask], np.full(n_l, sign)]),
                np.broadcast_to(lo_rhs, (n_l,)),
                hi_rhs,
            )
    if problem.tax:
        _tax_rows(
            b,
            problem,
            {
                a: [
                    (int(v), 1.0)
                    for n in range(n_p)
                    if slots[pairs[n][0]].asset == a
                    for v in seg[n]
                ]
                for a in problem.tax
            },
        )
    options: dict[str, object] = {"time_limit": TIME_LIMIT_S}
    if kind == "milp":
        options.update(node_limit=node_limit, mip_rel_gap=1e-6)
    res = b.solve(kind == "milp", options)
    x = res.x  # type: ignore[attr-defined]
    if x is None:
        return Solution([], f"{kind} found no solution: {res.message}", 0, n_p, None)  # type: ignore[attr-defined]
    amounts = x[seg].sum(axis=1)
    trades = [
        PairTrade(i, j, float(amounts[n]))
        for n, (i, j) in enumerate(pairs)
        if (x[on[n]] > 0.5 or kind == "relaxed") and amounts[n] > 1e-12
    ]
    status = "optimal" if res.status == 0 else f"stopped early ({res.message})"  # type: ignore[attr-defined]
    return Solution(trades, status, 0, n_p, float(res.fun))  # type: ignore[attr-defined]


def solve(problem: Problem, extra_pairs: Sequence[tuple[int, int]] = ()) -> Solution:
    """Candidate LP, then the pair program over its support and ``extra_pairs``."""
    sells, buys, status = stage1(problem)
    pairs = [*candidate_pairs(problem, sells, buys), *extra_pairs]
    sol = stage2(problem, pairs)
    sol.stage1_support = len(sells) + len(buys)
    if status != "ok" and not sol.trades:
        sol.status = status
    return sol


def pooled_feasible(problem: Problem, rows: Sequence[ConRow], level: str) -> bool:
    """Could the bands be met ignoring costs and minimum sizes, if value could move freely
    between positions of one ``account``, between wallets of one ``chain``, or ``all`` across
    chains? Tells "needs transfer" and "needs bridge" apart from "infeasible"."""
    b = _Builder()
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
    res = b.solve(False, {"time_limit": TIME_LIMIT_S})
    return bool(res.status == 0)  # type: ignore[attr-defined]
