"""The source blog's "best match first": take the cheapest free (tile, photo) pair, repeat.

Equivalent to sorting all pairs by cost once and scanning them, but without sorting the
whole matrix: pairs are taken in bands of increasing cost (thresholds estimated from a
sample of the still-free pairs), and each band is sorted and scanned on its own. Ties
are broken by (tile, photo) index, exactly as a stable sort of the whole matrix would.
"""

from __future__ import annotations

import time

import numpy as np

from mosaic.assign.result import Assignment, check_problem, evaluate

_SAMPLE = 200_000
_BAND_FACTOR = 4


def _band_threshold(ranked: np.ndarray, rows: np.ndarray, cols: np.ndarray, wanted: int,
                    rng: np.random.Generator) -> float:
    """A cost below which about ``wanted`` of the free pairs lie (estimated by sampling)."""
    total = rows.size * cols.size
    if wanted >= total:
        return float("inf")
    sample = ranked[rng.choice(rows, _SAMPLE), rng.choice(cols, _SAMPLE)]
    quantile = min(1.0, wanted / total)
    return float(np.quantile(sample, quantile))


def _scan_band(ranked: np.ndarray, rows: np.ndarray, cols: np.ndarray, low: float,
               high: float, photo_of_tile: np.ndarray, photo_free: np.ndarray) -> None:
    """Assign, cheapest first, the free pairs with ``low < cost <= high``."""
    block = ranked[np.ix_(rows, cols)]
    inside = (block > low) & (block <= high)
    row_pos, col_pos = np.nonzero(inside)
    values = block[row_pos, col_pos]
    tile_idx, photo_idx = rows[row_pos], cols[col_pos]
    order = np.lexsort((photo_idx, tile_idx, values))
    for t, p in zip(tile_idx[order].tolist(), photo_idx[order].tolist(), strict=True):
        if photo_of_tile[t] < 0 and photo_free[p]:
            photo_of_tile[t] = p
            photo_free[p] = False


def assign_greedy(cost: np.ndarray, weights: np.ndarray | None = None) -> Assignment:
    """Fill tiles with the best remaining (tile, photo) pair, repeatedly.

    Parameters
    ----------
    cost : ndarray, shape (T, P)
        Cost of photo p on tile t, T <= P.
    weights : ndarray, shape (T,), optional
        Tile importance; pairs are ranked by ``weight * cost``.

    Returns
    -------
    Assignment
        Status "feasible": greedy gives no optimality guarantee.
    """
    w = check_problem(cost, weights)
    started = time.perf_counter()
    tiles, photos = cost.shape
    ranked = cost if weights is None else cost * w[:, None].astype(cost.dtype)
    photo_of_tile = np.full(tiles, -1, dtype=np.int64)
    photo_free = np.ones(photos, dtype=bool)
    rng = np.random.default_rng(0)
    low = -np.inf
    while True:
        rows = np.flatnonzero(photo_of_tile < 0)
        if rows.size == 0:
            break
        cols = np.flatnonzero(photo_free)
        high = _band_threshold(ranked, rows, cols, _BAND_FACTOR * max(rows.size, 1024), rng)
        _scan_band(ranked, rows, cols, low, high, photo_of_tile, photo_free)
        low = high
    seconds = time.perf_counter() - started
    return evaluate(cost, photo_of_tile, weights, "greedy", seconds, "feasible",
                    message="best match first")
