"""The build's tasks: each one calls one stage of :mod:`mosaic.pipeline`, nothing more.

:class:`Ledger` runs a task and notes what the flow reports about it: its compute time
in this run, and whether it came from the cache.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from prefect import task
from prefect.states import State

from mosaic.features import Metric
from mosaic.files import FileRef
from mosaic.options import BuildOptions, LayoutRequest, ScaleRequest, WeightRequest
from mosaic.pipeline import assign, library, people, render, report, target, weights
from mosaic.pipeline import score as scoring
from mosaic.pipeline.results import (
    AssignPlan,
    AssignResult,
    HashedFile,
    LibraryResult,
    PeopleResult,
    RenderResult,
    ReportResult,
    RunTimes,
    ScoreResult,
    TargetResult,
    WeightsResult,
)
from tasks.caching import cached


class Ledger:
    """Runs tasks for a flow and keeps its timings: 0 s for a step served from the cache."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.seconds: dict[str, float] = {}
        self.cached: list[str] = []

    def run(self, label: str, task_function: Any, on_cached: Any = None, **kwargs: Any) -> Any:
        """Run ``task_function(**kwargs)`` as step ``label``; return its result.

        ``on_cached(result)`` runs when the result comes from the cache (to say again
        what computing it said, such as the files a library left out).
        """
        state: State = task_function(**kwargs, return_state=True)
        result = state.result()
        if state.name == "Cached":
            self.cached.append(label)
            self.seconds[label] = 0.0
            if on_cached is not None:
                on_cached(result)
        else:
            self.seconds[label] = float(getattr(result, "seconds", 0.0))
        return result

    def times(self) -> RunTimes:
        """What the ledger saw so far."""
        return RunTimes(dict(self.seconds), tuple(self.cached),
                        time.perf_counter() - self.started)


@task(name="scan-photos")
def scan_photos(photos_dir: str) -> list[HashedFile]:
    """List and hash the photo files (never cached: hashing is how changes are seen)."""
    return library.scan_photos(photos_dir)


@task(name="load-library", **cached())
def load_library(photos: list[HashedFile], workdir: str, feature_size: int, crops: int,
                 max_pixels: int, tile_aspect: tuple[int, int] = (1, 1)) -> LibraryResult:
    """Decode photos into thumbnails; see :func:`mosaic.pipeline.library.load_library`."""
    return library.load_library(photos, workdir, feature_size, crops, max_pixels, tile_aspect)


@task(name="name-skipped-photos")
def name_skipped(loaded: LibraryResult) -> None:
    """Name the files a cached library left out: :func:`mosaic.pipeline.library.name_skipped`."""
    library.name_skipped(loaded)


@task(name="find-people", **cached())
def detect(target_file: FileRef, workdir: str, request: WeightRequest, max_pixels: int
           ) -> PeopleResult:
    """Faces and people of the target; see :func:`mosaic.pipeline.people.detect`."""
    return people.detect(target_file, workdir, request, max_pixels)


@task(name="prepare-target", **cached())
def prepare_target(target_file: FileRef, photos: int, workdir: str, request: LayoutRequest,
                   feature_size: int, max_pixels: int, found: PeopleResult | None
                   ) -> TargetResult:
    """Grid, crop and tile thumbnails; see :func:`mosaic.pipeline.target.prepare_target`."""
    return target.prepare_target(target_file, photos, workdir, request, feature_size,
                                 max_pixels, found)


@task(name="weigh-tiles", **cached())
def weigh(found: PeopleResult | None, prepared: TargetResult, request: WeightRequest,
          workdir: str) -> WeightsResult:
    """Tile weights and classes; see :func:`mosaic.pipeline.weights.weigh`."""
    return weights.weigh(found, prepared.layout, request, workdir)


@task(name="plan-assignment")
def plan_assignment(options: BuildOptions, loaded: LibraryResult, prepared: TargetResult
                    ) -> AssignPlan:
    """Which method runs and why; see :func:`mosaic.pipeline.assign.plan`."""
    return assign.plan(options.method, prepared.layout.cells, loaded.photos, options.crops,
                       options.feature_size, options.scale, max_uses=options.max_uses,
                       min_distance=options.min_repeat_distance)


@task(name="score-blocks", **cached("request"))
def score(chosen: AssignPlan, loaded: LibraryResult, prepared: TargetResult, metric: Metric,
          workdir: str, request: ScaleRequest, shift: float = 0.0) -> ScoreResult:
    """The dense cost matrix in blocks; see :func:`mosaic.pipeline.score.score`."""
    return scoring.score(chosen, loaded, prepared, metric, workdir, request, shift)


@task(name="arrange", **cached("request"))
def arrange(chosen: AssignPlan, method: str, scored: ScoreResult, loaded: LibraryResult,
            prepared: TargetResult, tile_weights: FileRef | None, metric: Metric, workdir: str,
            request: ScaleRequest, shift: float = 0.0) -> AssignResult:
    """One solve; see :func:`mosaic.pipeline.assign.arrange`.

    The budget and the cluster are left out of the key: the regional method's regions
    come from the plan, which is in it.
    """
    return assign.arrange(chosen, method, scored, loaded, prepared, tile_weights, metric,
                          workdir, request, shift)


@task(name="render", **cached())
def render_poster(chosen: AssignResult, loaded: LibraryResult, prepared: TargetResult,
                  out: str, dpi: float | None, workdir: str, bleed_px: int = 0,
                  deep_zoom: bool = False, color_correct: float = 0.0) -> RenderResult:
    """The mosaic image; see :func:`mosaic.pipeline.render.render`."""
    return render.render(chosen, loaded, prepared, out, dpi, workdir, bleed_px, deep_zoom,
                         color_correct)


@task(name="report")
def write_report(options: BuildOptions, target_file: FileRef, loaded: LibraryResult,
                 found: PeopleResult | None, prepared: TargetResult, tile_weights: WeightsResult,
                 chosen: AssignPlan, compared: Sequence[AssignResult], rendered: RenderResult,
                 times: RunTimes) -> ReportResult:
    """Quality figures, ``metrics.json`` and the report; see :mod:`mosaic.pipeline.report`."""
    return report.report(options, target_file, loaded, found, prepared, tile_weights, chosen,
                         list(compared), rendered, times)
