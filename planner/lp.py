"""A small builder of sparse linear and mixed-integer programs for HiGHS (scipy ``milp``).

Variables and constraint rows are collected as numpy chunks of sparse triplets and assembled
once. No time limit is ever passed: a time limit would make the answer depend on the machine's
load, and the planner must be deterministic (node limits bound the MILP instead).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, OptimizeResult, linprog, milp
from scipy.sparse import csc_array, csr_array, vstack

try:  # NOTE: SciPy's own HiGHS bindings (private): linprog without its per-column loop
    from scipy.optimize._highspy import _core as _highs
    from scipy.optimize._linprog_highs import _highs_to_scipy_status_message as _status_message
    from scipy.optimize._linprog_util import _check_result
except ImportError:  # pragma: no cover - other SciPy layouts: linprog itself
    _highs = None


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
        """The program as a pure LP (dual simplex): the same answer as ``solve(False)`` without
        milp's per-column integrality list (large LPs: ~3 us per column saved)."""
        cost, a = self._matrix()
        lo, hi = np.concatenate(self._rlo), np.concatenate(self._rhi)
        eq = lo == hi
        up = ~eq & np.isfinite(hi)
        down = ~eq & np.isfinite(lo)
        a_ub = vstack([a[up], -a[down]], format="csr")
        b_ub = np.concatenate([hi[up], -lo[down]])
        bounds = np.column_stack([np.concatenate(self._lb), np.concatenate(self._ub)])
        if _highs is not None:
            try:
                return _dual_simplex(cost, a_ub, b_ub, a[eq], hi[eq], bounds)
            except (AttributeError, TypeError):  # pragma: no cover - a SciPy whose private
                pass  # bindings changed shape: the public wrapper, same answer, a little slower
        return linprog_ds(cost, a_ub, b_ub, a[eq], hi[eq], bounds)

    def solve(
        self,
        integer: bool,
        options: dict[str, object] | None = None,
        start: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> Any:
        """The program as a MILP (``integer``) or LP through ``milp``. ``start``: (columns,
        values) of a known solution's integer variables, a MIP start (HiGHS completes the rest
        with an LP); it changes only where the search begins, not what ends it."""
        cost, a = self._matrix()
        if integer and start is not None and _highs is not None:
            try:
                return _mip_from(self, cost, a, options or {}, start)
            except (AttributeError, TypeError):  # pragma: no cover - a SciPy whose private
                pass  # bindings changed shape: milp without the start, the same model
        return milp(
            cost,
            integrality=np.concatenate(self._int) if integer else None,
            bounds=Bounds(np.concatenate(self._lb), np.concatenate(self._ub)),
            constraints=LinearConstraint(a, np.concatenate(self._rlo), np.concatenate(self._rhi)),
            # NOTE: presolve off: on these sparse programs HiGHS's presolve costs more than it
            # saves (bench/planner.py: 3x50x10 ~53 -> ~43 ms; the exact MILP ~3x faster).
            options={"presolve": False, **(options or {})},
        )


def linprog_ds(
    cost: np.ndarray,
    a_ub: csr_array,
    b_ub: np.ndarray,
    a_eq: csr_array,
    b_eq: np.ndarray,
    bounds: np.ndarray,
) -> Any:
    """``linprog(method="highs-ds")`` as ``Builder.solve_lp`` calls it (what ``_dual_simplex``
    must equal, to the last bit)."""
    return linprog(
        cost,
        A_ub=a_ub,
        b_ub=b_ub,
        A_eq=a_eq,
        b_eq=b_eq,
        bounds=bounds,
        method="highs-ds",
        # NOTE: presolve on here (unlike the MILP): the sizes LP of a dense plan solves in
        # about half the time with it (bench/planner.py, 45,000 positions: ~1.5 -> ~0.7 s)
        options={"presolve": True},
    )


def _dual_simplex(
    cost: np.ndarray,
    a_ub: csr_array,
    b_ub: np.ndarray,
    a_eq: csr_array,
    b_eq: np.ndarray,
    bounds: np.ndarray,
) -> Any:
    """``linprog_ds`` straight through SciPy's HiGHS bindings: the same model, options and
    checks, without the wrapper's per-column Python loop over the basis (bound marginals the
    planner never reads: ~3 ms per LP of a 3 x 50 x 10 plan, ~20-70 ms at 45,000 positions).
    ``tests/planner/test_fast_paths.py`` holds it to ``linprog_ds``, bit for bit."""
    assert _highs is not None
    n_ub = len(b_ub)
    lhs = np.concatenate((np.full(n_ub, -np.inf), b_eq))
    rhs = _finite(np.concatenate((b_ub, b_eq)))
    lb, ub = bounds.T.copy()
    lp = _highs_lp(cost, vstack((a_ub, a_eq)), lb, ub, lhs, rhs)
    h = _highs._Highs()
    opts = _highs.HighsOptions()
    # what linprog(method="highs-ds", options={"presolve": True}) sets
    opts.presolve = "on"
    opts.solver = "simplex"
    opts.highs_debug_level = _highs.HighsDebugLevel.kHighsDebugLevelNone
    opts.log_to_console = False
    opts.output_flag = False
    opts.simplex_strategy = _highs.simplex_constants.SimplexStrategy.kSimplexStrategyDual
    h.passOptions(opts)
    h.passModel(lp)
    h.run()
    status = h.getModelStatus()
    message = h.modelStatusToString(status)
    x = fun = slack = con = None
    info = h.getInfo()
    if status == _highs.HighsModelStatus.kOptimal:
        solution = h.getSolution()
        x = np.array(solution.col_value)
        fun = info.objective_function_value
        row = rhs - solution.row_value
        slack, con = np.array(row[:n_ub]), np.array(row[n_ub:])
    else:
        primal = h.solutionStatusToString(info.primal_solution_status)
        message = f"model_status is {message}; primal_status is {primal}"
    code, message = _status_message(status, message)
    code, message = _check_result(x, fun, code, slack, con, bounds, 1e-9, message, None)
    return OptimizeResult(x=x, fun=fun, status=code, message=message, success=code == 0)


def _mip_from(
    b: Builder,
    cost: np.ndarray,
    a: csr_array,
    options: dict[str, object],
    start: tuple[np.ndarray, np.ndarray],
) -> Any:
    """``Builder.solve(True, options)`` straight through SciPy's HiGHS bindings, with a MIP
    start (``milp`` takes none): the same model and options (presolve off; ``node_limit``,
    ``mip_rel_gap``), the same fields read back."""
    assert _highs is not None
    lp = _highs_lp(
        cost,
        a,
        np.concatenate(b._lb),
        np.concatenate(b._ub),
        np.concatenate(b._rlo),
        np.concatenate(b._rhi),
    )
    kinds = (_highs.HighsVarType.kContinuous, _highs.HighsVarType.kInteger)
    lp.integrality_ = [kinds[int(v)] for v in np.concatenate(b._int)]
    h = _highs._Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("presolve", "off")
    if "node_limit" in options:
        h.setOptionValue("mip_max_nodes", int(options["node_limit"]))  # type: ignore[call-overload]
    if "mip_rel_gap" in options:
        h.setOptionValue("mip_rel_gap", float(options["mip_rel_gap"]))  # type: ignore[arg-type]
    h.passModel(lp)
    cols, values = start
    h.setSolution(len(cols), np.asarray(cols, dtype=np.int32), np.asarray(values, np.float64))
    h.run()
    status = h.getModelStatus()
    info = h.getInfo()
    feasible = info.primal_solution_status == _highs.SolutionStatus.kSolutionStatusFeasible
    optimal = status == _highs.HighsModelStatus.kOptimal
    return OptimizeResult(
        x=np.array(h.getSolution().col_value) if feasible else None,
        fun=info.objective_function_value if feasible else None,
        status=0 if optimal else 1,
        message=h.modelStatusToString(status),
        success=optimal,
        mip_dual_bound=info.mip_dual_bound,
        mip_node_count=info.mip_node_count,
    )


def _highs_lp(
    cost: np.ndarray,
    a: Any,
    col_lo: np.ndarray,
    col_hi: np.ndarray,
    row_lo: np.ndarray,
    row_hi: np.ndarray,
) -> Any:
    """The model as a ``HighsLp`` (column-wise matrix, infinite bounds as HiGHS's own)."""
    assert _highs is not None
    csc = csc_array(a)
    lp = _highs.HighsLp()
    lp.num_col_ = len(cost)
    lp.num_row_ = len(row_lo)
    lp.a_matrix_.num_col_ = len(cost)
    lp.a_matrix_.num_row_ = len(row_lo)
    lp.a_matrix_.format_ = _highs.MatrixFormat.kColwise
    lp.col_cost_ = np.asarray(cost, dtype=np.float64)
    lp.col_lower_ = _finite(col_lo)
    lp.col_upper_ = _finite(col_hi)
    lp.row_lower_ = _finite(row_lo)
    lp.row_upper_ = _finite(row_hi)
    lp.a_matrix_.start_ = csc.indptr
    lp.a_matrix_.index_ = csc.indices
    lp.a_matrix_.value_ = csc.data
    return lp


def _finite(x: np.ndarray) -> np.ndarray:
    """Infinite bounds as HiGHS's own infinity, as SciPy passes them."""
    infs = np.isinf(x)
    x[infs] = np.sign(x[infs]) * _highs.kHighsInf
    return x
