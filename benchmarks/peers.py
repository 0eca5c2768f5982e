"""Running phomo (side venv) and our command on one target: the cases, commands, measures.

Used by :mod:`benchmarks.bench_peers`, which prints the table; see its docstring for
what is compared and how.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy.optimize import linear_sum_assignment

from mosaic.images import open_rgb
from mosaic.layout import plan_layout
from mosaic.pipeline.library import scan_photos
from mosaic.report import mosaic_quality

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
PEERS_VENV = ROOT / ".venv-peers"
TARGETS = ("obama", "grace_hopper", "astronaut", "bar55", "landscape-kite")
QUICK_TARGETS = ("obama", "astronaut")
DEFAULT_TILE_PX = 100
DEFAULT_TIMEOUT = 1200.0
OPTIMUM_TOLERANCE = 1e-6
EXIT_NO_PHOMO = 2
PHOMO = "phomo -m norm (optimal)"

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Variant:
    """One setting of our ``mosaic build``: the options added to the defaults."""

    args: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The options as typed, or "default"."""
        return " ".join(self.args) or "default"

    @property
    def slug(self) -> str:
        """A folder name for this variant."""
        return "ours-" + ("-".join(a.lstrip("-") for a in self.args) or "default")


VARIANTS = (
    Variant(),
    Variant(("--weights", "none")),
    Variant(("--metric", "rgb")),
    Variant(("--crops", "3")),
    Variant(("--crops", "7")),
    Variant(("--metric", "rgb", "--crops", "3")),
    Variant(("--metric", "rgb", "--crops", "7")),
)
"""Our default first (the default command: Lab, 30 crops, default weights), then variants."""


@dataclass
class Result:
    """One measured mosaic (NaN figures and ``error`` set when the run failed)."""

    target: str
    grid: str
    tool: str
    box: Box | None
    tile_mse: float
    ssim: float
    seconds: float
    flow_seconds: float | None = None
    variant: str | None = None
    command: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True)
class Case:
    """One target and its grid."""

    name: str
    target: Path
    rows: int
    cols: int
    folder: Path

    @property
    def grid(self) -> str:
        """``ROWSxCOLS``."""
        return f"{self.rows}x{self.cols}"


@dataclass(frozen=True)
class Setup:
    """What every run of the benchmark shares."""

    photos: Path
    lib_folder: Path
    tile_px: int
    timeout: float


class PhomoMissingError(RuntimeError):
    """phomo is not installed in the side virtual environment."""


class RunFailedError(RuntimeError):
    """A command failed, timed out or produced something unusable."""


def phomo_version(venv: Path) -> str:
    """The installed phomo version in ``venv``.

    Parameters
    ----------
    venv : pathlib.Path
        The side virtual environment.

    Returns
    -------
    str
        For example ``"1.2.0"``.

    Raises
    ------
    PhomoMissingError
        No ``phomo`` command or package in ``venv``.
    """
    python, command = venv / "bin" / "python", venv / "bin" / "phomo"
    if not python.exists() or not command.exists():
        raise PhomoMissingError(f"phomo is not installed: {command} not found")
    probe = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('phomo'))"],
        capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        raise PhomoMissingError(f"phomo is not installed in {venv}: {probe.stderr.strip()}")
    return probe.stdout.strip()


def distinct_photo_folder(photos: Path, folder: Path) -> int:
    """Fill ``folder`` with symbolic links to the distinct readable photos of ``photos``.

    Parameters
    ----------
    photos : pathlib.Path
        The photo library (searched recursively, as ``mosaic build`` does).
    folder : pathlib.Path
        Flat folder for phomo; emptied first.

    Returns
    -------
    int
        Number of distinct photos linked.
    """
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    seen: set[str] = set()
    for path, digest in scan_photos(str(photos)):
        if digest is None or digest in seen:
            continue
        seen.add(digest)
        source = Path(path).resolve()
        (folder / f"{len(seen):05d}-{source.name}").symlink_to(source)
    return len(seen)


def phomo_centre_crop(width: int, height: int, ratio: float) -> Box:
    """The box phomo's ``-c ratio`` would cut (``phomo.utils.crop_to_ratio`` + Pillow).

    Parameters
    ----------
    width, height : int
        Target size.
    ratio : float
        Wanted width / height.

    Returns
    -------
    tuple of int
        (left, top, right, bottom), rounded as ``PIL.Image.crop`` rounds.
    """
    excess_h = width / ratio - height
    excess_w = height * ratio - width
    box: tuple[float, float, float, float] = (0.0, 0.0, float(width), float(height))
    if excess_h < 0 and (excess_w >= 0 or excess_h > excess_w):
        box = (0.0, -excess_h / 2, float(width), height + excess_h / 2)
    elif excess_w < 0:
        box = (-excess_w / 2, 0.0, width + excess_w / 2, float(height))
    left, top, right, bottom = (round(v) for v in box)
    return left, top, right, bottom


def plan_case(name: str, out_dir: Path, photos: int, tiles: int | None, tile_px: int
              ) -> Case:
    """The grid ``mosaic build`` would choose without ``--grid`` (used for both tools).

    Parameters
    ----------
    name : str
        Target name in ``shared/data/targets`` (without ``.jpg``).
    out_dir : pathlib.Path
        The benchmark's output folder.
    photos : int
        Distinct photos available.
    tiles : int, optional
        Wanted tile count; by default as many as there are photos.
    tile_px : int
        Tile side in pixels.

    Returns
    -------
    Case
    """
    target = DATA / "targets" / f"{name}.jpg"
    layout = plan_layout(open_rgb(target).size, photos, tiles=tiles, tile_px=tile_px)
    return Case(name, target, layout.rows, layout.cols, out_dir / name)


def box_slug(box: Box) -> str:
    """A file-name part for a crop box."""
    return "-".join(str(v) for v in box)


def save_crop(target: Path, box: Box, out: Path) -> Image.Image:
    """Cut ``box`` out of the upright target and save it losslessly as ``out`` (PNG)."""
    crop = open_rgb(target).crop(box)
    out.parent.mkdir(parents=True, exist_ok=True)
    crop.save(out)
    return crop


def phomo_command(venv: Path, master: Path, tiles: Path, out: Path, rows: int, cols: int,
                  tile_px: int) -> list[str]:
    """The phomo command: optimal mode, norm metric, no recolouring, ``rows x cols`` cells."""
    return [str(venv / "bin" / "phomo"), str(master), str(tiles), "-o", str(out),
            "-s", str(cols * tile_px), str(rows * tile_px), "-C", "1",
            "-S", str(tile_px), str(tile_px), "-n", "1", "-m", "norm", "-j", "1"]


def ours_command(case: Case, photos: Path, out: Path, tile_px: int, variant: Variant,
                 workdir: Path) -> list[str]:
    """Our ``mosaic build`` with the case's grid and tile size, plus the variant's options."""
    mosaic = Path(sys.executable).with_name("mosaic")
    return [str(mosaic), "build", "--photos", str(photos), "--target", str(case.target),
            "--out", str(out), "--grid", case.grid, "--tile-px", str(tile_px),
            "--method", "optimal", *variant.args, "--workdir", str(workdir),
            "--metrics", str(workdir / "metrics.json"), "-q"]


def run_timed(command: Sequence[str], timeout: float) -> float:
    """Run ``command`` (output captured) and return its wall seconds.

    Parameters
    ----------
    command : sequence of str
        The command line.
    timeout : float
        Seconds after which the command is killed.

    Returns
    -------
    float
        Wall-clock seconds.

    Raises
    ------
    RunFailedError
        Non-zero exit status or timeout.
    """
    started = time.perf_counter()
    try:
        done = subprocess.run(list(command), cwd=ROOT, capture_output=True, text=True,
                              check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RunFailedError(f"timed out after {timeout:.0f} s: {command[0]}") from None
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise RunFailedError(f"{Path(command[0]).name} exited {done.returncode}: {tail}")
    return seconds


def measure(mosaic_path: Path, crop: Image.Image, rows: int, cols: int, tile_px: int
            ) -> dict[str, float]:
    """Tile error and SSIM of a mosaic file against the target crop."""
    with Image.open(mosaic_path) as image:
        mosaic = image.convert("RGB")
    expected = (cols * tile_px, rows * tile_px)
    if mosaic.size != expected:
        raise RunFailedError(f"{mosaic_path} is {mosaic.size}, expected {expected}")
    return mosaic_quality(mosaic, crop, rows, cols)


def only_file(workdir: Path, pattern: str) -> Path:
    """The one file matching ``pattern`` under ``workdir``."""
    found = list(workdir.glob(pattern))
    if len(found) != 1:
        raise RunFailedError(f"expected one {pattern} in {workdir}, found {len(found)}")
    return found[0]


def our_crop(workdir: Path) -> Box:
    """The target region our run covered (``target_crop`` in its ``metrics.json``)."""
    metrics = json.loads((workdir / "metrics.json").read_text(encoding="utf-8"))
    left, top, right, bottom = (int(v) for v in metrics["target_crop"])
    return left, top, right, bottom


def check_optimum(workdir: Path, objective: float) -> None:
    """Check our run's objective against scipy's optimum on the run's own costs.

    Parameters
    ----------
    workdir : pathlib.Path
        The run folder (holds ``score/*/cost.npy`` and, when written, the tile weights
        ``weights/*/weights.npy``).
    objective : float
        ``objective`` from the run's ``metrics.json``.

    Raises
    ------
    RunFailedError
        The run's assignment is not optimal for its own (weighted) costs.
    """
    cost = np.load(only_file(workdir, "score/*/cost.npy")).astype(np.float64)
    weights = list(workdir.glob("weights/*/weights.npy"))
    if len(weights) > 1:
        raise RunFailedError(f"several weights.npy in {workdir}")
    if weights:
        cost *= np.load(weights[0]).astype(np.float64)[:, None]
    rows, cols = linear_sum_assignment(cost)
    optimum = float(cost[rows, cols].sum())
    if abs(objective - optimum) > OPTIMUM_TOLERANCE * max(1.0, abs(optimum)):
        raise RunFailedError(f"objective {objective:.9g} is not the optimum {optimum:.9g}")


def failed(case: Case, tool: str, box: Box | None, command: list[str], error: Exception,
           variant: str | None = None) -> Result:
    """A row for a run that produced no numbers."""
    print(f"  {tool}: FAILED: {error}", file=sys.stderr, flush=True)
    nan = float("nan")
    return Result(case.name, case.grid, tool, box, nan, nan, nan, variant=variant,
                  command=command, error=str(error))


def bench_phomo(case: Case, box: Box, crop_png: Path, crop: Image.Image, setup: Setup
                ) -> Result:
    """Run phomo on one crop of the case's target and measure it."""
    out = case.folder / f"phomo-{box_slug(box)}.png"
    out.unlink(missing_ok=True)
    command = phomo_command(PEERS_VENV, crop_png, setup.lib_folder, out, case.rows,
                            case.cols, setup.tile_px)
    try:
        seconds = run_timed(command, setup.timeout)
        quality = measure(out, crop, case.rows, case.cols, setup.tile_px)
    except RunFailedError as exc:
        return failed(case, PHOMO, box, command, exc)
    return Result(case.name, case.grid, PHOMO, box, quality["tile_mse_rgb"], quality["ssim"],
                  seconds, command=command)


def describe(variant: Variant, metrics: dict[str, Any]) -> str:
    """Our tool and settings as they actually ran (from ``metrics.json``)."""
    weights = metrics.get("weights")
    mode = weights.get("mode", "?") if isinstance(weights, dict) else "n/a"
    return (f"ours {variant.name} (metric {metrics.get('metric')}, crops "
            f"{metrics.get('crops')}, weights {mode})")


def run_ours(case: Case, variant: Variant, setup: Setup
             ) -> tuple[list[str], float, dict[str, Any], Box]:
    """Run one variant of ``mosaic build``; command, seconds, metrics and crop box."""
    workdir = case.folder / variant.slug
    shutil.rmtree(workdir, ignore_errors=True)
    command = ours_command(case, setup.photos, workdir / "mosaic.png", setup.tile_px,
                           variant, workdir)
    seconds = run_timed(command, setup.timeout)
    metrics = json.loads((workdir / "metrics.json").read_text(encoding="utf-8"))
    check_optimum(workdir, float(metrics["objective"]))
    return command, seconds, metrics, our_crop(workdir)


def bench_case(case: Case, setup: Setup, variants: Sequence[Variant]) -> list[Result]:
    """Each of our variants on one target, and phomo on every region they covered."""
    results: list[Result] = []
    crops: dict[Box, Image.Image] = {}
    for variant in variants:
        workdir = case.folder / variant.slug
        try:
            command, seconds, metrics, box = run_ours(case, variant, setup)
        except RunFailedError as exc:
            results.append(failed(case, f"ours {variant.name}", None, [], exc, variant.name))
            continue
        if box not in crops:
            crop_png = case.folder / f"target-crop-{box_slug(box)}.png"
            crops[box] = save_crop(case.target, box, crop_png)
            centre = phomo_centre_crop(*open_rgb(case.target).size, case.cols / case.rows)
            print(f"{case.name}: grid {case.grid}, our region {box} (phomo's own -c would cut "
                  f"{centre}); phomo runs on our region", flush=True)
            results.append(bench_phomo(case, box, crop_png, crops[box], setup))
        tool = describe(variant, metrics)
        try:
            quality = measure(workdir / "mosaic.png", crops[box], case.rows, case.cols,
                              setup.tile_px)
        except RunFailedError as exc:
            results.append(failed(case, tool, box, command, exc, variant.name))
            continue
        results.append(Result(case.name, case.grid, tool, box, quality["tile_mse_rgb"],
                              quality["ssim"], seconds, float(metrics["timings"]["total"]),
                              variant.name, command))
    return results
