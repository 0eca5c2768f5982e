"""The photo x tile cost matrix: mean squared error between feature vectors.

``cost[t, p] = (|t|^2 + |p|^2 - 2 t . p) / D`` is one matrix product (BLAS). Features
are centred on their common mean first, which leaves every distance unchanged but keeps
float32 cancellation well below 1e-6 (the tests compare with
``skimage.metrics.mean_squared_error`` pair by pair).

When a photo has several crop candidates, its cost for a tile is the minimum over its
candidates, and the winning candidate is returned too so rendering can use it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

ProgressFn = Callable[[int], None]


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
    if tile_features.shape[1] != photo_features.shape[1]:
        raise ValueError(
            f"feature lengths differ: tiles {tile_features.shape[1]}, "
            f"photos {photo_features.shape[1]}"
        )
    dims = tile_features.shape[1]
    mean = (tile_features.mean(axis=0, dtype=np.float64) * 0.5
            + photo_features.mean(axis=0, dtype=np.float64) * 0.5).astype(np.float32)
    tiles = tile_features.astype(np.float32) - mean
    photos = photo_features.astype(np.float32) - mean
    tile_sq = np.einsum("ij,ij->i", tiles, tiles, dtype=np.float64).astype(np.float32)
    photo_sq = np.einsum("ij,ij->i", photos, photos, dtype=np.float64).astype(np.float32)
    cost = tiles @ photos.T
    cost *= np.float32(-2.0)
    cost += tile_sq[:, None]
    cost += photo_sq[None, :]
    cost *= np.float32(1.0 / dims)
    np.maximum(cost, 0.0, out=cost)
    return cost


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
    n_photos, n_crops, dims = photo_features.shape
    n_tiles = tile_features.shape[0]
    cost = np.empty((n_tiles, n_photos), dtype=np.float32)
    best_crop = np.zeros((n_tiles, n_photos), dtype=np.uint8) if n_crops > 1 else None
    for start in range(0, n_photos, block):
        stop = min(start + block, n_photos)
        flat = photo_features[start:stop].reshape(-1, dims)
        part = mse_matrix(tile_features, flat).reshape(n_tiles, stop - start, n_crops)
        if best_crop is None:
            cost[:, start:stop] = part[:, :, 0]
        else:
            winner = part.argmin(axis=2)
            best_crop[:, start:stop] = winner
            cost[:, start:stop] = np.take_along_axis(part, winner[:, :, None], axis=2)[..., 0]
        if progress is not None:
            progress(stop - start)
    return cost, best_crop
