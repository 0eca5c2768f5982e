"""One placement among equally good ones: exact ties broken the same way on every run.

The auction's two threads bid asynchronously, so when several assignments have exactly
the same cost the one returned depends on the threads' timing: two runs of one build (or
a build on a Dask cluster and one without) placed a few tiles differently. This pass maps
an optimal assignment to one representative of the assignments that differ from it by
exact ties of two kinds, in place of a deterministic auction (measured: bidding in
synchronous rounds took 4.5 s at 10,000 photos against 2.5 s, no faster than one thread):

- *equal costs on one tile*: the tile could take another photo whose cost for it is
  exactly the same (near-duplicate photos); every tile keeps its cost;
- *identical tiles and photos*: tiles with equal cost rows and weights, or photos with
  equal cost columns, trade places.

Ties of other kinds (a cycle of changes with different costs summing to exactly zero) are
left as the solver returned them; on real costs they were not seen.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import min_weight_full_bipartite_matching

#: Rows of the cost matrix handled at once (bounds the pass's temporary memory).
BLOCK_ROWS = 256


def canonical_placement(cost: np.ndarray, weights: np.ndarray, photo_of_tile: np.ndarray
                        ) -> np.ndarray:
    """The tie-broken representative of an assignment (same cost on every tile).

    Parameters
    ----------
    cost : ndarray, shape (T, P)
        The cost matrix that was solved (float32 or float64).
    weights : ndarray, shape (T,)
        Row multipliers that were used.
    photo_of_tile : ndarray of int64, shape (T,)
        An assignment (distinct columns).

    Returns
    -------
    ndarray of int64, shape (T,)
        An assignment with ``cost[t, result[t]] * weights[t]`` summing to the same total,
        the same for every input that differs from ``photo_of_tile`` only by the ties
        described in the module docstring.
    """
    placement = _sorted_within_identical(cost, weights, np.asarray(photo_of_tile, np.int64))
    return _canonical_equal_costs(cost, placement)


def _bit_hashes(cost: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Wrapping integer hashes of each row's bits (with its weight) and of each column's."""
    rows, cols = cost.shape
    words = cost.dtype.itemsize // 4  # 32-bit words per value
    rng = np.random.default_rng(0)  # fixed: equal bits must give equal hashes on every run
    col_mult = rng.integers(1, 2**32, cols * words, dtype=np.uint32) | np.uint32(1)
    row_mult = rng.integers(1, 2**32, rows, dtype=np.uint32) | np.uint32(1)
    weight_bits = np.ascontiguousarray(weights, dtype=np.float64).view(np.uint64)
    row_hash = np.empty(rows, dtype=np.uint64)
    word_hash = np.zeros(cols * words, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for lo in range(0, rows, BLOCK_ROWS):
            hi = min(rows, lo + BLOCK_ROWS)
            bits = cost[lo:hi].view(np.uint32)
            row_hash[lo:hi] = (bits * col_mult).sum(axis=1, dtype=np.uint64) ^ weight_bits[lo:hi]
            word_hash += (bits * row_mult[lo:hi, None]).sum(axis=0, dtype=np.uint64)
        col_hash = word_hash.reshape(cols, words) @ (np.arange(words, dtype=np.uint64) * 2 + 1)
    return row_hash, col_hash


def _group_ids(hashes: np.ndarray, equal: object) -> np.ndarray:
    """Group number of each item: items with one hash whose values are equal share one."""
    _, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    group = first[inverse.ravel()].astype(np.int64)  # lowest index of the hash
    for leader in np.flatnonzero(np.bincount(inverse.ravel()) > 1):
        members = np.flatnonzero(inverse.ravel() == leader)
        for item in members[1:]:
            if not equal(members[0], item):  # a hash collision: keep it on its own
                group[item] = item
    return group


def _sorted_within_identical(cost: np.ndarray, weights: np.ndarray,
                             photo_of_tile: np.ndarray) -> np.ndarray:
    """Within identical tiles and identical photos, photos in index order on tiles in order."""
    row_hash, col_hash = _bit_hashes(cost, weights)
    rows, cols = cost.shape
    if len(np.unique(row_hash)) == rows and len(np.unique(col_hash)) == cols:
        return photo_of_tile
    row_group = _group_ids(row_hash, lambda a, b: weights[a] == weights[b]
                           and np.array_equal(cost[a], cost[b]))
    col_group = _group_ids(col_hash, lambda a, b: np.array_equal(cost[:, a], cost[:, b]))
    # The (tile group, photo group) pairs are the same for all such assignments, and the
    # photos of one photo group interchangeable: each pair takes its group's lowest-index
    # photos (pairs in tile-group order), each tile group gives its pairs' photos in
    # (photo group, photo) order to its tiles in index order.
    tile_col_group = col_group[photo_of_tile]
    slots = np.lexsort((row_group, tile_col_group))
    slot_row_group = row_group[slots]
    slot_col_group = tile_col_group[slots]
    photos_by_group = np.lexsort((np.arange(cols), col_group))
    group_of_sorted = col_group[photos_by_group]
    first_of_group = np.searchsorted(group_of_sorted, group_of_sorted)
    used_of_group = np.bincount(tile_col_group, minlength=cols)
    rank_in_group = np.arange(cols) - first_of_group
    slot_photo = photos_by_group[rank_in_group < used_of_group[group_of_sorted]]
    slot_order = np.lexsort((slot_photo, slot_col_group, slot_row_group))
    tiles_in_order = np.lexsort((np.arange(rows), row_group))
    placement = np.empty_like(photo_of_tile)
    placement[tiles_in_order] = slot_photo[slot_order]
    return placement


def _equal_cost_edges(cost: np.ndarray, photo_of_tile: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(tile, photo) pairs whose cost equals the tile's cost in ``photo_of_tile``."""
    chosen = cost[np.arange(len(photo_of_tile)), photo_of_tile]
    tiles, photos = [], []
    for lo in range(0, cost.shape[0], BLOCK_ROWS):
        hi = min(cost.shape[0], lo + BLOCK_ROWS)
        tile, photo = np.nonzero(cost[lo:hi] == chosen[lo:hi, None])
        tiles.append(tile + lo)
        photos.append(photo)
    return np.concatenate(tiles), np.concatenate(photos)


def _canonical_equal_costs(cost: np.ndarray, photo_of_tile: np.ndarray) -> np.ndarray:
    """One fixed matching of the tiles that have other photos at exactly their cost."""
    rows, cols = cost.shape
    tiles, photos = _equal_cost_edges(cost, photo_of_tile)
    loose = np.bincount(tiles, minlength=rows) > 1
    if not loose.any():
        return photo_of_tile
    # A tile with one photo at its cost keeps it in every such assignment.
    kept = np.zeros(cols, dtype=bool)
    kept[photo_of_tile[~loose]] = True
    usable = loose[tiles] & ~kept[photos]
    tiles, photos = tiles[usable], photos[usable]
    loose_tiles = np.flatnonzero(loose)
    tile_index = np.full(rows, -1, dtype=np.int64)
    tile_index[loose_tiles] = np.arange(len(loose_tiles))
    column_photos = np.unique(photos)
    graph = csr_matrix((np.ones(len(tiles)), (tile_index[tiles],
                                              np.searchsorted(column_photos, photos))),
                       shape=(len(loose_tiles), len(column_photos)))
    # The graph depends only on the ties, not on which tied assignment came in, and the
    # matching algorithm is deterministic: the same graph gives the same matching.
    _, match = min_weight_full_bipartite_matching(graph)
    placement = photo_of_tile.copy()
    placement[loose_tiles] = column_photos[match]
    return placement
