"""The build's tasks: each one calls one step of ``mosaic.steps``."""

from __future__ import annotations

from typing import Any

from prefect import task

from mosaic import steps
from tasks.caching import CACHED


@task(name="scan-photos")
def scan_photos(photos_dir: str) -> list[tuple[str, str | None]]:
    """List and hash the photo files (never cached: hashing is how changes are seen)."""
    return steps.scan_photos(photos_dir)


@task(name="load-library", **CACHED)
def load_library(photos: list[tuple[str, str | None]], workdir: str, feature_size: int,
                 crops: int, max_pixels: int) -> dict[str, Any]:
    """Decode photos into thumbnails; see :func:`mosaic.steps.load_library`."""
    return steps.load_library(photos, workdir, feature_size, crops, max_pixels)


@task(name="find-people", **CACHED)
def detect(target: dict[str, str], workdir: str, request: steps.WeightRequest,
           max_pixels: int) -> dict[str, Any]:
    """Faces and people of the target; see :func:`mosaic.steps.detect`."""
    return steps.detect(target, workdir, request, max_pixels)


@task(name="prepare-target", **CACHED)
def prepare_target(target: dict[str, str], photos: int, workdir: str,
                   request: steps.LayoutRequest, feature_size: int, max_pixels: int,
                   detection: dict[str, str] | None) -> dict[str, Any]:
    """Grid, crop and tile thumbnails; see :func:`mosaic.steps.prepare_target`."""
    return steps.prepare_target(target, photos, workdir, request, feature_size, max_pixels,
                                detection)


@task(name="weigh-tiles", **CACHED)
def weigh(detection: dict[str, str] | None, layout: dict[str, str],
          request: steps.WeightRequest, workdir: str) -> dict[str, Any]:
    """Tile weights and classes; see :func:`mosaic.steps.weigh`."""
    return steps.weigh(detection, layout, request, workdir)


@task(name="arrange", **CACHED)
def arrange(cost: dict[str, str], method: str, workdir: str,
            weights: dict[str, str] | None) -> dict[str, Any]:
    """One assignment method; see :func:`mosaic.steps.arrange`."""
    return steps.arrange(cost, method, workdir, weights)


@task(name="render", **CACHED)
def render(assignment: dict[str, str], best_crop: dict[str, str] | None,
           manifest: dict[str, str], layout: dict[str, str], out: str, dpi: float | None
           ) -> dict[str, Any]:
    """The mosaic image; see :func:`mosaic.steps.render`."""
    return steps.render(assignment, best_crop, manifest, layout, out, dpi)


@task(name="report")
def report(target: dict[str, str], layout: dict[str, str], mosaic: dict[str, str],
           assignment: dict[str, str], comparison: list[dict[str, Any]],
           metrics: dict[str, Any], metrics_path: str, report_dir: str,
           weighting: dict[str, Any]) -> dict[str, Any]:
    """Quality figures, ``metrics.json`` and the report; see :func:`mosaic.steps.report`."""
    return steps.report(target, layout, mosaic, assignment, comparison, metrics,
                        metrics_path, report_dir, weighting)
