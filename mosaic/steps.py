"""The build's steps as pure functions from files to files.

Each step reads its inputs from files, writes its outputs under the run's work folder
(atomically, under names derived from the step's key so runs with other parameters do
not overwrite them) and returns a small JSON-ready dict: output references (path and
SHA-256) and what it measured. ``tasks/`` wraps each one in a Prefect task whose cache
key is the hash of these inputs; nothing here knows about Prefect.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from mosaic.assign.exact import assign_optimal
from mosaic.assign.greedy import assign_greedy
from mosaic.assign.lp import assign_lp_highs, assign_lp_pulp
from mosaic.assign.result import Assignment
from mosaic.errors import MosaicError
from mosaic.features import tile_thumbnails
from mosaic.files import FileRef, hash_jsonable, save_npy_atomic, write_json_atomic
from mosaic.images import DEFAULT_MAX_PIXELS, open_rgb
from mosaic.importance import (
    DEFAULT_FACE_WEIGHT,
    DEFAULT_FALLOFF,
    DEFAULT_PERSON_WEIGHT,
    class_costs,
    detect_people,
    face_crop,
    load_detection,
    resolve_mode,
    save_detection,
    tile_classes,
    tile_weights,
    weight_map_image,
    weights_settings,
)
from mosaic.layout import Layout, parse_grid, parse_size, plan_layout
from mosaic.library import build_library, hash_photos, load_records, save_library
from mosaic.outputs import check_replaceable, json_mark
from mosaic.progress import stage
from mosaic.render import render_mosaic
from mosaic.report import (
    heat_map,
    mosaic_quality,
    report_markdown,
    save_image_atomic,
    side_by_side,
    write_report,
)
from mosaic.sources.folder import list_photo_files

DENSE_METHODS = ("optimal", "greedy", "lp", "lp-pulp")
"""Methods that solve the dense cost matrix (:func:`solve`)."""
METHODS = ("auto", "optimal", "regional", "greedy", "lp", "lp-pulp")
"""Every ``--method``: "auto" picks dense "optimal" or "regional" by size and memory."""


def step_key(*parts: Any) -> str:
    """Short hash of a step's inputs: the name of its output folder."""
    return hash_jsonable(parts)[:16]


def file_ref(path: Path) -> dict[str, str]:
    """Reference to a step's output file: path and SHA-256."""
    return FileRef.of(path).to_dict()


def _load(ref: dict[str, str]) -> np.ndarray:
    return np.load(ref["path"], allow_pickle=False)


@dataclass(frozen=True)
class LayoutRequest:
    """How the user asked the grid and output size to be chosen (all optional)."""

    grid: str | None = None
    tiles: int | None = None
    size: str | None = None
    dpi: float | None = None
    tile_px: int | None = None

    def check(self) -> None:
        """Parse everything once so nonsense fails before any work starts."""
        if self.grid is not None and self.tiles is not None:
            raise MosaicError("give --grid or --tiles, not both")
        if self.grid is not None:
            parse_grid(self.grid)
        if self.tiles is not None and self.tiles < 1:
            raise MosaicError(f"--tiles {self.tiles}: must be at least 1")
        if self.size is not None:
            parse_size(self.size)
        if self.dpi is not None and not 1 <= self.dpi <= 2400:
            raise MosaicError(f"--dpi {self.dpi}: use a value between 1 and 2400")
        if self.dpi is not None and self.size is None:
            raise MosaicError("--dpi needs --size (a physical poster size)")
        if self.tile_px is not None and not 1 <= self.tile_px <= 4096:
            raise MosaicError(f"--tile-px {self.tile_px}: use a value between 1 and 4096")

    def plan(self, target_size: tuple[int, int], photos: int) -> Layout:
        """The grid, tile size and target crop for a target of ``target_size`` pixels."""
        poster, preset = parse_size(self.size) if self.size else (None, False)
        return plan_layout(
            target_size, photos, grid=parse_grid(self.grid) if self.grid else None,
            tiles=self.tiles, poster=poster, poster_is_preset=preset, dpi=self.dpi,
            tile_px=self.tile_px)


def scan_photos(photos_dir: str) -> list[tuple[str, str | None]]:
    """List the image files of a folder with their SHA-256 (None: unreadable)."""
    files = list_photo_files(photos_dir)
    return hash_photos(files)


def load_library(photos: list[tuple[str, str | None]], workdir: str, feature_size: int,
                 crops: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> dict[str, Any]:
    """Decode the distinct photos into thumbnails (resumable) and save the library."""
    started = time.perf_counter()
    base = Path(workdir)
    library = build_library(photos, feature_size, crops, cache_dir=base / "cache",
                            max_pixels=max_pixels)
    folder = base / "library" / step_key(photos, feature_size, crops, max_pixels)
    manifest, thumbs = save_library(library, folder)
    return {
        "manifest": file_ref(manifest),
        "thumbs": file_ref(thumbs),
        "photos": len(library),
        "files": len(photos),
        "skipped": len(library.skipped),
        "duplicates": len(library.duplicates),
        "near_duplicates": len(library.near_duplicates),
        "seconds": time.perf_counter() - started,
    }


@dataclass(frozen=True)
class WeightRequest:
    """How tiles are weighted: which classes count, how much, and the fall-off."""

    mode: str = "faces+people"
    face_weight: float = DEFAULT_FACE_WEIGHT
    person_weight: float = DEFAULT_PERSON_WEIGHT
    falloff: float = DEFAULT_FALLOFF
    segmenter: str = "mediapipe"
    pointrend_config: str | None = None
    pointrend_weights: str | None = None


def detect(target: dict[str, str], workdir: str, request: WeightRequest,
           max_pixels: int = DEFAULT_MAX_PIXELS) -> dict[str, Any]:
    """Find the faces and people of the target; save the masks as ``detection.npz``."""
    started = time.perf_counter()
    image = open_rgb(target["path"], max_pixels=max_pixels)
    with stage("find faces and people", 1) as advance:
        detection = detect_people(image, request.segmenter, request.pointrend_config,
                                  request.pointrend_weights)
        advance(1)
    folder = Path(workdir) / "people" / step_key(target["sha256"], request.segmenter,
                                             request.pointrend_config,
                                             request.pointrend_weights)
    save_detection(detection, folder / "detection.npz")
    return {"detection": file_ref(folder / "detection.npz"), **detection.summary(),
            "seconds": time.perf_counter() - started}


def prepare_target(target: dict[str, str], photos: int, workdir: str,
                   request: LayoutRequest, feature_size: int,
                   max_pixels: int = DEFAULT_MAX_PIXELS,
                   detection: dict[str, str] | None = None) -> dict[str, Any]:
    """Plan the grid, crop the target (keeping faces in the frame) and cut tile thumbnails."""
    started = time.perf_counter()
    image = open_rgb(target["path"], max_pixels=max_pixels)
    layout = request.plan(image.size, photos)
    if detection is not None:
        found = load_detection(detection["path"])
        if found.faces:
            layout = replace(layout, crop=face_crop(found, layout.cols / layout.rows))
    with stage("cut target tiles", 1) as advance:
        tiles = tile_thumbnails(image, layout.crop, layout.rows, layout.cols, feature_size)
        advance(1)
    folder = Path(workdir) / "target" / step_key(target["sha256"], photos, request.__dict__,
                                             feature_size, detection)
    save_npy_atomic(folder / "tiles.npy", tiles)
    write_json_atomic(folder / "layout.json", layout.to_dict())
    return {
        "layout": file_ref(folder / "layout.json"),
        "tiles": file_ref(folder / "tiles.npy"),
        "rows": layout.rows,
        "cols": layout.cols,
        "seconds": time.perf_counter() - started,
    }


def weigh(detection: dict[str, str] | None, layout: dict[str, str], request: WeightRequest,
          workdir: str) -> dict[str, Any]:
    """Per-tile weights and classes (face, person, background) as ``.npy`` files.

    Without a detection (``--weights none``), weights are uniform and every tile is
    background.
    """
    plan = Layout.from_dict(json.loads(Path(layout["path"]).read_text(encoding="utf-8")))
    folder = Path(workdir) / "weights" / step_key(detection, layout["sha256"], request.__dict__)
    if detection is None:
        mode, note = "none", None
        weights = np.ones(plan.tiles)
        classes = np.zeros(plan.tiles, dtype=np.int8)
    else:
        found = load_detection(detection["path"])
        mode, note = resolve_mode(found, request.mode)
        weights = tile_weights(found, plan.crop, plan.rows, plan.cols, mode,
                               request.face_weight, request.person_weight, request.falloff)
        classes = tile_classes(found, plan.crop, plan.rows, plan.cols)
    save_npy_atomic(folder / "weights.npy", weights)
    save_npy_atomic(folder / "classes.npy", classes)
    settings = weights_settings(mode, request.face_weight, request.person_weight,
                                request.falloff, requested=request.mode)
    return {"weights": file_ref(folder / "weights.npy"),
            "classes": file_ref(folder / "classes.npy"), "settings": settings, "note": note,
            "uniform": mode == "none"}


def solve(cost: np.ndarray, method: str, weights: np.ndarray | None = None) -> Assignment:
    """Run one assignment method on an in-memory cost matrix."""
    if method == "optimal":
        return assign_optimal(cost, weights)
    if method == "greedy":
        return assign_greedy(cost, weights)
    if method == "lp":
        return assign_lp_highs(cost, weights)
    if method == "lp-pulp":
        return assign_lp_pulp(cost, weights)
    raise MosaicError(f"--method {method!r}: choose one of {', '.join(DENSE_METHODS)}")


def arrange(cost: dict[str, str], method: str, workdir: str,
            weights: dict[str, str] | None = None) -> dict[str, Any]:
    """Solve the assignment with ``method`` (tile-weighted if given); save ``assignment.json``."""
    matrix = np.load(cost["path"], mmap_mode="r", allow_pickle=False)
    tile_weight = _load(weights) if weights is not None else None
    label = method if weights is not None else f"{method}, unweighted"
    with stage(f"solve ({label})", 1) as advance:
        result = solve(matrix, method, tile_weight)
        advance(1)
    folder = Path(workdir) / "assign" / step_key(cost["sha256"], method,
                                             weights["sha256"] if weights else None)
    write_json_atomic(folder / "assignment.json", result.to_dict())
    return {
        "assignment": file_ref(folder / "assignment.json"),
        "method": label,
        "objective": result.objective,
        "mean_cost": result.mean_cost,
        "seconds": result.seconds,
        "status": result.status,
        "gap": result.gap,
        "message": result.message,
    }


def load_assignment(ref: dict[str, str]) -> Assignment:
    """Read an ``assignment.json`` written by :func:`arrange`."""
    return Assignment.from_dict(json.loads(Path(ref["path"]).read_text(encoding="utf-8")))


def render(assignment: dict[str, str], best_crop: dict[str, str] | None,
           manifest: dict[str, str], layout: dict[str, str], out: str,
           dpi: float | None) -> dict[str, Any]:
    """Draw the mosaic at print resolution into ``out``.

    ``best_crop`` is the winning crop candidate of every (tile, photo) pair, or of every
    tile's own photo (the regional method); None when photos have one candidate.
    """
    started = time.perf_counter()
    plan = Layout.from_dict(json.loads(Path(layout["path"]).read_text(encoding="utf-8")))
    records = load_records(manifest["path"])
    photo_of_tile = load_assignment(assignment).photo_of_tile
    crops = (np.load(best_crop["path"], mmap_mode="r", allow_pickle=False)
             if best_crop is not None else None)
    sources = []
    for tile, photo in enumerate(photo_of_tile.tolist()):
        record = records[photo]
        if crops is None:
            choice = 0
        else:
            choice = int(crops[tile] if crops.ndim == 1 else crops[tile, photo])
        sources.append((record.path, record.boxes[choice]))
    path = render_mosaic(plan, sources, out, dpi=dpi)
    return {"mosaic": file_ref(path), "width": plan.output_size[0], "height": plan.output_size[1],
            "seconds": time.perf_counter() - started}


def report(target: dict[str, str], layout: dict[str, str], mosaic: dict[str, str],
           assignment: dict[str, str], comparison: list[dict[str, Any]],
           metrics: dict[str, Any], metrics_path: str, report_dir: str,
           weighting: dict[str, Any]) -> dict[str, Any]:
    """Measure the mosaic against the target; write ``metrics.json`` and the report."""
    plan = Layout.from_dict(json.loads(Path(layout["path"]).read_text(encoding="utf-8")))
    target_crop = open_rgb(target["path"]).crop(plan.crop)
    mosaic_image = open_rgb(mosaic["path"], max_pixels=10 ** 10)
    metrics = dict(metrics)
    metrics["quality"] = mosaic_quality(mosaic_image, target_crop, plan.rows, plan.cols)
    folder = Path(report_dir)
    tile_cost = load_assignment(assignment).tile_cost
    classes = _load(weighting["classes"])
    metrics["class_costs"] = class_costs(tile_cost, classes)
    for compared in comparison:
        compared["class_costs"] = class_costs(
            load_assignment(compared["assignment"]).tile_cost, classes)
    metrics["comparison"] = [{k: v for k, v in c.items() if k != "assignment"}
                             for c in comparison]
    save_image_atomic(side_by_side(target_crop, mosaic_image), folder / "comparison.jpg")
    save_image_atomic(heat_map(tile_cost, plan.rows, plan.cols), folder / "tile-costs.png")
    images = {
        "Target and mosaic": "comparison.jpg",
        "Cost per tile (dark = good match, yellow = poor)": "tile-costs.png",
    }
    if not weighting["uniform"]:
        weight_map = weight_map_image(open_rgb(target["path"]), _load(weighting["weights"]),
                                      plan.crop, plan.rows, plan.cols)
        save_image_atomic(weight_map, folder / "weights.png")
        images["Tile weights (faces and people get the best photos)"] = "weights.png"
    text = report_markdown(metrics, metrics["comparison"], tile_cost, images)
    write_report(folder / "report.md", text)
    check_replaceable(metrics_path, "--metrics")
    metrics = {**json_mark(), **metrics}
    write_json_atomic(metrics_path, metrics)
    return {"metrics": metrics, "report": str(folder / "report.md"), "markdown": text}
