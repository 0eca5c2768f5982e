"""Coarse-to-fine block scoring: exact crop-candidate minima without scoring every crop fully.

:func:`mosaic.cost.block_cost` scores all K crop candidates of every photo with one GEMM over
all D feature dimensions, although only each pair's best candidate is kept. Here features
are first rotated into an orthonormal basis (PCA of the features, largest variance first)
whose first ``rank`` components are the *coarse* part and the rest the *residual*. Because
the basis is orthonormal, ``|a - b|^2 = |c(a) - c(b)|^2 + |r(a) - r(b)|^2`` exactly, and the
reverse triangle inequality on the residual gives the proven lower bound

    ``lb = (|c(a) - c(b)|^2 + (|r(a)| - |r(b)|)^2) / D``,

which is one small GEMM over ``rank + 3`` augmented columns for all K candidates. Then, per
pair (the C extension :mod:`mosaic._pairdot`, numpy when it is not built):

1. the candidate with the smallest bound gets its exact cost: ``lb`` plus a correction from
   the residual dot product of that pair's crop only;
2. every other candidate whose bound is below the best exact cost plus :data:`MARGIN` (room
   for float32 rounding) is refined too, in increasing bound order, residual segment by
   segment; the Cauchy-Schwarz bound on the remaining tail drops it as soon as it cannot win.

The result is :func:`~mosaic.cost.block_cost`'s (same cost within float32 rounding, about
1e-7, same winning crop unless two candidates tie within that) for the coarse GEMM plus
about one residual dot product per pair: about 2x faster on 16x16 Lab features with 7 crops
(``python -m benchmarks.bench_refine``). The residual coordinates take about as much memory
as the photo features themselves.

Passes that only look for small costs (a minimum per photo, each tile's cheapest few) can
give each pair a *cap* ``row_t + col_p``: a pair's cost is then exact only when it is below
its cap; the others are written as a lower bound at or above the cap, with the crop
:data:`PRUNED`, and most of them skip the residual product altogether.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from mosaic.cost import Features, Index, block_cost
from mosaic.cost_basis import haar_basis, pca_basis, rotate
from mosaic.errors import warn_once

try:
    from mosaic import _pairdot
except ImportError as error:  # a plain checkout: the extension is built on install
    _pairdot = None
    _BUILD_ERROR: ImportError | None = error
else:
    _BUILD_ERROR = None

logger = logging.getLogger(__name__)

#: Coarse components scored for every crop candidate. Ranks 32-96 score real 16x16 Lab
#: features equally fast (benchmarks/bench_refine.py --sweep); 64 is mid-range and leaves
#: about 1.25-1.35 candidates refined per pair. PCA beats the Haar (block average) basis.
DEFAULT_RANK = 64
#: Residual floats per refinement step: a dropped candidate stops after a multiple of this
#: (128 measured as fast as 256 and faster than 64 or 32).
SEGMENT = 128
#: Safety margin (MSE units) on every bound comparison, far above float32 rounding (~1e-7).
MARGIN = 1e-5
#: Tiles x photos from which the build scores through this module: below it the basis
#: and residual set-up (1-2 s at 10,000 x 10,000) costs about what it saves.
MIN_PAIRS = 25_000_000
#: Tiles x photos per bound GEMM: the bounds (16 x 7 x 512 floats) stay in L2 while the
#: kernel reads them, and each photo's crop rows serve 512 tiles (best of 128-512 x 8-128).
TILE_CHUNK = 512
PHOTO_PIECE = 16
#: A duplicate crop candidate's squared norm in the bound: it is never refined (an earlier
#: identical candidate wins every tie, as in block_cost's argmin).
HIDDEN = np.float32(1e30)
#: Most crop candidates the C kernel takes (a 64-bit mask); numpy refines more.
MAX_C_CROPS = 64
#: Crop written for a pair whose cost is only a bound at or above its cap.
PRUNED = 255
#: Counts the C kernel keeps (see RefineStats.add).
N_COUNTS = 5

Kernel = Literal["auto", "c", "portable", "numpy"]
#: Flat float32 and uint8 arrays a block's costs and crops may be written into.
Buffers = tuple[np.ndarray, np.ndarray]
#: A cap ``row[t] + col[p]`` on each pair of a block (see :func:`refined_block_cost`).
Cap = tuple[np.ndarray, np.ndarray]
Basis = Literal["pca", "haar"]


def c_kernel_built() -> bool:
    """Whether the C extension :mod:`mosaic._pairdot` is available."""
    return _pairdot is not None


def warn_not_built(error: BaseException | None) -> None:
    """Say once per process that the C kernel is missing and how to build it."""
    reason = f" ({error})" if error is not None else ""
    warn_once(logger, "mosaic._pairdot",
              f"the C kernel mosaic._pairdot is not built{reason}: refining crop candidates "
              "with numpy instead (same results, slower); build it with `pip install -e .` "
              "or `make setup` (needs a C compiler)")


@dataclass(frozen=True)
class RefineFeatures:
    """:class:`~mosaic.cost.Features` split into coarse and residual parts of one basis.

    Attributes
    ----------
    features : Features
        The features scored (their exact costs are the result).
    basis : ndarray of float32, shape (D, D)
        Orthonormal columns: the first ``rank`` coarse, the rest residual.
    rank : int
        Coarse components.
    segment : int
        Residual floats per refinement step.
    tile_coarse : ndarray of float32, shape (T, rank + 1)
        Coarse coordinates of each tile, then its residual norm.
    photo_coarse : ndarray of float32, shape (P, K, rank + 3)
        Coarse coordinates, residual norm, 1 and squared norm of each crop candidate
        (:data:`HIDDEN` instead of the norm for a duplicate of an earlier candidate).
    tile_res, photo_res : ndarray of float32, shapes (T, R) and (P, K, R)
        Residual coordinates, ``D - rank`` of them padded with zeros to ``R``, a multiple
        of 16 (rows aligned on cache lines).
    tile_tail, photo_tail : ndarray of float32, shapes (T, S) and (P, K, S)
        Norm of the residual from segment ``s`` on, ``S = ceil(R / segment)``.
    """

    features: Features
    basis: np.ndarray
    rank: int
    segment: int
    tile_coarse: np.ndarray
    photo_coarse: np.ndarray
    tile_res: np.ndarray
    photo_res: np.ndarray
    tile_tail: np.ndarray
    photo_tail: np.ndarray

    @property
    def nbytes(self) -> int:
        """Memory held beyond the features themselves."""
        return sum(a.nbytes for a in (self.basis, self.tile_coarse, self.photo_coarse,
                                      self.tile_res, self.photo_res, self.tile_tail,
                                      self.photo_tail))

    def lb_rows(self, tiles: np.ndarray) -> np.ndarray:
        """Augmented tile rows ``[-2 c / D, -2 |r| / D, |t|^2 / D, 1 / D]`` of the bound."""
        dims = self.features.dims
        rows = np.empty((tiles.size, self.rank + 3), dtype=np.float32)
        np.multiply(self.tile_coarse[tiles], np.float32(-2.0 / dims), out=rows[:, :-2])
        rows[:, -2] = self.features.tile_sq[tiles] / np.float32(dims)
        rows[:, -1] = np.float32(1.0 / dims)
        return rows


@dataclass
class RefineStats:
    """What the refinement did, summed over calls.

    Attributes
    ----------
    pairs : int
        (tile, photo) pairs scored.
    started : int
        Crop candidates refined (at least one residual segment, or the first candidate).
    completed : int
        Candidates whose exact cost was computed (the rest were dropped part way).
    segments : int
        Residual segments computed for candidates after the first.
    pruned : int
        Pairs left as a bound at or above their cap.
    hist : ndarray of int64, shape (K + 1,)
        Pairs by number of candidates refined.
    """

    pairs: int = 0
    started: int = 0
    completed: int = 0
    segments: int = 0
    pruned: int = 0
    hist: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def mean_refinements(self) -> float:
        """Candidates refined per pair (1 when the smallest bound always certifies)."""
        return self.started / max(1, self.pairs)

    def add(self, counts: np.ndarray, hist: np.ndarray) -> None:
        """Add the counts ``[pairs, started, completed, segments, pruned]`` and a histogram."""
        with self._lock:  # blocks may be scored by several threads into one record
            self.pairs += int(counts[0])
            self.started += int(counts[1])
            self.completed += int(counts[2])
            self.segments += int(counts[3])
            self.pruned += int(counts[4])
            if self.hist.size < hist.size:
                self.hist = np.pad(self.hist, (0, hist.size - self.hist.size))
            self.hist[:hist.size] += hist


def _duplicates(photos: np.ndarray) -> np.ndarray:
    """``(P, K)`` mask of crop candidates equal to an earlier candidate of the same photo."""
    n_crops = photos.shape[1]
    dup = np.zeros(photos.shape[:2], dtype=bool)
    for k in range(1, n_crops):
        for earlier in range(k):
            # Equal squared norms first: a full comparison only for the few that match.
            maybe = np.flatnonzero(~dup[:, k] & (photos[:, k, -1] == photos[:, earlier, -1]))
            same = np.all(photos[maybe, k] == photos[maybe, earlier], axis=1)
            dup[maybe[same], k] = True
    return dup


def refine_features(features: Features, rank: int = DEFAULT_RANK, basis: Basis = "pca",
                    segment: int = SEGMENT) -> RefineFeatures:
    """Rotate features into a coarse + residual basis for :func:`refined_block_cost`.

    Parameters
    ----------
    features : Features
    rank : int
        Coarse components, ``1 <= rank < D``.
    basis : {"pca", "haar"}
        Principal axes of the features (tighter bounds, the default) or the 2-D Haar basis.
    segment : int
        Residual floats per refinement step.

    Returns
    -------
    RefineFeatures
    """
    dims = features.dims
    if not 1 <= rank < dims:
        raise ValueError(f"rank must be in [1, {dims}), got {rank}")
    if segment < 1:
        raise ValueError(f"segment must be at least 1, got {segment}")
    if basis == "pca":
        axes = pca_basis(features)
    elif basis == "haar":
        axes = haar_basis(dims)
    else:
        raise ValueError(f"unknown basis {basis!r}; choose 'pca' or 'haar'")
    tile_coarse, tile_res, tile_tail = rotate(features.tiles, axes, rank, segment)
    n_photos, n_crops = features.n_photos, features.n_crops
    flat = features.photos[..., :dims].reshape(-1, dims)
    coarse, photo_res, photo_tail = rotate(flat, axes, rank, segment)
    photo_coarse = np.empty((n_photos, n_crops, rank + 3), dtype=np.float32)
    photo_coarse[..., :rank + 1] = coarse.reshape(n_photos, n_crops, rank + 1)
    photo_coarse[..., rank + 1] = 1.0
    photo_coarse[..., rank + 2] = np.where(_duplicates(features.photos), HIDDEN,
                                           features.photos[..., dims + 1])
    return RefineFeatures(
        features, axes, rank, segment, tile_coarse, photo_coarse, tile_res,
        photo_res.reshape(n_photos, n_crops, -1), tile_tail,
        photo_tail.reshape(n_photos, n_crops, -1))


def worth_refining(tiles: int, photos: int, crops: int) -> bool:
    """Whether a tiles x photos x crops scoring pays for :func:`refine_features`."""
    return crops > 1 and tiles * photos >= MIN_PAIRS


def _indices(index: Index, count: int) -> np.ndarray:
    """Selected positions as a contiguous int64 array (slices, index and boolean arrays)."""
    return np.ascontiguousarray(np.arange(count, dtype=np.int64)[index])


def refined_block_cost(rf: RefineFeatures, tiles: Index, photos: Index,
                       weights: np.ndarray | None = None, cap: Cap | None = None,
                       photo_major: bool = False, out: Buffers | None = None
                       ) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`mosaic.cost.block_cost` of ``rf.features``, refining only the candidates needed.

    Parameters
    ----------
    rf : RefineFeatures
    tiles : slice or ndarray of int
        Which tiles (rows).
    photos : slice or ndarray of int
        Which photos (columns).
    weights : ndarray, optional
        Multipliers of the selected tiles' rows (the weighted cost ``w_t c_tp``).
    cap : (ndarray, ndarray), optional
        ``(row, col)`` of shapes (t,) and (p,): the cap of pair ``(t, p)`` is ``row[t] +
        col[p]``, in the units of the result (weighted when ``weights`` are given). A pair
        whose cost is below its cap gets its exact cost; the others may instead get a lower
        bound at or above the cap, with the crop :data:`PRUNED` (a NaN cap is no cap).
    photo_major : bool
        Return the transposed block, (p, t), written in memory order (faster when most
        pairs are capped, and what per-photo minima want).
    out : (ndarray, ndarray), optional
        Flat float32 and uint8 buffers of at least ``t * p`` values: the result is written
        into them and returned as views (scans reuse them step after step instead of
        faulting in fresh pages each time).

    Returns
    -------
    cost : ndarray of float32, shape (t, p), or (p, t) when ``photo_major``
        In [0, 1] (times the weights).
    best_crop : ndarray of uint8, same shape, or None
        Winning crop candidate (:data:`PRUNED` for a capped bound); None when photos have
        one candidate (then every cost is exact).
    """
    cost, crop, _ = refined_block_cost_stats(rf, tiles, photos, weights, cap=cap,
                                             photo_major=photo_major, out=out)
    return cost, crop


def refined_block_cost_stats(rf: RefineFeatures, tiles: Index, photos: Index,
                             weights: np.ndarray | None = None, stats: RefineStats | None = None,
                             kernel: Kernel = "auto", cap: Cap | None = None,
                             photo_major: bool = False, out: Buffers | None = None
                             ) -> tuple[np.ndarray, np.ndarray | None, RefineStats]:
    """:func:`refined_block_cost` that also counts the refinements.

    Parameters
    ----------
    rf, tiles, photos, weights
        As for :func:`refined_block_cost`.
    stats : RefineStats, optional
        Counts are added to it (a new one when omitted).
    kernel : {"auto", "c", "portable", "numpy"}
        The C extension (AVX2 when the CPU has it), its portable C loops, or numpy;
        ``"auto"`` is the C extension when built, else numpy with one warning (numpy
        ignores ``cap``: every cost exact).
    cap, photo_major, out
        As for :func:`refined_block_cost`.

    Returns
    -------
    cost, best_crop
        As for :func:`refined_block_cost`.
    stats : RefineStats
    """
    stats = RefineStats() if stats is None else stats
    features = rf.features
    if features.n_crops == 1:  # nothing to choose: one exact pass is already minimal
        cost, crop = block_cost(features, tiles, photos, weights)
        stats.add(np.array([cost.size, cost.size, cost.size, 0, 0]), np.array([0, cost.size]))
        return (cost.T if photo_major else cost), None, stats
    use_c = kernel in ("c", "portable") or (kernel == "auto" and _pairdot is not None)
    use_c = use_c and features.n_crops <= MAX_C_CROPS
    if kernel == "auto" and _pairdot is None:
        warn_not_built(_BUILD_ERROR)
    if use_c and _pairdot is None:
        raise RuntimeError(f"mosaic._pairdot is not built ({_BUILD_ERROR})")
    tile_idx = _indices(tiles, features.n_tiles)
    photo_idx = _indices(photos, features.n_photos)
    shape = (tile_idx.size, photo_idx.size)
    cost, crop = _result_arrays(shape[::-1] if photo_major else shape, out)
    part = rf.photo_coarse[photo_idx].reshape(-1, rf.rank + 3)
    n_crops = features.n_crops
    counts = np.zeros(N_COUNTS, dtype=np.int64)
    hist = np.zeros(n_crops + 1, dtype=np.int64)
    refine = _refine_c if use_c else _refine_numpy
    kernel_cap = _kernel_cap(cap, weights, shape) if use_c else None
    for start in range(0, tile_idx.size, TILE_CHUNK):
        rows = tile_idx[start:start + TILE_CHUNK]
        bound_rows = np.ascontiguousarray(rf.lb_rows(rows).T)
        for first in range(0, photo_idx.size, PHOTO_PIECE):
            piece_cap = None if kernel_cap is None else (
                kernel_cap[0][start:start + TILE_CHUNK],
                kernel_cap[1][first:first + PHOTO_PIECE], kernel_cap[2][start:start + TILE_CHUNK])
            # Photo-major (photos, K, tiles) bounds, small enough to stay in cache.
            lb = part[first * n_crops:(first + PHOTO_PIECE) * n_crops] @ bound_rows
            lb = lb.reshape(-1, n_crops, rows.size)
            refine(rf, lb, rows, photo_idx[first:first + PHOTO_PIECE], cost, crop,
                   (start, first), counts, hist, kernel == "portable", piece_cap, photo_major)
    stats.add(counts, hist)
    if weights is not None:
        w = np.asarray(weights, dtype=np.float32)
        cost *= w[None, :] if photo_major else w[:, None]
        np.maximum(cost, 0.0, out=cost)
    return cost, crop, stats


def _result_arrays(shape: tuple[int, int], out: Buffers | None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Cost and crop arrays of ``shape``: new, or views of the ``out`` buffers."""
    if out is None:
        return np.empty(shape, dtype=np.float32), np.empty(shape, dtype=np.uint8)
    size = shape[0] * shape[1]
    values, crops = out
    if values.dtype != np.float32 or crops.dtype != np.uint8 or min(values.size,
                                                                   crops.size) < size:
        raise ValueError(f"out buffers hold fewer than {size} float32 and uint8 values")
    return values[:size].reshape(shape), crops[:size].reshape(shape)


def _kernel_cap(cap: Cap | None, weights: np.ndarray | None, shape: tuple[int, int]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The kernel's cap ``(row, col, scale)``, in unweighted units: ``(row + col) * scale``.

    A tile of weight 0 (or less) gets no cap (its row is infinite).
    """
    if cap is None:
        return None
    row, col = (np.ascontiguousarray(part, dtype=np.float32) for part in cap)
    if row.shape != (shape[0],) or col.shape != (shape[1],):
        raise ValueError(f"cap parts have shapes {row.shape} and {col.shape}, "
                         f"the block {shape}")
    if weights is None:
        return row, col, np.ones(shape[0], dtype=np.float32)
    w = np.asarray(weights, dtype=np.float32)
    scale = np.divide(1.0, w, out=np.ones_like(w), where=w > 0)
    return np.where(w > 0, row, np.inf).astype(np.float32), col, scale


def _refine_c(rf: RefineFeatures, lb: np.ndarray, tiles: np.ndarray, photos: np.ndarray,
              cost: np.ndarray, crop: np.ndarray, at: tuple[int, int], counts: np.ndarray,
              hist: np.ndarray, portable: bool,
              cap: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
              photo_major: bool = False) -> None:
    """Refine the pairs of ``lb`` (photos, K, tiles) into ``cost`` at ``at`` (tile, photo)."""
    _pairdot.refine(lb, rf.tile_res, rf.tile_tail, tiles, rf.photo_res, rf.photo_tail,
                    photos, rf.segment, 2.0 / rf.features.dims, MARGIN, cost, crop, *at,
                    counts, hist, portable, cap, photo_major)


def _refine_numpy(rf: RefineFeatures, lb: np.ndarray, tiles: np.ndarray, photos: np.ndarray,
                  cost: np.ndarray, crop: np.ndarray, at: tuple[int, int], counts: np.ndarray,
                  hist: np.ndarray, portable: bool = False,
                  cap: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                  photo_major: bool = False) -> None:
    """The C kernel's selection in numpy, from every candidate's residual dot (one GEMM).

    Scoring every candidate costs as much as :func:`~mosaic.cost.block_cost`, but a GEMM
    beats gathering rows in numpy; candidates are still visited (and counted) in the
    kernel's order, so the results and counts are the kernel's.
    """
    del portable, cap  # every cost is exact here
    n_photos, n_crops, n_tiles = lb.shape
    lb = lb.transpose(2, 0, 1)  # (tiles, photos, K)
    res_p = rf.photo_res[photos].reshape(n_photos * n_crops, -1)
    dots = (rf.tile_res[tiles] @ res_p.T).reshape(n_tiles, n_photos, n_crops)
    norms = _norms(rf.tile_tail[tiles])[:, None, None] * _norms(
        rf.photo_tail[photos].reshape(n_photos * n_crops, -1)).reshape(n_photos, n_crops)
    exact = lb + np.float32(2.0 / rf.features.dims) * (norms - dots)
    np.maximum(exact, 0.0, out=exact)
    order = np.argsort(lb, axis=2, kind="stable")
    bounds = np.take_along_axis(lb, order, axis=2)
    values = np.take_along_axis(exact, order, axis=2)
    best = values[..., 0].copy()
    best_k = order[..., 0].copy()
    started = np.ones(best.shape, dtype=np.int64)
    for position in range(1, n_crops):
        # Sorted bounds: once a pair's next bound reaches its limit it stays closed.
        need = (bounds[..., position] < best + np.float32(MARGIN)) & (started == position)
        k, value = order[..., position], values[..., position]
        better = need & ((value < best) | ((value == best) & (k < best_k)))
        best = np.where(better, value, best)
        best_k = np.where(better, k, best_k)
        started += need
    out = (slice(at[0], at[0] + n_tiles), slice(at[1], at[1] + n_photos))
    if photo_major:
        out, best, best_k = out[::-1], best.T, best_k.T
    cost[out] = best
    crop[out] = best_k
    total = int(started.sum())
    counts += [best.size, total, total, 0, 0]
    hist += np.bincount(started.ravel(), minlength=n_crops + 1)


def _norms(tail: np.ndarray) -> np.ndarray:
    """Residual norms (the first tail), 0 when there is no residual."""
    return tail[:, 0] if tail.shape[1] else np.zeros(tail.shape[0], dtype=np.float32)
