"""A small builder of sparse linear and mixed-integer programs for HiGHS (scipy ``milp``).

Variables and constraint rows are collected as numpy chunks of sparse triplets and assembled
once. No time limit is ever passed: a time limit would make the answer depend on the machine's
load, and the planner must be deterministic (node limits bound the MILP instead).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, linprog, milp
from scipy.sparse import csr_array, vstack


def fill(x: object, k: int) -> np.ndarray:
    """``x`` as a float array of length ``k`` (a scalar is repeated)."""
    a = np.asarray(x, dtype=float).ravel()
    return a if a.size == k else np.full(k, a[0])


class Builder:
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
        self._extra_cost: list[tuple[np.ndarray, np.ndarray]] = []

    def vars(
        self, cost: object, lb: object = 0.0, ub: object = np.inf, integer: bool = False
    ) -> np.ndarray:
        c = np.asarray(cost, dtype=float).ravel()
        k = len(c)
        self._cost.append(c)
        self._lb.append(fill(lb, k))
        self._ub.append(fill(ub, k))
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
        self._rhi.append(fill(hi, k))
        self.m += k

    def row(self, terms: Sequence[tuple[int, float]], lo: float, hi: float) -> None:
        cols = [t[0] for t in terms]
        vals = [t[1] for t in terms]
        self.rows(np.zeros(len(cols), dtype=np.int64), cols, vals, [lo], [hi])

    def add_cost(self, cols: object, deltas: object) -> None:
        """Change the cost of existing variables (applied when the arrays are built)."""
        self._extra_cost.append((np.asarray(cols, dtype=np.int64), np.asarray(deltas, float)))

    def _matrix(self) -> tuple[np.ndarray, csr_array]:
        cost = np.concatenate(self._cost) if self._cost else np.zeros(0)
        for cols, deltas in self._extra_cost:
            np.add.at(cost, cols, deltas)
        a = csr_array(
            (np.concatenate(self._v), (np.concatenate(self._r), np.concatenate(self._c))),
            shape=(self.m, self.n),
        )
        return cost, a

    def solve_lp(self) -> Any:
        """The program as a pure LP (dual simplex), through ``linprog``: the same answer as
        ``solve(False)`` without milp's per-column integrality list (large LPs: ~3 us per
        column saved)."""
        cost, a = self._matrix()
        lo, hi = np.concatenate(self._rlo), np.concatenate(self._rhi)
        eq = lo == hi
        up = ~eq & np.isfinite(hi)
        down = ~eq & np.isfinite(lo)
        a_ub = vstack([a[up], -a[down]], format="csr")
        return linprog(
            cost,
            A_ub=a_ub,
            b_ub=np.concatenate([hi[up], -lo[down]]),
            A_eq=a[eq],
            b_eq=hi[eq],
            bounds=np.column_stack([np.concatenate(self._lb), np.concatenate(self._ub)]),
            method="highs-ds",
            # NOTE: presolve on here (unlike the MILP): the sizes LP of a dense plan solves in
            # about half the time with it (bench/planner.py, 45,000 positions: ~1.5 -> ~0.7 s)
            options={"presolve": True},
        )

    def solve(self, integer: bool, options: dict[str, object] | None = None) -> Any:
        cost, a = self._matrix()
        return milp(
            cost,
            integrality=np.concatenate(self._int) if integer else None,
            bounds=Bounds(np.concatenate(self._lb), np.concatenate(self._ub)),
            constraints=LinearConstraint(a, np.concatenate(self._rlo), np.concatenate(self._rhi)),
            # NOTE: presolve off: on these sparse programs HiGHS's presolve costs more than it
            # saves (bench/planner.py: 3x50x10 ~53 -> ~43 ms; the exact MILP ~3x faster).
            options={"presolve": False, **(options or {})},
        )
