"""Long-range moves for spaced repeats: swap two tiles' photos, or give a tile a spare photo.

The block moves of :mod:`mosaic.assign.spacing` place a block of tiles again against the
rest, so they cannot exchange photos between tiles far apart. Here every tile in turn
takes the best of: swapping photos with any other tile, or taking a photo with uses to
spare, among the moves that keep every copy at least ``D`` tiles from the other copies
of its photo (Chebyshev distance). Each move lowers the weighted total, so the search
ends; it never breaks the rule.
"""

from __future__ import annotations

import time

import numpy as np

#: Seconds the whole search may take, and the smallest gain counted (float rounding).
SWAP_SECONDS = 15.0
SWAP_GAIN = 1e-9
_FAR = np.iinfo(np.int64).max // 4  # "no copy": further than any distance on a grid


def _copies(placement: np.ndarray, photos: int, max_uses: int) -> np.ndarray:
    """``(photos, max_uses)`` tile indices of each photo's copies, -1 where unused."""
    table = np.full((photos, max_uses), -1, dtype=np.int64)
    order = np.argsort(placement, kind="stable")
    ranks = np.arange(order.size) - np.searchsorted(placement[order], placement[order])
    table[placement[order], ranks] = order
    return table


def _distances(tile: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Chebyshev distance of every tile to ``tile``, with one extra entry for "no copy"."""
    near = np.maximum(np.abs(rows - rows[tile]), np.abs(cols - cols[tile]))
    return np.append(near, _FAR)


def improve_by_swaps(cost: np.ndarray, weights: np.ndarray,
                     positions: tuple[np.ndarray, np.ndarray],
                     max_uses: int, min_distance: int, placement: np.ndarray,
                     seconds: float = SWAP_SECONDS) -> tuple[np.ndarray, float]:
    """``placement`` improved by swaps and spare-photo moves that keep copies apart.

    Parameters
    ----------
    cost : ndarray, shape (T, P)
    weights : ndarray, shape (T,)
    positions : (ndarray, ndarray)
        Row and column of each tile (or of each cell's tile, :meth:`Grid.position`).
    max_uses, min_distance : int
    placement : ndarray of int, shape (T,)
        A placement that keeps the rule (not changed).
    seconds : float
        Time for the whole search.

    Returns
    -------
    placement : ndarray of int64, shape (T,)
    objective : float
        Its weighted total.
    """
    deadline = time.perf_counter() + seconds
    tiles, photos = cost.shape
    rows, cols = (np.asarray(axis, dtype=np.int64) for axis in positions)
    weighted = np.asarray(cost, np.float64) * weights[:, None]
    current = np.array(placement, dtype=np.int64)
    copies = _copies(current, photos, max_uses)
    every = np.arange(tiles)
    improved = True
    while improved and time.perf_counter() < deadline:
        improved = False
        for tile in range(tiles):
            if time.perf_counter() > deadline:
                break
            mine = int(current[tile])
            here = _distances(tile, rows, cols)
            # Swaps: tile takes photo current[other], other takes mine.
            gain = (weighted[tile, mine] - weighted[tile, current]
                    + weighted[every, current] - weighted[every, mine])
            theirs = copies[current]  # (T, K): copies of each other tile's photo
            theirs_far = np.where((theirs == every[:, None]) | (theirs < 0), _FAR,
                                  here[np.where(theirs < 0, tiles, theirs)]).min(axis=1)
            others = copies[mine][(copies[mine] >= 0) & (copies[mine] != tile)]
            mine_far = (np.full(tiles, _FAR) if others.size == 0 else np.maximum(
                np.abs(rows[:, None] - rows[others]), np.abs(cols[:, None] - cols[others])
            ).min(axis=1))
            allowed = ((theirs_far >= min_distance) & (mine_far >= min_distance)
                       & (current != mine))
            gain[~allowed] = -np.inf
            best_swap = int(np.argmax(gain))
            # Spare photos: tile takes a photo with a use left, kept apart from its copies.
            used = (copies >= 0).sum(axis=1)
            spare_far = np.where(copies < 0, _FAR, here[np.where(copies < 0, tiles, copies)]
                                 ).min(axis=1)
            spare_gain = weighted[tile, mine] - weighted[tile]
            spare_gain[(used >= max_uses) | (spare_far < min_distance)] = -np.inf
            spare_gain[mine] = -np.inf
            best_spare = int(np.argmax(spare_gain))
            if max(gain[best_swap], spare_gain[best_spare]) <= SWAP_GAIN:
                continue
            improved = True
            if gain[best_swap] >= spare_gain[best_spare]:
                other, theirs_photo = best_swap, int(current[best_swap])
                current[tile], current[other] = theirs_photo, mine
            else:
                current[tile] = best_spare
            copies = _copies(current, photos, max_uses)
    return current, float(weighted[every, current].sum())
