"""What a block of costs is scored from: the features, or the same rotated coarse-to-fine.

Every pass over tiles x photos (the dense matrix, and each step of the regional method)
takes a :data:`Scoring`: plain :class:`~mosaic.cost.Features` scored by
:func:`~mosaic.cost.block_cost`, or :class:`~mosaic.cost_refine.RefineFeatures` scored by
:func:`~mosaic.cost_refine.refined_block_cost`, which gives the same costs (within float32
rounding) about twice as fast when photos have several crop candidates.
"""

from __future__ import annotations

import numpy as np

from mosaic.cost import Features, Index, block_cost
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

__all__ = ["Scoring", "base_features", "for_scoring", "scoring_cost"]


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

