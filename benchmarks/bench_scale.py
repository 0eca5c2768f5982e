"""Scale: dense exact vs regional assignment from 2,500 to 50,000 photos (issue 4).

Every row runs :func:`benchmarks.large.assign_large` in a fresh subprocess (this module
with ``--row method:photos``), so its peak memory (``ru_maxrss``) is that row's alone.
Photos are synthetic 8x8 thumbnails (:func:`benchmarks.synthetic.synthetic_thumbs`),
cached as ``.npy`` files so that generating them is neither repeated nor timed; tiles
are a ``rows x cols`` grid (``rows * cols`` = photos, close to the target's aspect) of
the obama target.

Columns: "score s" is the time of the passes over tiles x photos (the memory-mapped
matrix for dense, the c-transform and reduced-cost passes for regional), "solve s"
everything else the method reports, "total s" the wall time of ``assign_large``;
"gap" is the relative gap to the method's proven lower bound, "vs exact" the distance
of a regional objective to the dense optimum of the same problem, when it is known.

Run ``python -m benchmarks.bench_scale`` (all sizes), ``--quick`` (2.5k and 10k only)
or ``--photos 10000,50000``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from benchmarks.synthetic import TARGETS, synthetic_thumbs
from benchmarks.table import machine, print_table

PHOTO_COUNTS = (2500, 10000, 25000, 50000)
QUICK_COUNTS = (2500, 10000)
DENSE_LIMIT = 25000
"""Dense exact runs up to this many photos (50,000^2 float32 is 10 GB)."""
METHODS = ("optimal", "regional")
TARGET = "obama"
SEED = 0
DEFAULT_SIZE = 8
DEFAULT_MAX_MEMORY = "8GB"
DEFAULT_TIMEOUT = 1800.0
"""Seconds one row may run before its subprocess is stopped."""
RESULT_PREFIX = "BENCH_SCALE_RESULT "
"""Marks the line with a row's JSON result on the subprocess's stdout."""
REPO = Path(__file__).resolve().parents[1]

# Issue 4 targets.
EXACT_PHOTOS, EXACT_SECONDS, EXACT_BYTES = 10000, 60.0, 2 * 10**9
LARGE_PHOTOS, LARGE_SECONDS, LARGE_BYTES, LARGE_GAP = 50000, 600.0, 8 * 10**9, 0.01
REGIONAL_PHOTOS, REGIONAL_GAP = 10000, 0.005


def default_cache() -> Path:
    """Folder of the cached thumbnails: ``~/.cache/photo-mosaic-bench`` (or ``/tmp``)."""
    home = Path.home()
    if home.is_dir() and os.access(home, os.W_OK):
        return home / ".cache" / "photo-mosaic-bench"
    return Path("/tmp") / "photo-mosaic-bench"


def cache_path(folder: Path, count: int, size: int, seed: int) -> Path:
    """Where the thumbnails of one (count, size, seed) are cached."""
    return folder / f"thumbs-{count}-{size}px-seed{seed}.npy"


def cached_thumbs(count: int, size: int, seed: int, folder: Path) -> np.ndarray:
    """``synthetic_thumbs(count, size, seed)``, from the cache or generated and cached.

    Parameters
    ----------
    count, size, seed : int
        As :func:`benchmarks.synthetic.synthetic_thumbs`.
    folder : Path
        Cache folder (created when missing).

    Returns
    -------
    ndarray of uint8, shape (count, size, size, 3)
    """
    path = cache_path(folder, count, size, seed)
    if path.is_file():
        return np.load(path)
    thumbs = synthetic_thumbs(count, size, seed)
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.npy")
    np.save(partial, thumbs)
    partial.replace(path)
    return thumbs


def grid_for(count: int, aspect: float) -> tuple[int, int]:
    """``(rows, cols)`` with ``rows * cols == count`` and ``cols / rows`` closest to ``aspect``.

    Parameters
    ----------
    count : int
        Tiles wanted (the number of photos).
    aspect : float
        Target width / height.
    """
    pairs = [(rows, count // rows) for rows in range(1, count + 1) if count % rows == 0]
    return min(pairs, key=lambda rc: abs(np.log(rc[1] / rc[0] / aspect)))


def target_tiles(count: int, size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Thumbnails of a ``count``-tile grid over the target, and the grid ``(rows, cols)``."""
    from mosaic.features import tile_thumbnails
    from mosaic.images import open_rgb
    from mosaic.layout import crop_to_aspect

    image = open_rgb(TARGETS / f"{TARGET}.jpg")
    rows, cols = grid_for(count, image.width / image.height)
    crop = crop_to_aspect(image.width, image.height, cols / rows)
    return tile_thumbnails(image, crop, rows, cols, size), (rows, cols)


def current_rss_bytes() -> int:
    """Resident memory of this process now (Linux ``/proc/self/statm``), 0 elsewhere."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


@dataclass
class RowResult:
    """One measured row.

    Attributes
    ----------
    method : str
        "optimal" (dense exact) or "regional".
    photos, tiles : int
        Problem size.
    grid : tuple of int
        Tile grid (rows, cols).
    score_seconds, solve_seconds, total_seconds : float
        Scoring, the rest, and the wall time of ``assign_large``.
    peak_bytes : int
        Peak resident memory of the row's process.
    start_bytes : int
        Resident memory just before ``assign_large`` (imports, thumbnails, features).
    objective, lower_bound, gap : float
        Objective, proven lower bound, relative gap between them.
    regions : int
        Regions (0 for dense).
    load : float
        One-minute load average when the row ended.
    stages : dict
        Seconds per regional stage.
    sweeps : int
        Regional repair sweeps run (0 for dense).
    converged : bool
        The regional repair stopped because no pair improved (True for dense).
    repair_limit : float or None
        The regional repair's time limit in seconds, if any.
    """

    method: str
    photos: int
    tiles: int
    grid: tuple[int, int]
    score_seconds: float
    solve_seconds: float
    total_seconds: float
    peak_bytes: int
    start_bytes: int
    objective: float
    lower_bound: float
    gap: float
    regions: int
    load: float
    stages: dict[str, float]
    sweeps: int = 0
    converged: bool = True
    repair_limit: float | None = None


def measure_row(method: str, count: int, size: int, max_memory: str, cache: Path,
                repair_limit: float | None = None) -> RowResult:
    """Run one method on one size in this process and measure it.

    Parameters
    ----------
    method : {"optimal", "regional"}
    count : int
        Photos (and tiles).
    size : int
        Thumbnail side of the features.
    max_memory : str
        Budget, as ``--max-memory``.
    cache : Path
        Thumbnail cache folder.
    repair_limit : float, optional
        Time limit of the regional repair (``time_limit`` of ``assign_regional``).
    """
    from benchmarks.large import assign_large
    from mosaic.blocks import parse_memory, prepare_features
    from mosaic.features import to_features
    from mosaic.machine import peak_memory_bytes

    photos = to_features(cached_thumbs(count, size, SEED, cache), "lab")
    tiles, grid = target_tiles(count, size)
    features = prepare_features(to_features(tiles, "lab"), photos)
    del photos, tiles
    start_bytes = current_rss_bytes()
    label = f"[{method} {count}]"
    started = time.perf_counter()
    options = {"time_limit": repair_limit} if method == "regional" else {}
    result = assign_large(features, grid, method=method, max_memory=parse_memory(max_memory),
                          log=lambda line: print(label, line, file=sys.stderr, flush=True),
                          **options)
    total = time.perf_counter() - started
    report = result.regional
    return RowResult(
        method=method, photos=count, tiles=features.n_tiles, grid=grid,
        score_seconds=result.score_seconds, solve_seconds=result.solve_seconds,
        total_seconds=total, peak_bytes=max(result.peak_memory_bytes, peak_memory_bytes()),
        start_bytes=start_bytes, objective=result.assignment.objective,
        lower_bound=result.lower_bound, gap=result.assignment.gap or 0.0,
        regions=0 if report is None else report.regions, load=os.getloadavg()[0],
        stages={} if report is None else dict(report.seconds),
        sweeps=0 if report is None else report.sweeps,
        converged=True if report is None else report.converged,
        repair_limit=repair_limit if report is not None else None)


def run_row_subprocess(method: str, count: int, args: argparse.Namespace
                       ) -> RowResult | str:
    """Measure one row in a fresh Python process; the result, or why it failed."""
    command = [sys.executable, "-m", "benchmarks.bench_scale", "--row", f"{method}:{count}",
               "--size", str(args.size), "--max-memory", args.max_memory,
               "--cache", str(args.cache)]
    if args.repair_limit is not None:
        command += ["--repair-limit", str(args.repair_limit)]
    print(f"--- {method} at {count:,} photos (load {os.getloadavg()[0]:.2f})",
          file=sys.stderr, flush=True)
    try:
        done = subprocess.run(command, cwd=REPO, stdout=subprocess.PIPE, text=True,
                              timeout=args.timeout, check=False)
    except subprocess.TimeoutExpired:
        return f"stopped after {args.timeout:.0f} s"
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            data = json.loads(line[len(RESULT_PREFIX):])
            data["grid"] = tuple(data["grid"])
            return RowResult(**data)
    return f"failed (exit code {done.returncode})"


def percent(value: float | None, digits: int = 3) -> str:
    """``value`` as a percentage, or "" when unknown."""
    return "" if value is None else f"{100 * value:.{digits}f}%"


def vs_exact(row: RowResult, optima: dict[int, float]) -> float | None:
    """Relative distance of a regional row's objective to the known dense optimum."""
    optimum = optima.get(row.photos)
    if row.method == "optimal" or optimum is None:
        return None
    return row.objective / optimum - 1.0


def table_rows(results: Sequence[RowResult | tuple[str, int, str]],
               optima: dict[int, float]) -> list[list[object]]:
    """Table rows; failed rows show their reason in the "score s" column."""
    rows: list[list[object]] = []
    for result in results:
        if not isinstance(result, RowResult):
            method, count, reason = result
            rows.append([method, count, "", reason, "", "", "", "", "", ""])
            continue
        name = "dense exact" if result.method == "optimal" else regional_name(result)
        rows.append([name, result.photos, result.tiles, f"{result.score_seconds:.1f}",
                     f"{result.solve_seconds:.1f}", f"{result.total_seconds:.1f}",
                     f"{result.peak_bytes / 1e6:.0f}", f"{result.objective:.4f}",
                     percent(result.gap), percent(vs_exact(result, optima))])
    return rows


def regional_name(row: RowResult) -> str:
    """Row name of a regional run: regions, sweeps, why the repair stopped early."""
    detail = f"{row.regions} regions, {row.sweeps} sweeps"
    if not row.converged:
        detail += (f", repair limit {row.repair_limit:.0f} s" if row.repair_limit is not None
                   else ", sweep limit")
    return f"regional ({detail})"


def find(results: Sequence[RowResult | tuple[str, int, str]], method: str, count: int
         ) -> RowResult | None:
    """The measured row of ``method`` at ``count`` photos, if any."""
    for result in results:
        if isinstance(result, RowResult) and (result.method, result.photos) == (method, count):
            return result
    return None


def target_lines(results: Sequence[RowResult | tuple[str, int, str]],
                 optima: dict[int, float]) -> list[str]:
    """One line per issue 4 target: met, not met, or not measured."""

    def verdict(ok: bool) -> str:
        return "MET" if ok else "NOT MET"

    lines = []
    dense = find(results, "optimal", EXACT_PHOTOS)
    text = f"{EXACT_PHOTOS:,} photos exact in < {EXACT_SECONDS:.0f} s and < 2 GB: "
    if dense is None:
        lines.append(text + "not measured")
    else:
        ok = dense.total_seconds < EXACT_SECONDS and dense.peak_bytes < EXACT_BYTES
        lines.append(text + f"{verdict(ok)} ({dense.total_seconds:.1f} s, "
                     f"{dense.peak_bytes / 1e9:.2f} GB)")
    large = find(results, "regional", LARGE_PHOTOS)
    text = (f"{LARGE_PHOTOS:,} photos within {LARGE_GAP:.0%} of the optimum (lower bound) "
            f"in < {LARGE_SECONDS / 60:.0f} min and < 8 GB: ")
    if large is None:
        lines.append(text + "not measured")
    else:
        exact_gap = vs_exact(large, optima)
        gap = large.gap if exact_gap is None else min(large.gap, exact_gap)
        ok = (gap <= LARGE_GAP and large.total_seconds < LARGE_SECONDS
              and large.peak_bytes < LARGE_BYTES)
        lines.append(text + f"{verdict(ok)} (gap {percent(gap)}, {large.total_seconds:.0f} s, "
                     f"{large.peak_bytes / 1e9:.2f} GB)")
    regional = find(results, "regional", REGIONAL_PHOTOS)
    text = f"regional at {REGIONAL_PHOTOS:,} within {REGIONAL_GAP:.1%} of the exact optimum: "
    exact_gap = None if regional is None else vs_exact(regional, optima)
    if regional is None or exact_gap is None:
        lines.append(text + "not measured")
    else:
        lines.append(text + f"{verdict(exact_gap <= REGIONAL_GAP)} ({percent(exact_gap)})")
    return lines


def plan(counts: Sequence[int]) -> list[tuple[str, int]]:
    """(method, photos) of every row: dense up to :data:`DENSE_LIMIT`, regional always."""
    return [(method, count) for count in sorted(counts) for method in METHODS
            if method == "regional" or count <= DENSE_LIMIT]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_scale",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--photos", default=",".join(map(str, PHOTO_COUNTS)),
                        help="comma-separated photo counts (default: %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help=f"only {', '.join(map(str, QUICK_COUNTS))} photos")
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE,
                        help="thumbnail side of the features (default: %(default)s)")
    parser.add_argument("--max-memory", default=DEFAULT_MAX_MEMORY,
                        help="memory budget of assign_large (default: %(default)s)")
    parser.add_argument("--cache", type=Path, default=default_cache(),
                        help="folder of cached thumbnails (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help="seconds one row may run (default: %(default)s)")
    parser.add_argument("--repair-limit", type=float, default=None,
                        help="time limit of the regional repair in seconds (default: none, "
                             "up to its sweep limit)")
    parser.add_argument("--row", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Print the scale table, or (``--row method:photos``) measure one row as JSON."""
    args = parse_args(argv)
    if args.row:
        method, count = args.row.split(":")
        result = measure_row(method, int(count), args.size, args.max_memory, args.cache,
                             args.repair_limit)
        print(RESULT_PREFIX + json.dumps(asdict(result)), flush=True)
        return
    counts = QUICK_COUNTS if args.quick else tuple(int(c) for c in args.photos.split(","))
    print(f"Machine: {machine()}", flush=True)
    for count in sorted(counts):  # generated once, outside every timing
        cached_thumbs(count, args.size, SEED, args.cache)
    results: list[RowResult | tuple[str, int, str]] = []
    optima: dict[int, float] = {}
    started_load = os.getloadavg()
    for method, count in plan(counts):
        result = run_row_subprocess(method, count, args)
        if isinstance(result, str):
            results.append((method, count, result))
            print(f"    {method} {count}: {result}", file=sys.stderr, flush=True)
            continue
        results.append(result)
        if method == "optimal":
            optima[count] = result.objective
        print(f"    {json.dumps(asdict(result))}", file=sys.stderr, flush=True)
    print_table(f"Scale: {TARGET} target, Lab {args.size}x{args.size} features, "
                f"--max-memory {args.max_memory}",
                ["method", "photos", "tiles", "score s", "solve s", "total s", "peak MB",
                 "objective", "gap", "vs exact"], table_rows(results, optima))
    measured = [r for r in results if isinstance(r, RowResult)]
    print("Load average (1 min) at the end of each row: "
          + ", ".join(f"{r.method} {r.photos}: {r.load:.2f}" for r in measured)
          + f"; at the start: {started_load[0]:.2f}, at the end: {os.getloadavg()[0]:.2f}")
    print("Resident memory before assign_large (imports, thumbnails, features): "
          + ", ".join(f"{r.method} {r.photos}: {r.start_bytes / 1e6:.0f} MB" for r in measured))
    for r in measured:
        if r.stages:
            print(f"Regional stages at {r.photos:,} (s): "
                  + ", ".join(f"{name} {sec:.1f}" for name, sec in r.stages.items()))
    print("\nIssue 4 targets:")
    for line in target_lines(results, optima):
        print(f"- {line}")


if __name__ == "__main__":
    main()
