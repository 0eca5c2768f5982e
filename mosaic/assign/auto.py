"""Choosing the assignment method for a problem size, within a memory budget.

``--method auto`` (the default) takes the dense exact solver while the tiles x photos
matrix and the solver's work arrays fit the memory budget, and the regional method
(:mod:`mosaic.assign.regional`) beyond; :func:`choose_method` says which, and why, for
``metrics.json``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mosaic.assign.regional import REGION_TILES, default_regions, pair_bytes
from mosaic.blocks import default_max_memory, dense_bytes, format_bytes
from mosaic.errors import MosaicError

BY_SIZE = ("auto", "optimal", "regional")
"""The methods this module chooses between or checks by size (the registry,
:mod:`mosaic.assign.methods`, marks the same ones ``by_size``; a test keeps them equal)."""

#: Share of the budget the dense need (process, features, matrix, solver) may take: slack
#: for what the estimate misses.
DENSE_SHARE = 0.9
#: A build process's own resident memory besides features and matrices (Python, numpy,
#: Prefect, mediapipe's models): 230 MB after the imports, 260-300 MB by the time it
#: scores (measured at 10,000 photos). The build plans with it so that ``--max-memory``
#: bounds the whole process, not only the matrix.
PROCESS_BYTES = 300 * 10**6


@dataclass(frozen=True)
class MethodChoice:
    """Which method runs, and why.

    Attributes
    ----------
    method : str
        "optimal" (dense exact) or "regional".
    reason : str
        One sentence for reports.
    dense_bytes : int
        Memory the dense exact method would need.
    max_memory : int
        The budget in bytes.
    regions : int or None
        Region count for "regional".
    """

    method: str
    reason: str
    dense_bytes: int
    max_memory: int
    regions: int | None = None


def smallest_budget(tiles: int, photos: int, crops: int = 1, regions: int | None = None,
                    workers: int = 2, feature_bytes: int = 0, process_bytes: int = 0) -> int:
    """The smallest memory budget at which a build runs at full quality.

    That is the dense exact method's need, or the regional method's with its regions of
    the usual size (:data:`~mosaic.assign.regional.REGION_TILES` tiles, or ``regions``),
    whichever is smaller. Below it the regional method would cut the problem into ever
    smaller regions and give a worse mosaic without saying so.
    """
    base = feature_bytes + process_bytes
    dense = (dense_bytes(tiles, photos, crops) + base) / DENSE_SHARE
    count = regions or max(1, round(tiles / REGION_TILES))
    regional = base + 2 * workers * pair_bytes(tiles, photos, count)
    return math.ceil(min(dense, regional))


def choose_method(tiles: int, photos: int, crops: int = 1, max_memory: int | None = None,
                  requested: str = "auto", regions: int | None = None, workers: int = 2,
                  feature_bytes: int = 0, process_bytes: int = 0) -> MethodChoice:
    """Pick the assignment method for a problem size and memory budget.

    Parameters
    ----------
    tiles, photos : int
        Problem size.
    crops : int
        Crop candidates per photo.
    max_memory : int, optional
        Budget in bytes (default :func:`mosaic.blocks.default_max_memory`).
    requested : {"auto", "optimal", "regional"}
        What the user asked for; "auto" chooses.
    regions : int, optional
        Region count for "regional" (default :func:`default_regions`).
    workers : int
        Tasks running at once (local threads or cluster threads).
    feature_bytes : int
        Memory held by the features.
    process_bytes : int
        The process's own memory (:data:`PROCESS_BYTES` for a build), so that the budget
        bounds the whole process.

    Returns
    -------
    MethodChoice

    Raises
    ------
    MosaicError
        Unknown method, or "optimal" asked for a matrix over the budget.
    """
    if requested not in BY_SIZE:
        raise MosaicError(f"`method` {requested!r}: choose from {', '.join(BY_SIZE)}")
    budget = max_memory or default_max_memory()
    base = feature_bytes + process_bytes
    needed = dense_bytes(tiles, photos, crops) + base
    fits = needed <= DENSE_SHARE * budget
    if requested == "optimal" and not fits:
        raise MosaicError(
            f"`method` optimal needs about {format_bytes(needed)} for the {tiles:,} x "
            f"{photos:,} cost matrix (with the features and the process), over "
            f"{DENSE_SHARE:.0%} of `max_memory` {format_bytes(budget)}; raise `max_memory` "
            "or use `method` regional")
    if requested == "optimal" or (requested == "auto" and fits):
        reason = (f"dense exact: the {tiles:,} x {photos:,} matrix and solver need "
                  f"{format_bytes(needed)} (with the features and the process), within "
                  f"max_memory {format_bytes(budget)}")
        return MethodChoice("optimal", reason, needed, budget)
    count = regions or default_regions(tiles, photos, max(1, budget - base), workers)
    if requested == "regional":
        reason = (f"regional with {count} regions, as asked" if regions else
                  f"regional, as asked, with {count} regions of about "
                  f"{tiles // max(1, count):,} tiles")
    else:
        reason = (f"regional with {count} regions: the dense {tiles:,} x {photos:,} matrix "
                  f"would need {format_bytes(needed)}, over max_memory "
                  f"{format_bytes(budget)}")
    return MethodChoice("regional", reason, needed, budget, count)
