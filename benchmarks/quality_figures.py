"""The figures of ``make bench-quality``: every mosaic file measured one way, any tool.

Each mosaic and the target region it covers are box-shrunk to 16 x 16 px a tile
(:func:`mosaic.report.shrink_to_cells`, as the rest of the project's quality figures), and
on those pixels:

- **tile error**: RGB mean squared error in [0, 1] (:func:`mosaic.report.mosaic_quality`);
- **SSIM**: scikit-image's ``structural_similarity`` (the same call);
- **CIEDE2000**: the mean per-pixel colour difference (``skimage.color.deltaE_ciede2000``
  of the two images in CIELAB, D65); about 1 is a just-noticeable difference, lower is
  better;
- **face-tile error**: the tile error over the tiles that show part of a face, from two
  sources that are not the weighting's detector (mediapipe): the faces counted by hand
  in :mod:`benchmarks.bench_faces` (``REQUIRED`` and ``OPTIONAL``), and the faces
  OpenCV's Haar cascades find (:mod:`benchmarks.haar_faces_run`, in the side
  environment). Each face box is grown to the whole head by the project's head rule
  (:func:`mosaic.importance.heads.head_ellipses`) and a tile counts when it overlaps a
  head, the issue's definition of a face tile.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from skimage.color import deltaE_ciede2000, rgb2lab
from skimage.metrics import structural_similarity

from benchmarks.bench_faces import OPTIONAL, REQUIRED
from benchmarks.peers import PEERS_VENV, Box
from mosaic.importance.heads import head_ellipses, rectangles_touching
from mosaic.report import QUALITY_CELL, shrink_to_cells

HAAR_RUNNER = Path(__file__).resolve().with_name("haar_faces_run.py")


class MeasureError(RuntimeError):
    """A mosaic file cannot be measured (wrong size, unreadable)."""


def hand_faces(target: str) -> list[Box]:
    """The faces counted by hand on a shared target (required and optional ones)."""
    return [*REQUIRED.get(target, {}).values(), *OPTIONAL.get(target, {}).values()]


def haar_faces(images: Sequence[Path]) -> dict[str, list[Box]]:
    """Face boxes OpenCV's Haar cascades find in each image (run in ``.venv-peers``).

    Raises
    ------
    MeasureError
        The side environment has no OpenCV, or the runner failed.
    """
    python = PEERS_VENV / "bin" / "python"
    done = subprocess.run([str(python), str(HAAR_RUNNER), *map(str, images)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise MeasureError(f"haar_faces_run failed: {done.stderr.strip()[-300:]}")
    found = json.loads(done.stdout)
    return {Path(path).stem: [tuple(box) for box in boxes] for path, boxes in found.items()}


def face_tiles(faces: Sequence[Box], region: Box, rows: int, cols: int) -> np.ndarray:
    """Which tiles of a ``rows x cols`` grid over ``region`` overlap a face's whole head.

    Parameters
    ----------
    faces : sequence of (left, top, right, bottom)
        Face boxes in the target's pixels.
    region : (left, top, right, bottom)
        The part of the target the mosaic covers.
    rows, cols : int
        The grid.

    Returns
    -------
    ndarray of bool, shape (rows, cols)
    """
    left, top, right, bottom = region
    if not faces:
        return np.zeros((rows, cols), dtype=bool)
    shifted = [(a - left, b - top, c - left, d - top) for a, b, c, d in faces]
    return rectangles_touching(head_ellipses(shifted), np.linspace(0, right - left, cols + 1),
                               np.linspace(0, bottom - top, rows + 1))


def load_mosaic(path: Path, rows: int, cols: int, tile_px: int) -> Image.Image:
    """The mosaic file as RGB, checked to be ``cols x rows`` tiles of ``tile_px``."""
    try:
        with Image.open(path) as image:
            mosaic = image.convert("RGB")
    except OSError as exc:
        raise MeasureError(f"cannot read {path}: {exc}") from exc
    if mosaic.size != (cols * tile_px, rows * tile_px):
        raise MeasureError(f"{path} is {mosaic.size}, expected "
                           f"{(cols * tile_px, rows * tile_px)}")
    return mosaic


def figures(mosaic: Image.Image, crop: Image.Image, rows: int, cols: int,
            face_masks: dict[str, np.ndarray]) -> dict[str, float]:
    """Tile error, SSIM, CIEDE2000 and face-tile errors of one mosaic against its region.

    Parameters
    ----------
    mosaic : PIL.Image.Image
        The rendered mosaic.
    crop : PIL.Image.Image
        The target region it covers.
    rows, cols : int
        The grid.
    face_masks : dict of str to ndarray of bool, shape (rows, cols)
        Face tiles by source (``"hand"``, ``"haar"``); a source with no face tile gives NaN.

    Returns
    -------
    dict
        ``tile_mse``, ``ssim``, ``ciede2000`` and ``face_<source>`` per mask.
    """
    ours = shrink_to_cells(mosaic, rows, cols)
    reference = shrink_to_cells(crop, rows, cols)
    squared = (ours - reference) ** 2
    cell = QUALITY_CELL
    per_tile = squared.reshape(rows, cell, cols, cell, 3).mean(axis=(1, 3, 4))
    out = {
        "tile_mse": float(squared.mean()),
        "ssim": float(structural_similarity(ours, reference, channel_axis=2,
                                            data_range=1.0)),
        "ciede2000": float(deltaE_ciede2000(rgb2lab(ours), rgb2lab(reference)).mean()),
    }
    for source, mask in face_masks.items():
        out[f"face_{source}"] = float(per_tile[mask].mean()) if mask.any() else float("nan")
    return out
