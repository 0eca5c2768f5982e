"""Choosing and running the assignment method for any size, within a memory budget.

``--method auto`` (the default) takes the dense exact solver while the tiles x photos
matrix and the solver's work arrays fit the memory budget, and the regional method
(:mod:`mosaic.assign.regional`) beyond. :func:`assign_large` runs either from the
features: the dense path scores the matrix in blocks into a memory-mapped file
(:func:`mosaic.blocks.score_to_memmap`) and solves it exactly; the regional path never
builds the matrix. Both report the method, the reason, the peak memory and the gap to a
proven lower bound, for ``metrics.json``.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mosaic.assign.exact import assign_optimal
from mosaic.assign.regional import (
    REGION_TILES,
    RegionalReport,
    assign_regional,
    default_regions,
    pair_bytes,
)
from mosaic.assign.result import Assignment
from mosaic.blocks import (
    BlockRunner,
    Features,
    default_max_memory,
    dense_bytes,
    format_bytes,
    pair_cost,
    score_to_memmap,
)
from mosaic.errors import MosaicError
from mosaic.machine import peak_memory_bytes

#: Methods :func:`choose_method` understands ("auto" picks one of the others).
LARGE_METHODS = ("auto", "optimal", "regional")
#: Share of the budget the dense matrix and solver may take (the rest: features, Python).
DENSE_SHARE = 0.8


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
                    workers: int = 2, feature_bytes: int = 0) -> int:
    """The smallest memory budget at which a build runs at full quality.

    That is the dense exact method's need, or the regional method's with its regions of
    the usual size (:data:`~mosaic.assign.regional.REGION_TILES` tiles, or ``regions``),
    whichever is smaller. Below it the regional method would cut the problem into ever
    smaller regions and give a worse mosaic without saying so.
    """
    dense = (dense_bytes(tiles, photos, crops) + feature_bytes) / DENSE_SHARE
    count = regions or max(1, round(tiles / REGION_TILES))
    regional = feature_bytes + 2 * workers * pair_bytes(tiles, photos, count)
    return math.ceil(min(dense, regional))


def choose_method(tiles: int, photos: int, crops: int = 1, max_memory: int | None = None,
                  requested: str = "auto", regions: int | None = None, workers: int = 2,
                  feature_bytes: int = 0) -> MethodChoice:
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

    Returns
    -------
    MethodChoice

    Raises
    ------
    MosaicError
        Unknown method, or "optimal" asked for a matrix over the budget.
    """
    if requested not in LARGE_METHODS:
        raise MosaicError(f"--method {requested!r}: choose from {', '.join(LARGE_METHODS)}")
    budget = max_memory or default_max_memory()
    needed = dense_bytes(tiles, photos, crops) + feature_bytes
    fits = needed <= DENSE_SHARE * budget
    if requested == "optimal" and not fits:
        raise MosaicError(
            f"--method optimal needs about {format_bytes(needed)} for the {tiles:,} x "
            f"{photos:,} cost matrix, over {DENSE_SHARE:.0%} of --max-memory "
            f"{format_bytes(budget)}; raise --max-memory or use --method regional")
    if requested == "optimal" or (requested == "auto" and fits):
        reason = (f"dense exact: the {tiles:,} x {photos:,} matrix and solver need "
                  f"{format_bytes(needed)}, within --max-memory {format_bytes(budget)}")
        return MethodChoice("optimal", reason, needed, budget)
    count = regions or default_regions(tiles, photos, budget, workers)
    if requested == "regional":
        reason = (f"regional with {count} regions, as asked" if regions else
                  f"regional, as asked, with {count} regions of about "
                  f"{tiles // max(1, count):,} tiles")
    else:
        reason = (f"regional with {count} regions: the dense {tiles:,} x {photos:,} matrix "
                  f"would need {format_bytes(needed)}, over --max-memory "
                  f"{format_bytes(budget)}")
    return MethodChoice("regional", reason, needed, budget, count)


@dataclass
class LargeResult:
    """The outcome of :func:`assign_large`.

    Attributes
    ----------
    assignment : Assignment
    best_crop : ndarray of uint8, shape (T,)
        Winning crop candidate of each tile's photo (0 without candidates).
    choice : MethodChoice
    score_seconds : float
        Time spent scoring (block passes over tiles x photos).
    solve_seconds : float
        Everything else.
    lower_bound : float
        Proven lower bound on the optimum (dual prices).
    peak_memory_bytes : int
        Peak resident memory of this process.
    regional : RegionalReport or None
        Details of a regional solve.
    """

    assignment: Assignment
    best_crop: np.ndarray
    choice: MethodChoice
    score_seconds: float
    solve_seconds: float
    lower_bound: float
    peak_memory_bytes: int
    regional: RegionalReport | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def metrics(self) -> dict[str, Any]:
        """The fields ``metrics.json`` reports about the assignment."""
        data: dict[str, Any] = {
            "method": self.assignment.method,
            "method_reason": self.choice.reason,
            "max_memory_bytes": self.choice.max_memory,
            "dense_bytes": self.choice.dense_bytes,
            "peak_memory_bytes": self.peak_memory_bytes,
            "score_seconds": self.score_seconds,
            "solve_seconds": self.solve_seconds,
            "objective": self.assignment.objective,
            "lower_bound": self.lower_bound,
            "gap": self.assignment.gap,
            "gap_to": ("dual lower bound of the exact solver" if self.choice.method == "optimal"
                       else "proven lower bound (global dual prices)"),
        }
        if self.regional is not None:
            data["regional"] = self.regional.to_dict()
        return data


def assign_large(features: Features, grid_shape: tuple[int, int],
                 weights: np.ndarray | None = None, method: str = "auto",
                 max_memory: int | None = None, regions: int | None = None,
                 runner: BlockRunner | None = None, workdir: str | Path | None = None,
                 log: Callable[[str], None] | None = None, **regional_options: Any
                 ) -> LargeResult:
    """Assign photos to tiles at any size: dense exact when it fits, else regional.

    Parameters
    ----------
    features : Features
        From :func:`mosaic.blocks.prepare_features` (tiles row by row).
    grid_shape : (int, int)
        Tile grid (rows, cols).
    weights : ndarray, shape (T,), optional
        Tile importance.
    method : {"auto", "optimal", "regional"}
        "auto" chooses by size and memory (:func:`choose_method`).
    max_memory : int, optional
        Budget in bytes (default :func:`mosaic.blocks.default_max_memory`).
    regions : int, optional
        Region count for "regional".
    runner : BlockRunner, optional
        Local Dask threads (default) or a cluster client.
    workdir : str or Path, optional
        Folder for the memory-mapped matrix of the dense path (default: a temporary one;
        the file is deleted after the solve).
    log : callable, optional
        Receives one line per stage.
    **regional_options
        Passed to :func:`mosaic.assign.regional.assign_regional`.

    Returns
    -------
    LargeResult
    """
    runner = runner or BlockRunner()
    say = log or (lambda _line: None)
    choice = choose_method(features.n_tiles, features.n_photos, features.n_crops, max_memory,
                           method, regions, runner.workers, features.nbytes)
    say(f"method: {choice.reason}")
    if choice.method == "optimal":
        return _assign_dense(features, weights, choice, runner, workdir, say)
    result = assign_regional(features, grid_shape, weights, choice.regions, choice.max_memory,
                             runner, log=say, **regional_options)
    report = result.report
    score = sum(report.seconds.get(k, 0.0) for k in ("c-transform pass", "reduced-cost pass"))
    total = sum(report.seconds.values())
    return LargeResult(result.assignment, result.best_crop, choice, score, total - score,
                       report.lower_bound, peak_memory_bytes(), report)


def _assign_dense(features: Features, weights: np.ndarray | None, choice: MethodChoice,
                  runner: BlockRunner, workdir: str | Path | None,
                  say: Callable[[str], None]) -> LargeResult:
    with tempfile.TemporaryDirectory(dir=workdir, prefix="mosaic-cost-") as folder:
        started = time.perf_counter()
        budget = max(1, choice.max_memory - choice.dense_bytes)
        cost, _ = score_to_memmap(features, Path(folder) / "cost.npy", budget, runner)
        score_seconds = time.perf_counter() - started
        say(f"dense: scored {features.n_tiles:,} x {features.n_photos:,} in "
            f"{score_seconds:.1f} s")
        assignment = assign_optimal(cost, weights)
        del cost
    tiles = np.arange(features.n_tiles)
    _, best_crop = pair_cost(features, tiles, assignment.photo_of_tile)
    gap = assignment.gap or 0.0
    bound = assignment.objective - gap * abs(assignment.objective)
    say(f"dense: solved in {assignment.seconds:.1f} s, gap {gap:.2e}")
    return LargeResult(assignment, best_crop, choice, score_seconds, assignment.seconds, bound,
                       peak_memory_bytes())
