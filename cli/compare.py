"""``mosaic compare``: greedy, optimal and tile-weighted placements side by side, one page."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from cli.build import make_options, prepare_build, run_build
from cli.common import ensure_prefect_api, setup_logging

COMPARE_TILE_PX = 32
"""Tile side of the compared mosaics: enough to see them, quick to draw."""


def compare(
    photos: Annotated[Path, typer.Option(help="Folder of photos (searched recursively).")],
    target: Annotated[Path, typer.Option(help="The picture the mosaics reproduce.")],
    out: Annotated[Path, typer.Option(help="Folder for report.html, the optimal mosaic, "
                                      "metrics.json and the run's files (new, or an "
                                      "earlier compare's).")],
    grid: Annotated[Optional[str], typer.Option(help="ROWSxCOLS, e.g. 40x30.")] = None,
    tiles: Annotated[Optional[int], typer.Option(help="Number of tiles wanted.")] = None,
    tile_px: Annotated[int, typer.Option(min=4, max=512, help="Tile side in pixels.")
                       ] = COMPARE_TILE_PX,
    weights: Annotated[str, typer.Option(
        help="The weighted solve's tiles: faces+people, faces or people.")] = "faces+people",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Place TARGET's photos greedily, optimally and tile-weighted; compare them in one page.

    The page (OUT/report.html) shows the mosaics next to the target, each method's mean
    error and how much lower the optimal one is than greedy, the error histograms, the
    error over the grid and the weight map. The exact assignment needs the whole
    tiles x photos matrix in memory.
    """
    ensure_prefect_api()
    values = {"photos": str(photos), "target": str(target), "out": str(out / "mosaic.jpg"),
              "workdir": str(out), "method": "optimal", "compare": True, "tile_px": tile_px,
              "weights": weights, "grid": grid, "tiles": tiles}
    options = make_options(**{name: value for name, value in values.items()
                              if value is not None})
    prepare_build(options)
    setup_logging(False)
    started = time.perf_counter()
    metrics = run_build(options, quiet)
    page = metrics.get("report_html", str(out / "report.html"))
    if quiet:
        typer.echo(page)
        return
    for entry in metrics["comparison"]:
        typer.echo(f"{entry['method']:<22} mean cost {entry['mean_cost']:.4f}")
    typer.echo(f"report: {page}\ntime:   {time.perf_counter() - started:.1f} s")
