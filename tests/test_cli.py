"""The `mosaic` command: every bad input is one line on stderr and exit status 2."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from cli.main import command as app
from tests.conftest import ROOT, SAMPLE_PHOTOS


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _build(runner: CliRunner, *args: str):
    return runner.invoke(app, ["build", *args, "--quiet"])


def _subprocess_build(*args: str) -> subprocess.CompletedProcess:
    """Run `mosaic build` as a real process against the test session's Prefect API."""
    return _finished(_start_subprocess_build(*args))


def _start_subprocess_build(*args: str) -> subprocess.Popen:
    """Start `mosaic build` as :func:`_subprocess_build` runs it; see :func:`_finished`.

    Builds that share no file they write can run at once: a second core builds one while
    the first builds another, and they are the same real processes.
    """
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    return subprocess.Popen([sys.executable, "-m", "cli", "build", *args, "--quiet"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _finished(process: subprocess.Popen, timeout: float = 300) -> subprocess.CompletedProcess:
    """The outcome of a started build, as ``subprocess.run`` gives it (killed on timeout)."""
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except BaseException:
        process.kill()
        process.communicate()
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _all_finished(*processes: subprocess.Popen) -> list[subprocess.CompletedProcess]:
    """The outcomes of builds started together; if waiting fails, none is left running."""
    try:
        return [_finished(process) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()


def _assert_one_line_error(result, *fragments: str) -> None:
    code = getattr(result, "exit_code", getattr(result, "returncode", None))
    assert code == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("mosaic: error: ")
    assert "Traceback" not in result.stdout + result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def _args(photos: Path, target: Path, out: Path, *extra: str) -> list[str]:
    return ["--photos", str(photos), "--target", str(target), "--out", str(out), *extra]


def test_missing_photo_folder(runner, portrait, tmp_path):
    result = _build(runner, *_args(tmp_path / "nope", portrait, tmp_path / "o.jpg"))
    _assert_one_line_error(result, "does not exist")


def test_empty_photo_folder(runner, portrait, tmp_path):
    (tmp_path / "empty").mkdir()
    result = _build(runner, *_args(tmp_path / "empty", portrait, tmp_path / "o.jpg"))
    _assert_one_line_error(result, "holds no image files")


def test_target_missing_or_unreadable(runner, photo_dir, tmp_path):
    result = _build(runner, *_args(photo_dir, tmp_path / "none.jpg", tmp_path / "o.jpg"))
    _assert_one_line_error(result, "none.jpg", "does not exist")
    (tmp_path / "bad.jpg").write_text("not an image")
    result = _build(runner, *_args(photo_dir, tmp_path / "bad.jpg", tmp_path / "o.jpg"))
    _assert_one_line_error(result, "bad.jpg", "cannot read image")


def test_decompression_bomb_target(runner, photo_dir, tmp_path):
    Image.new("L", (4000, 4000)).save(tmp_path / "huge.png")
    result = _build(runner, *_args(photo_dir, tmp_path / "huge.png", tmp_path / "o.jpg",
                                   "--max-pixels", "1000000"))
    _assert_one_line_error(result, "decompression-bomb")


@pytest.mark.parametrize("option,value,fragment", [
    ("--size", "huge", "--size 'huge' is not understood"),
    ("--size", "0x10cm", "greater than zero"),
    ("--grid", "10by10", "--grid '10by10' is not understood"),
    ("--grid", "0x5", "--grid '0x5'"),
    ("--tiles", "0", "--tiles 0"),
    ("--method", "magic", "--method 'magic'"),
    ("--metric", "hsv", "--metric 'hsv'"),
    ("--dpi", "300", "--dpi needs --size"),
    ("--crops", "31", "--crops 31"),
    ("--bleed", "3 furlongs", "--bleed '3 furlongs' is not understood"),
    ("--bleed", "3mm", "needs --size and --dpi (or give it in px)"),
    ("--format", "svg", "--format 'svg'"),
    ("--color-correct", "0.9", "--color-correct"),
])
def test_nonsense_options(runner, photo_dir, portrait, tmp_path, option, value, fragment):
    result = _build(runner, *_args(photo_dir, portrait, tmp_path / "o.jpg", option, value))
    _assert_one_line_error(result, fragment)


def test_unwritable_output(runner, photo_dir, portrait, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = _build(runner, *_args(photo_dir, portrait, blocker / "o.jpg"))
    _assert_one_line_error(result, "cannot create folder")
    for suffix in (".xyz", ".psd", ".xbm", ".h5", ".pdf", ""):
        result = _build(runner, *_args(photo_dir, portrait, tmp_path / f"o{suffix}"))
        _assert_one_line_error(result, "mosaic writes .jpg, .png, .tif or .webp images")
    result = _build(runner, *_args(photo_dir, portrait, tmp_path))
    _assert_one_line_error(result, "is a folder")


def test_no_readable_photos(prefect_api, portrait, tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_text("junk")
    (tmp_path / "photos" / "b.png").write_bytes(b"\x89PNG junk")
    result = _subprocess_build(*_args(tmp_path / "photos", portrait, tmp_path / "o.jpg",
                                   "--workdir", str(tmp_path / "w")))
    # Each unreadable photo gets its own warning line; then the one-line error.
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert [line.split(":")[1].strip() for line in lines] == ["warning", "warning", "error"]
    assert "none of the 2 image files could be read" in lines[-1]
    assert "Traceback" not in result.stderr


def test_grid_larger_than_photos(prefect_api, portrait, tmp_path):
    (tmp_path / "photos").mkdir()
    for path in SAMPLE_PHOTOS[:10]:
        shutil.copy(path, tmp_path / "photos")
    result = _subprocess_build(*_args(tmp_path / "photos", portrait, tmp_path / "o.jpg",
                                      "--grid", "4x4", "--workdir", str(tmp_path / "w")))
    _assert_one_line_error(result, "--grid 4x4 needs 16 distinct photos but only 10")


def test_build_writes_mosaic_metrics_and_skips_bad_photos(prefect_api, photo_dir, portrait,
                                                          tmp_path):
    (photo_dir / "broken.jpg").write_text("junk")
    (photo_dir / "broken-copy.jpg").write_text("junk")  # identical bytes: named too
    out = tmp_path / "poster.jpg"
    args = _args(photo_dir, portrait, out, "--tiles", "60", "--tile-px", "20", "--workdir",
                 str(tmp_path / "w"), "--metrics", str(tmp_path / "m.json"), "--method",
                 "greedy")
    result = _subprocess_build(*args)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(out.resolve())
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "broken.jpg" in warnings[0]
    assert "(and 1 identical copy: " in warnings[0] and "broken-copy.jpg" in warnings[0]
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["tiles"] <= 60 and metrics["method"] == "greedy"
    assert sorted(Path(entry["path"]).name for entry in metrics["skipped"]) == [
        "broken-copy.jpg", "broken.jpg"]
    # Another output from the same run folder: the library comes from the cache, and the
    # same files are named again.
    again = _subprocess_build(*[str(tmp_path / "again.jpg") if a == str(out) else a
                                for a in args])
    assert again.returncode == 0, again.stderr
    assert [line for line in again.stderr.splitlines() if "warning" in line] == warnings
    with Image.open(out) as image:
        assert image.size == (metrics["cols"] * 20, metrics["rows"] * 20)


def test_a_deep_zoom_build_with_a_bleed_records_its_print_size(prefect_api, photo_dir,
                                                               portrait, tmp_path):
    site = tmp_path / "site"
    args = _args(photo_dir, portrait, site, "--format", "dzi", "--size", "10x12cm", "--dpi",
                 "100", "--bleed", "2mm", "--workdir", str(tmp_path / "w"), "--weights",
                 "none", "--crops", "1")
    umask = os.umask(0o022)
    try:
        result = _subprocess_build(*args)
    finally:
        os.umask(umask)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str((site / "viewer.html").resolve())
    for path in (site / "viewer.html", site / "mosaic.dzi", tmp_path / "w" / "metrics.json",
                 tmp_path / "w" / "report.html", tmp_path / "w" / "placement.csv"):
        assert oct(path.stat().st_mode & 0o777) == "0o644", path  # what umask 022 gives
    metrics = json.loads((tmp_path / "w" / "metrics.json").read_text())
    assert metrics["format"] == "dzi" and metrics["bleed_px"] == 8  # 2 mm at 100 dpi
    width, height = metrics["output_size"]
    tile = (width - 16) // metrics["cols"]
    assert (width, height) == (metrics["cols"] * tile + 16, metrics["rows"] * tile + 16)
    assert metrics["print_size_mm"] == [round(width / 100 * 25.4, 2),
                                        round(height / 100 * 25.4, 2)]
    assert f'Width="{width}"' in (site / "mosaic.dzi").read_text()
    assert Path(metrics["report_html"]).is_file()
    again = _subprocess_build(*args)  # its own folder is replaced
    assert again.returncode == 0, again.stderr
    (site / "notes.txt").write_text("mine")  # now the folder holds a file of the user's
    _assert_one_line_error(_subprocess_build(*args), "not a Deep Zoom folder written by")
    assert (site / "notes.txt").read_text() == "mine"


def test_compare_writes_one_page_with_greedy_and_optimal_side_by_side(prefect_api, photo_dir,
                                                                       portrait, tmp_path):
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    out = tmp_path / "report"
    command = [sys.executable, "-m", "cli", "compare", "--photos", str(photo_dir), "--target",
               str(portrait), "--out", str(out), "--tile-px", "8"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == "optimal"
    means = {entry["method"]: entry["mean_cost"] for entry in metrics["comparison"]}
    assert "greedy" in means and means["greedy"] >= min(means.values())
    for method, mean in means.items():
        assert f"{method:<22} mean cost {mean:.4f}" in done.stdout
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.count('alt="Mosaic, ') == len(means) and "Greedy " in page
    assert f"report: {out / 'report.html'}" in done.stdout
