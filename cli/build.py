"""``mosaic build`` and ``mosaic demo``: a mosaic from a folder, an account or the sample."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from cli.common import (
    ensure_prefect_api,
    progress_reporter,
    setup_logging,
    wait_for_prefect_api,
)
from mosaic.images import DEFAULT_MAX_PIXELS
from mosaic.importance import DEFAULT_FACE_WEIGHT, DEFAULT_FALLOFF, DEFAULT_PERSON_WEIGHT
from mosaic.options import (
    DEFAULT_CROPS,
    DEFAULT_FEATURE_SIZE,
    LARGE_LIBRARY_CROPS,
    MANY_PHOTOS,
)

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"


def run_build(options: Any, quiet: bool) -> dict[str, Any]:
    """Run the build flow with progress bars (errors go up to :mod:`cli.main`)."""
    from mosaic import progress

    reporter = progress_reporter(quiet)
    progress.set_reporter(reporter)
    try:
        from flows.build_mosaic import build_mosaic

        wait_for_prefect_api(quiet)
        return build_mosaic(options)
    finally:
        progress.set_reporter(None)
        if reporter is not None:
            reporter.close()


def build(
    target: Annotated[Path, typer.Option(help="The picture the mosaic reproduces.")],
    out: Annotated[Path, typer.Option(help="Output image (.jpg, .png, .tif, .webp), or the "
                                      "folder of --format dzi.")],
    photos: Annotated[Optional[Path], typer.Option(
        help="Folder of photos (searched recursively).")] = None,
    instagram: Annotated[Optional[str], typer.Option(
        help="Instagram username: scrape its photos (or reuse those already saved) and "
             "build from them; saved in --photos or mosaic-runs/instagram-USERNAME/photos.")
    ] = None,
    cookies: Annotated[Optional[Path], typer.Option(
        help="Netscape cookies file for --instagram (never logged or stored).")] = None,
    cookies_from_browser: Annotated[Optional[str], typer.Option(
        metavar="chromium|firefox", help="For --instagram: read the session from this "
        "browser's profile (never logged or stored).")] = None,
    browser_profile: Annotated[Optional[Path], typer.Option(
        help="The browser's profile folder or cookie database (default: its default "
             "profile).")] = None,
    grid: Annotated[Optional[str], typer.Option(help="ROWSxCOLS, e.g. 40x30.")] = None,
    tiles: Annotated[Optional[int], typer.Option(help="Number of tiles wanted.")] = None,
    size: Annotated[Optional[str], typer.Option(
        help="Poster size: A4..A0, 30x40cm, 50x70cm, 60x90cm, 24x36in... or WxH in cm, in,"
             " mm or px. Presets follow the target's orientation.")] = None,
    dpi: Annotated[Optional[float], typer.Option(help="Print resolution for --size.")] = None,
    tile_px: Annotated[Optional[int], typer.Option(
        help="Tile width in output pixels (default 100, or what --size and --dpi give).")
    ] = None,
    tile_aspect: Annotated[str, typer.Option(
        metavar="W:H", help="Tile shape: 1:1 (square), 4:5 or 3:4 (portrait, Instagram's "
        "shapes), 16:9...; the grid still fits the poster.")] = "1:1",
    detail: Annotated[str, typer.Option(
        metavar="none|faces", help="faces: every tile that shows a face is drawn as 2x2 "
        "quarter tiles, each its own photo, so faces get 4x the detail from the same "
        "photos (the grid gets coarser to leave photos for them; exact assignment over "
        "the mixed grid).")] = "none",
    bleed: Annotated[Optional[str], typer.Option(
        help="Margin for the print shop's trim on every side, e.g. 3mm (with --size and "
             "--dpi) or 40px: the edge tiles mirrored outwards.")] = None,
    color_correct: Annotated[float, typer.Option(
        help="Shift each tile's colours toward its cell's mean colour by this part of the "
             "gap (0 to 0.5; default 0: no recolouring, every pixel is a photo's own).")
    ] = 0.0,
    format: Annotated[str, typer.Option(
        "--format", metavar="auto|dzi", help="auto: the image format --out's suffix names; "
        "dzi: a Deep Zoom folder with viewer.html, to zoom into every photo from disk or "
        "any web server.")] = "auto",
    method: Annotated[str, typer.Option(
        help="auto (dense exact while the matrix fits --max-memory, else regional), "
             "optimal (exact assignment), regional (regions solved exactly and stitched, "
             "no dense matrix), greedy (best match first), lp (HiGHS LP), lp-pulp (the "
             "blog's PuLP model).")] = "auto",
    max_uses: Annotated[int, typer.Option(
        help="Tiles one photo may fill (default 1: each photo at most once). More lets a "
             "few hundred photos fill a big poster; without --grid or --tiles the grid "
             "then has photos x max-uses tiles. Regional too, but without --min-repeat-distance.")
    ] = 1,
    min_repeat_distance: Annotated[int, typer.Option(
        help="With --max-uses: keep two copies of a photo at least this many tiles apart "
             "(rows or columns, whichever is further; 0 = no rule). Exact (HiGHS) on "
             "small grids, else the capacity optimum repaired, with its gap reported.")
    ] = 0,
    regions: Annotated[Optional[int], typer.Option(
        help="Regions of --method regional (default: about 3,200 tiles each).")] = None,
    max_memory: Annotated[Optional[str], typer.Option(
        help="Memory budget of the whole build process, e.g. 4GB (default: a third of "
             "the RAM, at most 8 GB).")] = None,
    dask_address: Annotated[Optional[str], typer.Option(
        help="Score and solve on this Dask cluster, e.g. tcp://scheduler:8786 (default: "
             "local threads).")] = None,
    metric: Annotated[str, typer.Option(help="Colour space of the scores: lab or rgb.")
                      ] = "lab",
    crops: Annotated[Optional[int], typer.Option(
        help="Square crop candidates per photo, the best per tile used: the centre, the "
             "two ends of the long side, four zoomed corners, five more zoomed squares, a "
             "close centre, then shifted slightly zoomed and close squares (1 = centre "
             f"only; default {DEFAULT_CROPS} up to "
             f"{MANY_PHOTOS:,} photo files, {LARGE_LIBRARY_CROPS} above).")
    ] = None,
    feature_size: Annotated[int, typer.Option(help="Scoring resolution (s x s).")
                            ] = DEFAULT_FEATURE_SIZE,
    workdir: Annotated[Optional[Path], typer.Option(
        help="Run folder for intermediate files (default ./mosaic-runs/<target name>).")
    ] = None,
    metrics: Annotated[Optional[Path], typer.Option(
        help="Where to write metrics.json (default: in the workdir). The report "
             "(report.md and its pictures) always goes in the workdir.")] = None,
    max_pixels: Annotated[int, typer.Option(
        help="Refuse images with more pixels (decompression-bomb guard).")
    ] = DEFAULT_MAX_PIXELS,
    compare: Annotated[bool, typer.Option(
        help="Also solve greedily (and unweighted) and compare in the report.")] = True,
    weights: Annotated[str, typer.Option(
        help="Which tiles get the best photos: faces+people, faces, people or none. "
             "Uniform (with a note) when nobody is found.")] = "faces+people",
    face_weight: Annotated[float, typer.Option(help="Weight of face tiles (>= 1).")
                           ] = DEFAULT_FACE_WEIGHT,
    person_weight: Annotated[float, typer.Option(help="Weight of person tiles (>= 1).")
                             ] = DEFAULT_PERSON_WEIGHT,
    falloff: Annotated[float, typer.Option(
        help="How far weights reach beyond faces and people, in tiles.")] = DEFAULT_FALLOFF,
    segmenter: Annotated[str, typer.Option(
        help="Person masks: mediapipe, or pointrend (needs detectron2, not installable "
             "from PyPI).")] = "mediapipe",
    pointrend_config: Annotated[Optional[Path], typer.Option(
        help="detectron2 PointRend config (with --segmenter pointrend).")] = None,
    pointrend_weights: Annotated[Optional[Path], typer.Option(
        help="detectron2 PointRend weights (with --segmenter pointrend).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect's logs.")
                       ] = False,
) -> None:
    """Build a mosaic of TARGET from the photos in PHOTOS (or of an Instagram account).

    mosaic never replaces a file it did not write: --out and --metrics must be new files
    or earlier outputs of mosaic, apart from the target and the photo folder.
    """
    given = dict(locals())  # the flags, named as the options are
    ensure_prefect_api()
    options = make_options(**{name: str(value) if isinstance(value, Path) else value
                              for name, value in given.items()
                              if name not in {"cookies", "cookies_from_browser",
                                              "browser_profile", "quiet", "verbose"}
                              and value is not None})
    setup_logging(verbose)
    if instagram is not None:
        from cli.scrape import fetch_instagram_photos

        fetch_instagram_photos(str(options.instagram), Path(str(options.photos)),
                               cookies=cookies, cookies_from_browser=cookies_from_browser,
                               browser_profile=browser_profile)
    prepare_build(options)
    started = time.perf_counter()
    result = run_build(options, quiet)
    summarise(result, Path(str(options.metrics)), Path(str(options.workdir)) / "report.md",
              time.perf_counter() - started, quiet)


def make_options(**values: Any) -> Any:
    """Validate the options (named as the flags are) into resolved ``BuildOptions``."""
    from mosaic.options import build_options

    return build_options(**values).resolved()


def prepare_build(options: Any) -> None:
    """Check everything that can be checked before the run; hold the run folder.

    The run folder stays held (one build at a time) until the command ends.
    """
    from mosaic.outputs import run_folder_lock
    from mosaic.preflight import check_build

    check_build(options)
    _held.enter_context(run_folder_lock(str(options.workdir)))
    # Task results (small JSON files) and cache records live in the run folder.
    os.environ.setdefault("PREFECT_RESULTS_LOCAL_STORAGE_PATH",
                          str(Path(str(options.workdir)).resolve() / ".prefect-results"))


_held = contextlib.ExitStack()
"""Run folders this command holds until it ends."""
atexit.register(_held.close)  # released while the interpreter still works


def summarise(metrics: dict[str, Any], metrics_path: Path, report_path: Path, seconds: float,
              quiet: bool) -> None:
    """Tell the user where everything is."""
    if quiet:
        typer.echo(metrics["output"])
        return
    quality = metrics.get("quality", {})
    costs = metrics.get("class_costs") or {}
    face = (costs.get("face") or {}).get("mean_cost")
    lines = [
        f"mosaic: {metrics['output']} ({metrics['output_size'][0]}x{metrics['output_size'][1]}"
        f" px, {metrics['rows']}x{metrics['cols']} tiles, {metrics['photos_used']} of "
        f"{metrics['photos_available']} photos)",
        f"method {metrics['method']}: mean cost {metrics['mean_cost']:.4f}, tile error "
        f"{quality.get('tile_mse_rgb', float('nan')):.4f}, SSIM "
        f"{quality.get('ssim', float('nan')):.3f}"
        + (f", face tiles {face:.4f}" if face is not None else ""),
        f"metrics: {metrics_path}",
        f"report:  {metrics.get('report_html') or report_path}",
        *([f"placement list: {metrics['placement_list']}"] if "placement_list" in metrics
          else []),
        f"time:    {seconds:.1f} s",
    ]
    typer.echo("\n".join(lines))


def demo(
    out_dir: Annotated[Path, typer.Option(help="Where the demo run goes.")] = Path(
        "mosaic-runs/demo"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Build a mosaic from the bundled sample photos."""
    ensure_prefect_api()
    manifest = json.loads((SAMPLES / "demo.json").read_text(encoding="utf-8"))
    options = make_options(photos=str(SAMPLES / "photos"),
                           target=str(SAMPLES / manifest["target"]),
                           out=str(out_dir / "mosaic.jpg"), workdir=str(out_dir),
                           **{key: manifest[key] for key in ("tile_px", "crops")
                              if key in manifest})
    prepare_build(options)
    setup_logging(False)
    started = time.perf_counter()
    result = run_build(options, quiet)
    summarise(result, out_dir / "metrics.json", out_dir / "report.md",
              time.perf_counter() - started, quiet)
