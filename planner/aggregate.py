"""Large plans: one small LP over aggregated flows across wallets, then swaps per wallet.

Above ``optimise.EXACT_MAX_SWAPS`` candidate swaps the exact MILP is too big, so the problem is
decomposed. **Across wallets**, an LP over *routes*: per wallet, value moved from the positions
of one row signature (the targeted rows an asset belongs to; a wallet's native coin apart) in
one size bucket (positions of similar size) to the tokens of another signature. A route's cost
per point moved is the cheapest any swap there can have: the fee, plus impact ``k * s`` and gas
``g / s`` at the best swap size ``s = sqrt(g / k)`` clipped to the minimum trade, the trade
limit and the bucket's largest position (``k * x**2 + g`` per swap of ``x``, so splitting a move
into swaps of size ``s`` costs ``2 * sqrt(k * g)`` per point, and no swap costs less). So the
LP's cost is a lower bound of any plan's over the same model (up to the second-order effect
of costs on the weights). Its columns are generated: it starts from the routes that sell an
over-weight signature for an under-weight one, and adds every route whose reduced cost under
the LP's duals is negative until none is: the pruning is provably safe, the LP optimal over
every route. **Per wallet**, each route's flow becomes swaps of about size ``s``, from its
largest positions, into distinct tokens of the bought signature, deepest first.

Time grows with the routes the LP needs (a few per wallet) and the swaps made, not with the
pairs of tokens, and nothing depends on a time limit. ``Solution.gap`` is the plan's model cost
against the LP's bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import csr_array

from rebalancer.planner.optimise import (
    BIG,
    EPS_DEV,
    PairTrade,
    Problem,
    Solution,
    signatures,
)

_BUCKETS = 8
"""Size buckets of a signature's positions in one wallet (each half the one above)."""
_ROUNDS = 60
"""Most column-generation rounds (each adds every negative route; it ends far sooner)."""
_ADD = 20000
"""Most routes added per round (the most negative first)."""
_TAIL = 5
"""Segments of a route beyond one best-size swap per pair."""
_TAIL_RATIO = 3.0
"""Each tail segment ends this many times further than it starts."""
_LP_OPTIONS: dict[str, Any] = {"presolve": False}


@dataclass
class _Groups:
    """Per wallet: sell groups (signature, native or not) split into size buckets, and buy
    groups (signature), with what the LP needs of each."""

    cap_acc: np.ndarray
    """per bucket: its account."""
    cap_sig: np.ndarray
    cap_native: np.ndarray
    cap_size: np.ndarray
    """per bucket: its largest position (points)."""
    cap_total: np.ndarray
    cap_k: np.ndarray
    """per bucket: the lowest sell-side impact coefficient of its positions."""
    cap_slots: list[list[tuple[int, float]]]
    cap_count: np.ndarray
    buy_acc: np.ndarray
    buy_sig: np.ndarray
    buy_k: np.ndarray
    buy_slots: list[list[int]]
    buy_count: np.ndarray


def _groups(problem: Problem, sig_id: dict[tuple[int, ...], int]) -> _Groups:
    sig = signatures(problem)
    sells: dict[tuple[int, int, bool], list[tuple[int, float]]] = {}
    buys: dict[tuple[int, int], list[tuple[float, int]]] = {}
    half_k: dict[tuple[int, str], float] = {}

    def k_of(acc: int, asset: str) -> float:
        key = (acc, asset)
        if key not in half_k:
            half_k[key] = problem.impact(acc, asset, asset) / 2
        return half_k[key]

    run = problem.max_run_pp if problem.max_run_pp is not None else math.inf
    for idx, s in enumerate(problem.slots):
        acc = problem.accounts[s.account]
        if acc.locked:
            continue
        g = sig_id[sig[s.asset]]
        cap = min(problem.sell_cap(idx), run)
        if cap > 0:
            sells.setdefault((s.account, g, idx == acc.native_slot), []).append((idx, cap))
        if s.can_buy:
            buys.setdefault((s.account, g), []).append((k_of(s.account, s.asset), idx))
    c_acc, c_sig, c_nat, c_size, c_tot, c_k, c_slots = [], [], [], [], [], [], []
    for (a, g, nat), items in sorted(sells.items()):
        items.sort(key=lambda t: (-t[1], t[0]))
        # positions of at least the account's best swap size are alike; smaller ones cost
        # more gas per point, so they go in buckets halving in size
        acc = problem.accounts[a]
        k_min = 2 * min(k_of(a, problem.slots[i].asset) for i, _ in items)
        top = max(math.sqrt(acc.gas_pp / k_min) if k_min > 0 else math.inf, problem.min_pp)
        buckets: dict[int, list[tuple[int, float]]] = {}
        for idx, cap in items:
            b = 0 if cap >= top else min(_BUCKETS - 1, 1 + math.floor(math.log2(top / cap)))
            buckets.setdefault(b, []).append((idx, cap))
        for b in sorted(buckets):
            members = buckets[b]
            c_acc.append(a)
            c_sig.append(g)
            c_nat.append(nat)
            c_size.append(members[0][1])
            c_tot.append(sum(c for _, c in members))
            c_k.append(min(k_of(a, problem.slots[i].asset) for i, _ in members))
            c_slots.append(members)
    b_acc, b_sig, b_k, b_slots = [], [], [], []
    for (a, g), toks in sorted(buys.items()):
        toks.sort()
        b_acc.append(a)
        b_sig.append(g)
        b_k.append(toks[0][0])
        b_slots.append([i for _, i in toks])
    return _Groups(
        np.array(c_acc, dtype=np.int64),
        np.array(c_sig, dtype=np.int64),
        np.array(c_nat, dtype=bool),
        np.array(c_size, dtype=float),
        np.array(c_tot, dtype=float),
        np.array(c_k, dtype=float),
        c_slots,
        np.array([len(x) for x in c_slots], dtype=float),
        np.array(b_acc, dtype=np.int64),
        np.array(b_sig, dtype=np.int64),
        np.array(b_k, dtype=float),
        b_slots,
        np.array([len(x) for x in b_slots], dtype=float),
    )


def solve(problem: Problem) -> Solution:
    """The aggregated LP by column generation, then swaps per wallet (see the module)."""
    sig = signatures(problem)
    sig_list = sorted(set(sig.values()))
    sig_id = {s: n for n, s in enumerate(sig_list)}
    gr = _groups(problem, sig_id)
    n_rows = len(problem.rows)
    if not len(gr.cap_acc) or not len(gr.buy_acc):
        return Solution([], "no candidate trades", 0, 0, 0.0, "decomposed")
    # every route: (bucket, buy group) of one account, different signatures
    by_acc: dict[int, list[int]] = {}
    for h, a in enumerate(gr.buy_acc):
        by_acc.setdefault(int(a), []).append(h)
    col_c, col_h = [], []
    for c, a in enumerate(gr.cap_acc):
        hs = by_acc.get(int(a), [])
        col_c.extend([c] * len(hs))
        col_h.extend(hs)
    cc = np.array(col_c, dtype=np.int64)
    ch = np.array(col_h, dtype=np.int64)
    keep = gr.cap_sig[cc] != gr.buy_sig[ch]
    cc, ch = cc[keep], ch[keep]
    if not len(cc):
        return Solution([], "no candidate trades", 0, 0, 0.0, "decomposed")
    r_acc = gr.cap_acc[cc]
    r_fee = np.array([a.fee for a in problem.accounts])[r_acc]
    r_gas = np.array([a.gas_pp for a in problem.accounts])[r_acc]
    r_k = gr.cap_k[cc] + gr.buy_k[ch]
    m = problem.min_pp
    top = gr.cap_size[cc]
    if problem.max_trade_pp is not None:
        top = np.minimum(top, problem.max_trade_pp * (1 - 1e-7))
    best = np.sqrt(r_gas / np.maximum(r_k, 1e-300))
    r_size = np.maximum(np.minimum(np.maximum(best, m), top), 1e-12)
    # segment 0: up to one swap of the best size per distinct pair (each position at most
    # its size), at the least cost per point; beyond, the same N swaps larger: marginal
    # impact 2 k x / N (the tangent at each segment's start: a lower bound)
    knee = np.zeros(len(cc))
    by_c = np.argsort(cc, kind="stable")
    cuts = np.flatnonzero(np.diff(cc[by_c])) + 1
    for at in np.split(by_c, cuts):
        c = int(cc[at[0]])
        caps = np.array([x for _, x in reversed(gr.cap_slots[c])])  # ascending
        csum = np.concatenate([[0.0], np.cumsum(caps)])
        t = gr.buy_count[ch[at]] * r_size[at]
        below = np.searchsorted(caps, t)
        knee[at] = csum[below] + t * (len(caps) - below)
    r_pairs = np.maximum(knee / r_size, 1.0)
    seg_route, seg_rate, seg_out, seg_gas, seg_width = [], [], [], [], []
    cap_r = gr.cap_total[cc]
    for j in range(_TAIL + 1):
        if j == 0:
            sel = np.arange(len(cc))
            slope = r_k * r_size
            gas_u = r_gas / r_size
            width = np.minimum(knee, cap_r)
        else:
            a_j = knee * _TAIL_RATIO ** (j - 1)
            sel = np.flatnonzero(a_j < cap_r)
            if not len(sel):
                break
            a_j = a_j[sel]
            slope = 2 * r_k[sel] * a_j / r_pairs[sel]
            gas_u = np.zeros(len(sel))
            b_j = a_j * _TAIL_RATIO if j < _TAIL else np.full(len(sel), np.inf)
            width = np.minimum(b_j, cap_r[sel]) - a_j
        seg_route.append(sel)
        seg_rate.append(r_fee[sel] + slope + gas_u)
        seg_out.append(1.0 - r_fee[sel] - slope)
        seg_gas.append(gas_u)
        seg_width.append(width)
    route = np.concatenate(seg_route)
    rate = np.concatenate(seg_rate)
    out = np.concatenate(seg_out)
    gas_u = np.concatenate(seg_gas)
    width = np.concatenate(seg_width)
    route_cc, route_ch = cc, ch
    cc, ch = cc[route], ch[route]
    acc_of = gr.cap_acc[cc]
    # rows of each signature (0/1), the native signature of each account
    mem = np.zeros((len(sig_list), max(n_rows, 1)))
    for n, s in enumerate(sig_list):
        mem[n, list(s)] = 1.0
    nat_sig = np.full(len(problem.accounts), -1, dtype=np.int64)
    for s_ in problem.slots:
        acc = problem.accounts[s_.account]
        if s_.asset == acc.native_asset:
            nat_sig[s_.account] = sig_id[sig[s_.asset]]
    has_nat = nat_sig[acc_of] >= 0
    mem_z = np.vstack([mem, np.zeros((1, mem.shape[1]))])
    nat_col_sig = np.where(has_nat, nat_sig[acc_of], len(sig_list))
    c_sig = gr.cap_sig[cc]
    b_sig = gr.buy_sig[ch]
    nat_col = gr.cap_native[cc]
    rows = problem.rows
    lo = np.array([r.lo for r in rows])
    hi = np.array([r.hi for r in rows])
    val = np.array([r.value_pp for r in rows])
    tgt = np.array([r.target for r in rows])
    leaf = np.array([r.leaf for r in rows], dtype=bool)
    n_acc = len(problem.accounts)
    native_cap = np.array([max(a.native_avail_pp, 0.0) for a in problem.accounts])
    run = problem.max_run_pp

    # initial routes: over-weight signature -> under-weight signature
    want = np.where(val < lo, 1.0, np.where(val > hi, -1.0, 0.0))
    desire = mem @ want if n_rows else np.zeros(len(sig_list))
    active = np.flatnonzero((desire[b_sig] > 0) & (desire[c_sig] < 0))
    if not len(active):
        active = np.flatnonzero((desire[b_sig] > 0) | (desire[c_sig] < 0))
    if not len(active):
        active = np.arange(min(len(cc), _ADD))
    in_lp = np.zeros(len(cc), dtype=bool)
    in_lp[active] = True
    leaf_idx = np.flatnonzero(leaf)
    res = None
    converged = False
    for _ in range(_ROUNDS):
        cols = np.flatnonzero(in_lp)
        res, lay = _lp(
            cols,
            cc,
            rate,
            out,
            gas_u,
            nat_col,
            c_sig,
            b_sig,
            nat_col_sig,
            mem_z,
            acc_of,
            gr.cap_total,
            native_cap,
            run,
            lo,
            hi,
            val,
            tgt,
            leaf_idx,
            n_acc,
            width,
        )
        if res.x is None:
            break
        y_ub = res.ineqlin.marginals
        y_eq = res.eqlin.marginals
        y_cap = y_ub[lay["cap"] : lay["cap"] + len(gr.cap_total)]
        y_nat = y_ub[lay["nat"] : lay["nat"] + n_acc]
        y_run = y_ub[lay["run"]] if run is not None else 0.0
        y_lo = y_ub[lay["lo"] : lay["lo"] + n_rows]
        y_hi = y_ub[lay["hi"] : lay["hi"] + n_rows]
        w = y_hi - y_lo
        if len(leaf_idx):
            y_dlo = y_ub[lay["dlo"] : lay["dlo"] + len(leaf_idx)]
            y_dhi = y_ub[lay["dhi"] : lay["dhi"] + len(leaf_idx)]
            w = w.copy()
            w[leaf_idx] += y_dlo - y_dhi
        wz = np.concatenate([mem @ w, [0.0]]) if n_rows else np.zeros(len(sig_list) + 1)
        reduced = (
            rate * (1.0 - y_eq[0])
            - y_cap[cc]
            - y_nat[acc_of] * (gas_u + nat_col)
            - y_run
            - (out * wz[b_sig] - wz[c_sig] - gas_u * wz[nat_col_sig])
        )
        reduced[in_lp] = 0.0
        neg = np.flatnonzero(reduced < -1e-9)
        if not len(neg):
            converged = True
            break
        if len(neg) > _ADD:
            neg = neg[np.argsort(reduced[neg], kind="stable")[:_ADD]]
        in_lp[neg] = True
    if res is None or res.x is None:
        msg = "no solution" if res is None else res.message
        return Solution([], f"decomposed LP found no solution: {msg}", 0, 0, None, "decomposed")
    cols = np.flatnonzero(in_lp)
    flows = res.x[: len(cols)]
    bound_cost = float(res.x[len(cols)])
    per_route = np.zeros(len(route_cc))
    np.add.at(per_route, route[cols], flows)
    used = np.flatnonzero(per_route > 1e-12)
    trades = _swaps(problem, gr, route_cc[used], route_ch[used], per_route[used], r_size[used])
    cost = _model_cost(problem, trades)
    status = "optimal" if res.status == 0 else f"stopped early ({res.message})"
    if not converged:
        status = f"{status}; column generation stopped after {_ROUNDS} rounds"
    return Solution(
        trades,
        status,
        len(cols),
        len(trades),
        cost,
        "decomposed",
        float(res.fun),
        cost,
        bound_cost,
    )


def _model_cost(problem: Problem, trades: list[PairTrade]) -> float:
    """The model cost of ``trades``: fee, impact ``k * x**2`` and gas per swap."""
    if not trades:
        return 0.0
    k_of: dict[tuple[int, str, str], float] = {}
    fee, k, gas, x = [], [], [], []
    for t in trades:
        slot = problem.slots[t.sell]
        key = (slot.account, slot.asset, problem.slots[t.buy].asset)
        kk = k_of.get(key)
        if kk is None:
            kk = k_of[key] = problem.impact(*key)
        acc = problem.accounts[slot.account]
        fee.append(acc.fee)
        gas.append(acc.gas_pp)
        k.append(kk)
        x.append(t.x_pp)
    xa = np.array(x)
    return float(np.sum(np.array(fee) * xa + np.array(k) * xa**2 + np.array(gas)))


def _expand(
    indptr: np.ndarray, indices: np.ndarray, sigs: np.ndarray, vals: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column ``q``, one entry per row of signature ``sigs[q]`` with value ``vals[q]``:
    (row, column, value) triplets."""
    counts = indptr[sigs + 1] - indptr[sigs]
    total = int(counts.sum())
    col = np.repeat(np.arange(len(sigs)), counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    row = indices[np.repeat(indptr[sigs], counts) + np.arange(total) - first]
    return row, col, np.repeat(vals, counts)


def _lp(
    cols: np.ndarray,
    cc: np.ndarray,
    rate: np.ndarray,
    out: np.ndarray,
    gas_u: np.ndarray,
    nat_col: np.ndarray,
    c_sig: np.ndarray,
    b_sig: np.ndarray,
    nat_col_sig: np.ndarray,
    mem_z: np.ndarray,
    acc_of: np.ndarray,
    cap_total: np.ndarray,
    native_cap: np.ndarray,
    run: float | None,
    lo: np.ndarray,
    hi: np.ndarray,
    val: np.ndarray,
    tgt: np.ndarray,
    leaf_idx: np.ndarray,
    n_acc: int,
    width: np.ndarray,
) -> tuple[Any, dict[str, int]]:
    """The route LP over ``cols``: variables f (per route), cost, band slacks (lo, hi),
    distance from target of leaf rows, assembled once as sparse triplets. Returns linprog's
    result and where each block of inequality rows starts."""
    n = len(cols)
    n_rows = len(lo)
    n_leaf = len(leaf_idx)
    cost_v = n
    slo_v = n + 1
    shi_v = slo_v + n_rows
    dev_v = shi_v + n_rows
    n_var = dev_v + n_leaf
    mem = csr_array(mem_z[:, :n_rows]) if n_rows else csr_array((len(mem_z), 0))
    ip, ix = mem.indptr, mem.indices
    # band effect of each route on each row: bought after costs, sold, gas from the native coin
    parts = [
        _expand(ip, ix, b_sig[cols], out[cols]),
        _expand(ip, ix, c_sig[cols], -np.ones(n)),
        _expand(ip, ix, nat_col_sig[cols], -gas_u[cols]),
    ]
    b_row = np.concatenate([p[0] for p in parts])
    b_col = np.concatenate([p[1] for p in parts])
    b_val = np.concatenate([p[2] for p in parts])
    rr: list[np.ndarray] = []
    cl: list[np.ndarray] = []
    vv: list[np.ndarray] = []
    rhs: list[np.ndarray] = []
    lay: dict[str, int] = {}
    at = 0

    def block(rows_: np.ndarray, cols_: np.ndarray, vals_: np.ndarray, b: np.ndarray) -> None:
        nonlocal at
        rr.append(rows_ + at)
        cl.append(cols_)
        vv.append(vals_)
        rhs.append(b)
        at += len(b)

    q = np.arange(n)
    lay["cap"] = at
    block(cc[cols], q, np.ones(n), cap_total)
    lay["nat"] = at
    block(acc_of[cols], q, gas_u[cols] + nat_col[cols], native_cap)
    lay["run"] = at
    if run is not None:
        block(np.zeros(n, dtype=np.int64), q, np.ones(n), np.array([run]))
    r_idx = np.arange(n_rows)
    lay["lo"] = at
    block(
        np.concatenate([b_row, r_idx, r_idx]),
        np.concatenate([b_col, np.full(n_rows, cost_v), slo_v + r_idx]),
        np.concatenate([-b_val, -lo / 100, -np.ones(n_rows)]),
        -(lo - val),
    )
    lay["hi"] = at
    block(
        np.concatenate([b_row, r_idx, r_idx]),
        np.concatenate([b_col, np.full(n_rows, cost_v), shi_v + r_idx]),
        np.concatenate([b_val, hi / 100, -np.ones(n_rows)]),
        hi - val,
    )
    if n_leaf:
        leaf_pos = np.full(n_rows, -1)
        leaf_pos[leaf_idx] = np.arange(n_leaf)
        sel = leaf_pos[b_row] >= 0
        l_row, l_col, l_val = leaf_pos[b_row[sel]], b_col[sel], b_val[sel]
        l_idx = np.arange(n_leaf)
        gap = (tgt - val)[leaf_idx]
        lay["dlo"] = at
        block(
            np.concatenate([l_row, l_idx]),
            np.concatenate([l_col, dev_v + l_idx]),
            np.concatenate([l_val, -np.ones(n_leaf)]),
            gap,
        )
        lay["dhi"] = at
        block(
            np.concatenate([l_row, l_idx]),
            np.concatenate([l_col, dev_v + l_idx]),
            np.concatenate([-l_val, -np.ones(n_leaf)]),
            -gap,
        )
    a_ub = csr_array(
        (np.concatenate(vv), (np.concatenate(rr), np.concatenate(cl))), shape=(at, n_var)
    )
    r = rate[cols]
    eq = csr_array(
        (np.concatenate([r, [-1.0]]), (np.zeros(n + 1, dtype=np.int64), np.append(q, cost_v))),
        shape=(1, n_var),
    )
    c = np.concatenate([r, [0.0], np.full(2 * n_rows, BIG), np.full(n_leaf, EPS_DEV)])
    ub = np.concatenate([width[cols], np.full(n_var - n, np.inf)])
    res = linprog(
        c,
        A_ub=a_ub,
        b_ub=np.concatenate(rhs),
        A_eq=eq,
        b_eq=[0.0],
        bounds=np.column_stack([np.zeros(n_var), ub]),
        method="highs-ds",
        options=_LP_OPTIONS,
    )
    return res, lay


def _swaps(
    problem: Problem,
    gr: _Groups,
    cc: np.ndarray,
    ch: np.ndarray,
    flows: np.ndarray,
    size: np.ndarray,
) -> list[PairTrade]:
    """Each route's flow spread over the bucket's positions (what is left of them) as evenly
    as their sizes allow (water-filling: at most ``N * level`` from a position that can swap
    into ``N`` tokens), then per position as swaps of about the route's best size into
    distinct tokens of the bought group, deepest first."""
    m = problem.min_pp
    left: dict[int, float] = {}
    amount: dict[tuple[int, int], float] = {}
    order = sorted(range(len(flows)), key=lambda q: (-flows[q], int(cc[q]), int(ch[q])))
    for q in order:
        f = float(flows[q])
        if f < m * (1 - 1e-9):
            continue
        c, h = int(cc[q]), int(ch[q])
        s = float(size[q])
        tokens = gr.buy_slots[h]
        idxs = [i for i, _ in gr.cap_slots[c]]
        rem = np.array([left.get(i, cap) for i, cap in gr.cap_slots[c]])
        n_tok = np.array(
            [
                sum(1 for t in tokens if problem.slots[t].asset != problem.slots[i].asset)
                for i in idxs
            ],
            dtype=float,
        )
        room = np.where(n_tok > 0, rem, 0.0)
        if room.sum() <= f:
            take = room
        else:  # the level l with sum(min(room, n_tok * l)) = f
            ratio = np.where(n_tok > 0, room / np.maximum(n_tok, 1), np.inf)
            order_r = np.argsort(ratio, kind="stable")
            done, per = 0.0, float(n_tok.sum())
            level = 0.0
            for r_i in order_r:
                step = (ratio[r_i] - (level if level else 0.0)) * per
                if done + step >= f or not np.isfinite(ratio[r_i]):
                    level += (f - done) / per if per > 0 else 0.0
                    break
                done += step
                level = ratio[r_i]
                per -= n_tok[r_i]
            take = np.minimum(room, n_tok * level)
        for pos, i in enumerate(idxs):
            y = float(take[pos])
            if y < m * (1 - 1e-9):
                continue
            usable = [t for t in tokens if problem.slots[t].asset != problem.slots[i].asset]
            n = max(1, min(math.floor(y / m + 1e-9), round(y / s), len(usable)))
            for t in usable[:n]:
                amount[(i, t)] = amount.get((i, t), 0.0) + y / n
            left[i] = float(rem[pos]) - y
    return [PairTrade(i, j, x) for (i, j), x in sorted(amount.items())]
