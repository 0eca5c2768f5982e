"""Stage 7: measure the poster against the target; write ``metrics.json`` and the report.

:func:`build_metrics` assembles the metrics from the stages' results (nothing else
assembles them); :func:`report` adds the quality figures, writes the report and its
pictures and the placement list (``placement.csv``) in the run folder, and ``metrics.json``
where it was asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mosaic.assign.result import Assignment
from mosaic.assign.spacing import Grid, closest_copies
from mosaic.files import FileRef, write_json_atomic
from mosaic.images import open_rgb
from mosaic.importance import class_costs, weight_map_image
from mosaic.layout import Layout
from mosaic.machine import peak_memory_bytes
from mosaic.options import BuildOptions
from mosaic.outputs import check_replaceable, json_mark
from mosaic.pipeline.assign import load_assignment
from mosaic.pipeline.library import skipped_files
from mosaic.pipeline.render import placed_tiles
from mosaic.pipeline.results import (
    AssignPlan,
    AssignResult,
    LibraryResult,
    PeopleResult,
    RenderResult,
    ReportResult,
    RunTimes,
    TargetResult,
    WeightsResult,
)
from mosaic.placement import write_placement
from mosaic.report import (
    heat_map,
    mosaic_quality,
    report_markdown,
    save_image_atomic,
    side_by_side,
    write_report,
)
from mosaic.report_html import MethodRun, method_picture, report_html, write_report_html
from mosaic.tile_shape import aspect_text, shape_key

_COMPARED = ("method", "objective", "mean_cost", "seconds")


def timings(times: RunTimes, chosen: AssignResult, plan: AssignPlan) -> dict[str, float]:
    """Seconds of each stage in this run (0 for one taken from the cache), and the total."""
    seconds = times.seconds
    score = seconds.get("score", 0.0)
    if not plan.dense:  # regional scores inside its solve
        score = 0.0 if "solve" in times.cached else chosen.score_seconds
    return {"load": seconds.get("library", 0.0) + seconds.get("target", 0.0),
            "detect": seconds.get("people", 0.0), "score": score,
            "solve": seconds.get("solve", 0.0), "render": seconds.get("render", 0.0),
            "total": times.total}


def build_metrics(options: BuildOptions, library: LibraryResult, people: PeopleResult | None,
                  target: TargetResult, weights: WeightsResult, plan: AssignPlan,
                  chosen: AssignResult, rendered: RenderResult, times: RunTimes
                  ) -> dict[str, Any]:
    """The run's metrics from the stages' results (``metrics.json`` without quality)."""
    layout = target.layout
    photo_of_tile = load_assignment(chosen.assignment).photo_of_tile
    uses = np.unique(photo_of_tile, return_counts=True)[1]
    return {
        "rows": layout.rows, "cols": layout.cols, "tiles": layout.tiles,
        "detail": ({"mode": options.detail, "split_tiles": len(layout.split),
                    "cells": layout.cells} if options.detail != "none" else None),
        "tile_aspect": aspect_text(layout.tile_aspect),
        "tile_px": [layout.tile_px, layout.tile_height],
        "target_crop": list(layout.crop),
        "photos_available": library.photos, "photos_used": int(uses.size),
        "max_uses": plan.max_uses, "most_uses": int(uses.max(initial=0)),
        "min_repeat_distance": plan.min_distance,
        "closest_copies": closest_copies(photo_of_tile, Grid(layout.rows, layout.cols),
                                         layout.cell_grid.tile_of_cell),
        "photo_files": library.files, "skipped": skipped_files(library),
        "duplicates": library.duplicates, "near_duplicates": library.near_duplicates,
        "method": plan.method, "method_requested": plan.requested,
        "method_reason": plan.reason, "solver": chosen.message, "status": chosen.status,
        "gap": chosen.gap, "lower_bound": chosen.lower_bound, "regional": chosen.regional,
        "max_memory_bytes": plan.max_memory_bytes, "dask": chosen.where,
        "assignment_file": chosen.assignment.path, "metric": options.metric,
        "feature_size": options.feature_size, "crops": options.crops,
        "weights": weights.settings, "weights_note": weights.note,
        "faces_found": people.faces_found if people else None,
        "person_fraction": people.person_fraction if people else None,
        "mean_cost": chosen.mean_cost, "objective": chosen.objective,
        "output": rendered.mosaic.path, "output_size": [rendered.width, rendered.height],
        "format": options.format, "size": options.size, "dpi": options.dpi,
        "color_correct": options.color_correct,
        "bleed_px": rendered.bleed_px, "print_size_mm": (
            [round(side / options.dpi * 25.4, 2) for side in (rendered.width, rendered.height)]
            if options.dpi else None),
        "timings": timings(times, chosen, plan), "cached_steps": list(times.cached),
        "peak_rss_mb": round(peak_memory_bytes() / 2**20, 1),
    }


_PICTURE_WIDTH = 1440
"""Widest method picture the HTML report draws (its thumbnails are thinned beyond)."""


def method_runs(compared: Sequence[AssignResult], assignments: Sequence[Assignment],
                comparison: Sequence[dict[str, Any]], library: LibraryResult, layout: Layout
                ) -> list[MethodRun]:
    """The solves the HTML report compares, each with its mosaic drawn from thumbnails."""
    thumbs = np.load(library.thumbs.path, mmap_mode="r", allow_pickle=False)
    stride = max(1, -(-layout.cols * thumbs.shape[-2] // _PICTURE_WIDTH))
    thumbs = thumbs[..., ::stride, ::stride, :]
    runs = []
    for solve, assignment, entry in zip(compared, assignments, comparison, strict=True):
        crops = (np.load(solve.tile_crop.path, allow_pickle=False)
                 if solve.tile_crop is not None else None)
        picture = method_picture(thumbs, assignment.photo_of_tile, crops, layout.rows,
                                 layout.cols, layout.split)
        if shape_key(layout.tile_aspect):  # thumbnails are square: back to the tile shape
            picture = picture.resize((picture.width, max(1, round(
                picture.height / layout.tile_ratio))), Image.Resampling.BILINEAR)
        runs.append(MethodRun(solve.method, solve.mean_cost, solve.objective, solve.seconds,
                              on_picture_grid(assignment.tile_cost, layout)[0], picture,
                              entry.get("class_costs")))
    return runs


def on_picture_grid(values: np.ndarray, layout: Layout) -> tuple[np.ndarray, int, int]:
    """Per-cell values on the grid the report draws: the tiles, or the half tiles.

    With split tiles (``detail`` faces) a whole tile's value covers its four half tiles,
    so the maps and histograms count area, as the poster shows it.
    """
    if not layout.split:
        return np.asarray(values), layout.rows, layout.cols
    return layout.cell_grid.spread(values), 2 * layout.rows, 2 * layout.cols


def report(options: BuildOptions, target_file: FileRef, library: LibraryResult,
           people: PeopleResult | None, target: TargetResult, weights: WeightsResult,
           plan: AssignPlan, compared: Sequence[AssignResult], rendered: RenderResult,
           times: RunTimes) -> ReportResult:
    """Measure the mosaic; write the report in the run folder and ``metrics.json``.

    Parameters
    ----------
    options : BuildOptions
        The build, resolved (every path filled in).
    target_file : FileRef
        The target picture.
    library, people, target, weights, plan, rendered
        The stages' results.
    compared : sequence of AssignResult
        The chosen solve first, then the baselines.
    times : RunTimes
        What the flow measured.

    Returns
    -------
    ReportResult
    """
    chosen = compared[0]
    layout = target.layout
    metrics = {**json_mark(), **build_metrics(options, library, people, target, weights, plan,
                                              chosen, rendered, times)}
    target_crop = open_rgb(target_file.path).crop(layout.crop)
    # The copies shrunk while drawing: the poster itself may be far too big to reopen.
    shrunk = Image.fromarray(np.load(rendered.quality.path, allow_pickle=False))
    metrics["quality"] = mosaic_quality(shrunk, target_crop, layout.rows, layout.cols)
    classes = np.load(weights.classes.path, allow_pickle=False)
    assignments = [load_assignment(solve.assignment) for solve in compared]
    tile_cost = assignments[0].tile_cost
    metrics["class_costs"] = class_costs(tile_cost, classes)
    metrics["comparison"] = [
        {**{key: getattr(solve, key) for key in _COMPARED},
         "class_costs": class_costs(assignment.tile_cost, classes)}
        for solve, assignment in zip(compared, assignments, strict=True)]
    folder = Path(str(options.workdir))
    check_replaceable(folder / "placement.csv", "the placement list")
    write_placement(folder / "placement.csv", placed_tiles(chosen, library, target, weights))
    metrics["placement_list"] = str(folder / "placement.csv")
    preview = Image.fromarray(np.load(rendered.preview.path, allow_pickle=False))
    save_image_atomic(side_by_side(target_crop, preview), folder / "comparison.jpg")
    costs, grid_rows, grid_cols = on_picture_grid(tile_cost, layout)
    save_image_atomic(heat_map(costs, grid_rows, grid_cols,
                               8 if not layout.split else 4), folder / "tile-costs.png")
    images = {"Target and mosaic": "comparison.jpg",
              "Cost per tile (dark = good match, yellow = poor)": "tile-costs.png"}
    picture = None
    if not weights.uniform:
        weight = np.load(weights.weights.path, allow_pickle=False)
        picture = weight_map_image(open_rgb(target_file.path),
                                   on_picture_grid(weight, layout)[0], layout.crop,
                                   grid_rows, grid_cols)
        save_image_atomic(picture, folder / "weights.png")
        images["Tile weights (faces and people get the best photos)"] = "weights.png"
    text = report_markdown(metrics, metrics["comparison"], tile_cost, images)
    write_report(folder / "report.md", text)
    write_report_html(folder / "report.html", report_html(
        metrics, target_crop,
        method_runs(compared, assignments, metrics["comparison"], library, layout),
        picture, grid_rows, grid_cols))
    metrics["report_html"] = str(folder / "report.html")
    metrics_path = str(options.metrics)
    check_replaceable(metrics_path, "`metrics`")
    write_json_atomic(metrics_path, metrics)
    return ReportResult(metrics, FileRef.of(metrics_path), str(folder / "report.md"), text)
