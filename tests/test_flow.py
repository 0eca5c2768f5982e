"""The build flow end to end on real photos, with a real Prefect API."""

import json
from pathlib import Path

import pytest

from mosaic.options import BuildOptions
from mosaic.pipeline import render

REQUIRED_METRICS = {"rows", "cols", "tiles", "photos_available", "photos_used", "method",
                    "metric", "mean_cost", "objective", "timings", "peak_rss_mb", "output",
                    "weights", "faces_found", "person_fraction", "class_costs", "quality"}


def _options(photo_dir: Path, portrait: Path, tmp_path: Path, **kwargs) -> BuildOptions:
    return BuildOptions(photos=str(photo_dir), target=str(portrait),
                        out=str(tmp_path / "out" / "mosaic.jpg"),
                        workdir=str(tmp_path / "work"), metrics=str(tmp_path / "metrics.json"),
                        **{"tile_px": 24, **kwargs})


def test_build_then_cached_rerun(prefect_api, photo_dir, portrait, tmp_path):
    from flows.build_mosaic import build_mosaic

    options = _options(photo_dir, portrait, tmp_path, crops=3)
    first = build_mosaic(options)
    assert REQUIRED_METRICS <= set(first)
    assert first["photo_files"] == 120
    assert first["photos_available"] == 120 - first["duplicates"] >= first["tiles"]
    assert set(first["timings"]) >= {"load", "score", "solve", "render", "total"}
    assert first["cached_steps"] == []
    assert 0 < first["mean_cost"] < 1
    assert first["faces_found"] == 1 and first["weights"]["mode"] == "faces+people"
    assert first["class_costs"]["face"]["tiles"] > 0
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["objective"] == pytest.approx(first["objective"])
    assert Path(first["output"]).is_file()
    assert (tmp_path / "work" / "report.md").is_file()  # the report stays in the run folder
    assert not (tmp_path / "report.md").exists()
    greedy = next(c for c in first["comparison"] if c["method"] == "greedy")
    assert greedy["objective"] >= first["objective"] - 1e-9
    # The weighted optimum puts better photos on the face than the unweighted one.
    unweighted = next(c for c in first["comparison"] if c["method"] == "optimal, unweighted")
    assert (first["class_costs"]["face"]["mean_cost"]
            <= unweighted["class_costs"]["face"]["mean_cost"])
    assert (tmp_path / "work" / "weights.png").is_file()

    second = build_mosaic(options)
    assert second["cached_steps"] == ["library", "people", "target", "weights", "score",
                                      "solve", "greedy baseline", "optimal baseline", "render"]
    assert second["objective"] == pytest.approx(first["objective"])
    assert second["timings"]["score"] == 0.0
    # The memory budget changes how the matrix is scored, never its values: still cached.
    budget = build_mosaic(options.model_copy(update={"max_memory": "2GB"}))
    assert {"score", "solve", "render"} <= set(budget["cached_steps"])
    assert budget["max_memory_bytes"] == 2 * 10**9 != second["max_memory_bytes"]


def test_deleted_intermediate_is_recomputed(prefect_api, photo_dir, portrait, tmp_path):
    from flows.build_mosaic import build_mosaic

    options = _options(photo_dir, portrait, tmp_path, compare=False)
    build_mosaic(options)
    for cost in (tmp_path / "work" / "score").rglob("cost.npy"):
        cost.unlink()
    again = build_mosaic(options)
    assert "score" not in again["cached_steps"]
    assert "library" in again["cached_steps"]


def test_run_killed_midway_resumes(prefect_api, photo_dir, portrait, tmp_path, monkeypatch):
    from flows.build_mosaic import build_mosaic

    options = _options(photo_dir, portrait, tmp_path, compare=False)
    real_render = render.render

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("power cut while rendering")

    monkeypatch.setattr(render, "render", crash)
    with pytest.raises(BaseException, match="power cut"):
        build_mosaic(options)
    assert not (tmp_path / "out" / "mosaic.jpg").exists()
    monkeypatch.setattr(render, "render", real_render)
    resumed = build_mosaic(options)
    assert resumed["cached_steps"] == ["library", "people", "target", "weights", "score",
                                       "solve"]
    assert Path(resumed["output"]).is_file()


def test_too_few_photos_for_the_grid(prefect_api, photo_dir, portrait, tmp_path):
    from flows.build_mosaic import build_mosaic
    from mosaic.errors import MosaicError

    options = _options(photo_dir, portrait, tmp_path, grid="20x20")
    with pytest.raises(MosaicError, match=r"needs 400 distinct photos but only \d+ are available"):
        build_mosaic(options)


def test_target_without_people_runs_unweighted(prefect_api, photo_dir, tmp_path):
    from flows.build_mosaic import build_mosaic

    landscape = Path(__file__).parent / "data" / "landscape-kite.jpg"
    options = _options(photo_dir, landscape, tmp_path, compare=False)
    result = build_mosaic(options)
    assert result["faces_found"] == 0
    assert result["weights"]["mode"] == "none"
    assert result["weights"]["requested"] == "faces+people"
    assert "nobody" in result["weights_note"]
    assert result["class_costs"]["background"]["tiles"] == result["tiles"]


def test_weights_none_skips_detection(prefect_api, photo_dir, portrait, tmp_path):
    from flows.build_mosaic import build_mosaic

    options = _options(photo_dir, portrait, tmp_path, compare=False, weights="none")
    result = build_mosaic(options)
    assert result["faces_found"] is None and result["weights"]["mode"] == "none"
    assert result["weights_note"] is None


def test_auto_picks_regional_when_the_matrix_exceeds_the_budget(prefect_api, photo_dir,
                                                                  portrait, tmp_path):
    """A tiny --max-memory makes "auto" run the regional method, weighted, with a report."""
    from flows.build_mosaic import build_mosaic
    from mosaic.assign.auto import DENSE_SHARE, PROCESS_BYTES, choose_method, smallest_budget

    dense = build_mosaic(_options(photo_dir, portrait, tmp_path / "dense", compare=False))
    assert dense["method"] == "optimal" and dense["method_requested"] == "auto"
    assert "dense exact" in dense["method_reason"]
    # Between what 4 regions need and what the dense matrix needs: regional, at full quality.
    # (Before reading the photos the build counts every file as one: the budget must do
    # for all of them.)
    files, photos, tiles = dense["photo_files"], dense["photos_available"], dense["tiles"]
    enough = round(1.05 * smallest_budget(files, files, 7, regions=4,
                                          feature_bytes=4 * 3 * 16**2 * (files + files * 7),
                                          process_bytes=PROCESS_BYTES))
    assert enough < choose_method(tiles, photos, 7, feature_bytes=4 * 3 * 16**2 * (
        tiles + photos * 7), process_bytes=PROCESS_BYTES).dense_bytes / DENSE_SHARE
    small = _options(photo_dir, portrait, tmp_path / "regional", compare=False,
                     max_memory=str(enough), regions=4)
    regional = build_mosaic(small)
    assert regional["method"] == "regional" and regional["method_requested"] == "auto"
    assert "over max_memory" in regional["method_reason"]
    placement = json.loads(Path(regional["assignment_file"]).read_text())["photo_of_tile"]
    assert len(placement) == regional["tiles"] == len(set(placement))
    # Costs are float32: "optimal" holds to their precision (~6e-8 relative), which the
    # whole-head weights (2.5, fall-off 0.5) showed: regional came out 9e-8 below dense.
    slack = 1e-7 * abs(dense["objective"])
    assert regional["lower_bound"] <= dense["objective"] + slack
    assert dense["objective"] <= regional["objective"] + slack
    assert regional["weights"]["mode"] == "faces+people"
    assert regional["regional"]["regions"] >= 2
    report = (tmp_path / "regional" / "work" / "report.md").read_text()
    assert "why this method" in report
    assert "No greedy or unweighted baseline" in report
    assert Path(regional["output"]).is_file()


def test_an_unrealistic_memory_budget_is_refused_with_the_smallest_that_works(
        prefect_api, photo_dir, portrait, tmp_path):
    """--max-memory 1KB used to give a worse mosaic without a word; now it is refused."""
    from flows.build_mosaic import build_mosaic
    from mosaic.errors import MosaicError

    tiny = _options(photo_dir, portrait, tmp_path, compare=False,
                    max_memory="1KB")
    with pytest.raises(MosaicError, match=r"max_memory 1.0 kB is too small for .* tiles and "
                       r".* photos: the smallest budget that works is (\d+\.\d)MB") as caught:
        build_mosaic(tiny)
    smallest = caught.value.args[0].rsplit(" ", 1)[1]
    enough = _options(photo_dir, portrait, tmp_path, compare=False,
                      max_memory=smallest)
    assert build_mosaic(enough)["tiles"] > 0  # the value it names does work
