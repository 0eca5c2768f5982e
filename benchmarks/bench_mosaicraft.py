"""Our mosaic (default, and ``--color-correct 0.3``) against mosaicraft 0.4.2, same grid and crop.

Run from the project folder (``make bench-mosaicraft`` installs mosaicraft first)::

    .venv/bin/python -m benchmarks.bench_mosaicraft                 # every target
    .venv/bin/python -m benchmarks.bench_mosaicraft --quick         # obama, astronaut
    .venv/bin/python -m benchmarks.bench_mosaicraft --targets obama,bar55

mosaicraft lives in the side virtual environment ``.venv-peers`` (with opencv-python),
never in the project's ``.venv``; :mod:`benchmarks.mosaicraft_run` drives its API there.
If it is missing the script says so and exits with status 2; it never prints numbers it
did not measure. A run that fails or passes ``--timeout`` is a FAILED row and the exit
status is 1.

What mosaicraft 0.4.2 does (read from its source: ``core.py``, ``utils.py``,
``tiles.py``, ``placement.py``, ``blending.py``, ``color.py``, ``postprocess.py``):

- Grid: ``calc_grid(target_tiles, W, H)``: ``rows = int(sqrt(T * H / W))``, ``cols =
  int(rows * W / H)``; cells are ``tile_size`` px (88 by default).
- Region: the *whole* master image, resized (``cv2.INTER_LANCZOS4``, no crop) to ``cols
  * tile_size`` x ``rows * tile_size``; the aspect is squashed when it does not match.
- Tiles: every photo of the folder (``os.listdir``, not recursive, no de-duplication)
  squashed to a square (``cv2.resize``, no crop). With ``augment=True`` (the default)
  each photo also gets a mirrored, a 10 % brighter and a 10 % darker copy: 4 candidates
  a photo, so the Hungarian 1:1 assignment can place one photo up to 4 times.
- Default preset ``vivid``: per-tile MKL + histogram colour transfer toward the cell,
  then 5-14 % of the target itself blended into every tile (by saliency), then a global
  postprocess (gamma, shadow lift, CLAHE, high-pass boost, vibrance, saturation,
  contrast, harmony, unsharp mask).
- "Honest" through the API: ``MosaicGenerator(preset=dict, augment=False)`` with
  ``color_transfer "none"``, blend 0, and every postprocess setting at its neutral value
  (:data:`benchmarks.mosaicraft_run.HONEST_CHANGES`). 0.4.2 cannot switch off two
  postprocess steps (CLAHE and the high-pass boost), so a second row, "honest raw",
  redraws that same placement from the tiles exactly as mosaicraft loads them, with no
  postprocess: it shows what the placement alone gives.
- ``target_tiles`` defaults to 2,000, more than the shared library's distinct photos
  (775): no mosaic on that grid can use each photo once, and honest mosaicraft refuses
  it (Hungarian needs as many candidates as cells). Every mosaicraft row therefore gets
  a ``target_tiles`` that yields our grid (below); everything else is its default
  (``tile_size`` 88, preset, augmentation, placement, ``dedup_radius``).

Alignment (same photos, grid and region for every row):

1. Photos: the shared library de-duplicated by SHA-256 (``peers.distinct_photo_folder``,
   a flat folder of links), the set our ``mosaic build`` uses from the same folder.
2. Grid: mosaicraft's own ``calc_grid(distinct photos, W, H)`` on the whole target,
   passed to ours as ``--grid ROWSxCOLS``.
3. Region: our build crops the target to ``cols / rows`` (keeping faces in frame). The
   crop box is read from the run's own target result (``.prefect-results``, the
   ``TargetResult`` layout) and checked: the quality our run reported in
   ``metrics.json`` must match :func:`mosaic.report.mosaic_quality` of our mosaic.png
   against that crop (within :data:`QUALITY_TOLERANCE`, far below what a one-pixel
   shift of the crop changes). The crop is saved as PNG and handed to mosaicraft
   (:mod:`benchmarks.mosaicraft_run`), which resizes it to ``cols * 88`` x ``rows * 88``
   with ``cv2.INTER_LANCZOS4`` -- the resize ``generate`` itself does -- and calls
   ``generate`` on that master with the ``target_tiles`` nearest the photo count for
   which its ``calc_grid`` gives our grid (given the crop itself, ``int(rows * W / H)``
   can round a column away: obama's 880 x 1137 crop gives 23 columns, not 24).
   ``generate``'s own resize is then a copy and its cells cover exactly our region;
   the grid it reports is checked.
4. Every mosaic is measured with :func:`mosaic.report.mosaic_quality` (both images
   box-shrunk to 16 x 16 px a tile; tile error = RGB MSE in [0, 1], SSIM by skimage)
   against that one crop. Both tools write PNG.

Photo use is counted from each mosaic's own placement: ours from ``placement.csv``
(photo SHA-256 per tile, checked against ``metrics.json``), mosaicraft's from
``MosaicResult.placement`` and ``tile_paths`` (augmented copies point to their photo).
"seconds" is wall time of the child process (ours includes Prefect's start-up; the
flow's own total is in brackets); "peak MB" is ``ru_maxrss`` of the child from
``os.wait4`` (Linux: the largest of the child and the descendants it waited for).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from benchmarks.peers import DATA, PEERS_VENV, ROOT, Box, box_slug, distinct_photo_folder, save_crop
from benchmarks.table import machine, print_table
from cli import prefect_server
from mosaic.images import open_rgb
from mosaic.report import mosaic_quality

MOSAICRAFT_VERSION = "0.4.2"
EXIT_NO_MOSAICRAFT = 2
QUICK_TARGETS = ("obama", "astronaut")
DEFAULT_TIMEOUT = 1800.0
QUALITY_TOLERANCE = {"tile_mse_rgb": 1e-5, "ssim": 5e-5}
"""How far our mosaic.png's figures may be from the run's own (which it takes from copies
shrunk tile by tile while drawing): biden, 41x18, differs by 5e-7 and 6e-6; its crop
moved by one pixel by at least 6e-5 and 2.6e-4."""
RUNNER = Path(__file__).resolve().with_name("mosaicraft_run.py")

OURS_DEFAULT = "ours default"
OURS_CC = "ours --color-correct 0.3"
MC_DEFAULT = "mosaicraft default"
MC_HONEST = "mosaicraft honest"
MC_RAW = "mosaicraft honest raw"
SETTINGS = {
    OURS_DEFAULT: "mosaic build, all defaults (method auto, metric lab, crops 7, "
                  "weights faces+people, tile 100 px) + --grid",
    OURS_CC: "the same + --color-correct 0.3",
    MC_DEFAULT: "MosaicGenerator(tile_dir) defaults (preset vivid, augment, tile 88 px) "
                "+ target_tiles",
    MC_HONEST: "preset vivid without colour transfer, blend or postprocess settings, "
               "augment=False (CLAHE + high-pass remain)",
    MC_RAW: "the honest placement drawn from the raw squashed tiles (no postprocess)",
}


class RunFailedError(RuntimeError):
    """A command failed, timed out or produced something unusable."""


@dataclass
class Row:
    """One measured mosaic (NaN figures and ``error`` set when the run failed)."""

    target: str
    grid: str
    tool: str
    box: Box | None = None
    tile_mse: float = math.nan
    ssim: float = math.nan
    photos_used: int | None = None
    most_uses: int | None = None
    seconds: float = math.nan
    flow_seconds: float | None = None
    peak_mb: float = math.nan
    target_tiles: int | None = None
    command: list[str] = field(default_factory=list)
    error: str | None = None


def calc_grid(target_tiles: int, width: int, height: int) -> tuple[int, int]:
    """The grid of mosaicraft 0.4.2's ``utils.calc_grid``, as (rows, cols)."""
    rows = max(1, int(math.sqrt(target_tiles * height / width)))
    cols = max(1, int(rows * width / height))
    return rows, cols


def mosaicraft_version() -> str | None:
    """The mosaicraft version installed in the side environment, or None."""
    python = PEERS_VENV / "bin" / "python"
    if not python.exists():
        return None
    probe = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m, cv2, mosaicraft; "
         "print(m.version('mosaicraft'))"], capture_output=True, text=True, check=False)
    return probe.stdout.strip() if probe.returncode == 0 else None


def run_measured(command: Sequence[str], timeout: float, log: Path) -> tuple[float, float, str]:
    """Run ``command``; wall seconds, peak RSS in MB (``os.wait4``) and its stdout.

    Raises
    ------
    RunFailedError
        Non-zero exit status or timeout (the process group is then killed).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    slug = log.name.replace(" ", "-").replace(".", "")
    out_path, err_path = log.with_name(slug + ".out"), log.with_name(slug + ".err")
    started = time.perf_counter()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(list(command), cwd=ROOT, stdout=out, stderr=err,
                                start_new_session=True)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - started > timeout:
                os.killpg(proc.pid, signal.SIGKILL)
                os.wait4(proc.pid, 0)
                proc.returncode = -9
                raise RunFailedError(f"timed out after {timeout:.0f} s: {command[0]}")
            time.sleep(0.05)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = " | ".join(err_path.read_text(errors="replace").strip().splitlines()[-3:])
        raise RunFailedError(f"{Path(command[0]).name} exited {proc.returncode}: {tail}")
    return seconds, usage.ru_maxrss / 1024, out_path.read_text()


def measure(path: Path, crop: Image.Image, rows: int, cols: int, tile_px: int
            ) -> dict[str, float]:
    """Tile error and SSIM of a mosaic file against the crop it covers."""
    with Image.open(path) as image:
        mosaic = image.convert("RGB")
    if mosaic.size != (cols * tile_px, rows * tile_px):
        raise RunFailedError(f"{path} is {mosaic.size}, expected "
                             f"{(cols * tile_px, rows * tile_px)}")
    return mosaic_quality(mosaic, crop, rows, cols)


def our_layout(workdir: Path) -> dict[str, Any]:
    """The layout of our run's target result (grid, tile px, crop), from Prefect's results."""
    layouts = []
    for path in sorted((workdir / ".prefect-results").glob("*")):
        try:
            inner = json.loads(json.loads(path.read_text(encoding="utf-8"))["result"])
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(inner, dict) and str(inner.get("__class__", "")).endswith(
                ".TargetResult"):
            layouts.append(inner["data"]["layout"])
    if not layouts or any(layout != layouts[0] for layout in layouts):
        raise RunFailedError(f"no single target layout in {workdir}/.prefect-results")
    return layouts[0]


def our_photo_use(workdir: Path, metrics: dict[str, Any]) -> tuple[int, int]:
    """Distinct photos and the most uses of one, from ``placement.csv`` (checked)."""
    with open(workdir / "placement.csv", encoding="utf-8", newline="") as handle:
        counts = Counter(row["photo_sha256"] for row in csv.DictReader(handle))
    used, most = len(counts), max(counts.values())
    if (used, most) != (metrics.get("photos_used"), metrics.get("most_uses")):
        raise RunFailedError(f"placement.csv says {used} photos, most {most}; metrics.json "
                             f"says {metrics.get('photos_used')}, {metrics.get('most_uses')}")
    return used, most


def run_ours(name: str, target: Path, rows: int, cols: int, extra: Sequence[str],
             photos: Path, folder: Path, timeout: float) -> tuple[Row, Box | None]:
    """One ``mosaic build``; its row and the crop box it covered."""
    tool = OURS_CC if extra else OURS_DEFAULT
    workdir = folder / ("ours-cc" if extra else "ours-default")
    shutil.rmtree(workdir, ignore_errors=True)
    out = workdir / "mosaic.png"
    command = [sys.executable, "-m", "cli", "build", "--photos", str(photos), "--target",
               str(target), "--out", str(out), "--grid", f"{rows}x{cols}", *extra,
               "--workdir", str(workdir), "--metrics", str(workdir / "metrics.json"), "-q"]
    row = Row(name, f"{rows}x{cols}", tool, command=command)
    try:
        row.seconds, row.peak_mb, _ = run_measured(command, timeout, folder / "logs" / tool)
        metrics = json.loads((workdir / "metrics.json").read_text(encoding="utf-8"))
        layout = our_layout(workdir)
        if (layout["rows"], layout["cols"]) != (rows, cols):
            raise RunFailedError(f"our run used {layout['rows']}x{layout['cols']}")
        left, top, right, bottom = (int(v) for v in layout["crop"])
        row.box = (left, top, right, bottom)
        crop = open_rgb(target).crop(row.box)
        quality = measure(out, crop, rows, cols, int(layout["tile_px"]))
        reported = metrics["quality"]
        if any(abs(quality[key] - reported[key]) > tolerance
               for key, tolerance in QUALITY_TOLERANCE.items()):
            raise RunFailedError(f"crop {row.box} does not reproduce the run's own quality")
        row.tile_mse, row.ssim = quality["tile_mse_rgb"], quality["ssim"]
        row.photos_used, row.most_uses = our_photo_use(workdir, metrics)
        row.flow_seconds = float(metrics["timings"]["total"])
    except (RunFailedError, OSError, KeyError, ValueError) as exc:
        row.error = str(exc)
        print(f"  {tool}: FAILED: {exc}", file=sys.stderr, flush=True)
    return row, row.box


def run_mosaicraft(name: str, rows: int, cols: int, box: Box, crop_png: Path,
                   crop: Image.Image, tiles_dir: Path, distinct: int, folder: Path,
                   timeout: float) -> list[Row]:
    """Rows of mosaicraft default, honest and honest raw on the crop."""
    grid = f"{rows}x{cols}"
    results: list[Row] = []
    for profile in ("default", "honest"):
        tool = MC_DEFAULT if profile == "default" else MC_HONEST
        out = folder / f"mosaicraft-{profile}-{box_slug(box)}.png"
        raw = folder / f"mosaicraft-honest-raw-{box_slug(box)}.png"
        row = Row(name, grid, tool, box)
        tools = [row] if profile == "default" else [row, Row(name, grid, MC_RAW, box)]
        try:
            row.command = [str(PEERS_VENV / "bin" / "python"), str(RUNNER), "--master",
                           str(crop_png), "--tiles", str(tiles_dir), "--out", str(out),
                           "--rows", str(rows), "--cols", str(cols), "--wanted-tiles",
                           str(distinct), "--profile", profile]
            if profile == "honest":
                row.command += ["--raw-out", str(raw)]
            seconds, peak, stdout = run_measured(row.command, timeout,
                                                 folder / "logs" / tool)
            info = json.loads(stdout)
            if (info["grid_rows"], info["grid_cols"]) != (rows, cols):
                raise RunFailedError(f"mosaicraft used {info['grid_rows']}x"
                                     f"{info['grid_cols']}")
            counts = Counter(info["cells"])
            row.target_tiles = int(info["target_tiles"])
            for item, path in zip(tools, (out, raw)[:len(tools)], strict=True):
                quality = measure(path, crop, rows, cols, int(info["tile_size"]))
                item.tile_mse, item.ssim = quality["tile_mse_rgb"], quality["ssim"]
                item.photos_used, item.most_uses = len(counts), max(counts.values())
                item.seconds, item.peak_mb = seconds, peak
                item.target_tiles, item.command = row.target_tiles, row.command
        except (RunFailedError, OSError, KeyError, ValueError) as exc:
            for item in tools:
                item.error = str(exc)
            print(f"  {tool}: FAILED: {exc}", file=sys.stderr, flush=True)
        results += tools
    return results


def bench_target(name: str, photos: Path, tiles_dir: Path, distinct: int, out_dir: Path,
                 timeout: float) -> list[Row]:
    """All rows of one target."""
    target = DATA / "targets" / f"{name}.jpg"
    folder = out_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    width, height = open_rgb(target).size
    rows, cols = calc_grid(distinct, width, height)
    print(f"{name}: {width}x{height}, mosaicraft's calc_grid({distinct}) -> {rows}x{cols}",
          flush=True)
    results: list[Row] = []
    boxes: list[Box] = []
    for extra in ((), ("--color-correct", "0.3")):
        row, box = run_ours(name, target, rows, cols, extra, photos, folder, timeout)
        results.append(row)
        if box is not None and box not in boxes:
            boxes.append(box)
    for box in boxes:
        crop_png = folder / f"target-crop-{box_slug(box)}.png"
        crop = save_crop(target, box, crop_png)
        print(f"  region {box}: mosaicraft runs on this crop", flush=True)
        results += run_mosaicraft(name, rows, cols, box, crop_png, crop, tiles_dir, distinct,
                                  folder, timeout)
    return results


def peer(row: Row, results: Sequence[Row], tool: str = MC_DEFAULT) -> Row | None:
    """The ``tool`` row on the same target and region."""
    return next((r for r in results if r.tool == tool and r.target == row.target
                 and r.box == row.box and r.error is None), None)


def verdict(row: Row, other: Row | None) -> str:
    """Which figures ``row`` beats ``other`` on."""
    if row.error is not None or other is None:
        return "n/a"
    error, ssim = row.tile_mse < other.tile_mse, row.ssim > other.ssim
    return {(True, True): "both", (True, False): "tile error only",
            (False, True): "SSIM only", (False, False): "neither"}[(error, ssim)]


def table_rows(results: Sequence[Row]) -> list[list[object]]:
    """Markdown rows."""
    out: list[list[object]] = []
    for r in results:
        region = box_slug(r.box).replace("-", ",") if r.box is not None else ""
        if r.error is not None:
            out.append([r.target, r.grid, region, r.tool, "FAILED", "FAILED", "", "", "", "",
                        "", r.error[:80]])
            continue
        seconds = f"{r.seconds:.1f}" + (f" ({r.flow_seconds:.1f})" if r.flow_seconds else "")
        beats = verdict(r, peer(r, results)) if r.tool.startswith("ours") else ""
        out.append([r.target, r.grid, region, r.tool, f"{r.tile_mse:.5f}", f"{r.ssim:.4f}",
                    r.photos_used, r.most_uses, seconds, f"{r.peak_mb:.0f}",
                    r.target_tiles or "", beats])
    return out


def summary(results: Sequence[Row]) -> list[str]:
    """Whether each of ours beats each mosaicraft row on every target; worst margins.

    The tile-error margin is ``(theirs - ours) / theirs`` (negative: ours is worse), the
    SSIM margin ``ours - theirs``.
    """
    lines = []
    for tool, other in ((OURS_CC, MC_DEFAULT), (OURS_DEFAULT, MC_DEFAULT),
                        (OURS_CC, MC_HONEST), (OURS_DEFAULT, MC_HONEST),
                        (OURS_CC, MC_RAW), (OURS_DEFAULT, MC_RAW)):
        pairs = [(r, peer(r, results, other)) for r in results if r.tool == tool]
        measured = [(r, p) for r, p in pairs if r.error is None and p is not None]
        lost = [r.target for r, p in measured if verdict(r, p) != "both"]
        missing = [r.target for r, p in pairs if (r, p) not in measured]
        if not measured:
            lines.append(f"- {tool} vs {other}: nothing measured")
            continue
        error_margin = min((p.tile_mse - r.tile_mse) / p.tile_mse for r, p in measured)
        ssim_margin = min(r.ssim - p.ssim for r, p in measured)
        worst_e = min(measured, key=lambda rp: (rp[1].tile_mse - rp[0].tile_mse)
                      / rp[1].tile_mse)[0].target
        worst_s = min(measured, key=lambda rp: rp[0].ssim - rp[1].ssim)[0].target
        status = ("beats it on both figures on every target measured" if not lost
                  else f"does NOT beat it on both for: {', '.join(lost)}")
        lines.append(f"- {tool} vs {other}: {status}; worst tile-error margin {error_margin:+.1%} "
                     f"({worst_e}), worst SSIM margin {ssim_margin:+.4f} ({worst_s})"
                     + (f"; not measured: {', '.join(missing)}" if missing else ""))
    return lines


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"two targets only ({', '.join(QUICK_TARGETS)})")
    parser.add_argument("--targets", default=None,
                        help="comma-separated target names in shared/data/targets "
                             "(default: all)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help="seconds before one command is killed (default 1800)")
    parser.add_argument("--photos", type=Path, default=DATA / "library")
    parser.add_argument("--out-dir", type=Path,
                        default=ROOT / "mosaic-runs" / "bench-mosaicraft")
    return parser.parse_args(argv)


def to_json(results: Sequence[Row]) -> str:
    """The rows as JSON (missing figures as null)."""
    def clean(value: object) -> object:
        return None if isinstance(value, float) and math.isnan(value) else value

    return json.dumps([{k: clean(v) for k, v in r.__dict__.items()} for r in results],
                      indent=1)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison and print the table; 2 when mosaicraft is missing, 1 on failure."""
    args = parse_args(argv)
    version = mosaicraft_version()
    if version is None:
        print(f"bench_mosaicraft: mosaicraft is not installed in {PEERS_VENV}\nInstall it "
              f"with: make {PEERS_VENV.name}/bin/mosaicraft (or python3 -m venv "
              f"{PEERS_VENV} && {PEERS_VENV}/bin/pip install mosaicraft=="
              f"{MOSAICRAFT_VERSION})\nNo numbers were measured.", file=sys.stderr)
        return EXIT_NO_MOSAICRAFT
    if args.targets:
        targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    elif args.quick:
        targets = list(QUICK_TARGETS)
    else:
        targets = sorted(p.stem for p in (DATA / "targets").glob("*.jpg"))
    out_dir = args.out_dir.resolve()
    photos = args.photos.resolve()
    tiles_dir = out_dir / "distinct-photos"
    distinct = distinct_photo_folder(photos, tiles_dir)
    print(f"Machine: {machine()}\nmosaicraft {version} ({PEERS_VENV}); {distinct} distinct "
          f"photos in {photos}; long-lived Prefect server: "
          f"{'yes' if prefect_server.is_running() else 'no'}", flush=True)
    results: list[Row] = []
    for name in targets:
        results += bench_target(name, photos, tiles_dir, distinct, out_dir, args.timeout)
        (out_dir / "results.json").write_text(to_json(results), encoding="utf-8")
    print_table(f"Ours vs mosaicraft {version}: tile error = RGB MSE of 16x16 cells (lower "
                "is better), SSIM (higher is better), same grid, photos and region",
                ["target", "grid", "region (l,t,r,b)", "tool", "tile error", "SSIM",
                 "photos used", "most uses", "seconds (flow)", "peak MB", "target_tiles",
                 "beats mosaicraft default on"], table_rows(results))
    print("\nSettings:\n" + "\n".join(f"- {tool}: {text}" for tool, text in SETTINGS.items()))
    print("\n" + "\n".join(summary(results)))
    print(f"\nImages, logs and results.json: {out_dir}")
    failures = sum(r.error is not None for r in results)
    if failures:
        print(f"bench_mosaicraft: {failures} row(s) FAILED; see the table", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
