"""The optimal assignment: every tile one photo, no photo twice, minimum total cost.

The solver (the C extension :mod:`mosaic.assign._lapcore`) runs an epsilon-scaling
auction with candidate lists to get near-optimal prices fast, then finishes with exact
shortest augmenting paths from those prices, so the result is exactly optimal (up to
float64 rounding). The final prices give a dual lower bound, reported as the gap.

When the extension is not built, every function here falls back to scipy's
``linear_sum_assignment`` (:mod:`mosaic.assign.lsa`: same optimum, slower, prices from
the shortest-path duals) and logs one warning per process saying how to build it.
"""

from __future__ import annotations

import time

import numpy as np

from mosaic.assign import lsa
from mosaic.assign.result import Assignment, check_problem, evaluate
from mosaic.assign.ties import canonical_placement
from mosaic.machine import usable_cpus

try:
    from mosaic.assign import _lapcore
except ImportError as error:  # a plain checkout: the extension is built on install
    _lapcore = None
    _BUILD_ERROR: ImportError | None = error
else:
    _BUILD_ERROR = None

#: First auction epsilon, as a fraction of the (weighted) cost range.
EPS_START = 0.1
#: Factor by which epsilon shrinks from one auction phase to the next.
EPS_FACTOR = 5.0
#: Last auction epsilon, as a fraction of the cost range; exact augmentation follows.
EPS_END = 1e-10
#: Candidate columns remembered per row.
LIST_LENGTH = 16
#: Relative gap under which a solution counts as proven optimal (float rounding).
OPTIMAL_GAP = 1e-9
#: Dummy rows pad the problem to square while spare photos are at most this share of tiles.
DUMMY_SHARE = 0.25
#: Most auction threads used by default (measured on 2 cores; more are untested).
MAX_THREADS = 2


def default_threads() -> int:
    """Auction threads: the usable CPUs, at most :data:`MAX_THREADS`."""
    return max(1, min(MAX_THREADS, usable_cpus()))


def _as_kernel_matrix(cost: np.ndarray) -> np.ndarray:
    """The cost as a C-contiguous float32 or float64 array, copied only when needed."""
    cost = np.asarray(cost)
    dtype = cost.dtype if cost.dtype in (np.float32, np.float64) else np.float64
    return np.ascontiguousarray(cost, dtype=dtype)


def _eps_schedule(low: float, high: float) -> np.ndarray:
    """Decreasing auction epsilons for scaled costs spanning ``[low, high]``."""
    span = high - low
    if span <= 0.0:  # all costs equal: one short phase hands out distinct columns
        return np.array([max(abs(high), 1.0) * EPS_END])
    eps = span * EPS_START
    end = span * EPS_END
    steps = []
    while eps > end:
        steps.append(eps)
        eps /= EPS_FACTOR
    steps.append(end)
    return np.asarray(steps)


def c_solver_built() -> bool:
    """Whether the C extension is available (else the scipy fallback runs)."""
    return _lapcore is not None


def _checked(cost: np.ndarray, weights: np.ndarray | None
             ) -> tuple[np.ndarray, np.ndarray, float, float]:
    """The kernel matrix, the row weights as float64, and the matrix's min and max."""
    matrix = _as_kernel_matrix(cost)
    if matrix.ndim != 2:
        raise ValueError(f"cost must be 2-D, got shape {matrix.shape}")
    rows, cols = matrix.shape
    if rows > cols:
        raise ValueError(f"{rows} rows need {rows} distinct columns; only {cols} given")
    scale = (np.ones(rows) if weights is None
             else np.ascontiguousarray(weights, dtype=np.float64).reshape(rows))
    if rows == 0:
        return matrix, scale, 0.0, 0.0
    low, high = float(matrix.min()), float(matrix.max())
    if not (np.isfinite(low) and np.isfinite(high) and np.isfinite(scale).all()):
        raise ValueError("cost or weights hold NaN or infinite values")
    return matrix, scale, low, high


def _solve(matrix: np.ndarray, scale: np.ndarray, low: float, high: float,
           threads: int | None, dummies: bool | None, with_prices: bool = True
           ) -> tuple[np.ndarray, np.ndarray]:
    """Column of each row and the final prices; needs ``1 <= rows <= cols`` and ``cols >= 2``."""
    rows, cols = matrix.shape
    if _lapcore is None:
        lsa.warn_not_built(_BUILD_ERROR)
        return lsa.solve(matrix, scale, with_prices)
    ends = [w * c for w in (float(scale.min()), float(scale.max())) for c in (low, high)]
    schedule = _eps_schedule(min(ends), max(ends))
    photo_of_tile = np.empty(rows, dtype=np.int64)
    prices = np.empty(cols)
    stats = np.zeros(_lapcore.N_STATS, dtype=np.int64)
    if dummies is None:
        dummies = cols - rows <= DUMMY_SHARE * rows
    _lapcore.solve(matrix, scale, schedule, LIST_LENGTH,
                   default_threads() if threads is None else threads, dummies, photo_of_tile,
                   prices, stats)
    return photo_of_tile, prices


def _lower_bound(matrix: np.ndarray, scale: np.ndarray, prices: np.ndarray) -> float:
    if _lapcore is None:
        return lsa.lower_bound(matrix, scale, prices)
    return _lapcore.lower_bound(matrix, scale, prices)


def solve_dense_with_prices(cost: np.ndarray, weights: np.ndarray | None = None,
                            threads: int | None = None, dummies: bool | None = None
                            ) -> tuple[np.ndarray, np.ndarray]:
    """Optimal column for each row of a rectangular cost matrix, and the dual column prices.

    Takes the same arguments as :func:`solve_dense_with_bound` and raises the same errors.
    Exact ties are not broken here (that could leave a row off its cheapest column at the
    prices): with more than one thread, tied optima may come back in either way.

    Returns
    -------
    photo_of_tile : ndarray of int64, shape (T,)
        Column of each row, all different.
    prices : ndarray of float64, shape (P,)
        Final column prices ``p`` (any offset): every row's column is a cheapest one at
        these prices (``w_i cost[i, x(i)] + p[x(i)] = min_j (w_i cost[i, j] + p[j])``, up
        to rounding) and every unused column is at the lowest price. Zeros when there are
        no rows or a single column.
    """
    matrix, scale, low, high = _checked(cost, weights)
    rows, cols = matrix.shape
    if rows == 0:
        return np.empty(0, dtype=np.int64), np.zeros(cols)
    if cols == 1:
        return np.zeros(1, dtype=np.int64), np.zeros(1)
    return _solve(matrix, scale, low, high, threads, dummies)


def solve_dense_with_bound(cost: np.ndarray, weights: np.ndarray | None = None,
                           threads: int | None = None, dummies: bool | None = None
                           ) -> tuple[np.ndarray, float]:
    """Optimal column for each row of a rectangular cost matrix, and a dual lower bound.

    Minimises ``sum_i w_i * cost[i, x(i)]`` over one-to-one ``x``. The matrix is used in
    place when it is C-contiguous float32 or float64 (otherwise copied once to float64);
    values are combined in float64.

    Parameters
    ----------
    cost : ndarray, shape (T, P), T <= P
        Finite costs.
    weights : ndarray, shape (T,), optional
        Positive row multipliers (1 when not given).
    threads : int, optional
        Auction threads (default :func:`default_threads`). The result does not depend on
        it: exact ties are broken the same way (:func:`mosaic.assign.ties.canonical_placement`).
    dummies : bool, optional
        Pad with P - T zero-cost dummy rows (default: when ``P - T <= DUMMY_SHARE * T``);
        an algorithm choice for speed, the optimum is the same.

    Returns
    -------
    photo_of_tile : ndarray of int64, shape (T,)
        Column of each row, all different.
    lower_bound : float
        ``sum_i min_j (w_i cost[i, j] + p_j) + (P - T) min_j p_j - sum_j p_j`` at the
        final prices ``p``: a proven lower bound on the optimum, equal to it up to rounding.

    Raises
    ------
    ValueError
        Not 2-D, more rows than columns, or non-finite costs or weights.
    """
    matrix, scale, low, high = _checked(cost, weights)
    rows, cols = matrix.shape
    if rows == 0:
        return np.empty(0, dtype=np.int64), 0.0
    if cols == 1:
        return np.zeros(1, dtype=np.int64), float(scale[0] * matrix[0, 0])
    photo_of_tile, prices = _solve(matrix, scale, low, high, threads, dummies)
    return (canonical_placement(matrix, scale, photo_of_tile),
            _lower_bound(matrix, scale, prices))


def solve_dense(cost: np.ndarray, weights: np.ndarray | None = None,
                threads: int | None = None, dummies: bool | None = None) -> np.ndarray:
    """Optimal column (photo) for each row (tile) of a dense rectangular cost matrix.

    Like :func:`solve_dense_with_bound` without the bound (nor, in the scipy fallback,
    the dual prices it needs).

    Parameters
    ----------
    cost : ndarray, shape (T, P), T <= P
    weights : ndarray, shape (T,), optional
    threads : int, optional
    dummies : bool, optional

    Returns
    -------
    ndarray of int64, shape (T,)
    """
    matrix, scale, low, high = _checked(cost, weights)
    rows, cols = matrix.shape
    if rows == 0:
        return np.empty(0, dtype=np.int64)
    if cols == 1:
        return np.zeros(1, dtype=np.int64)
    photo_of_tile = _solve(matrix, scale, low, high, threads, dummies, with_prices=False)[0]
    return canonical_placement(matrix, scale, photo_of_tile)


def relative_gap(objective: float, lower_bound: float) -> float:
    """``(objective - lower_bound) / |objective|``, clipped at 0 (absolute if objective is 0)."""
    slack = max(0.0, objective - lower_bound)
    return slack / abs(objective) if objective != 0.0 else slack


def assign_optimal(cost: np.ndarray, weights: np.ndarray | None = None) -> Assignment:
    """Exact minimum of ``sum_t weight_t * cost[t, photo(t)]`` over one-to-one placements.

    Parameters
    ----------
    cost : ndarray, shape (T, P)
        Cost of photo p on tile t, T <= P.
    weights : ndarray, shape (T,), optional
        Tile importance (1 when not given).

    Returns
    -------
    Assignment
        Status "optimal" with ``gap`` the relative distance to the dual lower bound
        (float rounding only, below :data:`OPTIMAL_GAP`).
    """
    check_problem(cost, weights)
    started = time.perf_counter()
    photo_of_tile, bound = solve_dense_with_bound(cost, weights)
    seconds = time.perf_counter() - started
    how = ("epsilon-scaling auction + exact shortest augmenting paths" if c_solver_built()
           else "scipy linear_sum_assignment (the C solver is not built)")
    result = evaluate(cost, photo_of_tile, weights, "optimal", seconds, "optimal", message=how)
    result.gap = relative_gap(result.objective, bound)
    if result.gap > OPTIMAL_GAP:
        result.status = "feasible"
        result.message += f" (lower bound {bound:.12g} not reached: not proven optimal)"
    return result
