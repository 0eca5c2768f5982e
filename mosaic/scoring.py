"""What a block of costs is scored from: the features, or the same rotated coarse-to-fine.

Every pass over tiles x photos (the dense matrix, and each step of the regional method)
takes a :data:`Scoring`: plain :class:`~mosaic.cost.Features` scored by
:func:`~mosaic.cost.block_cost`, or :class:`~mosaic.cost_refine.RefineFeatures` scored by
:func:`~mosaic.cost_refine.refined_block_cost`, which gives the same costs (within float32
rounding) about twice as fast when photos have several crop candidates.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from mosaic.cost import Features, Index, block_cost, pair_cost
from mosaic.cost_refine import (
    Buffers,
    Cap,
    RefineFeatures,
    refine_features,
    refined_block_cost,
    worth_refining,
)

#: Features as given, or rotated for coarse-to-fine scoring.
Scoring = Features | RefineFeatures

#: Pairs per step of :func:`scoring_pair_cost` (bounds its temporary memory).
PAIR_CHUNK = 8192

__all__ = ["PAIR_CHUNK", "Scoring", "base_features", "for_scoring", "rotated_only",
           "scoring_cost", "scoring_pair_cost"]


def base_features(scoring: Scoring) -> Features:
    """The features a scoring scores (sizes, exact pair costs)."""
    return scoring.features if isinstance(scoring, RefineFeatures) else scoring


def for_scoring(features: Features, always: bool = False) -> Scoring:
    """``features`` rotated for coarse-to-fine scoring when the problem is big enough to pay.

    See :func:`~mosaic.cost_refine.worth_refining`: several crops per photo and at least
    :data:`~mosaic.cost_refine.MIN_PAIRS` tile-photo pairs; ``always`` rotates whenever
    photos have several crops (tests use it on small problems).
    """
    if features.n_crops > 1 and (always or worth_refining(
            features.n_tiles, features.n_photos, features.n_crops)):
        return refine_features(features)
    return features


def scoring_cost(scoring: Scoring, tiles: Index, photos: Index,
                 weights: np.ndarray | None = None, cap: Cap | None = None,
                 photo_major: bool = False, out: Buffers | None = None
                 ) -> tuple[np.ndarray, np.ndarray | None]:
    """Costs of ``tiles`` x ``photos`` (the minimum over crops) and the winning crops.

    Parameters
    ----------
    scoring : Scoring
    tiles, photos : slice or ndarray of int
        Rows and columns.
    weights : ndarray, optional
        Multipliers of the selected tiles' rows.
    cap : (ndarray, ndarray), optional
        ``(row, col)``: pair ``(t, p)`` only matters below ``row[t] + col[p]`` (weighted, with
        ``weights``); a pair at or above its cap may get a lower bound at or above it
        instead of its cost, marked by the crop :data:`~mosaic.cost_refine.PRUNED`
        (coarse-to-fine scoring only; plain features give every exact cost).
    photo_major : bool
        Return the transposed block, (p, t) (faster for capped scans).
    out : (ndarray, ndarray), optional
        Flat buffers for the result (coarse-to-fine scoring only; see
        :func:`~mosaic.cost_refine.refined_block_cost`).

    Returns
    -------
    cost : ndarray of float32, shape (t, p), or (p, t) when ``photo_major``
    best_crop : ndarray of uint8, same shape, or None
        None when photos have one candidate (every cost then exact).
    """
    if isinstance(scoring, RefineFeatures):
        return refined_block_cost(scoring, tiles, photos, weights, cap=cap,
                                  photo_major=photo_major, out=out)
    cost, crop = block_cost(scoring, tiles, photos, weights)
    if photo_major:
        return cost.T, None if crop is None else crop.T
    return cost, crop



def scoring_pair_cost(scoring: Scoring, tiles: np.ndarray, photos: np.ndarray,
                      chunk: int = PAIR_CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """Cost and winning crop of the pairs ``(tiles[i], photos[i])`` only.

    :func:`mosaic.cost.pair_cost` of the features; for rotated features the same costs
    (within float32 rounding: the basis is orthonormal) from the rotated parts alone, so
    that :func:`rotated_only` scorings need no unrotated copy.

    Parameters
    ----------
    scoring : Scoring
    tiles, photos : ndarray of int, shape (n,)
    chunk : int
        Pairs per step.

    Returns
    -------
    cost : ndarray of float32, shape (n,)
    best_crop : ndarray of uint8, shape (n,)
    """
    if not isinstance(scoring, RefineFeatures):
        return pair_cost(scoring, tiles, photos, chunk)
    tiles = np.asarray(tiles, dtype=np.int64)
    photos = np.asarray(photos, dtype=np.int64)
    rank, dims = scoring.rank, scoring.features.dims
    cost = np.empty(tiles.size, dtype=np.float32)
    crop = np.empty(tiles.size, dtype=np.uint8)
    for start in range(0, tiles.size, chunk):
        t, p = tiles[start:start + chunk], photos[start:start + chunk]
        coarse = scoring.photo_coarse[p]  # coordinates, residual norm, 1, |p|^2 (or hidden)
        dot = (np.einsum("ir,ikr->ik", scoring.tile_coarse[t, :rank], coarse[..., :rank])
               + np.einsum("ir,ikr->ik", scoring.tile_res[t], scoring.photo_res[p]))
        part = (scoring.features.tile_sq[t, None] + coarse[..., rank + 2] - 2.0 * dot) / dims
        np.maximum(part, 0.0, out=part)
        crop[start:start + chunk] = part.argmin(axis=1)
        cost[start:start + chunk] = part.min(axis=1)
    return cost, crop


def rotated_only(scoring: Scoring) -> Scoring:
    """Rotated features without the unrotated photo features they were made from.

    The coarse-to-fine passes and :func:`scoring_pair_cost` read only the rotated parts,
    so the regional method keeps one copy of the photos' features, not two (2.2 GB less
    at 100,000 photos with 7 crops). The photo features left behind have no values
    (shape ``(P, K, 0)``): sizes still read right, and anything that would score from
    them fails at once instead of giving wrong costs. Plain features are returned as
    they are.
    """
    if not isinstance(scoring, RefineFeatures):
        return scoring
    base = scoring.features
    empty = np.empty((base.n_photos, base.n_crops, 0), dtype=np.float32)
    return replace(scoring, features=Features(base.tiles, base.tile_sq, empty))
