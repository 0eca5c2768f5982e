"""Step 3: photos allocated to regions by a transportation LP (HiGHS, column generation)."""

from __future__ import annotations

import math

import highspy
import numpy as np

from mosaic.assign.lp import new_highs
from mosaic.errors import MosaicError

#: At most this share of the tiles in spare photos is handed to the regions.
SPARE_SHARE = 0.25
#: Regions per photo in the first restricted allocation LP (column generation adds more).
ALLOCATION_KEEP = 2


def allocate(reduced: np.ndarray, tiles_per_region: np.ndarray,
             spare_share: float = SPARE_SHARE, keep: int = ALLOCATION_KEEP) -> np.ndarray:
    """Allocate photos to regions: the transportation LP, solved with HiGHS.

    Minimise ``sum a_ir y_ir`` subject to: each photo in exactly one region (or left out,
    when there are spare photos), region ``r`` receiving between its tile count and that
    plus its share of the spare photos (at most ``spare_share`` of the tiles in all).
    Transportation polytopes are integral, so the simplex vertex is a 0/1 allocation.

    The LP is solved by column generation: each photo starts with its ``keep`` cheapest
    regions (and high-cost artificial columns keep every region row feasible); columns
    with a negative reduced cost ``a_ir - pi_i - mu_r`` under the row duals are added
    until none is left, which proves the restricted optimum optimal for the full LP.

    Parameters
    ----------
    reduced : ndarray, shape (P, R)
        Reduced cost of each photo in each region.
    tiles_per_region : ndarray of int, shape (R,)
    spare_share : float
        Most spare photos given to the regions, as a share of the tiles.
    keep : int
        Regions per photo in the first restricted LP.

    Returns
    -------
    ndarray of int64, shape (P,)
        Region of each photo, or -1 for photos left out.
    """
    photos, regions = reduced.shape
    tiles = int(tiles_per_region.sum())
    if photos < tiles:
        raise MosaicError(f"{tiles} tiles need {tiles} distinct photos; only {photos} given")
    spare = photos - tiles
    handed = min(spare, math.ceil(spare_share * tiles))
    slack = np.ceil(handed * tiles_per_region / max(1, tiles)).astype(np.int64)
    lower, upper = tiles_per_region.astype(np.float64), (tiles_per_region + slack).astype(float)
    if spare:  # one more "region": left out, free, for at most `spare` photos
        reduced = np.concatenate([reduced, np.zeros((photos, 1))], axis=1)
        lower, upper = np.append(lower, 0.0), np.append(upper, float(spare))
    model = _AllocationModel(reduced, lower, upper)
    order = np.argsort(reduced, axis=1, kind="stable")[:, :max(1, min(keep, reduced.shape[1]))]
    model.add(np.repeat(np.arange(photos), order.shape[1]), order.ravel())
    for _ in range(reduced.shape[1] + 1):
        photo_dual, region_dual = model.solve()
        missing = reduced - photo_dual[:, None] - region_dual[None, :]
        missing[model.present] = 0.0
        tolerance = 1e-12 * max(1.0, float(np.abs(reduced).max()))
        photo_idx, region_idx = np.nonzero(missing < -tolerance)
        if photo_idx.size == 0:
            break
        model.add(photo_idx, region_idx)
    else:
        raise RuntimeError("allocation LP: column generation did not converge")
    region_of = model.region_of()
    region_of[region_of == regions] = -1
    return region_of


class _AllocationModel:
    """The restricted transportation LP of :func:`allocate`, grown column by column.

    Rows: one per photo (``= 1``), one per region (``lower..upper``). Columns: (photo,
    region) pairs at their reduced cost, and a +1 and a -1 artificial column per region
    row at a prohibitive cost, so every restricted model is feasible.
    """

    def __init__(self, reduced: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> None:
        self.reduced = reduced
        self.photos, self.regions = reduced.shape
        self.present = np.zeros(reduced.shape, dtype=bool)
        self.columns: list[tuple[np.ndarray, np.ndarray]] = []
        self.solver = new_highs()
        self.solver.setOptionValue("solver", "simplex")
        no_int = np.array([], dtype=np.int32)
        no_val = np.array([], dtype=np.float64)
        self.solver.addRows(self.photos, np.ones(self.photos), np.ones(self.photos), 0,
                            no_int, no_int, no_val)
        self.solver.addRows(self.regions, lower, upper, 0, no_int, no_int, no_val)
        span = float(np.abs(reduced).max(initial=0.0))
        big = 1.0 + 1000.0 * span
        region_rows = (self.photos + np.arange(self.regions)).astype(np.int32)
        for sign in (1.0, -1.0):
            self.solver.addCols(self.regions, np.full(self.regions, big),
                                np.zeros(self.regions), np.full(self.regions, highspy.kHighsInf),
                                self.regions, np.arange(self.regions, dtype=np.int32),
                                region_rows, np.full(self.regions, sign))
        self.first_real = 2 * self.regions

    def add(self, photo_idx: np.ndarray, region_idx: np.ndarray) -> None:
        """Add the columns (photo, region) to the model."""
        count = photo_idx.size
        index = np.empty(2 * count, dtype=np.int32)
        index[0::2] = photo_idx
        index[1::2] = self.photos + region_idx
        self.solver.addCols(count, self.reduced[photo_idx, region_idx].astype(np.float64),
                            np.zeros(count), np.ones(count), 2 * count,
                            np.arange(0, 2 * count, 2, dtype=np.int32), index,
                            np.ones(2 * count))
        self.columns.append((photo_idx.astype(np.int64), region_idx.astype(np.int64)))
        self.present[photo_idx, region_idx] = True

    def solve(self) -> tuple[np.ndarray, np.ndarray]:
        """Solve the restricted LP; return the duals of the photo and region rows."""
        self.solver.run()
        status = self.solver.getModelStatus()
        if status != highspy.HighsModelStatus.kOptimal:
            raise RuntimeError("allocation LP: HiGHS stopped with status "
                               f"{self.solver.modelStatusToString(status)}")
        dual = np.asarray(self.solver.getSolution().row_dual)
        return dual[:self.photos], dual[self.photos:]

    def region_of(self) -> np.ndarray:
        """Region (column of ``reduced``) of each photo in the last solution."""
        values = np.asarray(self.solver.getSolution().col_value)
        if np.any(values[:self.first_real] > 1e-9):
            raise RuntimeError("allocation LP: not enough photos for every region")
        region_of = np.full(self.photos, -1, dtype=np.int64)
        best = np.zeros(self.photos)
        position = self.first_real
        for photo_idx, region_idx in self.columns:
            share = values[position:position + photo_idx.size]
            position += photo_idx.size
            take = share > best[photo_idx]
            region_of[photo_idx[take]] = region_idx[take]
            best[photo_idx[take]] = share[take]
        if not np.allclose(best, 1.0, atol=1e-6):
            raise RuntimeError("allocation LP: the solution is not integral")
        return region_of
