"""Tile weights from a :class:`Detection`: whole heads and people, fall-off, tile classes.

For a class with weight ``W`` a tile gets ``1 + (W - 1) * exp(-d / (falloff * tile))``,
``d`` the distance from the tile to the class (0 when it overlaps a whole head or a
person at all; see :func:`tile_weights`); the defaults were chosen with
``benchmarks/bench_weights.py`` (``benchmarks/TUNING-importance.md``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from mosaic.errors import MosaicError
from mosaic.importance.detection import Detection, FloatBox
from mosaic.importance.heads import head_ellipses, rectangles_touching, tiles_touching

MODES = ("faces+people", "faces", "people", "none")
"""Weighting modes: which classes raise the weight of the tiles near them."""

DEFAULT_FACE_WEIGHT = 2.5
"""Weight of a tile on a whole head. Chosen with ``benchmarks/bench_weights.py`` on
halves of the shared targets: face-tile cost 46-61 % lower for at most 2.6 % more
overall on the five that are not close-ups; 3 pushes the portrait obama past +3 %.
Checked end to end (``benchmarks/bench_face_weight.py``: default command, rendered
posters): both halves pick 2.5 again, but on 400-600-photo libraries the face gain falls
to 27-38 % on three portraits (``benchmarks/TUNING-importance.md``)."""
DEFAULT_PERSON_WEIGHT = 1.25
"""Weight of a tile on a person: person tiles improve too (2 % on average)."""
DEFAULT_FALLOFF = 0.5
"""Fall-off length beyond a head or person, in tiles: a soft border of a tile or two
(0.25 to 0.5 differ by a few points of face gain; 0 leaves a hard edge)."""
DEFAULT_HEAD_SCALE = 1.0
"""Multiplier of the head's growth beyond the face box (:mod:`mosaic.importance.heads`):
1 is the anatomical growth; 0.5 to 1.5 stay within a few points of each other."""
DEFAULT_PERSON_TOUCH = True
"""A tile touching a person at all gets the person weight (the half-cell rule measures
the same within 0.1 point)."""

SAMPLES_PER_TILE = 8
"""Distance-transform cells per tile side in :func:`tile_weights`."""
CLASS_FRACTION = 0.25
"""A tile is a person tile when at least this fraction of it is person (face tiles are
any tile overlapping a whole head: :func:`tile_classes`)."""
FACE, PERSON, BACKGROUND = 2, 1, 0
"""Tile labels of :func:`tile_classes`."""

_CELL_FRACTION = 0.5  # a distance-transform cell belongs to a class when half of it does
_REACH = 7  # fall-off lengths a class's weight reaches: exp(-7) is under 0.1 % of W - 1
_EDGE_SLACK = 1e-9  # a crop edge that lies on a cell boundary up to rounding keeps its cell


def check_weights(mode: str, face_weight: float, person_weight: float, falloff_tiles: float
                  ) -> None:
    """Raise :class:`MosaicError` for an unknown mode or weights below 1.

    Raises
    ------
    MosaicError
        ``mode`` not in :data:`MODES`, a weight below 1 or not finite, or a negative
        fall-off.
    """
    if mode not in MODES:
        raise MosaicError(f"`weights` {mode!r}: choose one of {', '.join(MODES)}")
    for label, value in (("`face_weight`", face_weight), ("`person_weight`", person_weight)):
        if not (math.isfinite(value) and value >= 1):
            raise MosaicError(f"{label} {value}: must be a number >= 1 (1 = no preference)")
    if not (math.isfinite(falloff_tiles) and falloff_tiles >= 0):
        raise MosaicError(f"`falloff` {falloff_tiles}: must be a number of tiles >= 0")


def falloff_weights(mask: np.ndarray, weight: float, length: float,
                    sampling: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """Per-pixel ``1 + (weight - 1) * exp(-d / length)``, ``d`` the distance to ``mask``.

    Parameters
    ----------
    mask : ndarray of bool, shape (H, W)
        The labelled pixels (distance 0).
    weight : float
        Weight inside the mask (>= 1).
    length : float
        Fall-off length, in the units of ``sampling``; 0 means no fall-off (``weight``
        inside the mask, 1 outside).
    sampling : (float, float)
        Pixel height and width, for the Euclidean distance transform.

    Returns
    -------
    ndarray of float64, shape (H, W)
        All ones when the mask is empty.
    """
    mask = np.asarray(mask, dtype=bool)
    if not mask.any() or weight == 1:
        return np.ones(mask.shape)
    distance = ndimage.distance_transform_edt(~mask, sampling=sampling)
    if length <= 0:
        return np.where(mask, float(weight), 1.0)
    return 1.0 + (weight - 1.0) * np.exp(-distance / length)


def _resample_mask(mask: np.ndarray, box: FloatBox, size: tuple[int, int]) -> np.ndarray:
    """Fraction of each cell of ``box`` (split into ``size`` = (w, h) cells) in ``mask``."""
    image = Image.fromarray(mask.astype(np.uint8) * 255)
    small = image.resize(size, Image.Resampling.BOX, box=box)
    return np.asarray(small, dtype=np.float64) / 255.0


def _check_grid(detection: Detection, crop: Sequence[int], rows: int, cols: int) -> None:
    """Raise ValueError unless the grid is positive and the crop inside the target."""
    width, height = detection.size
    left, top, right, bottom = crop
    if rows < 1 or cols < 1:
        raise ValueError(f"rows and cols must be positive, got {rows}x{cols}")
    if not (0 <= left < right <= width and 0 <= top < bottom <= height):
        raise ValueError(f"crop {tuple(crop)} is not inside the {width}x{height} target")


def tile_weights(detection: Detection, crop: tuple[int, int, int, int], rows: int, cols: int,
                 mode: str = "faces+people", face_weight: float = DEFAULT_FACE_WEIGHT,
                 person_weight: float = DEFAULT_PERSON_WEIGHT,
                 falloff_tiles: float = DEFAULT_FALLOFF,
                 samples_per_tile: int = SAMPLES_PER_TILE, *,
                 head_scale: float = DEFAULT_HEAD_SCALE,
                 person_touch: bool = DEFAULT_PERSON_TOUCH) -> np.ndarray:
    """Importance of every tile: the largest fall-off weight on any part of it.

    A face's region is its whole head (:func:`mosaic.importance.heads.head_ellipses`:
    the face box grown to the hair, the ears and the chin) together with its FaceMesh
    hull. Every tile that overlaps the region at all gets the full face weight; a tile
    near it gets ``1 + (W - 1) exp(-d / (f * tile))``, ``d`` the distance from the tile's
    nearest point to the region (a tile-level maximum, not a mean over its pixels, so
    that the tiles on a head's border count as the head). People likewise.

    Parameters
    ----------
    detection : Detection
        Faces and people of the target.
    crop : (int, int, int, int)
        The part of the target the mosaic covers.
    rows, cols : int
        The grid; tiles are numbered row by row as in :func:`mosaic.features.tile_boxes`.
    mode : {"faces+people", "faces", "people", "none"}
        Which classes count. Classes combine by the maximum of their weights.
    face_weight, person_weight : float
        Weight ``W`` of a tile on a head / on a person (>= 1).
    falloff_tiles : float
        Fall-off length ``f`` in tiles (``tile`` is the mean tile side in target pixels);
        0 = no fall-off.
    samples_per_tile : int
        Resolution of the distance transform: cells per tile side (distances are
        measured between cells, so to within ``1 / samples_per_tile`` of a tile).
    head_scale : float
        Multiplies the head's growth beyond the face box (0: the box's ellipse only).
    person_touch : bool
        True: a tile touching the person mask at all is a person tile; False: a cell
        is a person when half of it is (the weight then grows into a silhouette's edge).

    Returns
    -------
    ndarray of float64, shape (rows * cols,)
        All >= 1; all exactly 1 for mode "none" or when nothing of the chosen classes
        was found.
    """
    check_weights(mode, face_weight, person_weight, falloff_tiles)
    _check_grid(detection, crop, rows, cols)
    if samples_per_tile < 1:
        raise ValueError("samples_per_tile must be at least 1")
    if not (math.isfinite(head_scale) and head_scale >= 0):
        raise ValueError(f"head_scale {head_scale}: must be a number >= 0")
    classes = [(name, w) for name, w in _class_weights(mode, face_weight, person_weight)
               if w > 1 and (detection.faces if name == "face" else detection.person_mask.any())]
    if not classes:
        return np.ones(rows * cols)
    left, top, right, bottom = crop
    tile_w, tile_h = (right - left) / cols, (bottom - top) / rows
    cell_w, cell_h = tile_w / samples_per_tile, tile_h / samples_per_tile
    width, height = detection.size
    # A margin of whole cells (as far as the image goes) where weights still reach the crop.
    reach = min(max(rows, cols), math.ceil(_REACH * falloff_tiles) + 1) * samples_per_tile
    pad_left = min(reach, math.floor(left / cell_w + _EDGE_SLACK))
    pad_top = min(reach, math.floor(top / cell_h + _EDGE_SLACK))
    pad_right = min(reach, math.floor((width - right) / cell_w + _EDGE_SLACK))
    pad_bottom = min(reach, math.floor((height - bottom) / cell_h + _EDGE_SLACK))
    box = (left - pad_left * cell_w, top - pad_top * cell_h,
           right + pad_right * cell_w, bottom + pad_bottom * cell_h)
    grid_size = (cols * samples_per_tile + pad_left + pad_right,
                 rows * samples_per_tile + pad_top + pad_bottom)
    length = falloff_tiles * (tile_w + tile_h) / 2
    combined = np.ones((grid_size[1], grid_size[0]))
    for name, weight in classes:
        if name == "face":
            cells = _face_cells(detection, box, grid_size, head_scale)
        else:
            fraction = _resample_mask(detection.person_mask, box, grid_size)
            cells = fraction > 0 if person_touch else fraction >= _CELL_FRACTION
        np.maximum(combined, falloff_weights(cells, weight, length, (cell_h, cell_w)),
                   out=combined)
    inner = combined[pad_top:pad_top + rows * samples_per_tile,
                     pad_left:pad_left + cols * samples_per_tile]
    per_tile = inner.reshape(rows, samples_per_tile, cols, samples_per_tile).max(axis=(1, 3))
    return np.maximum(per_tile.ravel(), 1.0)


def _class_weights(mode: str, face_weight: float, person_weight: float
                   ) -> list[tuple[str, float]]:
    """The (class, weight) pairs that ``mode`` counts."""
    counted = {"faces+people": ("face", "person"), "faces": ("face",),
               "people": ("person",)}.get(mode, ())
    return [(name, weight) for name, weight in (("face", face_weight),
                                                ("person", person_weight))
            if name in counted]


def _face_cells(detection: Detection, box: FloatBox, grid_size: tuple[int, int],
                head_scale: float) -> np.ndarray:
    """Cells of ``box`` (``grid_size`` = (w, h) of them) touching a head or a face hull."""
    x_edges = np.linspace(box[0], box[2], grid_size[0] + 1)
    y_edges = np.linspace(box[1], box[3], grid_size[1] + 1)
    heads = rectangles_touching(head_ellipses(detection.faces, head_scale), x_edges, y_edges)
    return heads | (_resample_mask(detection.face_mask, box, grid_size) > 0)


def resolve_mode(detection: Detection, mode: str) -> tuple[str, str | None]:
    """The mode that will actually apply, and a note for the user when it is not ``mode``.

    ``faces+people`` (the default) needs a face or a person, ``faces`` a face and
    ``people`` a person; otherwise the weights are uniform ("none") and the note says
    why.
    """
    if mode not in MODES:
        raise MosaicError(f"`weights` {mode!r}: choose one of {', '.join(MODES)}")
    if mode == "none":
        return "none", None
    has_faces, has_people = bool(detection.faces), bool(detection.person_mask.any())
    if not has_faces and not has_people:
        return "none", "nobody found in the target: weights are uniform (every tile counts alike)"
    if mode == "faces" and not has_faces:
        return "none", "no face found in the target: weights are uniform"
    if mode == "people" and not has_people:
        return "none", "no person found in the target: weights are uniform"
    return mode, None


def weights_settings(mode: str, face_weight: float = DEFAULT_FACE_WEIGHT,
                     person_weight: float = DEFAULT_PERSON_WEIGHT,
                     falloff_tiles: float = DEFAULT_FALLOFF, requested: str | None = None
                     ) -> dict[str, Any]:
    """The ``weights`` entry of metrics.json: mode and parameters."""
    return {"mode": mode, "requested": requested if requested is not None else mode,
            "face_weight": face_weight, "person_weight": person_weight,
            "falloff_tiles": falloff_tiles}


def tile_fractions(detection: Detection, crop: tuple[int, int, int, int], rows: int, cols: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Fraction of each tile covered by a face and by a person, each shape (rows*cols,)."""
    _check_grid(detection, crop, rows, cols)
    box = tuple(float(v) for v in crop)
    face = _resample_mask(detection.face_mask, box, (cols, rows)).ravel()  # type: ignore[arg-type]
    person = _resample_mask(detection.person_mask, box, (cols, rows)).ravel()  # type: ignore[arg-type]
    return face, person


def tile_classes(detection: Detection, crop: tuple[int, int, int, int], rows: int, cols: int,
                 threshold: float = CLASS_FRACTION) -> np.ndarray:
    """Label every tile: :data:`FACE` (2), :data:`PERSON` (1) or :data:`BACKGROUND` (0).

    A tile is a face tile when it shows any part of a face, forehead to chin, ear to
    ear, hair included: it overlaps a whole-head ellipse
    (:func:`mosaic.importance.heads.head_ellipses` at the default growth) or a face
    hull at all. Otherwise it is a person tile when at least ``threshold`` (a quarter)
    of it is person, otherwise background.

    Returns
    -------
    ndarray of int8, shape (rows * cols,)
    """
    face, person = tile_fractions(detection, crop, rows, cols)
    heads = tiles_touching(head_ellipses(detection.faces), crop, rows, cols)
    labels = np.full(rows * cols, BACKGROUND, dtype=np.int8)
    labels[person >= threshold] = PERSON
    labels[heads | (face > 0)] = FACE
    return labels


def class_costs(tile_cost: np.ndarray, classes: np.ndarray) -> dict[str, dict[str, Any]]:
    """Mean cost over face, person and background tiles separately.

    Parameters
    ----------
    tile_cost : ndarray, shape (T,)
        Unweighted cost of each tile's photo.
    classes : ndarray, shape (T,)
        Labels from :func:`tile_classes`.

    Returns
    -------
    dict
        ``{"face": {"tiles": n, "mean_cost": x}, "person": ..., "background": ...}``;
        ``mean_cost`` is None for a class without tiles. The person class excludes face
        tiles.
    """
    cost = np.asarray(tile_cost, dtype=np.float64).ravel()
    labels = np.asarray(classes).ravel()
    if cost.shape != labels.shape:
        raise ValueError(f"tile_cost has {cost.size} tiles but classes {labels.size}")
    result: dict[str, dict[str, Any]] = {}
    for name, label in (("face", FACE), ("person", PERSON), ("background", BACKGROUND)):
        chosen = cost[labels == label]
        result[name] = {"tiles": int(chosen.size),
                        "mean_cost": float(chosen.mean()) if chosen.size else None}
    return result
