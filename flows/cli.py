"""The ``mosaic`` command.

Bad input is reported in one line on stderr with exit status 2, never a traceback.
Prefect is imported only once the arguments have been checked, so mistakes are reported
at once, before any server starts.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import click
import typer

from flows import local_server
from flows.cli_runs import runs as runs_command
from flows.cli_sources import import_app, scrape_app
from flows.cli_weights import weights as weights_command
from mosaic import processes
from mosaic.errors import MosaicError
from mosaic.files import describe_os_error, is_disk_error, remove_live_temporaries
from mosaic.importance import DEFAULT_FACE_WEIGHT, DEFAULT_FALLOFF, DEFAULT_PERSON_WEIGHT

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Turn your own photos into a print-quality photo mosaic.",
    pretty_exceptions_enable=False,
)

app.command("weights")(weights_command)
app.command("runs")(runs_command)

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
EXIT_BAD_INPUT = 2
DEFAULT_CROPS = 7
"""Seven crop candidates beat phomo's optimal mode on tile error and SSIM on every shared
target (benchmarks/bench_peers.py); one crop loses SSIM on four of five."""


def fail(message: str) -> None:
    """Print a one-line error and exit with status 2."""
    typer.echo(f"mosaic: error: {message}", err=True)
    raise typer.Exit(EXIT_BAD_INPUT)


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"mosaic: {record.levelname.lower()}: {record.getMessage()}"


def _setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine())
    logger = logging.getLogger("mosaic")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    logger.propagate = True


def _prefect_environment(verbose: bool) -> None:
    """Settings that must be in place before Prefect is imported.

    When no Prefect API is configured but a local server answers on 127.0.0.1:4200
    (``mosaic server start`` or ``make ui``), runs go there: about 1 s of Prefect
    overhead per run instead of about 15 s for a temporary server.
    """
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "mosaic")
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    if "PREFECT_API_URL" not in os.environ and local_server.is_running():
        os.environ["PREFECT_API_URL"] = local_server.API_URL


_temporary_server: local_server.TemporaryServer | None = None


def ensure_prefect_api() -> None:
    """Start a temporary Prefect server now (in the background) if no API is configured.

    Called first thing by commands that run a flow, so the server boots while the
    arguments are checked and the libraries are imported.
    """
    global _temporary_server
    if "PREFECT_API_URL" in os.environ or _temporary_server is not None:
        return
    if local_server.profile_api_url():  # the user's Prefect profile names a server
        return
    _temporary_server = local_server.TemporaryServer()
    atexit.register(_temporary_server.stop)
    os.environ["PREFECT_API_URL"] = _temporary_server.api_url


def temporary_server_running() -> bool:
    """True when this process started a temporary Prefect server."""
    return _temporary_server is not None


def wait_for_prefect_api() -> None:
    """Block until the temporary server (if any) answers."""
    if _temporary_server is not None:
        try:
            _temporary_server.wait()
        except RuntimeError as exc:
            typer.echo(f"mosaic: error: {exc}", err=True)
            raise typer.Exit(1) from None


def _progress_reporter(quiet: bool) -> Any:
    if quiet:
        return None
    from flows.progress_bar import RichReporter

    return RichReporter()


def run_build(options: Any, quiet: bool, verbose: bool) -> dict[str, Any]:
    """Run the build flow with progress bars and turn input errors into exit status 2."""
    from mosaic import progress

    if not quiet and temporary_server_running():
        typer.echo("mosaic: using a temporary Prefect server (about 15 s to start); "
                   "`mosaic server start` keeps one running for faster runs", err=True)
    reporter = _progress_reporter(quiet)
    progress.set_reporter(reporter)
    try:
        from flows.build_mosaic import build_mosaic

        wait_for_prefect_api()
        return build_mosaic(options)
    except MosaicError as exc:
        fail(str(exc))
    except OSError as exc:  # a full disk or a forbidden folder: the user can fix it
        if not is_disk_error(exc):
            raise
        fail(describe_os_error(exc, exc.filename or options.workdir))
    except Exception as exc:  # a bug, not bad input: say so in one line, keep the trace
        if verbose:
            raise
        typer.echo(f"mosaic: internal error: {type(exc).__name__}: {exc} "
                   "(run again with --verbose for the traceback)", err=True)
        raise typer.Exit(1) from None
    finally:
        progress.set_reporter(None)
        if reporter is not None:
            reporter.close()
    raise AssertionError("unreachable")


@app.command()
def build(
    target: Annotated[Path, typer.Option(help="The picture the mosaic reproduces.")],
    out: Annotated[Path, typer.Option(help="Output image (.jpg, .png, .tif).")],
    photos: Annotated[Optional[Path], typer.Option(
        help="Folder of photos (searched recursively).")] = None,
    instagram: Annotated[Optional[str], typer.Option(
        help="Instagram username: scrape its photos (or reuse those already saved) and "
             "build from them; saved in --photos or mosaic-runs/instagram/USERNAME.")
    ] = None,
    cookies: Annotated[Optional[Path], typer.Option(
        help="Netscape cookies file for --instagram (never logged or stored).")] = None,
    grid: Annotated[Optional[str], typer.Option(help="ROWSxCOLS, e.g. 40x30.")] = None,
    tiles: Annotated[Optional[int], typer.Option(help="Number of tiles wanted.")] = None,
    size: Annotated[Optional[str], typer.Option(
        help="Poster size: A4..A0, 30x40cm, 50x70cm, 60x90cm, 24x36in... or WxH in cm, in,"
             " mm or px. Presets follow the target's orientation.")] = None,
    dpi: Annotated[Optional[float], typer.Option(help="Print resolution for --size.")] = None,
    tile_px: Annotated[Optional[int], typer.Option(
        help="Tile side in output pixels (default 100, or what --size and --dpi give).")
    ] = None,
    method: Annotated[str, typer.Option(
        help="auto (dense exact while the matrix fits --max-memory, else regional), "
             "optimal (exact assignment), regional (regions solved exactly and stitched, "
             "no dense matrix), greedy (best match first), lp (HiGHS LP), lp-pulp (the "
             "blog's PuLP model).")] = "auto",
    regions: Annotated[Optional[int], typer.Option(
        help="Regions of --method regional (default: about 3,200 tiles each).")] = None,
    max_memory: Annotated[Optional[str], typer.Option(
        help="Memory budget of scoring and solving, e.g. 4GB (default: a third of the "
             "RAM, at most 8 GB).")] = None,
    dask_address: Annotated[Optional[str], typer.Option(
        help="Score and solve on this Dask cluster, e.g. tcp://scheduler:8786 (default: "
             "local threads).")] = None,
    metric: Annotated[str, typer.Option(help="Colour space of the scores: lab or rgb.")
                      ] = "lab",
    crops: Annotated[int, typer.Option(
        help="Square crop candidates per photo: the centre, the two ends of the long side "
             "and four zoomed corners; the best per tile is used (1 = centre only).")
    ] = DEFAULT_CROPS,
    feature_size: Annotated[int, typer.Option(help="Scoring resolution (s x s).")] = 16,
    workdir: Annotated[Optional[Path], typer.Option(
        help="Run folder for intermediate files (default ./mosaic-runs/<target name>).")
    ] = None,
    metrics: Annotated[Optional[Path], typer.Option(
        help="Where to write metrics.json (default: in the workdir). The report "
             "(report.md and its pictures) always goes in the workdir.")] = None,
    max_pixels: Annotated[int, typer.Option(
        help="Refuse images with more pixels (decompression-bomb guard).")] = 100_000_000,
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
    ensure_prefect_api()
    if instagram is not None:
        from flows.cli_sources import fetch_instagram_photos, instagram_photos_dir

        _setup_logging(verbose)
        try:
            photos = fetch_instagram_photos(instagram, photos or instagram_photos_dir(instagram),
                                            cookies=cookies)
        except MosaicError as exc:
            fail(str(exc))
    elif photos is None:
        fail("give --photos DIR or --instagram USERNAME")
    weighting = make_weighting(weights, face_weight, person_weight, falloff, segmenter,
                               pointrend_config, pointrend_weights)
    scale = make_scale(max_memory, regions, dask_address)
    options = make_options(photos, target, out, grid, tiles, size, dpi, tile_px, method,
                           metric, crops, feature_size, workdir, metrics, max_pixels, compare,
                           weighting, scale)
    _setup_logging(verbose)
    started = time.perf_counter()
    result = run_build(options, quiet, verbose)
    summarise(result, Path(options.metrics), Path(options.workdir) / "report.md",
              time.perf_counter() - started, quiet)


def make_weighting(mode: str, face_weight: float, person_weight: float, falloff: float,
                   segmenter: str, pointrend_config: Path | None,
                   pointrend_weights: Path | None) -> Any:
    """Check the tile-weighting options; build a ``WeightRequest``."""
    from mosaic.importance import check_segmenter, check_weights
    from mosaic.steps import WeightRequest

    config = str(pointrend_config) if pointrend_config is not None else None
    weights_file = str(pointrend_weights) if pointrend_weights is not None else None
    try:
        check_weights(mode, face_weight, person_weight, falloff)
        if mode != "none":
            check_segmenter(segmenter, config, weights_file)
    except MosaicError as exc:
        fail(str(exc))
    return WeightRequest(mode, face_weight, person_weight, falloff, segmenter, config,
                         weights_file)


def make_scale(max_memory: str | None, regions: int | None, dask_address: str | None
               ) -> Any:
    """Check the large-problem options; build a ``ScaleRequest``."""
    from mosaic.steps_scale import ScaleRequest

    request = ScaleRequest(max_memory, regions, dask_address)
    try:
        request.check()
    except MosaicError as exc:
        fail(str(exc))
    return request


def make_options(photos: Path, target: Path, out: Path, grid: str | None, tiles: int | None,
                 size: str | None, dpi: float | None, tile_px: int | None, method: str,
                 metric: str, crops: int, feature_size: int, workdir: Path | None,
                 metrics: Path | None, max_pixels: int, compare: bool, weighting: Any,
                 scale: Any = None) -> Any:
    """Check every argument that can be checked before the run; build ``BuildOptions``.

    The run folder is prepared and held (one build at a time) until the command ends.
    """
    from mosaic.options import BuildOptions, check_choices
    from mosaic.outputs import run_folder_lock
    from mosaic.preflight import check_build
    from mosaic.steps import LayoutRequest

    run_dir = workdir if workdir is not None else Path("mosaic-runs") / target.stem
    metrics_path = metrics if metrics is not None else run_dir / "metrics.json"
    try:
        check_choices(method, metric, crops)
        if not 2 <= feature_size <= 64:
            raise MosaicError(f"--feature-size {feature_size}: choose between 2 and 64")
        if max_pixels < 1:
            raise MosaicError("--max-pixels must be positive")
        request = LayoutRequest(grid, tiles, size, dpi, tile_px)
        request.check()
        options = BuildOptions(
            photos=str(photos), target=str(target), out=str(out), workdir=str(run_dir),
            metrics=str(metrics_path), layout=request, weighting=weighting, method=method,
            metric=metric, feature_size=feature_size, crops=crops, compare=compare,
            max_pixels=max_pixels, **({"scale": scale} if scale is not None else {}))
        check_build(options)
        _held.enter_context(run_folder_lock(run_dir))
    except MosaicError as exc:
        fail(str(exc))
    # Task results (small JSON files) and cache records live in the run folder.
    os.environ.setdefault("PREFECT_RESULTS_LOCAL_STORAGE_PATH",
                          str(run_dir.resolve() / ".prefect-results"))
    return options


_held = contextlib.ExitStack()
"""Run folders this command holds until it ends."""


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
        f"report:  {report_path}",
        f"time:    {seconds:.1f} s",
    ]
    typer.echo("\n".join(lines))


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option(help="Where the demo run goes.")] = Path(
        "mosaic-runs/demo"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Build a mosaic from the bundled sample photos."""
    from mosaic.steps import WeightRequest

    ensure_prefect_api()
    manifest = json.loads((SAMPLES / "demo.json").read_text(encoding="utf-8"))
    options = make_options(
        SAMPLES / "photos", SAMPLES / manifest["target"], out_dir / "mosaic.jpg", None, None,
        None, None, manifest.get("tile_px"), "auto", "lab",
        manifest.get("crops", DEFAULT_CROPS), 16,
        out_dir, out_dir / "metrics.json", 100_000_000, True, WeightRequest())
    _setup_logging(False)
    started = time.perf_counter()
    result = run_build(options, quiet, False)
    summarise(result, out_dir / "metrics.json", out_dir / "report.md",
              time.perf_counter() - started, quiet)


server_app = typer.Typer(help="A long-lived local Prefect server (127.0.0.1:4200).",
                         no_args_is_help=True)
app.add_typer(server_app, name="server")
app.add_typer(scrape_app, name="scrape")
app.add_typer(import_app, name="import")


@server_app.command("start")
def server_start() -> None:
    """Start a Prefect server in the background, unless one is running."""
    try:
        pid = local_server.start()
    except RuntimeError as exc:
        fail(str(exc))
    typer.echo(f"Prefect server running at {local_server.UI_URL} (pid {pid}); "
               f"log: {local_server.LOG_FILE}")


@server_app.command("stop")
def server_stop() -> None:
    """Stop the server that `mosaic server start` started."""
    typer.echo("stopped" if local_server.stop() else "no server started by mosaic is running")


@server_app.command("status")
def server_status() -> None:
    """Say whether a local Prefect server answers."""
    running = local_server.is_running()
    typer.echo(f"running at {local_server.UI_URL}" if running else "not running")
    raise typer.Exit(0 if running else 1)


def _stop_message(signum: int) -> str:
    name = signal.Signals(signum).name
    return (f"mosaic: stopped by {name}; nothing half-written was left, and the same "
            "command resumes")


def _stoppable(command: click.Command) -> click.Command:
    """Let SIGINT and SIGTERM end any command in one line with status 130 or 143.

    Click would turn the interrupt into "Aborted!" and status 1. The children (a
    temporary Prefect server, Chromium) are stopped by the guardian once this process
    is gone, so the exit need not wait for them.
    """
    invoke = command.invoke

    def stop_cleanly(ctx: click.Context) -> Any:
        try:
            return invoke(ctx)
        except processes.Stopped as stop:
            remove_live_temporaries()
            typer.echo(_stop_message(stop.signum), err=True)
            sys.stderr.flush()
            os._exit(stop.exit_status)

    command.invoke = stop_cleanly  # type: ignore[method-assign]
    return command


def main() -> None:
    """Entry point of the ``mosaic`` script."""
    _prefect_environment("--verbose" in sys.argv or "-v" in sys.argv)
    processes.stop_on_signals(_stop_message)
    _stoppable(typer.main.get_command(app))()


if __name__ == "__main__":
    main()
