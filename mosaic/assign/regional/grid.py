"""The tile grid cut into rectangular regions, and how many regions a problem gets."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mosaic.assign.regional.allocation import SPARE_SHARE

#: Target tiles per region when the count is not given.
REGION_TILES = 3200


@dataclass(frozen=True)
class RegionGrid:
    """The tile grid cut into ``region_rows x region_cols`` rectangles.

    Attributes
    ----------
    rows, cols : int
        The tile grid (tiles are numbered row by row).
    region_rows, region_cols : int
        Regions down and across.
    labels : ndarray of int64, shape (rows * cols,)
        Region of each tile, numbered row by row.
    """

    rows: int
    cols: int
    region_rows: int
    region_cols: int
    labels: np.ndarray

    @property
    def count(self) -> int:
        """Number of regions."""
        return self.region_rows * self.region_cols

    def tiles_of(self, region: int) -> np.ndarray:
        """Tile indices of ``region``, ascending."""
        return np.flatnonzero(self.labels == region)

    def sizes(self) -> np.ndarray:
        """Tiles per region."""
        return np.bincount(self.labels, minlength=self.count)

    def pair_classes(self) -> list[list[tuple[int, int]]]:
        """Neighbouring pairs in four classes; pairs within a class share no region."""
        classes: list[list[tuple[int, int]]] = [[], [], [], []]
        for a in range(self.region_rows):
            for b in range(self.region_cols):
                here = a * self.region_cols + b
                if b + 1 < self.region_cols:
                    classes[b % 2].append((here, here + 1))
                if a + 1 < self.region_rows:
                    classes[2 + a % 2].append((here, here + self.region_cols))
        return [c for c in classes if c]

    def pairs(self) -> list[tuple[int, int]]:
        """All pairs of regions sharing an edge."""
        return [pair for group in self.pair_classes() for pair in group]


def region_shape(rows: int, cols: int, regions: int) -> tuple[int, int]:
    """Regions down and across: ``regions`` factored so the pieces are closest to square."""
    regions = max(1, min(regions, rows * cols))
    best: tuple[float, int, int] | None = None
    for down in range(1, regions + 1):
        if regions % down:
            continue
        across = regions // down
        if down > rows or across > cols:
            continue
        badness = abs(math.log((rows / down) / (cols / across)))
        if best is None or badness < best[0]:
            best = (badness, down, across)
    if best is None:  # e.g. a prime count larger than both sides: fall back to strips
        return (min(regions, rows), 1) if rows >= cols else (1, min(regions, cols))
    return best[1], best[2]


def split_grid(rows: int, cols: int, regions: int) -> RegionGrid:
    """Cut a ``rows x cols`` tile grid into about ``regions`` near-square rectangles.

    Parameters
    ----------
    rows, cols : int
        The tile grid.
    regions : int
        Wanted number of regions (factored as down x across; see :func:`region_shape`).

    Returns
    -------
    RegionGrid
    """
    if rows < 1 or cols < 1:
        raise ValueError(f"empty grid {rows} x {cols}")
    down, across = region_shape(rows, cols, regions)
    row_edges = np.linspace(0, rows, down + 1).round().astype(np.int64)
    col_edges = np.linspace(0, cols, across + 1).round().astype(np.int64)
    row_band = np.searchsorted(row_edges, np.arange(rows), side="right") - 1
    col_band = np.searchsorted(col_edges, np.arange(cols), side="right") - 1
    labels = (row_band[:, None] * across + col_band[None, :]).ravel().astype(np.int64)
    return RegionGrid(rows, cols, down, across, labels)


def default_regions(tiles: int, photos: int, max_memory: int, workers: int = 2) -> int:
    """How many regions: about :data:`REGION_TILES` tiles each, more if memory is short.

    A pair of regions (both regions' tiles and photos) is the largest matrix the repair
    scores; ``workers`` of them in flight must fit in half of ``max_memory``.
    """
    regions = max(1, round(tiles / REGION_TILES))
    while regions < tiles:
        if pair_bytes(tiles, photos, regions) * workers <= max_memory / 2:
            break
        regions *= 2
    return int(min(regions, tiles))


def pair_bytes(tiles: int, photos: int, regions: int) -> float:
    """Bytes of the largest matrix the repair scores: a pair of regions' tiles x photos."""
    pair_tiles = 2 * tiles / max(1, regions)
    return 4 * pair_tiles * pair_tiles * min(photos / max(1, tiles), 1 + SPARE_SHARE)

