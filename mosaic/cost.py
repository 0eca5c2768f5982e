"""The photo x tile cost: mean squared error between feature vectors, in one kernel.

``cost[t, p] = (|t|^2 + |p|^2 - 2 t . p) / D`` is one matrix product (BLAS) of augmented
rows (:class:`Features`): ``[-2 w_t t / D, w_t |t|^2 / D, w_t / D]`` for the tile and
``[p, 1, |p|^2]`` for the photo, so tile weights cost nothing and a block needs no
elementwise pass but the clip at 0. Features are centred on their common mean first,
which leaves every distance unchanged but keeps float32 cancellation well below 1e-6
(the tests compare with ``skimage.metrics.mean_squared_error`` pair by pair).

:func:`block_cost` (any tiles x any photos) and :func:`pair_cost` (listed pairs only) are
the kernel; the dense :func:`cost_matrix` and :func:`mse_matrix` and the block scoring of
:mod:`mosaic.blocks` all call them, so a pair costs the same on every path.

When a photo has several crop candidates, its cost for a tile is the minimum over its
candidates, and the winning candidate is returned too so rendering can use it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mosaic.features import Metric, to_features

ProgressFn = Callable[[int], None]
#: Which tiles or photos: a slice or an array of indices.
Index = slice | np.ndarray


@dataclass(frozen=True)
class Features:
    """Tile and photo features centred on a common mean, ready for block scoring.

    A weighted cost ``w_t (|t|^2 + |p|^2 - 2 t.p) / D`` is one matrix product of
    augmented rows: ``[-2 w_t t / D, w_t |t|^2 / D, w_t / D]`` for the tile and
    ``[p, 1, |p|^2]`` for the photo, so a block needs no elementwise passes but the clip
    at 0.

    Attributes
    ----------
    tiles : ndarray of float32, shape (T, D)
        Centred tile features.
    tile_sq : ndarray of float32, shape (T,)
        Their squared norms.
    photos : ndarray of float32, shape (P, K, D + 2)
        Centred photo features (K crop candidates; K = 1 without candidates), each
        followed by 1 and its squared norm.
    """

    tiles: np.ndarray
    tile_sq: np.ndarray
    photos: np.ndarray

    @property
    def n_tiles(self) -> int:
        """Number of tiles T."""
        return int(self.tiles.shape[0])

    @property
    def n_photos(self) -> int:
        """Number of photos P."""
        return int(self.photos.shape[0])

    @property
    def n_crops(self) -> int:
        """Crop candidates per photo K."""
        return int(self.photos.shape[1])

    @property
    def dims(self) -> int:
        """Feature length D."""
        return int(self.tiles.shape[1])

    @property
    def nbytes(self) -> int:
        """Memory held by the features."""
        return self.tiles.nbytes + self.tile_sq.nbytes + self.photos.nbytes

    def tile_rows(self, tiles: Index, weights: np.ndarray | None = None) -> np.ndarray:
        """Augmented tile rows ``[-2 w t / D, w |t|^2 / D, w / D]`` (float32)."""
        part = self.tiles[tiles]
        scale = np.full(part.shape[0], 1.0 / self.dims, dtype=np.float32)
        if weights is not None:
            scale *= np.asarray(weights, dtype=np.float32)
        rows = np.empty((part.shape[0], self.dims + 2), dtype=np.float32)
        np.multiply(part, (-2.0 * scale)[:, None], out=rows[:, :-2])
        rows[:, -2] = self.tile_sq[tiles] * scale
        rows[:, -1] = scale
        return rows


def prepare_features(tile_features: np.ndarray, photo_features: np.ndarray) -> Features:
    """Centre tile and photo features on their common mean and augment them for scoring.

    Parameters
    ----------
    tile_features : ndarray, shape (T, D)
    photo_features : ndarray, shape (P, D) or (P, K, D)
        One row per photo, or K crop candidates per photo.

    Returns
    -------
    Features
    """
    if photo_features.ndim == 2:
        photo_features = photo_features[:, None, :]
    if tile_features.ndim != 2 or photo_features.ndim != 3:
        raise ValueError(f"bad feature shapes {tile_features.shape}, {photo_features.shape}")
    if tile_features.shape[1] != photo_features.shape[2]:
        raise ValueError(f"feature lengths differ: tiles {tile_features.shape[1]}, "
                         f"photos {photo_features.shape[2]}")
    for name, array in (("tile", tile_features), ("photo", photo_features)):
        if not np.issubdtype(array.dtype, np.floating):
            raise ValueError(f"{name} features must be floating point, got {array.dtype}")
    dims = tile_features.shape[1]
    flat = photo_features.reshape(-1, dims)
    mean = (tile_features.mean(axis=0, dtype=np.float64) * 0.5
            + flat.mean(axis=0, dtype=np.float64) * 0.5).astype(np.float32)
    tiles = np.ascontiguousarray(tile_features, dtype=np.float32) - mean
    tile_sq = np.einsum("ij,ij->i", tiles, tiles, dtype=np.float64).astype(np.float32)
    photos = np.empty((*photo_features.shape[:2], dims + 2), dtype=np.float32)
    np.subtract(photo_features, mean, out=photos[..., :dims])
    photos[..., dims] = 1.0
    photos[..., dims + 1] = np.einsum("ijk,ijk->ij", photos[..., :dims], photos[..., :dims],
                                      dtype=np.float64)
    return Features(tiles, tile_sq, photos)



def keep_mean_colour(features: np.ndarray, kept: float) -> None:
    """Scale each feature row's mean colour by ``kept``, in place (rows are ``(..., 3 n)``).

    With the mean of every channel scaled by ``1 - S`` on both sides, the MSE of two rows
    is the error left once the photo's mean colour has moved ``S`` of the way to the
    cell's: the texture term is unchanged and the mean term shrinks by ``(1 - S)^2``.
    """
    if kept == 1.0:
        return
    pixels = features.view()
    pixels.shape = (*features.shape[:-1], -1, 3)  # raises rather than edit a copy
    pixels -= np.float32(1.0 - kept) * pixels.mean(axis=-2, keepdims=True)


def thumb_features(tile_thumbs: np.ndarray, photo_thumbs: np.ndarray, metric: Metric,
                   chunk: int = 1024, mean_kept: float = 1.0) -> Features:
    """:func:`prepare_features` of the thumbnails' features, built in place chunk by chunk.

    Equal to ``prepare_features(to_features(tile_thumbs), to_features(photo_thumbs))`` up
    to float32 rounding, but the photos' features are written straight into the augmented
    array: no full-size float copy or colour-conversion temporaries, so a memory-mapped
    ``photo_thumbs`` is read a chunk at a time.

    Parameters
    ----------
    tile_thumbs : ndarray of uint8, shape (T, s, s, 3)
    photo_thumbs : ndarray of uint8, shape (P, s, s, 3) or (P, K, s, s, 3)
    metric : {"lab", "rgb"}
    chunk : int
        Photos converted at a time.
    mean_kept : float
        Below 1 the costs price a colour correction: see :func:`keep_mean_colour`.
    """
    if photo_thumbs.ndim == 4:
        photo_thumbs = photo_thumbs[:, None]
    tiles = to_features(np.asarray(tile_thumbs), metric)
    keep_mean_colour(tiles, mean_kept)
    count, crops = photo_thumbs.shape[:2]
    dims = tiles.shape[1]
    if photo_thumbs.ndim != 5 or int(np.prod(photo_thumbs.shape[2:])) != dims:
        raise ValueError(f"bad thumbnail shapes {tile_thumbs.shape}, {photo_thumbs.shape}")
    photos = np.empty((count, crops, dims + 2), dtype=np.float32)
    total = np.zeros(dims)
    for first, last in _ranges(count, chunk):
        part = photos[first:last, :, :dims]
        part[...] = to_features(np.asarray(photo_thumbs[first:last]), metric)
        keep_mean_colour(part, mean_kept)
        total += part.sum(axis=(0, 1), dtype=np.float64)
    mean = (tiles.mean(axis=0, dtype=np.float64) * 0.5
            + total / max(1, count * crops) * 0.5).astype(np.float32)
    tiles -= mean
    tile_sq = np.einsum("ij,ij->i", tiles, tiles, dtype=np.float64).astype(np.float32)
    for first, last in _ranges(count, chunk):
        part = photos[first:last]
        part[..., :dims] -= mean
        part[..., dims] = 1.0
        part[..., dims + 1] = np.einsum("ijk,ijk->ij", part[..., :dims], part[..., :dims],
                                        dtype=np.float64)
    return Features(tiles, tile_sq, photos)


def _ranges(count: int, step: int) -> list[tuple[int, int]]:
    return [(first, min(first + step, count)) for first in range(0, count, max(1, step))]


#: Bytes of one product inside :func:`block_cost`: larger requests are cut into photo chunks,
#: so a region pair's 6,000 x 6,000 x 7 crops never allocates gigabytes at once.
KERNEL_BYTES = 32 * 10**6


def block_cost(features: Features, tiles: Index, photos: Index,
               weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Mean squared error of some tiles against some photos, minimum over crop candidates.

    Parameters
    ----------
    features : Features
    tiles : slice or ndarray of int
        Which tiles (rows).
    photos : slice or ndarray of int
        Which photos (columns).
    weights : ndarray, optional
        Multipliers of the selected tiles' rows (the weighted cost ``w_t c_tp``).

    Returns
    -------
    cost : ndarray of float32, shape (t, p)
        In [0, 1] (times the weights).
    best_crop : ndarray of uint8, shape (t, p), or None
        Winning crop candidate; None when photos have one candidate.
    """
    rows = features.tile_rows(tiles, weights)
    parts = _photo_chunks(photos, features.n_photos,
                          max(1, KERNEL_BYTES // max(1, rows.shape[0] * features.n_crops * 4)))
    if len(parts) == 1:
        return _product_min(rows, features.photos[parts[0]])
    width = sum(_length(part) for part in parts)
    cost = np.empty((rows.shape[0], width), dtype=np.float32)
    crop = np.empty(cost.shape, dtype=np.uint8) if features.n_crops > 1 else None
    first = 0
    for part in parts:
        part_cost, part_crop = _product_min(rows, features.photos[part])
        last = first + part_cost.shape[1]
        cost[:, first:last] = part_cost
        if crop is not None:
            crop[:, first:last] = part_crop
        first = last
    return cost, crop


def _length(part: Index) -> int:
    return part.stop - part.start if isinstance(part, slice) else int(part.size)


def _photo_chunks(photos: Index, count: int, step: int) -> list[Index]:
    """``photos`` cut into pieces of at most ``step`` (slices stay views of the features)."""
    if isinstance(photos, slice):
        start, stop, stride = photos.indices(count)
        if stride == 1:
            return [slice(first, min(first + step, stop))
                    for first in range(start, max(start + 1, stop), step)]
        photos = np.arange(start, stop, stride)
    chosen = np.asarray(photos)
    return [chosen[first:first + step] for first in range(0, max(1, chosen.size), step)]


def _product_min(rows: np.ndarray, photo_part: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray | None]:
    """The kernel proper: augmented tile rows times photo rows, minimum over crops."""
    n_photos, n_crops, width = photo_part.shape
    cost = rows @ photo_part.reshape(-1, width).T
    np.maximum(cost, 0.0, out=cost)
    if n_crops == 1:
        return cost, None
    cube = cost.reshape(cost.shape[0], n_photos, n_crops)
    winner = cube.argmin(axis=2)
    best = np.take_along_axis(cube, winner[:, :, None], axis=2)[..., 0]
    return np.ascontiguousarray(best), winner.astype(np.uint8)


def pair_cost(features: Features, tiles: np.ndarray, photos: np.ndarray, chunk: int = 8192
              ) -> tuple[np.ndarray, np.ndarray]:
    """Cost and winning crop of the pairs ``(tiles[i], photos[i])`` only.

    Parameters
    ----------
    features : Features
    tiles, photos : ndarray of int, shape (n,)
    chunk : int
        Pairs per step (bounds the temporary memory).

    Returns
    -------
    cost : ndarray of float32, shape (n,)
    best_crop : ndarray of uint8, shape (n,)
        0 when photos have one candidate.
    """
    tiles = np.asarray(tiles, dtype=np.int64)
    photos = np.asarray(photos, dtype=np.int64)
    cost = np.empty(tiles.size, dtype=np.float32)
    crop = np.zeros(tiles.size, dtype=np.uint8)
    for start in range(0, tiles.size, chunk):
        rows = features.tile_rows(tiles[start:start + chunk])
        part = np.einsum("id,ikd->ik", rows, features.photos[photos[start:start + chunk]])
        np.maximum(part, 0.0, out=part)
        crop[start:start + chunk] = part.argmin(axis=1)
        cost[start:start + chunk] = part.min(axis=1)
    return cost, crop


def _check_features(name: str, features: np.ndarray, ndim: int) -> None:
    if features.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {features.shape}")
    if not np.issubdtype(features.dtype, np.floating):
        raise ValueError(f"{name} must be floating point, got {features.dtype}")


def mse_matrix(tile_features: np.ndarray, photo_features: np.ndarray) -> np.ndarray:
    """Mean squared error between every tile and every photo feature row.

    Parameters
    ----------
    tile_features : ndarray, shape (T, D)
    photo_features : ndarray, shape (P, D)

    Returns
    -------
    ndarray of float32, shape (T, P)
        Clipped at 0 (rounding can make a zero distance slightly negative).
    """
    _check_features("tile_features", tile_features, 2)
    _check_features("photo_features", photo_features, 2)
    return block_cost(prepare_features(tile_features, photo_features), slice(None),
                      slice(None))[0]


def cost_matrix(
    tile_features: np.ndarray,
    photo_features: np.ndarray,
    block: int = 2048,
    progress: ProgressFn | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Cost of putting each photo on each tile, minimum over each photo's crop candidates.

    Parameters
    ----------
    tile_features : ndarray, shape (T, D)
        One row per tile.
    photo_features : ndarray, shape (P, D) or (P, K, D)
        One row per photo, or K rows per photo (crop candidates).
    block : int
        Photos per block; bounds the temporary memory to T x block x K floats.
    progress : callable, optional
        Called with the number of photos finished after each block.

    Returns
    -------
    cost : ndarray of float32, shape (T, P)
        MSE in [0, 1].
    best_crop : ndarray of uint8, shape (T, P), or None
        Index of the winning candidate; None when there is one candidate per photo.
    """
    if photo_features.ndim == 2:
        photo_features = photo_features[:, None, :]
    _check_features("photo_features", photo_features, 3)
    _check_features("tile_features", tile_features, 2)
    features = prepare_features(tile_features, photo_features)
    n_tiles, n_photos = features.n_tiles, features.n_photos
    cost = np.empty((n_tiles, n_photos), dtype=np.float32)
    best_crop = (np.zeros((n_tiles, n_photos), dtype=np.uint8) if features.n_crops > 1
                 else None)
    for start in range(0, n_photos, block):
        stop = min(start + block, n_photos)
        part, part_crop = block_cost(features, slice(None), slice(start, stop))
        cost[:, start:stop] = part
        if best_crop is not None:
            best_crop[:, start:stop] = part_crop
        if progress is not None:
            progress(stop - start)
    return cost, best_crop
