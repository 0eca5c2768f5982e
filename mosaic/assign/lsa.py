"""The exact solver without its C extension: scipy's ``linear_sum_assignment``, with duals.

Used by :mod:`mosaic.assign.exact` when :mod:`mosaic.assign._lapcore` is not built (a
plain checkout, a worker running from another checkout, a machine without a compiler).
The optimum is the same, found more slowly (scipy runs one shortest augmenting path per
row from zero prices). scipy returns no dual prices, so they are computed from its
optimal assignment ``x``: ``p`` are the shortest-path distances in the graph with an arc
``k -> x(i)`` of length ``w_i c_ik - w_i c_ix(i)`` for every row ``i`` and column ``k``,
from the unused columns (or from every column when none is unused). Optimality of ``x``
means no negative cycle, so Bellman-Ford relaxations converge; at convergence every row
is on a cheapest column at these prices and every unused column at the lowest price,
the conditions the C solver's prices meet, so the dual lower bound is tight.
"""

from __future__ import annotations

import logging

import numpy as np

from mosaic.errors import warn_once

logger = logging.getLogger("mosaic.assign")

#: Entries of the row blocks the price and bound passes work on (bounds temporaries).
BLOCK_ENTRIES = 2**22
#: A price update smaller than this share of the cost range counts as converged (a
#: cycle of zero length can lower prices by rounding, one unit in the last place a turn).
PRICE_TOLERANCE = 1e-15


def warn_not_built(error: BaseException | None) -> None:
    """Say once per process that the C solver is missing and how to build it."""
    reason = f" ({error})" if error is not None else ""
    warn_once(logger, "mosaic.assign._lapcore",
              f"the C solver mosaic.assign._lapcore is not built{reason}: using scipy's "
              "linear_sum_assignment instead (same optimum, much slower); build it with "
              "`pip install -e .` or `make setup` (needs a C compiler)")


def _row_blocks(rows: int, cols: int) -> list[slice]:
    step = max(1, BLOCK_ENTRIES // max(1, cols))
    return [slice(start, min(start + step, rows)) for start in range(0, rows, step)]


def row_minima(matrix: np.ndarray, scale: np.ndarray, prices: np.ndarray) -> np.ndarray:
    """``min_j (w_i c_ij + p_j)`` of every row, in float64, block by block."""
    out = np.empty(matrix.shape[0])
    for rows in _row_blocks(*matrix.shape):
        values = np.multiply(matrix[rows], scale[rows, None], dtype=np.float64)
        values += prices
        out[rows] = values.min(axis=1)
    return out


def lower_bound(matrix: np.ndarray, scale: np.ndarray, prices: np.ndarray) -> float:
    """``sum_i min_j (w_i c_ij + p_j) + (P - T) min_j p_j - sum_j p_j``, valid for any prices.

    The same formula as the C extension's ``lower_bound`` (computed in numpy).
    """
    rows, cols = matrix.shape
    return float(row_minima(matrix, scale, prices).sum() + (cols - rows) * prices.min()
                 - prices.sum())


def column_prices(weighted: np.ndarray, photo_of_tile: np.ndarray) -> np.ndarray:
    """Dual column prices of an optimal assignment of the (weighted) matrix.

    Parameters
    ----------
    weighted : ndarray of float64, shape (T, P)
        ``w_i c_ij``.
    photo_of_tile : ndarray of int64, shape (T,)
        An optimal assignment.

    Returns
    -------
    ndarray of float64, shape (P,)
        Prices at which every row's column is a cheapest one (``w_i c_ij + p_j``) and every
        unused column has the lowest price (0).
    """
    rows, cols = weighted.shape
    own = weighted[np.arange(rows), photo_of_tile]
    used = np.zeros(cols, dtype=bool)
    used[photo_of_tile] = True
    prices = np.where(used, np.inf, 0.0) if cols > rows else np.zeros(cols)
    unit = np.ones(rows)
    tolerance = PRICE_TOLERANCE * max(1.0, float(np.abs(weighted).max()))
    for _ in range(cols + 1):  # at most P rounds when there is no negative cycle
        # One Bellman-Ford round for all arcs at once: p_x(i) <= min_k (w c_ik + p_k) - w c_ix(i).
        lowered = row_minima(weighted, unit, prices) - own
        current = prices[photo_of_tile]
        if not (lowered < current - tolerance).any():
            break
        prices[photo_of_tile] = np.minimum(current, lowered)
    return prices


def solve(matrix: np.ndarray, scale: np.ndarray, with_prices: bool = True
          ) -> tuple[np.ndarray, np.ndarray]:
    """Optimal column of each row of ``scale[:, None] * matrix`` and (if asked) dual prices.

    Parameters
    ----------
    matrix : ndarray, shape (T, P), 2 <= P, 1 <= T <= P
        Finite costs.
    scale : ndarray of float64, shape (T,)
        Row weights.
    with_prices : bool
        Compute the prices (one pass over the matrix per Bellman-Ford round); zeros if not.

    Returns
    -------
    photo_of_tile : ndarray of int64, shape (T,)
    prices : ndarray of float64, shape (P,)
    """
    from scipy.optimize import linear_sum_assignment  # 0.3 s to import: only when needed

    weighted = np.multiply(matrix, scale[:, None], dtype=np.float64)
    rows, cols = linear_sum_assignment(weighted)
    photo_of_tile = np.empty(matrix.shape[0], dtype=np.int64)
    photo_of_tile[rows] = cols
    if not with_prices:
        return photo_of_tile, np.zeros(matrix.shape[1])
    return photo_of_tile, column_prices(weighted, photo_of_tile)
