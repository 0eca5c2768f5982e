"""Stage 5: which photo goes on which tile.

Two steps around the scoring of :mod:`mosaic.pipeline.score`, the same for every method:

* :func:`plan` resolves ``auto`` by problem size and memory budget (and refuses a budget
  too small to build at full quality), before anything is scored;
* :func:`arrange` solves: a dense method on the score stage's matrix, or the regional
  method from the features (it scores inside its solve, never holding the dense matrix).
  Both strategies save ``assignment.json`` and each tile's winning crop.

:func:`baselines` says which extra solves the report compares with (greedy, and the
unweighted optimum): they need the dense matrix, so regional has none.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from mosaic.assign.auto import PROCESS_BYTES, choose_method, smallest_budget
from mosaic.assign.methods import SIZED_METHODS, solve_dense
from mosaic.assign.regional import STAGES, assign_regional
from mosaic.assign.result import Assignment
from mosaic.assign.spacing import Grid, space_copies
from mosaic.blocks import BlockRunner, dask_client, format_bytes
from mosaic.cost import Features
from mosaic.cost_refine import worth_refining
from mosaic.errors import MosaicError
from mosaic.features import Metric
from mosaic.files import FileRef, save_npy_atomic, write_json_atomic
from mosaic.layout import Layout
from mosaic.options import ScaleRequest
from mosaic.pipeline import stage_folder
from mosaic.pipeline.results import (
    AssignPlan,
    AssignResult,
    LibraryResult,
    ScoreResult,
    TargetResult,
)
from mosaic.pipeline.score import features
from mosaic.progress import stage
from mosaic.scoring import for_scoring, rotated_only

logger = logging.getLogger("mosaic.scale")


def plan(method: str, tiles: int, photos: int, crops: int, feature_size: int,
         request: ScaleRequest, check_minimum: bool = True, max_uses: int = 1,
         min_distance: int = 0) -> AssignPlan:
    """Resolve ``auto`` (and check "optimal" and "regional") for this size.

    Parameters
    ----------
    method : str
        What was asked for; other methods (greedy, lp, ...) are returned unchanged.
    tiles, photos, crops, feature_size : int
        Problem size.
    request : ScaleRequest
        The memory budget and regions.
    check_minimum : bool
        Refuse a budget below :func:`~mosaic.assign.auto.smallest_budget` (off when the
        sizes are estimates, before the photos are read).
    max_uses : int
        Tiles one photo may fill; above 1 only the dense methods can (they solve the
        matrix with every photo's column repeated), sized as ``photos * max_uses``.
    min_distance : int
        Least distance between copies (with ``max_uses`` above 1; below 2 no rule).

    Returns
    -------
    AssignPlan

    Raises
    ------
    MosaicError
        "optimal" asked for a matrix over the memory budget, a budget too small to
        build at full quality, or ``max_uses`` above 1 where only regional would fit.
    """
    budget = request.budget()
    if max_uses > 1:
        return _plan_repeats(method, tiles, photos, crops, budget, max_uses,
                             min_distance if min_distance > 1 else 0)
    if method not in SIZED_METHODS:
        return AssignPlan(method, method, f"{method}, as asked", None, budget, None)
    feature_bytes = 4 * 3 * feature_size**2 * (tiles + photos * crops)
    if worth_refining(tiles, photos, crops):  # the rotated copy for coarse-to-fine scoring
        feature_bytes *= 2
    # The budget bounds the whole process: its own memory and the features count too.
    smallest = smallest_budget(tiles, photos, crops, request.regions, feature_bytes=feature_bytes,
                               process_bytes=PROCESS_BYTES)
    if check_minimum and budget < smallest:
        raise MosaicError(f"`max_memory` {format_bytes(budget)} is too small for {tiles:,} "
                          f"tiles and {photos:,} photos: the smallest budget that works is "
                          f"{_rounded_up(smallest)}")
    choice = choose_method(tiles, photos, crops, budget, method, request.regions,
                           feature_bytes=feature_bytes, process_bytes=PROCESS_BYTES)
    return AssignPlan(choice.method, method, choice.reason, choice.regions, budget,
                      choice.dense_bytes)


def _plan_repeats(method: str, tiles: int, photos: int, crops: int, budget: int,
                  max_uses: int, min_distance: int) -> AssignPlan:
    """The plan when photos may repeat: any method over ``photos * max_uses`` copies.

    The dense methods solve the matrix with each photo's column repeated; regional (asked,
    or chosen by ``auto`` when that matrix does not fit) solves over repeated photo
    features (:func:`repeated_features`). The distance rule needs the dense matrix.
    """
    copies = photos * max_uses
    if method not in SIZED_METHODS and method != "regional":
        return AssignPlan(method, method, f"{method}, as asked", None, budget, None, max_uses,
                          min_distance)
    choice = choose_method(tiles, copies, crops, budget, method, None,
                           process_bytes=PROCESS_BYTES)
    if choice.method == "regional" and min_distance:
        why = ("regional was asked" if method == "regional" else
               f"{tiles:,} tiles x {copies:,} photo copies do not fit `max_memory` "
               f"{format_bytes(budget)} as one matrix")
        raise MosaicError(f"`min_repeat_distance` {min_distance} needs the dense matrix, but "
                          f"{why}; drop the distance, lower `max_uses` or the tiles, or raise "
                          "`max_memory`")
    spaced = f", copies at least {min_distance} tiles apart" if min_distance else ""
    return AssignPlan(choice.method, method, f"{choice.reason}; each photo up to {max_uses} "
                      f"times{spaced}", choice.regions, budget, choice.dense_bytes, max_uses,
                      min_distance)


def repeated_features(scored: Features, max_uses: int) -> Features:
    """``scored`` with every photo's features repeated ``max_uses`` times, side by side.

    Copy ``c`` is photo ``c // max_uses``: the regional method's repeats.
    """
    if max_uses == 1:
        return scored
    return Features(scored.tiles, scored.tile_sq, np.repeat(scored.photos, max_uses, axis=0))


def _rounded_up(size: int) -> str:
    """A size as the next "N.N MB" or "N.N GB" above it, so that giving it is enough."""
    if size >= 1e9:
        return f"{math.ceil(size / 1e8) / 10:.1f}GB"
    return f"{math.ceil(size / 1e5) / 10:.1f}MB"


def baselines(chosen: AssignPlan, weighted: bool, compare: bool) -> list[tuple[str, bool]]:
    """The extra solves the report compares with: ``(method, weighted)`` pairs.

    Greedy with the same weights (unless greedy is the method), and the unweighted
    optimum when tiles are weighted. None for regional (they need the dense matrix).
    """
    if not compare or not chosen.dense:
        return []
    extra = [("greedy", weighted)] if chosen.method != "greedy" else []
    return extra + ([("optimal", False)] if weighted else [])


def arrange(chosen: AssignPlan, method: str, scored: ScoreResult, library: LibraryResult,
            target: TargetResult, weights: FileRef | None, metric: Metric, workdir: str,
            request: ScaleRequest, shift: float = 0.0) -> AssignResult:
    """Solve with ``method`` (the plan's, or a baseline's), tile-weighted if ``weights``.

    ``shift`` prices the colour correction into the regional method's costs, as
    :func:`mosaic.pipeline.score.features` does for the dense matrix.

    The two strategies: a dense method solves the matrix of
    :func:`mosaic.pipeline.score.score`; the regional method solves from the features,
    never holding the dense matrix.
    """
    if method == "regional":
        return _arrange_regional(chosen, library, target, weights, metric, workdir, request,
                                 shift)
    if scored.cost is None:
        raise MosaicError(f"`method` {method!r} needs the dense matrix, which was not scored")
    return _arrange_dense(method, scored, weights, workdir, chosen, target.layout)


def _label(method: str, weights: FileRef | None) -> str:
    return method if weights is not None else f"{method}, unweighted"


def _save(folder: Path, assignment: Assignment, tile_crop: np.ndarray | None
          ) -> tuple[FileRef, FileRef | None]:
    write_json_atomic(folder / "assignment.json", assignment.to_dict())
    if tile_crop is None:
        return FileRef.of(folder / "assignment.json"), None
    save_npy_atomic(folder / "tile_crop.npy", tile_crop)
    return FileRef.of(folder / "assignment.json"), FileRef.of(folder / "tile_crop.npy")


def _arrange_dense(method: str, scored: ScoreResult, weights: FileRef | None, workdir: str,
                   chosen: AssignPlan, layout: Layout) -> AssignResult:
    assert scored.cost is not None
    matrix = np.load(scored.cost.path, mmap_mode="r", allow_pickle=False)
    tile_weight = np.load(weights.path, allow_pickle=False) if weights is not None else None
    label = _label(method, weights)
    with stage(f"solve ({label})", 1) as advance:
        result = solve_dense(method, matrix, tile_weight, chosen.max_uses)
        if chosen.min_distance > 1:
            # The capacity optimum bounds the spaced one; a greedy start has no bound.
            cells = layout.cell_grid.tile_of_cell if layout.split else None
            result = space_copies(matrix, tile_weight, Grid(layout.rows, layout.cols, cells),
                                  result, chosen.max_uses, chosen.min_distance,
                                  result.objective if method == "optimal" else None,
                                  log=logger.info)
        advance(1)
    tile_crop = None
    if scored.best_crop is not None:  # each tile's crop of its own photo, for the render
        crops = np.load(scored.best_crop.path, mmap_mode="r", allow_pickle=False)
        tile_crop = np.asarray(crops[np.arange(len(result.photo_of_tile)), result.photo_of_tile])
    # Single-use runs keep the folders they had before repeats existed.
    repeats = (chosen.max_uses, chosen.min_distance) if chosen.max_uses > 1 else ()
    folder = stage_folder(workdir, "assign", scored.cost.sha256, method,
                          weights.sha256 if weights else None, *repeats)
    assignment, crop_ref = _save(folder, result, tile_crop)
    return AssignResult(assignment, crop_ref, label, result.objective, result.mean_cost,
                        result.seconds, result.status, result.gap, result.message,
                        where=scored.where)


def _arrange_regional(chosen: AssignPlan, library: LibraryResult, target: TargetResult,
                      weights: FileRef | None, metric: Metric, workdir: str,
                      request: ScaleRequest, shift: float) -> AssignResult:
    # Coarse-to-fine when it pays: every pass of the regional method scores all pairs.
    # Only the rotated copy of the photos' features is kept (one copy, not two).
    scoring = rotated_only(for_scoring(repeated_features(
        features(library, target, metric, shift), chosen.max_uses)))
    tile_weight = np.load(weights.path, allow_pickle=False) if weights is not None else None
    label = _label("regional", weights)
    layout: Layout = target.layout
    with (dask_client(request.dask_address) as client,
          stage(f"solve ({label}, {len(STAGES)} stages)", len(STAGES)) as advance):
        result = assign_regional(scoring, (layout.rows, layout.cols), tile_weight,
                                 chosen.regions, request.budget(), BlockRunner(client),
                                 log=logger.info, progress=advance,
                                 tile_of=layout.cell_grid.tile_of_cell if layout.split else None)
    assignment, report = result.assignment, result.report
    if chosen.max_uses > 1:  # copies back to photos
        assignment = replace(assignment,
                             photo_of_tile=assignment.photo_of_tile // chosen.max_uses)
    folder = stage_folder(workdir, "assign", library.thumbs.sha256, target.tiles.sha256, metric,
                          "regional", chosen.regions, weights.sha256 if weights else None,
                          *([shift] if shift else []),
                          *([chosen.max_uses] if chosen.max_uses > 1 else []))
    assignment_ref, crop_ref = _save(folder, assignment, result.best_crop)
    passes = ("c-transform pass", "reduced-cost pass")
    score_seconds = sum(report.seconds.get(name, 0.0) for name in passes)
    logger.info("regional: %s; peak memory %s", assignment.message,
                format_bytes(report.peak_memory_bytes))
    return AssignResult(assignment_ref, crop_ref, label, assignment.objective,
                        assignment.mean_cost, assignment.seconds - score_seconds,
                        assignment.status, assignment.gap, assignment.message,
                        lower_bound=report.lower_bound, score_seconds=score_seconds,
                        regional=report.to_dict(), where=request.dask_address or "local threads")


def load_assignment(ref: FileRef) -> Assignment:
    """Read an ``assignment.json`` written by :func:`arrange`."""
    return Assignment.from_dict(json.loads(Path(ref.path).read_text(encoding="utf-8")))
