"""Copies of one photo kept apart: ``max_uses`` with a minimum distance between copies.

Two copies of a photo must be at least ``D`` tiles apart (Chebyshev distance on the grid:
``max(|row difference|, |column difference|) >= D``). Without that rule repeats are an
exact assignment over repeated columns (:func:`mosaic.assign.methods.solve_dense`), and
its optimum is a proven lower bound for the spaced problem. With it:

- small models are solved exactly by HiGHS (:func:`solve_spaced_milp`): 0/1 variables,
  one photo per tile, at most K uses, and at most one copy of a photo in every D x D
  window of tiles (two tiles closer than D always share such a window);
- beyond that, :func:`space_copies` repairs the capacity optimum: the copies that break
  the rule lose their tile, except the one worth most (heaviest tile, then cheapest), and
  the freed tiles are solved again exactly against the photos still allowed there
  (capacity left, no kept copy closer than D; a tile left without one exchanges photos
  with another tile), until no copy breaks the rule; then Lagrangian rounds price the
  window rule (each an exact capacity solve of the priced costs: a better lower bound,
  and a start to repair), blocks of tiles are placed again while the total falls, and
  last any two tiles swap photos (or a tile takes a photo with a use to spare) while that
  lowers the total (:mod:`mosaic.assign.spacing_swaps`).
  It never returns a placement that breaks the rule, and reports its gap to the bound.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp

from mosaic.assign.exact import relative_gap, solve_dense_with_bound
from mosaic.assign.result import Assignment, check_weights
from mosaic.assign.spacing_swaps import improve_by_swaps
from mosaic.errors import MosaicError

#: Most 0/1 variables (tiles x photos) of the exact HiGHS model; larger problems repair.
MILP_VARIABLES = 20_000
#: Seconds HiGHS may take on the exact model before the repair is used instead.
MILP_SECONDS = 20.0
#: Subgradient rounds on the window prices at most, and the gap that ends them early.
LAGRANGE_ROUNDS = 40
LAGRANGE_GAP = 0.005
#: First subgradient step (Polyak's rule, halved when the bound stalls).
LAGRANGE_STEP = 1.0
#: Side of the blocks placed again after the Lagrangian rounds, in units of the distance,
#: and the most passes over the grid.
BLOCK_SIDE = 2
BLOCK_PASSES = 3
#: Repair rounds one block may take, and seconds for all the blocks (a flat target with
#: uniform weights made repairs thrash: 293 s before these limits).
BLOCK_ROUNDS = 8
BLOCK_SECONDS = 20.0
#: Repair rounds before giving up (a distance the photos can barely meet).
MAX_ROUNDS = 200


@dataclass(frozen=True, eq=False)
class Grid:
    """The tile grid, tiles numbered row by row.

    With ``tile_of`` the placement is of *cells* (``--detail faces``: some tiles split
    into quarters, :mod:`mosaic.cells`) and ``tile_of[c]`` is cell c's tile: a cell is
    where its tile is, so two quarters of one tile are 0 apart.
    """

    rows: int
    cols: int
    tile_of: np.ndarray | None = None

    def position(self, tiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row and column of each tile index (of each cell's tile, with ``tile_of``)."""
        index = np.asarray(tiles, dtype=np.int64)
        if self.tile_of is not None:
            index = self.tile_of[index]
        return np.divmod(index, self.cols)

    def of_cells(self, per_tile: np.ndarray) -> np.ndarray:
        """Per-tile values (first axis) taken for every cell (unchanged without cells)."""
        return per_tile if self.tile_of is None else per_tile[self.tile_of]


def closest_copies(photo_of_tile: np.ndarray, grid: Grid, tile_of: np.ndarray | None = None
                   ) -> int | None:
    """Smallest Chebyshev distance between two tiles showing one photo (None: no repeats).

    ``tile_of`` maps cells to their tiles when some tiles are split into quarters
    (:mod:`mosaic.cells`): two quarters of one tile are then 0 apart.
    """
    order = np.argsort(photo_of_tile, kind="stable")
    sorted_photos = photo_of_tile[order]
    closest: int | None = None
    starts = np.flatnonzero(np.r_[True, sorted_photos[1:] != sorted_photos[:-1]])
    ends = np.r_[starts[1:], len(order)]
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        if end - start < 2:
            continue
        rows, cols = grid.position(order[start:end] if tile_of is None
                                   else tile_of[order[start:end]])
        distance = np.maximum(np.abs(rows[:, None] - rows[None]),
                              np.abs(cols[:, None] - cols[None]))
        np.fill_diagonal(distance, np.iinfo(np.int64).max)
        nearest = int(distance.min())
        closest = nearest if closest is None else min(closest, nearest)
    return closest


def _window_rows(grid: Grid, min_distance: int) -> sparse.csr_matrix:
    """One row per D x D window (clipped to the grid) over the tiles it holds."""
    height, width = _window_shape(grid, min_distance)
    tops, lefts = np.meshgrid(np.arange(grid.rows - height + 1),
                              np.arange(grid.cols - width + 1), indexing="ij")
    down, across = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    tiles = ((tops.reshape(-1, 1) + down.reshape(1, -1)) * grid.cols
             + lefts.reshape(-1, 1) + across.reshape(1, -1))
    windows = np.repeat(np.arange(tiles.shape[0]), tiles.shape[1])
    per_tile = sparse.csr_matrix((np.ones(tiles.size), (windows, tiles.ravel())),
                                 shape=(tiles.shape[0], grid.rows * grid.cols))
    return sparse.csr_matrix(grid.of_cells(per_tile.T.tocsr()).T)


def solve_spaced_milp(cost: np.ndarray, weights: np.ndarray, grid: Grid, max_uses: int,
                      min_distance: int, seconds: float = MILP_SECONDS) -> np.ndarray | None:
    """The exact spaced optimum by HiGHS, or None when it is not proven in ``seconds``.

    Variable ``x[t, p]`` (index ``t * P + p``) is 1 when tile t shows photo p.
    """
    tiles, photos = cost.shape
    photo_identity = sparse.identity(photos, format="csr")
    constraints = [
        LinearConstraint(sparse.kron(sparse.identity(tiles), np.ones((1, photos))), 1, 1),
        LinearConstraint(sparse.kron(np.ones((1, tiles)), photo_identity), 0, max_uses)]
    if min_distance > 1:  # window w, photo p: sum of x[t, p] over the window's tiles <= 1
        constraints.append(LinearConstraint(
            sparse.kron(_window_rows(grid, min_distance), photo_identity), 0, 1))
    result = milp((np.asarray(cost, np.float64) * weights[:, None]).ravel(),
                  integrality=np.ones(tiles * photos), bounds=Bounds(0, 1),
                  constraints=constraints, options={"time_limit": seconds})
    if result.status != 0 or result.x is None:
        return None
    return np.asarray(result.x.reshape(tiles, photos).argmax(axis=1), dtype=np.int64)


def _near_any(tiles: np.ndarray, grid: Grid, min_distance: int) -> np.ndarray:
    """Mask of the grid's tiles closer than ``min_distance`` to any of ``tiles``."""
    near = np.zeros((grid.rows, grid.cols), dtype=bool)
    rows, cols = grid.position(tiles)
    reach = min_distance - 1
    for row, col in zip(rows.tolist(), cols.tolist(), strict=True):
        near[max(0, row - reach):row + reach + 1, max(0, col - reach):col + reach + 1] = True
    return grid.of_cells(near.ravel())


def _keep_or_free(photo_of_tile: np.ndarray, kept: np.ndarray, weights: np.ndarray,
                  tile_cost: np.ndarray, grid: Grid, min_distance: int, forced: np.ndarray
                  ) -> np.ndarray:
    """Keep each undecided tile unless a copy kept before it is closer than D; the rest free.

    Undecided tiles are taken heaviest first, then cheapest, so the copy worth most stays;
    ``forced`` tiles stay free.
    """
    rows, cols = grid.position(np.arange(len(photo_of_tile)))
    order = np.lexsort((tile_cost, -weights))
    kept = kept.copy()
    kept_at: dict[int, list[int]] = {}
    for tile in np.flatnonzero(kept).tolist():
        kept_at.setdefault(int(photo_of_tile[tile]), []).append(tile)
    for tile in order[~kept[order] & ~forced[order]].tolist():
        photo = int(photo_of_tile[tile])
        near = any(max(abs(rows[tile] - rows[other]), abs(cols[tile] - cols[other]))
                   < min_distance for other in kept_at.get(photo, ()))
        if not near:
            kept[tile] = True
            kept_at.setdefault(photo, []).append(tile)
    return kept


def _resolve_free(cost: np.ndarray, weights: np.ndarray, photo_of_tile: np.ndarray,
                  kept: np.ndarray, grid: Grid, max_uses: int, min_distance: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """New photos for the free tiles: exact over the uses left, without kept copies near.

    Returns the placement and the free tiles left without an allowed photo ("stuck").
    """
    free = np.flatnonzero(~kept)
    photos = cost.shape[1]
    left = max_uses - np.bincount(photo_of_tile[kept], minlength=photos)
    columns = np.repeat(np.arange(photos), np.maximum(left, 0))
    if len(columns) < len(free):
        raise MosaicError("the photos' uses left cannot fill the tiles freed for "
                          "`min_repeat_distance`; lower it or raise `max_uses`")
    sub = np.asarray(cost[free][:, columns], dtype=np.float64)
    # Above any placement of allowed pairs (costs are in [0, 1]), yet small: a huge value
    # widens the auction's cost range and slowed its solves a hundredfold.
    forbidden = 1.0 + float(weights[free].sum()) + float(sub.max(initial=0.0))
    rows, cols = grid.position(np.arange(len(photo_of_tile)))
    for tile_index, tile in enumerate(free.tolist()):
        near = np.maximum(np.abs(rows - rows[tile]), np.abs(cols - cols[tile])) < min_distance
        blocked = np.unique(photo_of_tile[near & kept])
        sub[tile_index, np.isin(columns, blocked)] = forbidden
    placed, _ = solve_dense_with_bound(sub, weights[free])
    result = photo_of_tile.copy()
    result[free] = columns[placed]
    stuck = free[sub[np.arange(len(free)), placed] >= forbidden]
    return result, np.array([tile for tile in stuck.tolist()
                             if not _swap_for(tile, cost, weights, result, grid, min_distance)],
                            dtype=np.int64)


def _swap_for(tile: int, cost: np.ndarray, weights: np.ndarray, placement: np.ndarray,
              grid: Grid, min_distance: int) -> bool:
    """Give a tile whose photo has a copy too near the photo of another tile, in exchange.

    The cheapest exchange that leaves both photos far enough from their other copies;
    False (``placement`` unchanged) when there is none.
    """
    rows, cols = grid.position(np.arange(len(placement)))
    to_tile = np.maximum(np.abs(rows - rows[tile]), np.abs(cols - cols[tile]))
    near_tile = to_tile < min_distance
    photo = int(placement[tile])
    # other: its photo must have no copy near `tile` but its own ...
    copies_near = np.bincount(placement[near_tile], minlength=cost.shape[1])
    fits_tile = copies_near[placement] - near_tile == 0
    # ... and `photo` no copy near `other`, apart from the one on `tile`
    others_of_photo = np.flatnonzero(placement == photo)
    others_of_photo = others_of_photo[others_of_photo != tile]
    if others_of_photo.size:
        to_copies = np.maximum(np.abs(rows[:, None] - rows[others_of_photo][None]),
                               np.abs(cols[:, None] - cols[others_of_photo][None])).min(axis=1)
        fits_photo = to_copies >= min_distance
    else:
        fits_photo = np.ones(len(placement), dtype=bool)
    candidates = np.flatnonzero(fits_tile & fits_photo & (placement != photo))
    if candidates.size == 0:
        return False
    change = (weights[tile] * cost[tile, placement[candidates]]
              + weights[candidates] * cost[candidates, photo]
              - weights[candidates] * cost[candidates, placement[candidates]])
    other = int(candidates[np.argmin(change)])
    placement[tile], placement[other] = placement[other], photo
    return True


def space_copies(cost: np.ndarray, weights: np.ndarray | None, grid: Grid,
                 start: Assignment, max_uses: int, min_distance: int,
                 lower_bound: float | None, log: Callable[[str], None] | None = None
                 ) -> Assignment:
    """Make ``start`` (at most ``max_uses`` per photo) keep copies ``min_distance`` apart.

    Parameters
    ----------
    cost : ndarray, shape (T, P)
    weights : ndarray, shape (T,), optional
    grid : Grid
        ``grid.rows * grid.cols == T``, or ``T`` cells with ``grid.tile_of``.
    start : Assignment
        A placement within the uses, usually the capacity optimum.
    max_uses, min_distance : int
    lower_bound : float, optional
        A proven bound on the spaced optimum (the capacity optimum's objective); None
        when there is none (a greedy start): no gap is reported.
    log : callable, optional
        Receives one line of progress per repair round.

    Returns
    -------
    Assignment
        No two copies of a photo closer than ``min_distance``; the exact HiGHS optimum
        when the model is small (status "optimal"), else the repair ("feasible") with its
        gap to ``lower_bound``.
    """
    started = time.perf_counter()
    w = check_weights(weights, cost.shape[0])
    tiles, photos = cost.shape
    if tiles * photos <= MILP_VARIABLES:
        exact = solve_spaced_milp(cost, w, grid, max_uses, min_distance)
        if exact is not None:
            return _result(cost, w, exact, start.method, started, "optimal", None,
                           f"HiGHS exact model, copies >= {min_distance} tiles apart")
    placement, rounds = _repair(cost, w, start.photo_of_tile, grid, max_uses, min_distance)
    best = _objective(cost, w, placement)
    bound = -np.inf if lower_bound is None else lower_bound
    if lower_bound is not None:  # a start without a bound (greedy) is only repaired
        placement, best, bound = _lagrangian(cost, w, grid, max_uses, min_distance,
                                             placement, best, bound, log)
        placement, best = _improve_by_blocks(cost, w, grid, max_uses, min_distance,
                                             placement, best)
        swapped, value = improve_by_swaps(cost, w, grid.position(np.arange(tiles)),
                                          max_uses, min_distance, placement)
        if value < best:
            placement, best = swapped, value
    return _result(cost, w, placement, start.method, started, "feasible",
                   None if lower_bound is None else bound,
                   f"repaired capacity optimum ({rounds} rounds) improved by Lagrangian "
                   f"rounds, copies >= {min_distance} tiles apart")


def _objective(cost: np.ndarray, weights: np.ndarray, placement: np.ndarray) -> float:
    return float(np.dot(weights, cost[np.arange(len(placement)), placement].astype(np.float64)))


def _repair(cost: np.ndarray, weights: np.ndarray, start: np.ndarray, grid: Grid,
            max_uses: int, min_distance: int, free_first: np.ndarray | None = None,
            max_rounds: int | None = None, deadline: float | None = None
            ) -> tuple[np.ndarray, int]:
    """``start`` with its copies too close placed again (see the module docstring).

    ``free_first`` tiles are placed again in the first round whatever their photo; after
    ``max_rounds`` rounds (default :data:`MAX_ROUNDS`), or past ``deadline``
    (``time.perf_counter``), it gives up with a MosaicError.
    """
    limit = MAX_ROUNDS if max_rounds is None else max_rounds
    tiles = cost.shape[0]
    placement = start.copy()
    kept = np.zeros(tiles, dtype=bool)
    # free for one round whatever their photo
    forced = np.zeros(tiles, dtype=bool) if free_first is None else free_first.copy()
    rounds = 0
    while True:
        tile_cost = np.asarray(cost[np.arange(tiles), placement])
        kept = _keep_or_free(placement, kept, weights, tile_cost, grid, min_distance, forced)
        if kept.all():
            return placement, rounds
        rounds += 1
        if rounds > limit or (deadline is not None and time.perf_counter() > deadline):
            raise MosaicError(f"copies of photos could not be kept {min_distance} tiles apart "
                              f"in {limit} rounds; lower `min_repeat_distance` or raise "
                              "`max_uses`")
        placement, stuck = _resolve_free(cost, weights, placement, kept, grid, max_uses,
                                         min_distance)
        # Tiles left without an allowed photo: free the copies around them (those that
        # block them) for the next round, so that they can all be placed together.
        forced = _near_any(stuck, grid, min_distance) if stuck.size else np.zeros_like(kept)
        kept &= ~forced


def _improve_by_blocks(cost: np.ndarray, weights: np.ndarray, grid: Grid, max_uses: int,
                       min_distance: int, placement: np.ndarray, best: float
                       ) -> tuple[np.ndarray, float]:
    """Place each block of tiles again (the rest kept), keeping what lowers the total.

    Blocks of ``BLOCK_SIDE * min_distance`` tiles a side, overlapping by half, cover the
    grid; passes repeat while one still lowers the total (at most ``BLOCK_PASSES``, and
    :data:`BLOCK_SECONDS` in all).
    """
    side = max(2, BLOCK_SIDE * min_distance)
    step = side // 2
    deadline = time.perf_counter() + BLOCK_SECONDS
    for _ in range(BLOCK_PASSES):
        before = best
        for top in range(0, max(1, grid.rows - step), step):
            for left in range(0, max(1, grid.cols - step), step):
                if time.perf_counter() > deadline:
                    return placement, best
                block = np.zeros((grid.rows, grid.cols), dtype=bool)
                block[top:top + side, left:left + side] = True
                try:  # a block that does not settle quickly is left as it was
                    candidate, _ = _repair(cost, weights, placement, grid, max_uses,
                                           min_distance, grid.of_cells(block.ravel()),
                                           BLOCK_ROUNDS, deadline)
                except MosaicError:
                    continue
                value = _objective(cost, weights, candidate)
                if value < best:
                    placement, best = candidate, value
        if best >= before:
            break
    return placement, best


def _window_shape(grid: Grid, min_distance: int) -> tuple[int, int]:
    return min(min_distance, grid.rows), min(min_distance, grid.cols)


def _window_counts(placement: np.ndarray, photos: int, grid: Grid, min_distance: int
                   ) -> np.ndarray:
    """``counts[p, i, j]``: tiles showing photo p in the window whose top left is (i, j)."""
    height, width = _window_shape(grid, min_distance)
    shown = np.zeros((photos, grid.rows + 1, grid.cols + 1))
    rows, cols = grid.position(np.arange(len(placement)))
    np.add.at(shown, (placement, rows + 1, cols + 1), 1.0)  # quarters share their tile
    summed = shown.cumsum(axis=1).cumsum(axis=2)  # prefix sums with a zero border
    return (summed[:, height:, width:] - summed[:, :-height, width:]
            - summed[:, height:, :-width] + summed[:, :-height, :-width])


def _tile_penalties(prices: np.ndarray, grid: Grid, min_distance: int) -> np.ndarray:
    """``penalty[t, p]``: the prices of the windows holding tile t, for photo p."""
    height, width = _window_shape(grid, min_distance)
    photos, tops, lefts = prices.shape
    padded = np.zeros((photos, tops + 2 * height - 1, lefts + 2 * width - 1))
    padded[:, height - 1:height - 1 + tops, width - 1:width - 1 + lefts] = prices
    summed = np.zeros((photos, padded.shape[1] + 1, padded.shape[2] + 1))
    summed[:, 1:, 1:] = padded.cumsum(axis=1).cumsum(axis=2)
    # tile (r, c) lies in the windows with top in [r - height + 1, r], left likewise
    box = (summed[:, height:height + grid.rows, width:width + grid.cols]
           - summed[:, :grid.rows, width:width + grid.cols]
           - summed[:, height:height + grid.rows, :grid.cols]
           + summed[:, :grid.rows, :grid.cols])
    return grid.of_cells(box.reshape(photos, -1).T)


def _lagrangian(cost: np.ndarray, weights: np.ndarray, grid: Grid, max_uses: int,
                min_distance: int, placement: np.ndarray, best: float, bound: float,
                log: Callable[[str], None] | None) -> tuple[np.ndarray, float, float]:
    """Subgradient rounds on the window rule's prices.

    Each round is an exact capacity solve of the priced costs (a lower bound) whose
    placement, repaired, may beat the best one.
    """
    photos = cost.shape[1]
    weighted = np.asarray(cost, np.float64) * weights[:, None]
    height, width = _window_shape(grid, min_distance)
    prices = np.zeros((photos, grid.rows - height + 1, grid.cols - width + 1))
    scale, stalled = LAGRANGE_STEP, 0
    for round_index in range(LAGRANGE_ROUNDS):
        if best - bound <= LAGRANGE_GAP * abs(best):
            break
        priced = weighted + _tile_penalties(prices, grid, min_distance)
        copies, priced_bound = solve_dense_with_bound(np.repeat(priced, max_uses, axis=1))
        relaxed = copies // max_uses
        value = priced_bound - prices.sum()
        if value > bound + 1e-12 * abs(bound if np.isfinite(bound) else 1.0):
            bound, stalled = value, 0
        else:
            stalled += 1
            if stalled >= 3:
                scale, stalled = scale / 2, 0
        try:
            repaired, _ = _repair(cost, weights, relaxed, grid, max_uses, min_distance)
        except MosaicError:  # this start could not be spaced; the best one stands
            repaired = None
        if repaired is not None and _objective(cost, weights, repaired) < best:
            placement, best = repaired, _objective(cost, weights, repaired)
        if log is not None:
            log(f"spacing copies: Lagrangian round {round_index + 1}, best {best:.6g}, "
                f"bound {bound:.6g}")
        step = _window_counts(relaxed, photos, grid, min_distance) - 1.0
        step[(prices <= 0) & (step < 0)] = 0.0  # prices stay at or above zero
        norm = float((step**2).sum())
        if norm == 0.0:
            break
        prices = np.maximum(0.0, prices + scale * (best - value) / norm * step)
    return placement, best, bound


def _result(cost: np.ndarray, weights: np.ndarray, placement: np.ndarray, method: str,
            started: float, status: str, lower_bound: float | None, message: str
            ) -> Assignment:
    """The Assignment; gap 0 when proven optimal, else to ``lower_bound`` if there is one."""
    tile_cost = np.asarray(cost[np.arange(len(placement)), placement], dtype=np.float32)
    objective = float(np.dot(weights, tile_cost.astype(np.float64)))
    gap = (0.0 if status == "optimal"
           else None if lower_bound is None else relative_gap(objective, lower_bound))
    return Assignment(placement, objective, tile_cost, method, time.perf_counter() - started,
                      status, gap, message)
