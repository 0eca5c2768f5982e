"""Capped scans: the small costs of a tiles x photos block without every exact cost.

The regional method's streaming passes only need minima: each photo's least ``w_t c_ti -
o_t`` over some tiles (the c-transform, the region reduced costs) and each tile's least
``w_t c_ti + p_i`` and its cheapest few photos (the tile duals and candidates). Both scans
keep a running value (a photo's minimum so far, a tile's ``keep``-th least so far) and pass
it to the scoring as a *cap* (:func:`mosaic.scoring.scoring_cost`): a pair that cannot go
below it gets only a bound, and most pairs skip the exact residual product. The results are
the uncapped scans' exactly (same float32 costs); only the first piece of each scan is
scored without a cap.
"""

from __future__ import annotations

import numpy as np

from mosaic.cost_refine import PRUNED
from mosaic.scoring import Scoring, scoring_cost

#: Steps of a scan grow from FIRST_STEP pairs' worth of tiles or photos, doubling up to
#: LAST_STEP: the first step has no cap yet, the later ones are capped by what came before.
FIRST_STEP = 64
LAST_STEP = 1024
#: Per-tile floors and per-photo lifts: ``floor[t] - lift[i]`` bounds a pair's value.
Floors = tuple[np.ndarray, np.ndarray]
#: A tile scan's pool is cut back to ``keep`` per tile once it holds this many times that.
POOL_SLACK = 2


def steps(count: int, first: int = FIRST_STEP, last: int = LAST_STEP) -> list[tuple[int, int]]:
    """``(start, stop)`` steps over ``range(count)``: ``first``, twice that, ... up to ``last``."""
    out, start, size = [], 0, max(1, first)
    while start < count:
        out.append((start, min(count, start + size)))
        start, size = start + size, min(max(1, last), 2 * size)
    return out


def buffers(plan: list[tuple[int, int]], across: int) -> tuple[np.ndarray, np.ndarray]:
    """Result buffers of a scan's steps (times ``across`` each), reused by every step."""
    size = max((last - first for first, last in plan), default=0) * across
    return np.empty(size, dtype=np.float32), np.empty(size, dtype=np.uint8)


def photo_minima(scoring: Scoring, weights: np.ndarray, tiles: np.ndarray,
                 offset: np.ndarray, photos: slice, start: np.ndarray | None = None,
                 floors: Floors | None = None) -> np.ndarray:
    """``min_t (w_t c_ti - offset_t)`` over ``tiles`` for each photo ``i`` of ``photos``.

    Tiles are scanned in a fixed random order (so that the first, uncapped step spans
    the whole picture and its minima cap the rest well), or, given ``floors``, in
    increasing floor order, dropping each photo once no tile left can beat its minimum.

    Parameters
    ----------
    scoring : Scoring
    weights : ndarray, shape (T,)
        Weights of all tiles.
    tiles : ndarray of int, shape (n,)
    offset : ndarray of float32, shape (n,)
        ``o_t`` of each of ``tiles``.
    photos : slice
        Consecutive photos.
    start : ndarray of float32, optional
        Upper bounds of the minima already known (the value of some pair), or inf.
    floors : (ndarray, ndarray), optional
        ``(tile_floor, photo_lift)`` of shapes (n,) and (photos,): every pair whose value is
        not already in ``start`` is at least ``tile_floor[t] - photo_lift[i]``.

    Returns
    -------
    ndarray of float32, shape (photos,)
    """
    count = photos.stop - photos.start
    low = (np.full(count, np.inf, dtype=np.float32) if start is None
           else np.array(start, dtype=np.float32))
    if floors is None:
        order = np.random.default_rng(tiles.size).permutation(tiles.size)
    else:
        order = np.argsort(floors[0], kind="stable")
        tile_floor, photo_lift = floors[0][order], np.asarray(floors[1], dtype=np.float32)
    w = weights[tiles]
    plan = steps(tiles.size)
    out = buffers(plan, count)
    active = np.arange(count)
    for first, last in plan:
        if floors is not None:  # a photo is done once every tile left is above its minimum
            active = active[low[active] + photo_lift[active] > tile_floor[first]]
            if not active.size:
                break
        part = order[first:last]
        shift = offset[part]
        current = low[active]
        # w c - o only matters below the photo's minimum so far: w c < o + low.
        cap = (shift, current) if np.isfinite(current).any() else None
        columns = photos if active.size == count else active + photos.start
        cost, _ = scoring_cost(scoring, tiles[part], columns, w[part], cap=cap,
                               photo_major=True, out=out)
        cost -= shift  # capped bounds stay at or above the running minimum
        low[active] = np.minimum(current, cost.min(axis=1))
    return low


def tile_best(scoring: Scoring, weights: np.ndarray, tiles: np.ndarray, prices: np.ndarray,
              keep: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each tile's ``u_t = min_i (w_t c_ti + p_i)`` and its ``keep`` photos of least value.

    The photos below each tile's ``keep``-th value so far are kept in a pool (a few per
    tile and step once the caps bite), cut back to ``keep`` per tile whenever it holds
    :data:`POOL_SLACK` times that (the cut also tightens the caps).

    Parameters
    ----------
    scoring : Scoring
    weights : ndarray, shape (T,)
    tiles : ndarray of int, shape (n,)
    prices : ndarray of float32, shape (P,)
        ``p_i`` of every photo.
    keep : int
        Photos kept per tile, ``1 <= keep <= P``.

    Returns
    -------
    duals : ndarray of float32, shape (n,)
        ``u_t``.
    best : ndarray of int32, shape (n, keep)
        The ``keep`` photos of least ``w_t c_ti + p_i``, cheapest first.
    best_cost : ndarray of float32, shape (n, keep)
        Their exact ``w_t c_ti``.
    """
    w = weights[tiles]
    pool = _Pool.empty()
    threshold = np.full(tiles.size, np.inf, dtype=np.float32)
    plan = steps(prices.size, 4 * keep)
    out = buffers(plan, tiles.size)
    for first, last in plan:
        price = prices[first:last]
        # A pair only matters below its tile's keep-th value so far: w c < threshold - p.
        cap = (threshold, -price) if np.isfinite(threshold).all() else None
        cost, crop = scoring_cost(scoring, tiles, slice(first, last), w, cap=cap,
                                  photo_major=True, out=out)
        priced = cost + price[:, None]
        cols, rows = np.nonzero(priced < threshold)
        if crop is not None:  # capped bounds are at or above the threshold; drop them anyway
            exact = crop[cols, rows] != PRUNED
            cols, rows = cols[exact], rows[exact]
        pool = pool.plus(rows, (cols + first).astype(np.int32), priced[cols, rows],
                         cost[cols, rows])
        if pool.rows.size > POOL_SLACK * keep * tiles.size or last == prices.size:
            pool = pool.cut(keep)  # cut back now and then: the threshold only tightens
            threshold = pool.threshold(tiles.size, keep)
    return pool.table(tiles.size, keep)


class _Pool:
    """Pairs (tile position, photo, w c + p, w c), sorted by tile then value once cut."""

    def __init__(self, rows: np.ndarray, photos: np.ndarray, values: np.ndarray,
                 costs: np.ndarray) -> None:
        self.rows, self.photos, self.values, self.costs = rows, photos, values, costs

    @classmethod
    def empty(cls) -> _Pool:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32),
                   np.zeros(0, np.float32))

    def plus(self, rows: np.ndarray, photos: np.ndarray, values: np.ndarray,
             costs: np.ndarray) -> _Pool:
        return _Pool(np.concatenate([self.rows, rows]), np.concatenate([self.photos, photos]),
                     np.concatenate([self.values, values]), np.concatenate([self.costs, costs]))

    def cut(self, keep: int) -> _Pool:
        """Each tile's ``keep`` least values (ties: the photo seen first)."""
        # One float64 sort key, tile then value: exact (24-bit values, tiles far below
        # 2^29) and about three times faster than lexsort on two keys.
        low = float(self.values.min(initial=0.0))
        span = float(self.values.max(initial=0.0)) - low + 1.0
        key = self.rows * span + (self.values.astype(np.float64) - low)
        order = np.argsort(key, kind="stable")
        rows = self.rows[order]
        starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        rank = np.arange(rows.size) - np.repeat(starts, np.diff(np.r_[starts, rows.size]))
        chosen = order[rank < keep]
        return _Pool(self.rows[chosen], self.photos[chosen], self.values[chosen],
                     self.costs[chosen])

    def threshold(self, tiles: int, keep: int) -> np.ndarray:
        """Each tile's ``keep``-th least value (inf until it has ``keep``)."""
        counts = np.bincount(self.rows, minlength=tiles)
        out = np.full(tiles, np.inf, dtype=np.float32)
        full = counts >= keep
        last = np.cumsum(counts) - 1  # a cut pool is sorted: a tile's last entry is its max
        out[full] = self.values[last[full]]
        return out

    def table(self, tiles: int, keep: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(duals, photos, costs)`` of a cut pool holding ``keep`` pairs of every tile."""
        if np.bincount(self.rows, minlength=tiles).min(initial=keep) < keep:
            raise ValueError("a tile has fewer candidates than asked for")
        values = self.values.reshape(tiles, keep)
        return (values[:, 0].copy(), self.photos.reshape(tiles, keep),
                self.costs.reshape(tiles, keep))
