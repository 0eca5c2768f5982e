"""The source blog's "best match first": a global sort of all pairs, then one scan."""

from __future__ import annotations

import time

import numpy as np

from mosaic.assign.result import Assignment, check_problem, evaluate

_CHUNK = 1 << 16


def assign_greedy(cost: np.ndarray, weights: np.ndarray | None = None) -> Assignment:
    """Fill tiles with the best remaining (tile, photo) pair, repeatedly.

    All pairs are sorted once by (weighted) cost; scanning them in order, a pair is
    taken when both its tile and its photo are still free.

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
    order = np.argsort(ranked, axis=None, kind="stable")
    tile_idx, photo_idx = np.divmod(order, photos)
    photo_of_tile = np.full(tiles, -1, dtype=np.int64)
    tile_free = np.ones(tiles, dtype=bool)
    photo_free = np.ones(photos, dtype=bool)
    filled = 0
    for start in range(0, order.size, _CHUNK):
        chunk = order[start:start + _CHUNK]
        tile_idx, photo_idx = np.divmod(chunk, photos)
        open_pairs = tile_free[tile_idx] & photo_free[photo_idx]
        for t, p in zip(tile_idx[open_pairs].tolist(), photo_idx[open_pairs].tolist(), strict=True):
            if tile_free[t] and photo_free[p]:
                photo_of_tile[t] = p
                tile_free[t] = photo_free[p] = False
                filled += 1
        if filled == tiles:
            break
    seconds = time.perf_counter() - started
    return evaluate(cost, photo_of_tile, weights, "greedy", seconds, "feasible",
                    message="best match first")
