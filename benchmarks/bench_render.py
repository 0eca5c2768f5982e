"""The print render at 400 megapixels: streamed rows against the in-memory canvas it replaced.

Render rows: 40 x 40 tiles of 500 px (20,000 x 20,000 px), each tile a real photo of the
shared library (cycled), drawn by :func:`mosaic.render.render_mosaic` (tiles a row at a
time into row files, libvips streaming the output) and, for comparison, by the render
this project had before (one Pillow canvas for the whole poster, saved by Pillow). Each
runs in a fresh process; peak memory is that process's ``ru_maxrss``.

Build row: the default command ``mosaic build --photos P --target T --out big.tif --grid
40x40 --tile-px 500`` on 1,600 synthetic photos (every other option at its default),
with its wall time, peak memory and quality figures.

Run ``python -m benchmarks.bench_render`` (``--skip-build`` for the render rows only).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.bench_builds import BUILD_ENVIRONMENT, mosaic_command
from benchmarks.synthetic import TARGETS, library_paths, write_synthetic_folder
from benchmarks.table import machine, print_table

GRID = 40
TILE_PX = 500
SYNTHETIC = Path.home() / ".cache" / "photo-mosaic-bench" / "photos-2000"

_STREAMED = """
from mosaic.layout import Layout
from mosaic.render import render_mosaic
layout = Layout(rows=GRID, cols=GRID, tile_px=TILE_PX, crop=(0, 0, 1, 1), target_size=(1, 1))
render_mosaic(layout, SOURCES, OUT, rows_root=ROWS)
"""

_IN_MEMORY = """
from PIL import Image
from mosaic.machine import map_in_threads
from mosaic.outputs import image_exif
from mosaic.render import render_tile
canvas = Image.new("RGB", (GRID * TILE_PX, GRID * TILE_PX))
for index, tile in enumerate(map_in_threads(lambda item: render_tile(*item, TILE_PX), SOURCES)):
    row, col = divmod(index, GRID)
    canvas.paste(tile, (col * TILE_PX, row * TILE_PX))
options = {"exif": image_exif()}
if OUT.endswith(".jpg"):
    options.update(quality=92, subsampling=0, optimize=True)
canvas.save(OUT, **options)
"""


def _sources() -> list[tuple[str, tuple[float, float, float, float]]]:
    """1,600 tiles cycling over the shared library's photos, each its centre square."""
    paths = [str(p) for p in library_paths()]
    return [(paths[i % len(paths)], (0.1, 0.1, 0.9, 0.9)) for i in range(GRID * GRID)]


def _measured(command: Sequence[str], env: dict[str, str] | None = None,
              cwd: Path | None = None) -> tuple[float, int, int, str]:
    """Wall seconds, peak resident bytes (ru_maxrss), exit status and stderr's last line."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                                   stderr=errors)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        errors.seek(0)
        lines = errors.read().decode("utf-8", "replace").strip().splitlines()
    return (time.perf_counter() - started, usage.ru_maxrss * 1024, process.returncode,
            lines[-1] if lines else "")


def render_row(name: str, program: str, out: Path) -> list[object]:
    """One render in a fresh process: its time, peak memory and file size."""
    header = (f"GRID, TILE_PX, OUT, ROWS = {GRID}, {TILE_PX}, {str(out)!r}, "
              f"{str(out.parent / 'rows')!r}\nSOURCES = {_sources()!r}\n")
    wall, peak, status, last = _measured([sys.executable, "-c", header
                                          + textwrap.dedent(program)])
    size = out.stat().st_size / 2**20 if out.exists() else 0.0
    result = "ok" if status == 0 else f"exit {status}: {last}"
    row = [name, out.suffix, f"{wall:.1f}", f"{peak / 2**20:,.0f}", f"{size:,.0f}", result]
    out.unlink(missing_ok=True)
    return row


def build_row(folder: Path) -> list[object]:
    """The default command at 400 MP on 1,600 synthetic photos."""
    photos = write_synthetic_folder(SYNTHETIC, GRID * GRID + 100)
    out = folder / "big.tif"
    command = [*mosaic_command(), "build", "--photos", str(photos), "--target",
               str(TARGETS / "obama.jpg"), "--out", str(out), "--workdir", str(folder / "run"),
               "--grid", f"{GRID}x{GRID}", "--tile-px", str(TILE_PX), "--quiet"]
    env = {**BUILD_ENVIRONMENT, "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}
    wall, peak, status, last = _measured(command, env=env, cwd=folder)
    if status != 0:
        return ["build (default command)", ".tif", f"{wall:.1f}", f"{peak / 2**20:,.0f}", "",
                f"exit {status}: {last}"]
    metrics = json.loads((folder / "run" / "metrics.json").read_text(encoding="utf-8"))
    quality = metrics["quality"]
    width, height = metrics["output_size"]
    return ["build (default command)", ".tif", f"{wall:.1f}", f"{peak / 2**20:,.0f}",
            f"{out.stat().st_size / 2**20:,.0f}",
            f"exit 0, {width}x{height}, render {metrics['timings']['render']:.1f} s, tile error "
            f"{quality['tile_mse_rgb']:.4f}, SSIM {quality['ssim']:.3f}"]


def main(argv: Sequence[str] | None = None) -> None:
    """Print the render table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-build", action="store_true", help="Only the render rows.")
    args = parser.parse_args(argv)
    print(f"Machine: {machine()}")
    rows = []
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as scratch:
        folder = Path(scratch)
        for suffix in (".tif", ".jpg"):
            rows.append(render_row("streamed (mosaic.render)", _STREAMED,
                                   folder / f"streamed{suffix}"))
            rows.append(render_row("in memory (before)", _IN_MEMORY, folder / f"canvas{suffix}"))
        if not args.skip_build:
            rows.append(build_row(folder))
    print_table(f"Render of {GRID}x{GRID} tiles at {TILE_PX} px "
                f"({(GRID * TILE_PX) ** 2 / 1e6:,.0f} MP)",
                ["render", "format", "wall s", "peak MB", "file MB", "result"], rows)


if __name__ == "__main__":
    main()
