"""The optimal assignment: every tile one photo, no photo twice, minimum total cost."""

from __future__ import annotations

import time

import lap
import numpy as np

from mosaic.assign.result import Assignment, check_problem, evaluate


def solve_dense(cost: np.ndarray) -> np.ndarray:
    """Optimal column (photo) for each row (tile) of a dense rectangular cost matrix.

    Uses lapx's Jonker-Volgenant solver (``lapjvs``), which measured faster than
    ``scipy.optimize.linear_sum_assignment`` on real targets.

    Parameters
    ----------
    cost : ndarray, shape (T, P), T <= P

    Returns
    -------
    ndarray of int64, shape (T,)
    """
    matrix = np.ascontiguousarray(cost, dtype=np.float64)
    rows, cols = lap.lapjvs(matrix, return_cost=False, jvx_like=True)
    photo_of_tile = np.empty(cost.shape[0], dtype=np.int64)
    photo_of_tile[np.asarray(rows)] = np.asarray(cols)
    return photo_of_tile


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
        Status "optimal".
    """
    w = check_problem(cost, weights)
    started = time.perf_counter()
    weighted = cost if weights is None else cost * w[:, None]
    photo_of_tile = solve_dense(weighted)
    seconds = time.perf_counter() - started
    return evaluate(cost, photo_of_tile, weights, "optimal", seconds, "optimal", gap=0.0,
                    message="Jonker-Volgenant (lapx lapjvs)")
