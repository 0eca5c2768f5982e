"""``--detail faces`` against the uniform grid, with the same photos: the default command.

Run from the project folder::

    .venv/bin/python -m benchmarks.bench_detail --first 400          # as in make bench
    .venv/bin/python -m benchmarks.bench_detail                      # the shared library
    .venv/bin/python -m benchmarks.bench_detail --photos DIR --targets obama,biden

For every shared target it runs the default command three times on the same photos (all
with ``--no-compare``, which only skips the report's baselines): as it is, with
``--detail faces``, and uniform again with ``--tiles`` the detail build's cell count (as
many photos placed, so the photos a grid leaves out do not decide the comparison). All
rendered posters are measured the same way, whatever their grids:

- each poster and the target region it covers are box-shrunk to one pixel density, 16 px
  a tile of the default *uniform* grid (the project's tile-error scale), so a pixel is
  the same patch of the target in every poster; the "far" columns use 4 px a uniform
  tile (the poster seen from across the room);
- **face error**: the RGB mean squared error over the pixels inside the whole heads of
  the faces counted by hand (:mod:`benchmarks.bench_faces` ``REQUIRED``, grown by the
  project's head rule), the part of the poster a viewer reads as the face;
- **overall**: the same over every pixel.

The issue's goal: face error at least 25 % lower than the uniform grid's on the group
photos (targets whose faces cover under a quarter of the uniform tiles; close-ups are
reported, not held to it), for each half of the targets.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks import bench_mosaicraft as mc
from benchmarks import quality_figures as qf
from benchmarks.bench_faces import REQUIRED
from benchmarks.bench_quality import half
from benchmarks.bench_repeats import distinct_photos
from benchmarks.peers import DATA, ROOT, Box
from benchmarks.quality_rows import CLOSE_UP_SHARE
from benchmarks.table import fresh_folder, machine, print_table, save_results, saved_results
from cli import prefect_server
from mosaic.images import open_rgb
from mosaic.importance.heads import head_ellipses
from mosaic.report import QUALITY_CELL

MIN_DETAIL_GAIN = 0.25
"""The issue's goal: face error at least this much lower than the uniform grid's."""
FAR_CELL = 4
"""Pixels a uniform tile at the second, far density."""
MODES = {"uniform": (), "detail": ("--detail", "faces"), "same": ()}
"""The default command; with ``--detail faces``; and uniform with ``--tiles`` the detail
build's cell count (``same``: as many photos placed, so the photos left out do not decide
the comparison)."""


@dataclass
class Measured:
    """One build: its grid and figures at both densities, or the reason it failed."""

    target: str
    mode: str
    grid: str = ""
    cells: int = 0
    overall: float = math.nan
    face: float = math.nan
    far_overall: float = math.nan
    far_face: float = math.nan
    face_share: float = math.nan
    seconds: float = math.nan
    peak_mb: float = math.nan
    error: str | None = None


def head_mask(target: str, region: Box, size: tuple[int, int], pixel: float) -> np.ndarray:
    """Pixels (of a ``size`` image of ``region``) whose centre lies in a required head."""
    faces = list(REQUIRED.get(target, {}).values())
    mask = np.zeros((size[1], size[0]), dtype=bool)
    if not faces:
        return mask
    xs = region[0] + (np.arange(size[0]) + 0.5) * pixel
    ys = region[1] + (np.arange(size[1]) + 0.5) * pixel
    for cx, cy, rx, ry in head_ellipses(faces):
        mask |= ((xs[None, :] - cx) / rx) ** 2 + ((ys[:, None] - cy) / ry) ** 2 <= 1
    return mask


def errors_at(poster: Image.Image, target: str, region: Box, pixel: float
              ) -> tuple[float, float]:
    """Overall and face-pixel RGB MSE of ``poster`` against ``region`` at ``pixel`` px."""
    left, top, right, bottom = region
    size = (max(1, round((right - left) / pixel)), max(1, round((bottom - top) / pixel)))
    ours = np.asarray(poster.resize(size, Image.Resampling.BOX), np.float64) / 255
    crop = open_rgb(DATA / "targets" / f"{target}.jpg").crop(region)
    reference = np.asarray(crop.resize(size, Image.Resampling.BOX), np.float64) / 255
    squared = ((ours - reference) ** 2).mean(axis=2)
    mask = head_mask(target, region, size, pixel)
    return float(squared.mean()), float(squared[mask].mean()) if mask.any() else math.nan


def build(target: str, mode: str, photos: Path, folder: Path, timeout: float,
          pixel: float | None, extra: Sequence[str] = ()) -> tuple[Measured, float | None]:
    """Run the default command (with ``mode``'s options) and measure its poster.

    ``pixel`` is the density (target pixels a measured pixel) the uniform build set; the
    uniform build itself passes None and returns its own.
    """
    out, workdir = folder / f"poster-{mode}.png", folder / f"run-{mode}"
    command = [sys.executable, "-m", "cli", "build", "--photos", str(photos), "--target",
               str(DATA / "targets" / f"{target}.jpg"), "--out", str(out), "--no-compare",
               "--workdir", str(workdir), "--metrics", str(folder / f"metrics-{mode}.json"),
               "-q", *MODES[mode], *extra]
    measured = Measured(target, mode)
    try:
        measured.seconds, measured.peak_mb, _ = mc.run_measured(command, timeout,
                                                                folder / "logs" / mode)
        layout = mc.our_layout(workdir)
        rows, cols = int(layout["rows"]), int(layout["cols"])
        region: Box = tuple(int(v) for v in layout["crop"])  # type: ignore[assignment]
        split = len(layout.get("split") or ())
        with Image.open(out) as image:
            poster = image.convert("RGB")
    except (mc.RunFailedError, OSError, KeyError, ValueError) as exc:
        measured.error = str(exc)
        print(f"  {target} {mode}: FAILED: {exc}", file=sys.stderr, flush=True)
        return measured, pixel
    if pixel is None:
        pixel = (region[2] - region[0]) / (cols * QUALITY_CELL)
        heads = qf.face_tiles(list(REQUIRED.get(target, {}).values()), region, rows, cols)
        measured.face_share = float(heads.mean())
    measured.grid = f"{rows}x{cols}" + (f" +{split} split" if split else "")
    measured.cells = rows * cols + 3 * split
    measured.overall, measured.face = errors_at(poster, target, region, pixel)
    far = pixel * QUALITY_CELL / FAR_CELL
    measured.far_overall, measured.far_face = errors_at(poster, target, region, far)
    return measured, pixel


def change(new: float, old: float) -> str:
    """``new`` against ``old`` as a signed percentage."""
    return f"{100 * (new / old - 1):+.1f}%" if old > 0 and math.isfinite(new) else "-"


def rows_of(results: Sequence[Measured]) -> tuple[list[list[str]], dict[str, bool | None]]:
    """The table's rows, and per target whether the goal held (None: a close-up)."""
    by_target: dict[str, dict[str, Measured]] = {}
    for measured in results:
        by_target.setdefault(measured.target, {})[measured.mode] = measured
    table, verdicts = [], {}
    for target, modes in sorted(by_target.items()):
        uniform, detail, same = modes.get("uniform"), modes.get("detail"), modes.get("same")
        if any(m is None or m.error for m in (uniform, detail, same)):
            table.append([target, half(target), "FAILED", *["-"] * 10])
            continue
        assert uniform is not None and detail is not None and same is not None
        close_up = uniform.face_share >= CLOSE_UP_SHARE
        no_face = not math.isfinite(uniform.face)
        met = (None if close_up or no_face
               else 1 - detail.face / uniform.face >= MIN_DETAIL_GAIN)
        verdicts[target] = met
        table.append([
            target, half(target), f"{uniform.grid} ({uniform.cells})",
            f"{detail.grid} ({detail.cells})",
            f"{uniform.face:.4f} -> {detail.face:.4f} ({change(detail.face, uniform.face)})",
            change(detail.far_face, uniform.far_face),
            f"{same.grid}: {same.face:.4f} ({change(detail.face, same.face)})",
            change(detail.far_face, same.far_face),
            f"{uniform.overall:.4f} -> {detail.overall:.4f} "
            f"({change(detail.overall, uniform.overall)})",
            change(detail.far_overall, uniform.far_overall),
            "no face" if no_face else "close-up" if met is None else (
                "met" if met else "missed"),
            f"{uniform.seconds:.1f} / {uniform.peak_mb:.0f}",
            f"{detail.seconds:.1f} / {detail.peak_mb:.0f}"])
    return table, verdicts


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default=None,
                        help="comma-separated target names (default: all shared targets)")
    parser.add_argument("--photos", type=Path, default=DATA / "library")
    parser.add_argument("--first", type=int, default=None, metavar="N",
                        help="use the first N distinct photos of the shared library (as "
                             "bench_repeats does) instead of --photos")
    parser.add_argument("--extra", default="",
                        help="more build options for every build, e.g. '--tiles 2000 "
                             "--max-uses 5 --min-repeat-distance 6' (the control build's "
                             "--tiles still follows the detail build's cells)")
    parser.add_argument("--timeout", type=float, default=mc.DEFAULT_TIMEOUT)
    parser.add_argument("--out-dir", type=Path, default=ROOT / "mosaic-runs" / "bench-detail")
    parser.add_argument("--results", type=Path, default=None,
                        help="print the table of a saved results.json instead of building")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Build every target uniform and with ``--detail faces``; print the table."""
    args = parse_args(argv)
    targets = ([t.strip() for t in args.targets.split(",") if t.strip()] if args.targets
               else sorted(p.stem for p in (DATA / "targets").glob("*.jpg")))
    out_dir = args.out_dir.resolve()
    if args.first is not None:
        shutil.rmtree(out_dir / "photos", ignore_errors=True)
        args.photos = distinct_photos(out_dir / "photos", args.first)
    print(f"Machine: {machine()}\nlong-lived Prefect server: "
          f"{'yes' if prefect_server.is_running() else 'no'}; photos: {args.photos}; "
          f"options beyond the default command: --no-compare {args.extra}, and --detail faces",
          flush=True)
    results: list[Measured] = []
    if args.results is not None:
        results = [Measured(**entry) for entry in saved_results(args.results, targets)]
        targets = []
    for target in targets:
        folder = fresh_folder(out_dir / target)
        extra = args.extra.split()
        uniform, pixel = build(target, "uniform", args.photos.resolve(), folder, args.timeout,
                               None, extra)
        detail, _ = build(target, "detail", args.photos.resolve(), folder, args.timeout, pixel,
                          extra)
        same, _ = build(target, "same", args.photos.resolve(), folder, args.timeout, pixel,
                        [*extra, "--tiles", str(max(1, detail.cells))])  # the last one counts
        results += [uniform, detail, same]
        for measured in (uniform, detail, same):
            print(f"  {target}: {measured}", flush=True)
        save_results(out_dir, results)
    table, verdicts = rows_of(results)
    print_table("--detail faces against the uniform grid, same photos (RGB of the rendered "
                "posters at one density, 16 px a uniform tile; face = pixels in the whole "
                "heads of the faces counted by hand; far = 4 px a uniform tile)",
                ["target", "half", "uniform grid (cells)", "detail grid (cells)",
                 "face error", "far face", "uniform, as many cells: face (detail vs it)",
                 "far face vs it", "overall", "far overall",
                 f"goal (face -{MIN_DETAIL_GAIN:.0%})", "uniform s / MB", "detail s / MB"],
                table)
    for name in ("A", "B"):
        held = [met for target, met in verdicts.items() if half(target) == name
                and met is not None]
        print(f"Half {name}: goal met on {sum(held)} of {len(held)} group photos")
    print(f"Posters, logs and results.json: {out_dir}")
    failures = sum(m.error is not None for m in results)
    if failures:
        print(f"bench_detail: {failures} build(s) FAILED", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
