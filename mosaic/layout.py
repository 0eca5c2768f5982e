"""Poster sizes, the tile grid and the crop of the target.

The grid is worked out from the number of photos: the largest ``rows x cols`` of
tiles (square, or of ``--tile-aspect W:H``) whose aspect fits the poster, using no more
tiles than there are distinct photos (each photo is used at most once).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass

from mosaic.cells import CellGrid
from mosaic.errors import MosaicError
from mosaic.tile_shape import SQUARE, tile_height_for

MM_PER_UNIT = {"mm": 1.0, "cm": 10.0, "in": 25.4}

POSTER_PRESETS_MM: dict[str, tuple[float, float]] = {
    "A0": (841, 1189),
    "A1": (594, 841),
    "A2": (420, 594),
    "A3": (297, 420),
    "A4": (210, 297),
    "A5": (148, 210),
    "20x30cm": (200, 300),
    "30x40cm": (300, 400),
    "40x50cm": (400, 500),
    "40x60cm": (400, 600),
    "50x70cm": (500, 700),
    "60x80cm": (600, 800),
    "60x90cm": (600, 900),
    "70x100cm": (700, 1000),
    "8x10in": (203.2, 254.0),
    "11x14in": (279.4, 355.6),
    "12x18in": (304.8, 457.2),
    "16x20in": (406.4, 508.0),
    "18x24in": (457.2, 609.6),
    "24x36in": (609.6, 914.4),
}
"""Common poster sizes, portrait, in millimetres."""

_SIZE_PATTERN = re.compile(
    r"^\s*(\d+(?:\.\d+)?)\s*[x×]\s*(\d+(?:\.\d+)?)\s*(mm|cm|in|px)\s*$", re.IGNORECASE
)
_GRID_PATTERN = re.compile(r"^\s*(\d+)\s*[x×]\s*(\d+)\s*$", re.IGNORECASE)

DEFAULT_ASPECT_TOLERANCE = 0.05


@dataclass(frozen=True)
class PosterSize:
    """A requested output size: physical (mm) or in pixels.

    Attributes
    ----------
    width, height : float
        Millimetres when ``unit`` is "mm", pixels when it is "px".
    unit : str
        "mm" or "px".
    label : str
        What the user asked for, for reports.
    """

    width: float
    height: float
    unit: str
    label: str

    @property
    def aspect(self) -> float:
        """Width divided by height."""
        return self.width / self.height

    def pixels(self, dpi: float | None) -> tuple[int, int] | None:
        """Output pixels (width, height): from the px size, or mm at ``dpi``; else None."""
        if self.unit == "px":
            return round(self.width), round(self.height)
        if dpi is None:
            return None
        return round(self.width / 25.4 * dpi), round(self.height / 25.4 * dpi)

    def oriented_like(self, aspect: float) -> PosterSize:
        """Swap width and height when the poster's orientation differs from ``aspect``."""
        if (self.aspect > 1) == (aspect > 1) or math.isclose(self.aspect, 1.0):
            return self
        return PosterSize(self.height, self.width, self.unit, self.label)


def parse_size(text: str) -> tuple[PosterSize, bool]:
    """Parse a poster size: a preset name (A3, 50x70cm, 24x36in…) or ``WxH`` + unit.

    Parameters
    ----------
    text : str
        For example ``"A2"``, ``"50x70cm"``, ``"24x36in"``, ``"4000x3000px"``.

    Returns
    -------
    (PosterSize, bool)
        The size, and True for a named preset such as A3, which follows the target's
        orientation; sizes written as ``WxH`` are taken as given.

    Raises
    ------
    MosaicError
        The text is neither a preset nor ``WxH`` with a unit, or a side is zero.
    """
    key = text.strip()
    for name, (width, height) in POSTER_PRESETS_MM.items():
        if key.lower() == name.lower():
            # Named sizes (A3) turn with the target; written sizes (50x70cm) do not.
            return PosterSize(width, height, "mm", name), not _SIZE_PATTERN.match(name)
    match = _SIZE_PATTERN.match(key)
    if not match:
        presets = ", ".join(POSTER_PRESETS_MM)
        raise MosaicError(
            f"`size` {text!r} is not understood: use a preset ({presets}) "
            "or WIDTHxHEIGHT with a unit, e.g. 50x70cm, 24x36in, 6000x8000px"
        )
    width, height, unit = float(match[1]), float(match[2]), match[3].lower()
    if width <= 0 or height <= 0:
        raise MosaicError(f"`size` {text!r}: both sides must be greater than zero")
    if unit == "px":
        return PosterSize(width, height, "px", key), False
    scale = MM_PER_UNIT[unit]
    return PosterSize(width * scale, height * scale, "mm", key), False


_LENGTH_PATTERN = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(mm|cm|in|px)\s*$", re.IGNORECASE)
MAX_BLEED_MM = 50.0
"""Most bleed accepted: print shops ask for 2-5 mm; more is a typo."""


def parse_bleed(text: str, dpi: float | None) -> int:
    """Pixels of bleed for a length such as ``3mm``, ``0.125in`` or ``40px``.

    Parameters
    ----------
    text : str
        A number and a unit (mm, cm, in or px).
    dpi : float, optional
        The print resolution; needed for physical units.

    Returns
    -------
    int
        The bleed in output pixels, rounded.

    Raises
    ------
    MosaicError
        Not a length, a physical length without ``dpi``, or more than 50 mm.
    """
    match = _LENGTH_PATTERN.match(text)
    if not match:
        raise MosaicError(f"`bleed` {text!r} is not understood: give a length such as 3mm, "
                          "0.125in or 40px")
    amount, unit = float(match[1]), match[2].lower()
    if unit == "px":
        return round(amount)
    if dpi is None:
        raise MosaicError(f"`bleed` {text!r} is a physical length: it needs `size` and `dpi` "
                          "(or give it in px)")
    millimetres = amount * MM_PER_UNIT[unit]
    if millimetres > MAX_BLEED_MM:
        raise MosaicError(f"`bleed` {text!r} is over {MAX_BLEED_MM:g} mm; print shops ask "
                          "for 2-5 mm")
    return round(millimetres / 25.4 * dpi)


def parse_grid(text: str) -> tuple[int, int]:
    """Parse ``ROWSxCOLS`` into (rows, cols); both at least 1.

    Raises
    ------
    MosaicError
        Not two positive integers separated by ``x``.
    """
    match = _GRID_PATTERN.match(text)
    if not match or int(match[1]) < 1 or int(match[2]) < 1:
        raise MosaicError(
            f"`grid` {text!r} is not understood: use ROWSxCOLS with positive whole numbers,"
            " e.g. 40x30"
        )
    return int(match[1]), int(match[2])


def choose_grid(
    max_tiles: int, aspect: float, tolerance: float = DEFAULT_ASPECT_TOLERANCE
) -> tuple[int, int]:
    """The largest grid of square tiles that fits ``aspect`` using at most ``max_tiles``.

    For every row count, the column counts just below and above ``rows * aspect`` are
    candidates; a candidate qualifies when its aspect is within ``tolerance`` (relative)
    of the wanted one, or when it is the rounded column count. Among those that fit in
    ``max_tiles``, the one with most tiles wins; ties go to the closer aspect.

    Parameters
    ----------
    max_tiles : int
        Upper bound on rows * cols (the number of distinct photos).
    aspect : float
        Wanted width / height.
    tolerance : float
        Accepted relative aspect error.

    Returns
    -------
    (int, int)
        (rows, cols).
    """
    if max_tiles < 1:
        raise MosaicError("no photos to build a mosaic from")
    if not aspect > 0:
        raise ValueError("aspect must be positive")
    best: tuple[int, float, int, int] | None = None
    for rows in range(1, max_tiles + 1):
        if rows * max(1, math.floor(rows * aspect)) > max_tiles:
            break
        ideal = rows * aspect
        for cols in {max(1, math.floor(ideal)), max(1, math.ceil(ideal)), max(1, round(ideal))}:
            tiles = rows * cols
            if tiles > max_tiles:
                continue
            error = abs(cols / rows / aspect - 1)
            if error > tolerance and cols != max(1, round(ideal)):
                continue
            candidate = (tiles, -error, rows, cols)
            if best is None or candidate > best:
                best = candidate
    if best is None:
        return 1, 1
    return best[2], best[3]


def tiles_to_grid(tiles: int, aspect: float) -> tuple[int, int]:
    """The grid for a requested tile count (``--tiles N``): at most N tiles, best aspect."""
    if tiles < 1:
        raise MosaicError(f"`tiles` {tiles}: must be at least 1")
    return choose_grid(tiles, aspect)


@dataclass(frozen=True)
class Layout:
    """Everything about the mosaic's geometry.

    Attributes
    ----------
    rows, cols : int
        The tile grid.
    tile_px : int
        Width of one tile in the rendered output (its side when square).
    crop : tuple of int
        (left, top, right, bottom) of the target region the mosaic covers, in target
        pixels; its aspect equals ``cols * W / (rows * H)``.
    target_size : tuple of int
        (width, height) of the upright target.
    poster : str or None
        The ``--size`` the user gave, for reports.
    tile_aspect : (int, int)
        The tile shape W:H (1:1 by default).
    split : tuple of int
        Tiles (row-major) drawn as four quarter tiles (``--detail faces``,
        :mod:`mosaic.cells`); none by default.
    """

    rows: int
    cols: int
    tile_px: int
    crop: tuple[int, int, int, int]
    target_size: tuple[int, int]
    poster: str | None = None
    tile_aspect: tuple[int, int] = SQUARE
    split: tuple[int, ...] = ()

    @property
    def cell_grid(self) -> CellGrid:
        """The tiles and the quarters of the split ones: what the assignment fills."""
        return CellGrid(self.rows, self.cols, self.split)

    @property
    def cells(self) -> int:
        """Number of cells (photos placed): the tiles, three more for each split one."""
        return self.tiles + 3 * len(self.split)

    @property
    def tile_ratio(self) -> float:
        """Tile width / height."""
        return self.tile_aspect[0] / self.tile_aspect[1]

    @property
    def tile_height(self) -> int:
        """Height of one tile in the rendered output (``tile_px`` for square tiles)."""
        return tile_height_for(self.tile_px, self.tile_aspect)

    @property
    def tile_side(self) -> int:
        """The longer side of a tile, in output pixels (what a decoded photo must cover)."""
        return max(self.tile_px, self.tile_height)

    @property
    def tiles(self) -> int:
        """Number of tiles, rows * cols."""
        return self.rows * self.cols

    @property
    def output_size(self) -> tuple[int, int]:
        """Rendered (width, height) in pixels."""
        return self.cols * self.tile_px, self.rows * self.tile_height

    def to_dict(self) -> dict[str, object]:
        """Plain-dict form for JSON."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Layout:
        """Inverse of :meth:`to_dict`."""
        values = dict(data)
        values["crop"] = tuple(values["crop"])  # type: ignore[arg-type]
        values["target_size"] = tuple(values["target_size"])  # type: ignore[arg-type]
        values["tile_aspect"] = tuple(values.get("tile_aspect", SQUARE))  # type: ignore[arg-type]
        values["split"] = tuple(values.get("split", ()))  # type: ignore[arg-type]
        return cls(**values)  # type: ignore[arg-type]


def crop_to_aspect(
    width: int, height: int, aspect: float, centre: tuple[float, float] | None = None
) -> tuple[int, int, int, int]:
    """The largest box of ``aspect`` inside a ``width`` x ``height`` image.

    Parameters
    ----------
    width, height : int
        Image size.
    aspect : float
        Wanted width / height.
    centre : (float, float), optional
        Point (x, y) in pixels to centre the box on, as far as the image allows; the
        image centre by default.

    Returns
    -------
    tuple of int
        (left, top, right, bottom).
    """
    if width / height > aspect:
        box_h = height
        box_w = max(1, min(width, round(height * aspect)))
    else:
        box_w = width
        box_h = max(1, min(height, round(width / aspect)))
    cx, cy = centre if centre is not None else (width / 2, height / 2)
    left = int(min(max(round(cx - box_w / 2), 0), width - box_w))
    top = int(min(max(round(cy - box_h / 2), 0), height - box_h))
    return left, top, left + box_w, top + box_h


def _check_enough_photos(asked: str, tiles: int, photos: int, max_uses: int) -> None:
    """Refuse a grid the photos cannot fill, saying how ``max_uses`` would help."""
    if tiles <= photos * max_uses:
        return
    if max_uses == 1:
        raise MosaicError(f"{asked} needs {tiles} distinct photos but only {photos} are "
                          f"available; add photos, ask for fewer tiles, or let a photo fill "
                          f"up to {-(-tiles // max(1, photos))} tiles with `max_uses`")
    raise MosaicError(f"{asked}: {photos} photos used at most {max_uses} times fill only "
                      f"{photos * max_uses} tiles; raise `max_uses` to "
                      f"{-(-tiles // max(1, photos))} or ask for fewer tiles")


def check_repeat_spacing(rows: int, cols: int, photos: int, max_uses: int,
                         min_distance: int) -> None:
    """Refuse a minimum distance between copies that the grid and photos cannot meet.

    Every D x D block of tiles needs distinct photos. When there are that many, copies
    placed D apart on a lattice already fill the grid, so this is the only condition
    beyond ``photos * max_uses >= tiles``.

    Raises
    ------
    MosaicError
        A D x D block of tiles needs more distinct photos than there are.
    """
    if min_distance <= 1 or max_uses <= 1:
        return
    height, width = min(min_distance, rows), min(min_distance, cols)
    if height * width > photos:
        raise MosaicError(f"`min_repeat_distance` {min_distance} needs {height * width} "
                          f"different photos in every {height}x{width} block of tiles, "
                          f"but there are {photos}; lower it or add photos")


def plan_layout(
    target_size: tuple[int, int],
    photos: int,
    grid: tuple[int, int] | None = None,
    tiles: int | None = None,
    poster: PosterSize | None = None,
    poster_is_preset: bool = False,
    dpi: float | None = None,
    tile_px: int | None = None,
    default_tile_px: int = 100,
    centre: tuple[float, float] | None = None,
    max_uses: int = 1,
    min_distance: int = 0,
    tile_aspect: tuple[int, int] = SQUARE,
) -> Layout:
    """Work out the grid, tile size and target crop for a mosaic.

    Parameters
    ----------
    target_size : (int, int)
        Upright target (width, height).
    photos : int
        Distinct usable photos; no grid may need more.
    grid : (int, int), optional
        Explicit (rows, cols).
    tiles : int, optional
        Wanted tile count (the grid is derived from it and the poster aspect).
    poster : PosterSize, optional
        Poster size; its aspect decides the grid. Without it, the target's aspect does.
    poster_is_preset : bool
        Presets follow the target's orientation.
    dpi : float, optional
        With a physical poster size, fixes the output pixels.
    tile_px : int, optional
        Tile width in output pixels; overrides what ``poster`` and ``dpi`` imply.
    default_tile_px : int
        Tile width when nothing else fixes it.
    centre : (float, float), optional
        Keep this point of the target centred in the crop (faces, later).
    max_uses : int
        Tiles one photo may fill: at most ``photos * max_uses`` tiles, and that many
        when neither ``grid`` nor ``tiles`` is given.
    min_distance : int
        Least Chebyshev distance between two copies of a photo (checked to be possible,
        :func:`check_repeat_spacing`).
    tile_aspect : (int, int)
        Tile shape W:H (:func:`parse_tile_aspect`): the grid is chosen so that
        ``cols * W / (rows * H)`` fits the poster.

    Returns
    -------
    Layout

    Raises
    ------
    MosaicError
        More tiles needed than photos available, or nonsense sizes.
    """
    width, height = target_size
    target_aspect = width / height
    if poster is not None and poster_is_preset:
        poster = poster.oriented_like(target_aspect)
    aspect = poster.aspect if poster is not None else target_aspect
    ratio = tile_aspect[0] / tile_aspect[1]
    if grid is not None:
        rows, cols = grid
        _check_enough_photos(f"`grid` {rows}x{cols}", rows * cols, photos, max_uses)
    else:
        if tiles is not None:
            _check_enough_photos(f"`tiles` {tiles}", tiles, photos, max_uses)
        rows, cols = choose_grid(tiles if tiles is not None else photos * max_uses,
                                 aspect / ratio)
    check_repeat_spacing(rows, cols, photos, max_uses, min_distance)
    if tile_px is None:
        pixels = poster.pixels(dpi) if poster is not None else None
        if pixels is not None:
            tile_px = min(pixels[0] // cols, math.floor(pixels[1] // rows * ratio))
            if tile_px < 1:
                raise MosaicError(
                    f"`size` {poster.label} at {dpi} dpi gives less than one pixel per tile"
                    f" for a {rows}x{cols} grid"
                )
        else:
            tile_px = default_tile_px
    if tile_px < 1:
        raise MosaicError(f"`tile_px` {tile_px}: must be at least 1")
    crop = crop_to_aspect(width, height, cols * ratio / rows, centre)
    label = poster.label if poster is not None else None
    return Layout(rows, cols, tile_px, crop, (width, height), label, tuple(tile_aspect))
