"""One mosaicraft build through its API, run by the side environment's Python.

Used by :mod:`benchmarks.bench_mosaicraft` as
``.venv-peers/bin/python benchmarks/mosaicraft_run.py ...``; it imports only mosaicraft,
its dependencies (NumPy, OpenCV) and the standard library, never the project.

The master (``--master``, the benchmark's crop of the target) is first resized to
``--cols`` x ``--rows`` cells of 88 px exactly as ``generate`` resizes (LANCZOS4), so
``generate``'s own resize is a copy; ``target_tiles`` is the value nearest
``--wanted-tiles`` for which mosaicraft's ``calc_grid`` gives that grid.

``--profile default`` is ``MosaicGenerator(tile_dir)`` with every argument at its default
(preset ``vivid``, ``augment=True``, ``color_variants=0``) and ``generate(...,
target_tiles=T)`` (``tile_size`` 88, the default). ``--profile honest`` is the ``vivid``
preset with everything that changes a tile's pixels turned off as far as the profile
allows, and ``augment=False`` (so every photo is one candidate); see :data:`HONEST`.
It also writes ``--raw-out``: the same placement drawn from the tiles exactly as
mosaicraft loads them (``cv2.resize(..., INTER_AREA)`` of each photo to a square), with
no postprocessing at all.

Prints one JSON object: the grid, tile size and, cell by cell, the photo file placed.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np
from mosaicraft import MosaicGenerator, calc_grid, get_preset

TILE_SIZE = inspect.signature(MosaicGenerator.generate).parameters["tile_size"].default
"""``generate``'s default cell size (88 px in 0.4.2)."""

HONEST_CHANGES = {
    "color_transfer": "none",  # apply_color_transfer returns the tile as is
    "base_blend_min": 0.0,  # alpha of the target blended into each tile: 0
    "base_blend_max": 0.0,
    "feather_width": 0,
    "laplacian_blend": False,
    "gamma": 1.0,
    "shadow_lift": 0,
    "vibrance": 0.0,
    "saturation_boost": 1.0,
    "boost_cool": 1.0,
    "boost_warm": 1.0,
    "contrast_boost": 1.0,
    "color_harmony": 0.0,
    "sharpness": 0.0,
    "skin_protection": 0.0,
    "skin_lum_protection": 0.0,
}
"""The ``vivid`` preset's keys changed for the honest profile. ``postprocess`` still
runs CLAHE (``apply_local_contrast``) and ``apply_frequency_enhance``: 0.4.2 has no
setting that turns them off."""


def honest_profile() -> dict[str, object]:
    """The ``vivid`` preset with :data:`HONEST_CHANGES` applied."""
    profile = get_preset("vivid")
    profile.update(HONEST_CHANGES)
    profile["description"] = "vivid, no colour transfer, no blend, neutral postprocess"
    return profile


def raw_mosaic(placement: np.ndarray, paths: list[Path], tile_size: int) -> np.ndarray:
    """The placed photos as mosaicraft's ``load_tiles`` resizes them, nothing else."""
    rows, cols = placement.shape
    out = np.zeros((rows * tile_size, cols * tile_size, 3), dtype=np.uint8)
    for r in range(rows):
        for c in range(cols):
            image = cv2.imread(str(paths[int(placement[r, c])]))
            tile = cv2.resize(image, (tile_size, tile_size), interpolation=cv2.INTER_AREA)
            out[r * tile_size:(r + 1) * tile_size, c * tile_size:(c + 1) * tile_size] = tile
    return out


def prepare_master(crop: str, out: str, rows: int, cols: int) -> tuple[int, int]:
    """Resize ``crop`` to the grid as ``generate`` would (LANCZOS4); its size.

    ``generate`` then finds its working size equal to the master's, so its own resize
    is a copy, and ``calc_grid`` on this exact ``cols : rows`` aspect can give the grid
    (on the crop itself ``int(rows * W / H)`` may round a column away).
    """
    image = cv2.imread(crop)
    if image is None:
        raise OSError(f"cannot read {crop}")
    size = (cols * TILE_SIZE, rows * TILE_SIZE)
    if not cv2.imwrite(out, cv2.resize(image, size, interpolation=cv2.INTER_LANCZOS4)):
        raise OSError(f"cannot write {out}")
    return size


def target_tiles_for(rows: int, cols: int, size: tuple[int, int], wanted: int) -> int:
    """The ``target_tiles`` nearest ``wanted`` for which ``calc_grid`` gives the grid."""
    found = [t for t in range(1, 2 * wanted + rows + cols)
             if calc_grid(t, size[0], size[1])[:2] == (cols, rows)]
    if not found:
        raise ValueError(f"no target_tiles gives {rows}x{cols} on {size}")
    return min(found, key=lambda t: (abs(t - wanted), t))


def main() -> int:
    """Build, save, print the JSON summary."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--master", required=True)
    parser.add_argument("--tiles", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--cols", type=int, required=True)
    parser.add_argument("--wanted-tiles", type=int, required=True,
                        help="target_tiles is the value nearest this that gives the grid")
    parser.add_argument("--profile", choices=("default", "honest"), required=True)
    parser.add_argument("--raw-out", default=None)
    args = parser.parse_args()
    if args.profile == "default":
        generator = MosaicGenerator(tile_dir=args.tiles)
    else:
        generator = MosaicGenerator(tile_dir=args.tiles, preset=honest_profile(),
                                    augment=False)
    master = args.out + ".master.png"
    size = prepare_master(args.master, master, args.rows, args.cols)
    target_tiles = target_tiles_for(args.rows, args.cols, size, args.wanted_tiles)
    result = generator.generate(master, args.out, target_tiles=target_tiles)
    if result.placement is None or result.tile_paths is None:
        print("mosaicraft returned no placement", file=sys.stderr)
        return 1
    paths = [Path(p) for p in result.tile_paths]
    if args.raw_out:
        cv2.imwrite(args.raw_out, raw_mosaic(result.placement, paths, result.tile_size))
    cells = [os.path.realpath(paths[int(i)]) for i in result.placement.ravel()]
    print(json.dumps({"grid_cols": result.grid_cols, "grid_rows": result.grid_rows,
                      "tile_size": result.tile_size, "target_tiles": target_tiles,
                      "candidates": len(paths),
                      "cells": cells}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
