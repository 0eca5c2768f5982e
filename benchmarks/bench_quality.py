"""``make bench-quality``: ours, phomo and mosaicraft side by side on every shared target.

Run from the project folder (``make bench-quality`` installs phomo 1.2.0 and mosaicraft
0.4.2 into the side environment ``.venv-peers`` first)::

    .venv/bin/python -m benchmarks.bench_quality                    # every target
    .venv/bin/python -m benchmarks.bench_quality --targets obama,bar55

One grid, one set of photos and one tile size per target for every tool:

- **Photos**: the shared library de-duplicated by SHA-256, a flat folder of links
  (:func:`benchmarks.peers.distinct_photo_folder`): what our build uses from the folder,
  and what phomo and mosaicraft (which neither recurse nor de-duplicate) are given.
- **Grid**: mosaicraft 0.4.2's own ``calc_grid`` for that many photos on the target, so
  its default run needs no change but ``target_tiles``; ours gets it as ``--grid`` and
  phomo as its cell count (:mod:`benchmarks.bench_peers`).
- **Tiles**: 88 px (mosaicraft's fixed default); ours ``--tile-px 88``, phomo ``-S 88 88``.
- **Region**: what our default build covers (its face-aware crop, read from its run).
  phomo and mosaicraft are given that crop; each of our rows is measured against the
  region its own run covered (the same box, shown in the table).

Rows per target: ours as the default command would run it (``--grid``, ``--tile-px`` and
nothing else), ``--method greedy`` (the blog's baseline), unweighted (``--face-weight 1
--person-weight 1``: the exact assignment with every weight 1, on the same face-aware
region; ``--weights none`` would crop the centre), ``--color-correct 0.3``, and
``--color-correct 0.3`` unweighted with ``--metric rgb``: the exact optimum, over every
one-use placement of the default crop candidates, of the very error the tile-error column
measures (RGB, 16 x 16 px a tile, after the shift), so no honest one-use mosaic of these
crops with that shift has a lower tile error; phomo ``-m norm`` (optimal) and
``--greedy``; mosaicraft default and honest (through its API: no colour transfer, no
blend, no augmentation; see :mod:`benchmarks.bench_mosaicraft`).

The figures are those of :mod:`benchmarks.quality_figures`; "photos" counts the distinct
photos placed (ours from ``placement.csv``, mosaicraft from its placement; phomo writes
no placement, and ``-n 1`` with its assignment places each photo at most once, so its
cell count is shown with "(-n 1)"); "seconds" is the wall time of the command (ours
includes Prefect's start-up, about 1 s with ``mosaic server start`` running); "peak MB"
is ``ru_maxrss`` of the child process. The ``half`` column is the split the defaults
were chosen on (A: anne_helene, bar55, cold_water, jesper, obama; B: the rest, see
``benchmarks/TUNING-importance.md``). A command that fails or times out is a FAILED row
and the exit status is 1; with phomo or mosaicraft missing it exits 2 and measures
nothing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from benchmarks import bench_mosaicraft as mc
from benchmarks import quality_figures as qf
from benchmarks.peers import (
    DATA,
    PEERS_VENV,
    ROOT,
    Box,
    PhomoMissingError,
    box_slug,
    distinct_photo_folder,
    phomo_command,
    phomo_version,
    save_crop,
)
from benchmarks.quality_rows import Row, summary, table_rows
from benchmarks.table import machine, print_table
from cli import prefect_server
from mosaic.images import open_rgb

TILE_PX = 88
HALF_A = ("anne_helene", "bar55", "cold_water", "jesper", "obama")
UNWEIGHTED = ("--face-weight", "1", "--person-weight", "1")
"""Weights all 1 but faces still found: the exact unweighted assignment on the same
face-aware region as the default (``--weights none`` would crop the centre)."""
OURS: dict[str, tuple[str, ...]] = {
    "ours default": (),
    "ours --method greedy": ("--method", "greedy"),
    "ours unweighted (--face-weight 1 --person-weight 1)": UNWEIGHTED,
    "ours --color-correct 0.3": ("--color-correct", "0.3"),
    "ours cc 0.3 bound (unweighted --metric rgb)": ("--color-correct", "0.3", *UNWEIGHTED,
                                                    "--metric", "rgb"),
}
PHOMO_ROWS = {"phomo -m norm (optimal)": (), "phomo -m norm --greedy": ("--greedy",)}


def half(target: str) -> str:
    """The half of the shared targets ``target`` belongs to."""
    return "A" if target in HALF_A else "B"


def run_ours(target: str, rows: int, cols: int, tool: str, folder: Path, photos: Path,
             timeout: float) -> tuple[Row, Path | None]:
    """One of our builds: its row (figures still unset) and the mosaic file."""
    workdir = folder / ("ours-" + ("-".join(a.lstrip("-") for a in OURS[tool]) or "default"))
    shutil.rmtree(workdir, ignore_errors=True)
    out = workdir / "mosaic.png"
    command = [sys.executable, "-m", "cli", "build", "--photos", str(photos), "--target",
               str(DATA / "targets" / f"{target}.jpg"), "--out", str(out), "--grid",
               f"{rows}x{cols}", "--tile-px", str(TILE_PX), *OURS[tool], "--workdir",
               str(workdir), "--metrics", str(workdir / "metrics.json"), "-q"]
    row = Row(target, half(target), f"{rows}x{cols}", tool, command=command)
    try:
        row.seconds, row.peak_mb, _ = mc.run_measured(command, timeout,
                                                      folder / "logs" / tool)
        metrics = json.loads((workdir / "metrics.json").read_text(encoding="utf-8"))
        layout = mc.our_layout(workdir)
        if (layout["rows"], layout["cols"]) != (rows, cols):
            raise mc.RunFailedError(f"our run used {layout['rows']}x{layout['cols']}")
        left, top, right, bottom = (int(v) for v in layout["crop"])
        row.box = (left, top, right, bottom)
        used, most = mc.our_photo_use(workdir, metrics)
        row.photos = str(used) if most == 1 else f"{used} (most {most}x)"
    except (mc.RunFailedError, OSError, KeyError, ValueError) as exc:
        row.error = str(exc)
        print(f"  {tool}: FAILED: {exc}", file=sys.stderr, flush=True)
        return row, None
    return row, out


def run_phomo(target: str, rows: int, cols: int, box: Box, crop_png: Path, tiles: Path,
              folder: Path, timeout: float) -> list[tuple[Row, Path | None]]:
    """The rows of phomo's optimal and greedy modes on the region."""
    done = []
    for tool, extra in PHOMO_ROWS.items():
        out = folder / f"phomo{'-greedy' if extra else ''}-{box_slug(box)}.png"
        out.unlink(missing_ok=True)
        command = phomo_command(PEERS_VENV, crop_png, tiles, out, rows, cols, TILE_PX)
        command += list(extra)
        row = Row(target, half(target), f"{rows}x{cols}", tool, box, command=command,
                  photos=f"{rows * cols} (-n 1)")
        try:
            row.seconds, row.peak_mb, _ = mc.run_measured(command, timeout,
                                                          folder / "logs" / tool)
        except (mc.RunFailedError, OSError) as exc:
            row.error = str(exc)
            print(f"  {tool}: FAILED: {exc}", file=sys.stderr, flush=True)
        done.append((row, None if row.error else out))
    return done


def run_mosaicraft(target: str, rows: int, cols: int, box: Box, crop_png: Path,
                   tiles: Path, distinct: int, folder: Path, timeout: float
                   ) -> list[tuple[Row, Path | None]]:
    """The rows of mosaicraft's default and honest profiles on the region."""
    done = []
    for profile, tool in (("default", mc.MC_DEFAULT), ("honest", mc.MC_HONEST)):
        out = folder / f"mosaicraft-{profile}-{box_slug(box)}.png"
        command = [str(PEERS_VENV / "bin" / "python"), str(mc.RUNNER), "--master",
                   str(crop_png), "--tiles", str(tiles), "--out", str(out), "--rows",
                   str(rows), "--cols", str(cols), "--wanted-tiles", str(distinct),
                   "--profile", profile]
        row = Row(target, half(target), f"{rows}x{cols}", tool, box, command=command)
        try:
            row.seconds, row.peak_mb, stdout = mc.run_measured(command, timeout,
                                                               folder / "logs" / tool)
            info = json.loads(stdout)
            if (info["grid_rows"], info["grid_cols"]) != (rows, cols):
                raise mc.RunFailedError(f"mosaicraft used {info['grid_rows']}x"
                                        f"{info['grid_cols']}")
            if int(info["tile_size"]) != TILE_PX:
                raise mc.RunFailedError(f"mosaicraft tiles are {info['tile_size']} px")
            counts = Counter(info["cells"])
            most = max(counts.values())
            row.photos = str(len(counts)) if most == 1 else f"{len(counts)} (most {most}x)"
        except (mc.RunFailedError, OSError, KeyError, ValueError) as exc:
            row.error = str(exc)
            print(f"  {tool}: FAILED: {exc}", file=sys.stderr, flush=True)
        done.append((row, None if row.error else out))
    return done


def measure_rows(done: Sequence[tuple[Row, Path | None]], target: str, rows: int,
                 cols: int, haar: dict[str, list[Box]]) -> None:
    """Fill in every row's figures from its mosaic file and region."""
    image = open_rgb(DATA / "targets" / f"{target}.jpg")
    for row, path in done:
        if path is None or row.box is None:
            continue
        masks = {"hand": qf.face_tiles(qf.hand_faces(target), row.box, rows, cols),
                 "haar": qf.face_tiles(haar.get(target, []), row.box, rows, cols)}
        try:
            mosaic = qf.load_mosaic(path, rows, cols, TILE_PX)
        except qf.MeasureError as exc:
            row.error = str(exc)
            continue
        row.figures = qf.figures(mosaic, image.crop(row.box), rows, cols, masks)
        row.face_tiles = {source: int(mask.sum()) for source, mask in masks.items()}


def bench_target(target: str, photos: Path, tiles: Path, distinct: int, out_dir: Path,
                 timeout: float, haar: dict[str, list[Box]]) -> list[Row]:
    """Every row of one target."""
    path = DATA / "targets" / f"{target}.jpg"
    folder = out_dir / target
    folder.mkdir(parents=True, exist_ok=True)
    width, height = open_rgb(path).size
    rows, cols = mc.calc_grid(distinct, width, height)
    print(f"{target}: {width}x{height}, grid {rows}x{cols}", flush=True)
    done = [run_ours(target, rows, cols, tool, folder, photos, timeout) for tool in OURS]
    box = done[0][0].box
    if box is not None:
        crop_png = folder / f"target-crop-{box_slug(box)}.png"
        save_crop(path, box, crop_png)
        done += run_phomo(target, rows, cols, box, crop_png, tiles, folder, timeout)
        done += run_mosaicraft(target, rows, cols, box, crop_png, tiles, distinct, folder,
                               timeout)
    measure_rows(done, target, rows, cols, haar)
    return [row for row, _ in done]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default=None,
                        help="comma-separated target names in shared/data/targets "
                             "(default: all)")
    parser.add_argument("--timeout", type=float, default=mc.DEFAULT_TIMEOUT,
                        help="seconds before one command is killed (default 1800)")
    parser.add_argument("--photos", type=Path, default=DATA / "library")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "mosaic-runs" / "bench-quality")
    return parser.parse_args(argv)


def peers_missing() -> str | None:
    """Why the side environment cannot run the peers, or None when it can."""
    try:
        phomo = phomo_version(PEERS_VENV)
    except PhomoMissingError as exc:
        return str(exc)
    mosaicraft = mc.mosaicraft_version()
    if mosaicraft is None:
        return f"mosaicraft (with OpenCV) is not installed in {PEERS_VENV}"
    print(f"phomo {phomo}, mosaicraft {mosaicraft} ({PEERS_VENV})")
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run every tool on every target and print the table; 2 when a peer is missing."""
    args = parse_args(argv)
    print(f"Machine: {machine()}")
    missing = peers_missing()
    if missing:
        print(f"bench_quality: {missing}\nInstall both with: make {PEERS_VENV.name}/bin/phomo "
              f"{PEERS_VENV.name}/bin/mosaicraft\nNo numbers were measured.", file=sys.stderr)
        return 2
    targets = ([t.strip() for t in args.targets.split(",") if t.strip()] if args.targets
               else sorted(p.stem for p in (DATA / "targets").glob("*.jpg")))
    out_dir = args.out_dir.resolve()
    photos = args.photos.resolve()
    tiles = out_dir / "distinct-photos"
    distinct = distinct_photo_folder(photos, tiles)
    try:
        haar = qf.haar_faces([DATA / "targets" / f"{t}.jpg" for t in targets])
    except qf.MeasureError as exc:
        print(f"bench_quality: {exc}", file=sys.stderr)
        return 2
    print(f"{distinct} distinct photos in {photos}; tiles {TILE_PX} px; long-lived Prefect "
          f"server: {'yes' if prefect_server.is_running() else 'no'}", flush=True)
    results: list[Row] = []
    for target in targets:
        results += bench_target(target, photos, tiles, distinct, out_dir, args.timeout, haar)
        (out_dir / "results.json").write_text(json.dumps(
            [row.as_dict() for row in results], indent=1), encoding="utf-8")
    print_table("Quality side by side (tile error, CIEDE2000, face tiles: lower is better; "
                "SSIM: higher is better)", Row.HEADER, table_rows(results))
    print("\n".join(summary(results)))
    print(f"\nHaar faces per target: {json.dumps({t: len(haar.get(t, [])) for t in targets})}")
    print(f"Images, logs and results.json: {out_dir}")
    failures = sum(row.error is not None for row in results)
    if failures:
        print(f"bench_quality: {failures} row(s) FAILED; see the table", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
