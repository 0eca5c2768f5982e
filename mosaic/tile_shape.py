"""The tile shape of ``--tile-aspect W:H``: parsing, its text, the height it gives a tile.

Square tiles (1:1) add nothing to any cache key, so runs made before tile shapes existed
keep their keys (:func:`shape_key`).
"""

from __future__ import annotations

import math
import re

from mosaic.errors import MosaicError

SQUARE: tuple[int, int] = (1, 1)
MAX_TILE_ASPECT = 4.0
"""Tiles at most this many times wider than tall, or taller than wide."""
_ASPECT_PATTERN = re.compile(r"^\s*(\d{1,3})\s*:\s*(\d{1,3})\s*$")


def parse_tile_aspect(text: str) -> tuple[int, int]:
    """Parse ``W:H`` (e.g. ``4:5``) into the tile shape, reduced (``8:10`` is ``4:5``).

    Raises
    ------
    MosaicError
        Not two positive whole numbers, or a shape longer than 4:1 either way.
    """
    match = _ASPECT_PATTERN.match(text)
    if not match or int(match[1]) < 1 or int(match[2]) < 1:
        raise MosaicError(f"`tile_aspect` {text!r} is not understood: use W:H with positive "
                          "whole numbers, e.g. 4:5 (portrait) or 1:1 (square)")
    width, height = int(match[1]), int(match[2])
    if max(width / height, height / width) > MAX_TILE_ASPECT:
        raise MosaicError(f"`tile_aspect` {text!r}: tiles may be at most "
                          f"{MAX_TILE_ASPECT:g} times longer one way than the other")
    common = math.gcd(width, height)
    return width // common, height // common


def aspect_text(shape: tuple[int, int]) -> str:
    """``W:H`` of a shape, as metrics and the placement list write it."""
    return f"{shape[0]}:{shape[1]}"


def tile_height_for(tile_px: int, shape: tuple[int, int]) -> int:
    """Height in pixels of a tile ``tile_px`` wide of ``shape`` (at least 1)."""
    return max(1, round(tile_px * shape[1] / shape[0]))


def shape_key(shape: tuple[int, int]) -> list[list[int]]:
    """What a cache key adds for the shape: nothing for square tiles, else ``[[W, H]]``."""
    return [] if tuple(shape) == SQUARE else [list(shape)]
