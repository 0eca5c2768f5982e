"""The build's stages called directly, without Prefect: typed results, files, both strategies.

The flow (tests/test_flow.py) wires the same functions as tasks; here each stage is a plain
function from results to a result, and a whole build runs in a process that never imports
Prefect.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mosaic.assign.exact import assign_optimal
from mosaic.files import FileRef
from mosaic.options import build_options
from mosaic.pipeline import assign, library, render, report, score, target, weights
from mosaic.pipeline.results import (
    AssignResult,
    LibraryResult,
    RenderResult,
    ReportResult,
    RunTimes,
    ScoreResult,
    TargetResult,
    WeightsResult,
)

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = 30


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Thirty small JPEGs of different colours and a gradient target."""
    root = tmp_path_factory.mktemp("pipeline")
    folder = root / "photos"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for index in range(PHOTOS):
        colour = rng.integers(0, 256, size=3)
        pixels = np.clip(colour + rng.normal(0, 20, (48, 64, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"p{index:02d}.jpg", quality=90)
    ramp = np.linspace(0, 255, 120, dtype=np.uint8)
    picture = np.stack([np.tile(ramp, (90, 1)), np.tile(ramp[::-1], (90, 1)),
                        np.full((90, 120), 128, np.uint8)], axis=-1)
    Image.fromarray(picture).save(root / "target.jpg", quality=95)
    return folder, root / "target.jpg"


def _stages(photos: Path, target_path: Path, workdir: Path, method: str
            ) -> tuple[LibraryResult, TargetResult, WeightsResult, ScoreResult, AssignResult]:
    options = build_options(photos=str(photos), target=str(target_path),
                            out=str(workdir / "mosaic.jpg"), workdir=str(workdir),
                            grid="4x5", tile_px=8, crops=3, feature_size=8, weights="none",
                            method=method).resolved()
    target_file = FileRef.of(target_path)
    loaded = library.load_library(library.scan_photos(str(photos)), str(workdir),
                                  options.feature_size, options.crops, options.max_pixels)
    prepared = target.prepare_target(target_file, loaded.photos, str(workdir), options.layout,
                                     options.feature_size, options.max_pixels)
    weighed = weights.weigh(None, prepared.layout, options.weighting, str(workdir))
    plan = assign.plan(options.method, prepared.layout.tiles, loaded.photos, options.crops,
                       options.feature_size, options.scale)
    scored = score.score(plan, loaded, prepared, options.metric, str(workdir), options.scale)
    solved = assign.arrange(plan, plan.method, scored, loaded, prepared, weighed.applied,
                            options.metric, str(workdir), options.scale)
    return loaded, prepared, weighed, scored, solved


def test_each_stage_returns_its_result_type_with_intact_files(inputs, tmp_path):
    photos, target_path = inputs
    loaded, prepared, weighed, scored, solved = _stages(photos, target_path, tmp_path,
                                                        "optimal")
    assert loaded.photos == loaded.files == PHOTOS and loaded.skipped == 0
    assert (prepared.layout.rows, prepared.layout.cols) == (4, 5)
    assert weighed.uniform and weighed.applied is None
    for ref in (loaded.manifest, loaded.thumbs, prepared.tiles, scored.cost, scored.best_crop,
                solved.assignment, solved.tile_crop):
        assert ref is not None and ref.is_intact()
    cost = np.load(scored.cost.path)
    assert cost.shape == (20, PHOTOS) and 0.0 <= cost.min() and cost.max() <= 1.0
    expected = assign_optimal(cost)  # the stage's answer is the exact optimum of its matrix
    assignment = assign.load_assignment(solved.assignment)
    assert solved.objective == pytest.approx(expected.objective)
    assert len(set(assignment.photo_of_tile.tolist())) == 20


def test_regional_is_the_other_strategy_of_the_same_stage(inputs, tmp_path):
    photos, target_path = inputs
    *_, dense = _stages(photos, target_path, tmp_path / "dense", "optimal")
    *_, scored, regional = _stages(photos, target_path, tmp_path / "regional", "regional")
    assert scored.cost is None and scored.best_crop is None  # regional never scores densely
    assert regional.lower_bound is not None and regional.regional is not None
    assert regional.lower_bound <= dense.objective + 1e-9 <= regional.objective + 1e-6
    assert regional.tile_crop is not None and regional.tile_crop.is_intact()


def render_and_report(inputs: tuple[Path, Path], workdir: Path, out_name: str
                      ) -> tuple[AssignResult, RenderResult, ReportResult]:
    """A 4x5 optimal build of ``inputs`` in ``workdir``, drawn into ``out_name`` there."""
    photos, target_path = inputs
    loaded, prepared, weighed, _, solved = _stages(photos, target_path, workdir, "optimal")
    options = build_options(photos=str(photos), target=str(target_path),
                            out=str(workdir / out_name), workdir=str(workdir),
                            grid="4x5", tile_px=8, crops=3, feature_size=8,
                            weights="none").resolved()
    drawn = render.render(solved, loaded, prepared, options.out, None, str(workdir))
    plan = assign.plan("optimal", 20, PHOTOS, 3, 8, options.scale)
    written = report.report(options, FileRef.of(target_path), loaded, None, prepared, weighed,
                            plan, [solved], drawn, RunTimes({"solve": 0.5}, (), 1.0))
    return solved, drawn, written


def test_render_and_report_need_only_the_results(inputs, tmp_path):
    solved, drawn, written = render_and_report(inputs, tmp_path, "mosaic.jpg")
    assert (drawn.width, drawn.height) == (40, 32) and drawn.mosaic.is_intact()
    on_disk = json.loads(Path(written.metrics_file.path).read_text(encoding="utf-8"))
    assert on_disk["tiles"] == 20 and on_disk["method"] == "optimal"
    assert on_disk["mean_cost"] == pytest.approx(solved.mean_cost)
    assert on_disk["timings"]["solve"] == 0.5 and on_disk["generator"].startswith("photo-mosaic")
    assert Path(written.report).is_file()
    page = Path(on_disk["report_html"]).read_text(encoding="utf-8")
    assert "data:image/png;base64," in page and "optimal, unweighted: mean error" in page


def test_a_whole_build_runs_from_the_stages_without_importing_prefect(inputs, tmp_path):
    photos, target_path = inputs
    program = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from tests.test_pipeline import _stages
from pathlib import Path
from mosaic.pipeline import render
loaded, prepared, _, _, solved = _stages(Path({str(photos)!r}), Path({str(target_path)!r}),
                                         Path({str(tmp_path)!r}), "auto")
render.render(solved, loaded, prepared, {str(tmp_path / "poster.png")!r}, None,
              {str(tmp_path)!r})
print(sorted(name for name in sys.modules if name.split(".")[0] in
             ("prefect", "flows", "tasks", "cli")))
"""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert (tmp_path / "poster.png").is_file()


def test_without_colour_correction_no_output_pixel_comes_from_the_target(inputs, tmp_path):
    """The same placement over two targets' tiles: identical bytes at strength 0."""
    from dataclasses import replace

    from mosaic.files import save_npy_atomic

    photos, target_path = inputs
    loaded, prepared, _, _, solved = _stages(photos, target_path, tmp_path, "optimal")
    tiles = np.load(prepared.tiles.path)
    save_npy_atomic(tmp_path / "other-tiles.npy", 255 - tiles)  # a negative of the target
    other = replace(prepared, tiles=FileRef.of(tmp_path / "other-tiles.npy"))

    def drawn(result, name: str, strength: float) -> bytes:
        out = tmp_path / name
        render.render(solved, loaded, result, str(out), None, str(tmp_path),
                      color_correct=strength)
        return np.asarray(Image.open(out)).tobytes()

    assert drawn(prepared, "a.png", 0.0) == drawn(other, "b.png", 0.0)
    assert drawn(prepared, "c.png", 0.3) != drawn(other, "d.png", 0.3)


def test_colour_correction_is_priced_into_the_matrix(inputs, tmp_path):
    """With a strength the costs are the errors left after the shift: never higher, in
    a folder of their own (the unshifted matrix is kept)."""
    photos, target_path = inputs
    loaded, prepared, _, scored, _ = _stages(photos, target_path, tmp_path, "optimal")
    options = build_options(photos=str(photos), target=str(target_path),
                            out=str(tmp_path / "mosaic.jpg"), workdir=str(tmp_path),
                            grid="4x5", tile_px=8, crops=3, feature_size=8, weights="none",
                            method="optimal").resolved()
    plan = assign.plan(options.method, prepared.layout.tiles, loaded.photos, options.crops,
                       options.feature_size, options.scale)
    shifted = score.score(plan, loaded, prepared, options.metric, str(tmp_path), options.scale,
                          shift=0.3)
    assert shifted.cost.path != scored.cost.path and scored.cost.is_intact()
    plain, priced = np.load(scored.cost.path), np.load(shifted.cost.path)
    assert (priced <= plain + 1e-7).all() and (priced < plain - 1e-4).any()
