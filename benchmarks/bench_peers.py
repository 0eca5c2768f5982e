"""Our optimal mosaic against phomo's optimal mode (``phomo -m norm``), same grid and crop.

Run from the project folder::

    .venv/bin/python -m benchmarks.bench_peers            # five targets
    .venv/bin/python -m benchmarks.bench_peers --quick    # two targets

phomo lives in a side virtual environment, never in the project's ``.venv``::

    python3 -m venv .venv-peers && .venv-peers/bin/pip install phomo

If it is missing the script says so and exits with status 2; it never prints numbers it
did not measure.

What phomo does (read from phomo 1.2.0's source, ``phomo/__main__.py``, ``mosaic.py``,
``grid.py``, ``utils.py``, ``metrics.py``):

- ``-m norm`` (the default metric) is the Frobenius norm of the difference between a
  master cell and a tile, over *all* pixels of the cell at full tile resolution, in RGB
  0..255: ``sqrt(sum((cell - tile) ** 2))``. The assignment minimises the *sum of these
  norms*, not of squared errors.
- The optimal assignment (``scipy.optimize.linear_sum_assignment``) is the default; only
  ``--greedy`` switches it off, so no extra solver flag is needed. ``-n 1`` (the default)
  uses every tile at most once.
- The grid is not set directly (1.2.0 has no ``--master-divisions`` option): the master
  is centre-cropped to ``-c`` (width/height), resized to ``-s W H`` (Pillow's default
  bicubic), then cut into ``floor(W / tile_w) x floor(H / tile_h)`` cells, centred when
  the sizes do not divide. We pass ``-s cols*P rows*P`` so the cells tile the master
  exactly.
- Tiles are centre-cropped to ``-C`` (we pass 1: square, like ours) and resized to
  ``-S P P`` (bicubic). Without ``-C`` they would be squashed, not cropped.
- Recolouring is off unless asked for (``-e``, ``--match-master-to-tiles``,
  ``--match-tiles-to-master``); we pass none of them, nor ``-d`` (subdivision) or ``-b``.
  phomo has no overlay/blend option.
- The tile folder is read with ``glob("*")``: not recursively, with no de-duplication
  (a photo present twice could be placed twice). We therefore hand it a folder of
  symbolic links to the distinct photos (SHA-256 of the bytes, unreadable files left out),
  the same set our ``mosaic build`` uses.

Crop alignment: the region our ``mosaic build --grid RxC`` covers is whatever its run
wrote to ``metrics.json`` (``target_crop``, in target pixels): by default a crop of aspect
``cols / rows`` that keeps the faces in frame, a centre crop with ``--weights none`` or
when no face is found. phomo's own ``-c cols/rows`` would always cut a centre box,
computed in floating point and rounded by Pillow, which can differ from our centre box by
a pixel (obama at 31x25: ours ``(0, 4, 910, 1132)``, phomo ``(0, 4, 910, 1133)``). So
after each of our runs the script reads that box, cuts it out of the upright target,
saves it losslessly as PNG, and gives phomo that crop with ``-s cols*P rows*P`` and no
``-c``: its cells then cover exactly the same fractions of the same region as ours.
phomo runs once per distinct region, and each of our mosaics is measured against the
crop of its own region with :func:`mosaic.report.mosaic_quality` and compared with the
phomo run on that same crop.

Both tools write PNG (no JPEG loss for either). Each of our runs gets a fresh work
folder (nothing cached). "seconds" is wall time of the command; ours includes Prefect's
start-up (about 1 s with ``mosaic server start`` running, about 15 s without) and the
flow's own total is shown in brackets. phomo runs with one worker (its default).

Each of our runs is also checked independently: the objective it reports must equal the
optimum that ``scipy.optimize.linear_sum_assignment`` finds on the run's own
``cost.npy`` (times its tile weights, when the run wrote any). A command that fails or
runs past ``--timeout`` becomes a FAILED row (no numbers) and the script exits with
status 1 after printing the table.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks.peers import (
    DATA,
    DEFAULT_TILE_PX,
    DEFAULT_TIMEOUT,
    EXIT_NO_PHOMO,
    PEERS_VENV,
    PHOMO,
    QUICK_TARGETS,
    ROOT,
    TARGETS,
    VARIANTS,
    PhomoMissingError,
    Result,
    Setup,
    Variant,
    bench_case,
    box_slug,
    distinct_photo_folder,
    phomo_version,
    plan_case,
)
from benchmarks.table import machine, print_table
from cli import prefect_server


def peer_of(result: Result, results: Sequence[Result]) -> Result | None:
    """The phomo run on the same target and region as ``result``."""
    for other in results:
        if other.tool == PHOMO and other.target == result.target and other.box == result.box:
            return other
    return None


def verdict(result: Result, peer: Result | None) -> str:
    """Which of the two figures ``result`` beats ``peer`` on."""
    if result.error is not None or peer is None or peer.error is not None:
        return "n/a"
    error = result.tile_mse < peer.tile_mse
    ssim = result.ssim > peer.ssim
    if error and ssim:
        return "both"
    if error:
        return "tile error only"
    if ssim:
        return "SSIM only"
    return "neither"


def table_rows(results: Sequence[Result]) -> list[list[object]]:
    """Markdown rows, each of ours compared with phomo on the same target and region."""
    rows: list[list[object]] = []
    for r in results:
        region = box_slug(r.box).replace("-", ",") if r.box is not None else ""
        if r.error is not None:
            rows.append([r.target, r.grid, region, r.tool, "FAILED", "FAILED", "",
                         r.error[:80]])
            continue
        seconds = f"{r.seconds:.1f}"
        if r.flow_seconds is not None:
            seconds += f" ({r.flow_seconds:.1f})"
        beats = "" if r.tool == PHOMO else verdict(r, peer_of(r, results))
        rows.append([r.target, r.grid, region, r.tool, f"{r.tile_mse:.5f}", f"{r.ssim:.4f}",
                     seconds, beats])
    return rows


def summary(results: Sequence[Result], variants: Sequence[Variant]) -> list[str]:
    """One line per variant: whether it beats phomo on both figures for every target."""
    lines = []
    for variant in variants:
        verdicts = {r.target: verdict(r, peer_of(r, results))
                    for r in results if r.variant == variant.name}
        lost = [name for name, v in verdicts.items() if v not in {"both", "n/a"}]
        missing = [name for name, v in verdicts.items() if v == "n/a"]
        if lost:
            status = f"does NOT beat phomo on both figures for: {', '.join(lost)}"
        else:
            status = "beats phomo on both figures for every target measured"
        if missing:
            status += f" (no figures for: {', '.join(missing)})"
        lines.append(f"- ours {variant.name}: {status}")
    return lines


def to_json(results: Sequence[Result]) -> str:
    """The results as JSON (missing figures as null)."""
    def clean(value: object) -> object:
        return None if isinstance(value, float) and math.isnan(value) else value

    return json.dumps([{k: clean(v) for k, v in r.__dict__.items()} for r in results],
                      indent=1)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"two targets only ({', '.join(QUICK_TARGETS)})")
    parser.add_argument("--targets", nargs="+", default=None,
                        help="target names in shared/data/targets (without .jpg)")
    parser.add_argument("--tile-px", type=int, default=DEFAULT_TILE_PX,
                        help="tile side in pixels, for both tools (default 100)")
    parser.add_argument("--tiles", type=int, default=None,
                        help="tile count (default: as many as distinct photos, like "
                             "`mosaic build` without --grid)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help="seconds before one command is killed (default 1200)")
    parser.add_argument("--photos", type=Path, default=DATA / "library")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "mosaic-runs" / "bench-peers")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison and print the table; 2 when phomo is missing, 1 on failure."""
    args = parse_args(argv)
    try:
        version = phomo_version(PEERS_VENV)
    except PhomoMissingError as exc:
        print(f"bench_peers: {exc}\nInstall it with: python3 -m venv {PEERS_VENV} && "
              f"{PEERS_VENV}/bin/pip install phomo\nNo numbers were measured.",
              file=sys.stderr)
        return EXIT_NO_PHOMO
    targets = args.targets or (QUICK_TARGETS if args.quick else TARGETS)
    out_dir = args.out_dir.resolve()
    setup = Setup(args.photos.resolve(), out_dir / "phomo-tiles", args.tile_px, args.timeout)
    distinct = distinct_photo_folder(setup.photos, setup.lib_folder)
    print(f"Machine: {machine()}\nphomo {version} ({PEERS_VENV}); {distinct} distinct photos "
          f"in {setup.photos}; tile {setup.tile_px} px; long-lived Prefect server: "
          f"{'yes' if prefect_server.is_running() else 'no (about 15 s more per run)'}",
          flush=True)
    results: list[Result] = []
    for name in targets:
        case = plan_case(name, out_dir, distinct, args.tiles, setup.tile_px)
        results += bench_case(case, setup, VARIANTS)
    print_table(f"Ours vs phomo {version} optimal (`-m norm`): tile error = RGB MSE of 16x16 "
                "cells (lower is better), SSIM (higher is better)",
                ["target", "grid", "region (l,t,r,b)", "tool + settings", "tile error", "SSIM",
                 "seconds (flow)", "ours beats phomo on"], table_rows(results))
    print("\n".join(summary(results, VARIANTS)))
    (out_dir / "results.json").write_text(to_json(results), encoding="utf-8")
    peers = [r for r in results if r.tool == PHOMO]
    if peers:
        print(f"\nphomo command (first run): {' '.join(peers[0].command)}")
    print(f"Images and results.json: {out_dir}")
    failures = sum(r.error is not None for r in results)
    if failures:
        print(f"bench_peers: {failures} run(s) FAILED; see the table", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
