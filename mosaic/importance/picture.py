"""The weight map: tile weights drawn over the greyed target, for ``mosaic weights``."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageOps

# Colour ramp from just above weight 1 to the heaviest tile: blue, yellow, red.
_RAMP = np.array([[0, 160, 255], [255, 215, 0], [255, 30, 60]], dtype=np.float64)
_PICTURE_SIDE = 1024  # default long side of the picture: about a screen's worth
_DIM = 0.3  # the grey target is blended this far toward black so the tints stand out
_MAX_OPACITY = 0.8  # the heaviest tile's tint opacity: the target still shows through
_LEGEND_HEIGHT = 28  # white strip under the picture for the label and the colour bar
_BAR_WIDTH, _BAR_HEIGHT = 240, 10  # the colour bar, at most half the picture wide
_MARGIN = 4  # from the picture's left edge to the label, from the bar to its right edge
_TEXT_TOP, _BAR_TOP = 8, 9  # label and bar, in pixels below the picture: centred in the strip


def _ramp(values: np.ndarray) -> np.ndarray:
    """Colours for values in [0, 1]: blue, yellow, red."""
    position = np.clip(values, 0, 1) * (len(_RAMP) - 1)
    lower = np.floor(position).astype(int).clip(0, len(_RAMP) - 2)
    frac = (position - lower)[..., None]
    return (_RAMP[lower] * (1 - frac) + _RAMP[lower + 1] * frac).astype(np.uint8)


def weight_map_image(target: Image.Image, weights: np.ndarray, crop: tuple[int, int, int, int],
                     rows: int, cols: int, max_side: int = _PICTURE_SIDE) -> Image.Image:
    """The tile weights drawn over the (greyed) target crop, with a legend strip.

    Tiles of weight 1 show the target in grey; heavier tiles are tinted from blue (just
    above 1) through yellow to red (the heaviest), more opaque the heavier they are
    (opacity grows with the square root of ``(w - 1) / (max - 1)``).

    Parameters
    ----------
    target : PIL.Image.Image
        The upright target.
    weights : ndarray, shape (rows * cols,)
        From :func:`mosaic.importance.tile_weights`.
    crop : (int, int, int, int)
        The part of the target the mosaic covers.
    rows, cols : int
        The grid.
    max_side : int
        Long side of the picture (without the legend).

    Returns
    -------
    PIL.Image.Image
        RGB, ``max_side`` long at most, plus the legend strip below.
    """
    grid = np.asarray(weights, dtype=np.float64).reshape(rows, cols)
    region = target.convert("RGB").crop(crop)
    scale = min(1.0, max_side / max(region.size))
    size = (max(cols, round(region.width * scale)), max(rows, round(region.height * scale)))
    base = ImageOps.grayscale(region.resize(size, Image.Resampling.BOX)).convert("RGB")
    base = Image.blend(base, Image.new("RGB", size, (0, 0, 0)), _DIM)
    peak = float(grid.max())
    scaled = (grid - 1.0) / (peak - 1.0) if peak > 1.0 else np.zeros_like(grid)
    alpha = _MAX_OPACITY * np.sqrt(scaled)
    tint = Image.fromarray(_ramp(scaled), "RGB").resize(size, Image.Resampling.NEAREST)
    mask = Image.fromarray((alpha * 255).astype(np.uint8), "L").resize(
        size, Image.Resampling.NEAREST)
    picture = Image.composite(tint, base, mask)
    canvas = Image.new("RGB", (size[0], size[1] + _LEGEND_HEIGHT), (255, 255, 255))
    canvas.paste(picture, (0, 0))
    bar_w = max(1, min(size[0] // 2, _BAR_WIDTH))
    bar = Image.fromarray(
        _ramp(np.linspace(0, 1, bar_w))[None, :, :].repeat(_BAR_HEIGHT, axis=0), "RGB")
    draw = ImageDraw.Draw(canvas)
    label = (f"weights: grey = 1, red = {peak:.2f}" if peak > 1.0
             else "uniform weights (all 1)")
    draw.text((_MARGIN, size[1] + _TEXT_TOP), label, fill=(0, 0, 0))
    if peak > 1.0 and size[0] - bar_w - _MARGIN > 0:
        canvas.paste(bar, (size[0] - bar_w - _MARGIN, size[1] + _BAR_TOP))
    return canvas
