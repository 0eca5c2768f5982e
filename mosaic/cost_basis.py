"""Orthonormal bases for coarse-to-fine scoring (:mod:`mosaic.cost_refine`), and rotation.

Any orthonormal basis keeps the refined costs exact; a good one (the features' principal
axes) makes the coarse bounds tight, so few candidates need their residual product.
"""

from __future__ import annotations

import numpy as np

from mosaic.cost import Features

#: Feature rows sampled to fit the PCA basis: any orthonormal basis keeps the results exact,
#: the sample only has to make the bounds tight.
FIT_ROWS = 20_000
#: Feature rows rotated per step (bounds the temporary memory).
ROTATE_ROWS = 8192


def pca_basis(features: Features, max_rows: int = FIT_ROWS) -> np.ndarray:
    """Principal axes of the (centred) tile and photo features, largest variance first.

    Parameters
    ----------
    features : Features
    max_rows : int
        At most this many rows (evenly spaced, half tiles, half crop candidates) are used.

    Returns
    -------
    ndarray of float32, shape (D, D)
        Orthonormal columns (float64 ``eigh``, then rounded), deterministic.
    """
    dims = features.dims
    photos = features.photos[..., :dims].reshape(-1, dims)
    sample = [_even_rows(part, max(1, max_rows // 2)) for part in (features.tiles, photos)]
    rows = np.concatenate(sample)
    # A float32 product is accurate enough: the basis only has to make the bounds tight.
    values, vectors = np.linalg.eigh((rows.T @ rows).astype(np.float64))
    order = np.argsort(-values, kind="stable")
    vectors = vectors[:, order]
    # Fix each axis's sign (largest entry positive) so the basis does not depend on LAPACK.
    signs = np.sign(vectors[np.abs(vectors).argmax(axis=0), np.arange(dims)])
    return (vectors * np.where(signs == 0, 1.0, signs)).astype(np.float32)


def haar_basis(dims: int) -> np.ndarray:
    """Orthonormal 2-D Haar basis of ``s x s x 3`` thumbnails, coarse levels first.

    The first ``3 (s / b)^2`` columns span the ``b x b`` block averages (rank 192 for
    2 x 2 blocks of 16 x 16 thumbnails), the alternative to :func:`pca_basis`.

    Parameters
    ----------
    dims : int
        Feature length ``3 s^2``, ``s`` a power of two.

    Returns
    -------
    ndarray of float32, shape (D, D)
    """
    side = round((dims // 3) ** 0.5)
    if 3 * side * side != dims or side & (side - 1):
        raise ValueError(f"{dims} features are not 3 s^2 with s a power of two")
    haar = np.ones((1, 1))
    while haar.shape[0] < side:  # rows: averages, then details of each level
        n = haar.shape[0]
        haar = np.vstack([np.kron(haar, [1.0, 1.0]), np.kron(np.eye(n), [1.0, -1.0])])
    haar /= np.linalg.norm(haar, axis=1, keepdims=True)
    level = np.ceil(np.log2(np.arange(side) + 1)).astype(int)
    pairs = sorted((max(level[i], level[j]), i, j, c) for i in range(side)
                   for j in range(side) for c in range(3))
    basis = np.zeros((side, side, 3, dims))
    for col, (_, i, j, c) in enumerate(pairs):
        basis[:, :, c, col] = np.outer(haar[i], haar[j])
    return basis.reshape(dims, dims).astype(np.float32)


def _even_rows(array: np.ndarray, count: int) -> np.ndarray:
    if array.shape[0] <= count:
        return array
    return array[np.linspace(0, array.shape[0] - 1, count).astype(np.int64)]


def _aligned_zeros(shape: tuple[int, ...]) -> np.ndarray:
    """Zeroed float32 array whose data starts on a cache line (64 bytes)."""
    size = int(np.prod(shape)) * 4
    buffer = np.zeros(size + 64, dtype=np.uint8)
    start = -buffer.ctypes.data % 64
    return buffer[start:start + size].view(np.float32).reshape(shape)


def rotate(rows: np.ndarray, basis: np.ndarray, rank: int, segment: int
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows in ``basis``: coarse part, residual and residual tail norms.

    Parameters
    ----------
    rows : ndarray of float32, shape (n, D)
    basis : ndarray of float32, shape (D, D)
    rank : int
        Coarse components.
    segment : int
        Residual floats per tail segment.

    Returns
    -------
    coarse : ndarray, shape (n, rank + 1)
        Coarse coordinates, then the residual norm.
    residual : ndarray, shape (n, R)
    tails : ndarray, shape (n, S)
        Norm of the residual from each segment on.

    Notes
    -----
    The residual is padded with zeros to ``R``, a multiple of 16 floats, so that every row
    starts on a cache line (unaligned rows cost the kernel about 20%, measured).
    """
    dims = basis.shape[0]
    n_res = dims - rank
    width = -(-n_res // 16) * 16
    n_seg = -(-width // segment)
    coarse = np.empty((rows.shape[0], rank + 1), dtype=np.float32)
    res = _aligned_zeros((rows.shape[0], width))
    tail = np.empty((rows.shape[0], n_seg), dtype=np.float32)
    for start in range(0, rows.shape[0], ROTATE_ROWS):
        part = slice(start, start + ROTATE_ROWS)
        rotated = rows[part] @ basis
        coarse[part, :rank] = rotated[:, :rank]
        res[part, :n_res] = rotated[:, rank:]
        squares = np.square(res[part], dtype=np.float64)
        sums = np.add.reduceat(squares, np.arange(0, width, segment), axis=1)
        tail[part] = np.sqrt(np.cumsum(sums[:, ::-1], axis=1)[:, ::-1])
        coarse[part, rank] = tail[part, 0]
    return coarse, res, tail
