"""The build flow: photos + target -> mosaic, metrics and report.

Wiring only: each step is a task from ``tasks.build``; everything between tasks is a
file reference (path + SHA-256) in the run's work folder.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.states import State

from flows.artifacts import publish_build_artifacts
from mosaic.features import METRICS
from mosaic.files import FileRef, remove_stale_temporaries
from mosaic.machine import peak_memory_bytes
from mosaic.options import BuildOptions
from mosaic.outputs import prepare_run_folder, run_folder_lock
from mosaic.steps import METHODS
from mosaic.steps_scale import choose_assignment
from tasks import build as tasks
from tasks import scale as scale_tasks
from tasks.caching import refs_intact

logger = logging.getLogger("mosaic.build")


@dataclass
class _RunLog:
    cached: list[str] = field(default_factory=list)
    step_seconds: dict[str, float] = field(default_factory=dict)
    """Compute time of each step in this run (0 for a step taken from the cache)."""


def _run(task: Any, log: _RunLog, label: str, **kwargs: Any) -> Any:
    """Run a task; if a cached result points at files that are gone, recompute it."""
    state: State = task(**kwargs, return_state=True)
    result = state.result()
    if state.name == "Cached" and not refs_intact(result):
        state = task.with_options(refresh_cache=True)(**kwargs, return_state=True)
        result = state.result()
    if state.name == "Cached":
        log.cached.append(label)
        log.step_seconds[label] = 0.0
    elif isinstance(result, dict) and "seconds" in result:
        log.step_seconds[label] = float(result["seconds"])
    return result


def _baselines(cost: dict[str, str], method: str, weights: dict[str, str] | None,
               workdir: str, log: _RunLog) -> list[dict[str, Any]]:
    """Greedy (same weights) and, when weighted, the unweighted optimum, for the report."""
    baselines = [("greedy", weights)] if method != "greedy" else []
    if weights is not None:
        baselines.append(("optimal", None))
    return [_run(tasks.arrange, log, f"{name} baseline", cost=cost, method=name,
                 workdir=workdir, weights=baseline_weights)
            for name, baseline_weights in baselines]


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    return peak_memory_bytes() / 2**20


@flow(name="build-mosaic", log_prints=True, persist_result=False)
def build_mosaic(options: BuildOptions) -> dict[str, Any]:
    """Build a photo mosaic; returns the run's metrics (also written to ``metrics.json``).

    One build at a time holds the run folder; temporaries that killed builds left in it
    and beside the output are removed first.
    """
    workdir = prepare_run_folder(options.workdir)
    with run_folder_lock(workdir):
        remove_stale_temporaries(workdir, recursive=True)
        remove_stale_temporaries(Path(options.out).parent)
        return _build(options, str(workdir))


def _build(options: BuildOptions, workdir: str) -> dict[str, Any]:
    started = time.perf_counter()
    log = _RunLog()
    target = FileRef.of(options.target).to_dict()

    photos = tasks.scan_photos(options.photos)
    library = _run(tasks.load_library, log, "library", photos=photos, workdir=workdir,
                   feature_size=options.feature_size, crops=options.crops,
                   max_pixels=options.max_pixels)
    people = None
    if options.weighting.mode != "none":
        people = _run(tasks.detect, log, "people", target=target, workdir=workdir,
                      request=options.weighting, max_pixels=options.max_pixels)
    detection = people["detection"] if people else None
    prepared = _run(tasks.prepare_target, log, "target", target=target,
                    photos=library["photos"], workdir=workdir, request=options.layout,
                    feature_size=options.feature_size, max_pixels=options.max_pixels,
                    detection=detection)
    weighting = _run(tasks.weigh, log, "weights", detection=detection,
                     layout=prepared["layout"], request=options.weighting, workdir=workdir)
    if weighting["note"]:
        logger.warning(weighting["note"])
    weights = None if weighting["uniform"] else weighting["weights"]
    tiles = prepared["rows"] * prepared["cols"]
    plan = choose_assignment(options.method, tiles, library["photos"], options.crops,
                             options.feature_size, options.scale)
    logger.info("method: %s", plan["reason"])
    if plan["method"] == "regional":
        chosen = _run(scale_tasks.arrange_regional, log, "solve", thumbs=library["thumbs"],
                      tiles=prepared["tiles"], metric=options.metric,
                      grid=(prepared["rows"], prepared["cols"]), workdir=workdir,
                      weights=weights, request=options.scale, regions=plan["regions"])
        log.step_seconds["score"] = 0.0 if "solve" in log.cached else chosen["score_seconds"]
        best_crop, where = chosen["tile_crop"], chosen["where"]
        comparison = [chosen]  # the baselines need the dense matrix this method avoids
    else:
        scored = _run(scale_tasks.score_blocks, log, "score", thumbs=library["thumbs"],
                      tiles=prepared["tiles"], metric=options.metric, workdir=workdir,
                      request=options.scale)
        best_crop, where = scored["best_crop"], scored["where"]
        chosen = _run(tasks.arrange, log, "solve", cost=scored["cost"], method=plan["method"],
                      workdir=workdir, weights=weights)
        comparison = [chosen]
        if options.compare:
            comparison += _baselines(scored["cost"], plan["method"], weights, workdir, log)
    rendered = _run(tasks.render, log, "render", assignment=chosen["assignment"],
                    best_crop=best_crop, manifest=library["manifest"],
                    layout=prepared["layout"], out=str(Path(options.out).resolve()),
                    dpi=options.layout.dpi)
    seconds = log.step_seconds
    metrics: dict[str, Any] = {
        "rows": prepared["rows"],
        "cols": prepared["cols"],
        "tiles": prepared["rows"] * prepared["cols"],
        "photos_available": library["photos"],
        "photos_used": prepared["rows"] * prepared["cols"],
        "photo_files": library["files"],
        "skipped": library["skipped"],
        "duplicates": library["duplicates"],
        "near_duplicates": library["near_duplicates"],
        "method": plan["method"],
        "method_requested": plan["requested"],
        "method_reason": plan["reason"],
        "solver": chosen["message"],
        "status": chosen["status"],
        "gap": chosen["gap"],
        "lower_bound": chosen.get("lower_bound"),
        "regional": chosen.get("regional"),
        "max_memory_bytes": plan["max_memory_bytes"],
        "dask": where,
        "assignment_file": chosen["assignment"]["path"],
        "metric": options.metric,
        "feature_size": options.feature_size,
        "crops": options.crops,
        "weights": weighting["settings"],
        "weights_note": weighting["note"],
        "faces_found": people["faces_found"] if people else None,
        "person_fraction": people["person_fraction"] if people else None,
        "mean_cost": chosen["mean_cost"],
        "objective": chosen["objective"],
        "output": rendered["mosaic"]["path"],
        "output_size": [rendered["width"], rendered["height"]],
        "timings": {
            "load": seconds.get("library", 0.0) + seconds.get("target", 0.0),
            "detect": seconds.get("people", 0.0),
            "score": seconds.get("score", 0.0),
            "solve": seconds.get("solve", 0.0),
            "render": seconds.get("render", 0.0),
            "total": time.perf_counter() - started,
        },
        "cached_steps": log.cached,
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    comparison_rows = [
        {k: c[k] for k in ("method", "objective", "mean_cost", "seconds", "assignment")}
        for c in comparison
    ]
    reported = tasks.report(target=target, layout=prepared["layout"],
                            mosaic=rendered["mosaic"], assignment=chosen["assignment"],
                            comparison=comparison_rows, metrics=metrics,
                            metrics_path=str(Path(options.metrics).resolve()),
                            report_dir=workdir,
                            weighting=weighting)
    publish_build_artifacts(reported, log.step_seconds, log.cached,
                            time.perf_counter() - started)
    return reported["metrics"]


__all__ = ["METHODS", "METRICS", "BuildOptions", "build_mosaic"]
