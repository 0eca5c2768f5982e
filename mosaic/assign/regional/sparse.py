"""Step 5: one exact assignment of all tiles over their candidate photos (min-cost flow).

The stitched regions are optimal inside each region, but a photo can only move to a tile
of the region it was allocated to. The reduced-cost pass kept each tile's
:data:`~mosaic.assign.regional.prices.CANDIDATES` photos of least ``w_t c_ti + p_i``; the
assignment over those edges and the stitched ones is solved exactly, for all tiles at once,
as a min-cost flow (source -> tiles -> photos -> sink, every arc of capacity one) with
OR-Tools' cost-scaling push-relabel solver, in a forked child
(:func:`mosaic.forked.run_forked`) so that a stop signal does not wait for it.
The stitched edges guarantee a full matching, so the result is never worse than the
stitched start; photos the allocation left out come back wherever they are candidates.

OR-Tools replaced SciPy's sparse Jonker-Volgenant
(:func:`scipy.sparse.csgraph.min_weight_full_bipartite_matching`), whose augmenting-path
searches grow much faster than the edges: on the same 10,000-photo graph (162,357 edges)
0.6 s instead of 4.1 s with the same optimum; the whole stage took 15 s at 100,000
photos, where SciPy's was still running after 58 minutes (32 candidates a tile then).
"""

from __future__ import annotations

import numpy as np
from ortools.graph.python import min_cost_flow

from mosaic.assign.regional.prices import Candidates
from mosaic.forked import run_forked

__all__ = ["COST_STEPS", "cost_steps", "integer_costs", "min_cost_matching", "sparse_solve"]

#: Integer steps the edge costs are rounded onto (the flow solver takes integer costs):
#: each edge moves by at most 5e-9 of the cost range, far below float32 precision.
COST_STEPS = 10**8


def cost_steps(tiles: int, photos: int) -> int:
    """:data:`COST_STEPS`, fewer where the flow's 64-bit costs could overflow.

    The solver multiplies costs by about the node count while scaling and sums a flow of
    ``tiles`` units, so steps x nodes x tiles stays under 2^62 (1e8 up to about 150,000
    tiles and photos).
    """
    nodes = tiles + photos + 2
    return int(max(1, min(COST_STEPS, 2**62 // (nodes * max(1, tiles)))))


def integer_costs(weights: np.ndarray, steps: int = COST_STEPS) -> np.ndarray:
    """``weights`` shifted to start at 0 and rounded onto ``steps`` steps.

    Every tile takes exactly one edge, so a shift common to all edges changes every full
    matching's cost alike; only the rounding (at most half a step an edge) can reorder
    matchings, and the caller keeps a result only if its exact cost is lower.
    """
    low, high = float(weights.min()), float(weights.max())
    step = (high - low) / steps or 1.0
    return np.rint((weights - low) / step).astype(np.int64)


def min_cost_matching(rows: np.ndarray, cols: np.ndarray, weights: np.ndarray, tiles: int,
                      photos: int) -> np.ndarray:
    """The least-cost matching of every row (tile) to a distinct column (photo).

    Parameters
    ----------
    rows, cols : ndarray of int64, shape (E,)
        The allowed edges (no edge twice).
    weights : ndarray of float64, shape (E,)
        Their costs.
    tiles, photos : int
        Rows and columns; ``photos >= tiles``.

    Returns
    -------
    ndarray of int64, shape (tiles,)
        Each tile's photo.

    Raises
    ------
    RuntimeError
        When no full matching exists over the edges (the caller always includes one).
    """
    source, sink = tiles + photos, tiles + photos + 1
    tails = np.concatenate([np.full(tiles, source, dtype=np.int64), rows,
                            tiles + np.arange(photos, dtype=np.int64)])
    heads = np.concatenate([np.arange(tiles, dtype=np.int64), tiles + cols,
                            np.full(photos, sink, dtype=np.int64)])
    costs = np.concatenate([np.zeros(tiles, dtype=np.int64),
                            integer_costs(weights, cost_steps(tiles, photos)),
                            np.zeros(photos, dtype=np.int64)])
    flow = min_cost_flow.SimpleMinCostFlow()
    arcs = flow.add_arcs_with_capacity_and_unit_cost(
        tails, heads, np.ones(len(tails), dtype=np.int64), costs)
    flow.set_nodes_supplies(np.array([source, sink]), np.array([tiles, -tiles]))
    status = flow.solve()
    if status != flow.OPTIMAL:
        raise RuntimeError(f"min-cost flow over {len(rows):,} edges ended {status!r}")
    used = flow.flows(arcs[tiles:tiles + len(rows)]) > 0
    result = np.empty(tiles, dtype=np.int64)
    result[rows[used]] = cols[used]
    return result


def sparse_solve(candidates: Candidates, photo_of_tile: np.ndarray, tile_cost: np.ndarray,
                 photos: int, tile_duals: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """The best assignment using only candidate edges and the current assignment's edges.

    Parameters
    ----------
    candidates : Candidates
        Each tile's candidate photos and their weighted costs.
    photo_of_tile : ndarray of int64, shape (T,)
        A valid assignment (each photo at most once); its edges are always allowed.
    tile_cost : ndarray, shape (T,)
        Weighted cost of each tile's current photo.
    photos : int
        Number of photos (columns).
    tile_duals : ndarray, shape (T,), optional
        Subtracted from each tile's edges (the reduced pass's ``u_t``): the same optimum,
        since every tile takes one edge; it narrows the range the costs are rounded over.

    Returns
    -------
    photo_of_tile : ndarray of int64, shape (T,)
        Optimal over the allowed edges (up to the costs' rounding, see
        :func:`integer_costs`), so at most the current objective.
    edges : int
        Edges of the sparse problem.
    """
    tiles, keep = candidates.photos.shape
    rows = np.concatenate([np.repeat(np.arange(tiles, dtype=np.int64), keep),
                           np.arange(tiles, dtype=np.int64)])
    cols = np.concatenate([candidates.photos.ravel().astype(np.int64),
                           np.asarray(photo_of_tile, dtype=np.int64)])
    weights = np.concatenate([candidates.cost.ravel().astype(np.float64),
                              np.asarray(tile_cost, dtype=np.float64)])
    if tile_duals is not None:
        weights -= np.asarray(tile_duals, dtype=np.float64)[rows]
    _, unique = np.unique(rows * photos + cols, return_index=True)  # a candidate may be current
    rows, cols, weights = rows[unique], cols[unique], weights[unique]
    # The solver holds the interpreter lock for its whole call: in a forked child, a stop
    # signal is answered at once.
    (result,) = run_forked(lambda: (min_cost_matching(rows, cols, weights, tiles, photos),))
    return result, len(rows)
