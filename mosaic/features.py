"""Images to scoring vectors.

A thumbnail ``s x s x 3`` (uint8 RGB) becomes a vector of ``3 s^2`` numbers in [0, 1],
so the mean squared error between two vectors lies in [0, 1] as the source blog
describes (0 = identical, 1 = opposite).

- ``rgb``: the channel values divided by 255; the cost is then exactly
  ``skimage.metrics.mean_squared_error`` on the ``[0, 1]`` float images.
- ``lab`` (default): CIELAB (D65), ``L / 100`` and ``(a + 128) / 255``, ``(b + 128) / 255``,
  closer to how different two colours look than RGB.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from PIL import Image
from skimage.color import xyz_tristimulus_values
from skimage.color.colorconv import xyz_from_rgb

Metric = Literal["lab", "rgb"]
METRICS: tuple[Metric, ...] = ("lab", "rgb")
DEFAULT_FEATURE_SIZE = 16


def _linear_levels() -> np.ndarray:
    """The 256 sRGB levels made linear, exactly as ``skimage.color.rgb2xyz`` does in float32."""
    levels = np.arange(256, dtype=np.float32) / np.float32(255.0)
    curved = levels > 0.04045
    levels[curved] = np.power((levels[curved] + 0.055) / 1.055, 2.4)
    levels[~curved] /= 12.92
    return levels


_LINEAR = _linear_levels()
_XYZ_FROM_LINEAR = xyz_from_rgb.T.astype(np.float32)
_WHITE = xyz_tristimulus_values(illuminant="D65", observer="2", dtype=np.float32)
_LAB_CHUNK = 1 << 18


def scaled_lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB of uint8 RGB pixels, each channel scaled into [0, 1] (float32).

    The same float32 operations as ``skimage.color.rgb2lab`` (D65, 2 degrees), so the
    values are identical (a test checks), but about three times faster: the sRGB curve is
    a 256-entry table and the pixels go in chunks, without masked copies.
    """
    flat = rgb.reshape(-1, 3)
    scaled = np.empty(flat.shape, dtype=np.float32)
    for start in range(0, flat.shape[0], _LAB_CHUNK):
        xyz = _LINEAR[flat[start:start + _LAB_CHUNK]] @ _XYZ_FROM_LINEAR
        xyz /= _WHITE
        curved = np.cbrt(xyz)
        np.copyto(curved, 7.787 * xyz + 16.0 / 116.0, where=xyz <= 0.008856)
        x, y, z = curved[:, 0], curved[:, 1], curved[:, 2]
        part = scaled[start:start + _LAB_CHUNK]
        part[:, 0] = ((116.0 * y) - 16.0) / 100.0
        part[:, 1] = (500.0 * (x - y) + 128.0) / 255.0
        part[:, 2] = (200.0 * (y - z) + 128.0) / 255.0
    return np.clip(scaled, 0.0, 1.0, out=scaled).reshape(rgb.shape)


def to_features(thumbs: np.ndarray, metric: Metric) -> np.ndarray:
    """Flatten thumbnails into feature rows.

    Parameters
    ----------
    thumbs : ndarray of uint8, shape (..., s, s, 3)
        RGB thumbnails.
    metric : {"lab", "rgb"}
        Colour space of the features.

    Returns
    -------
    ndarray of float32, shape (..., 3 s^2)
        Features in [0, 1].
    """
    if thumbs.dtype != np.uint8 or thumbs.ndim < 3 or thumbs.shape[-1] != 3:
        raise ValueError(f"expected uint8 (..., s, s, 3) thumbnails, got {thumbs.dtype} "
                         f"{thumbs.shape}")
    if metric == "rgb":
        values = thumbs.astype(np.float32) / np.float32(255.0)
    elif metric == "lab":
        values = scaled_lab(thumbs)
    else:
        raise ValueError(f"unknown metric {metric!r}; choose from {METRICS}")
    lead = thumbs.shape[:-3]
    return values.reshape(*lead, -1)


def tile_boxes(crop: tuple[int, int, int, int], rows: int, cols: int
               ) -> list[tuple[float, float, float, float]]:
    """Pixel boxes (left, top, right, bottom) of each tile of ``crop``, row by row."""
    left, top, right, bottom = crop
    width, height = (right - left) / cols, (bottom - top) / rows
    return [
        (left + c * width, top + r * height, left + (c + 1) * width, top + (r + 1) * height)
        for r in range(rows) for c in range(cols)
    ]


def tile_thumbnails(image: Image.Image, crop: tuple[int, int, int, int], rows: int,
                    cols: int, size: int) -> np.ndarray:
    """Area-averaged ``size`` x ``size`` thumbnails of every tile, (rows*cols, s, s, 3) uint8.

    Parameters
    ----------
    image : PIL.Image.Image
        The upright RGB target.
    crop : tuple of int
        The part of the target the mosaic covers.
    rows, cols : int
        The grid.
    size : int
        Thumbnail side.
    """
    boxes = tile_boxes(crop, rows, cols)
    scale = max(1, int(min(boxes[0][2] - boxes[0][0], boxes[0][3] - boxes[0][1]) // size))
    if scale >= 2:
        # Shrink the whole crop once (area average), then cut tiles from the small image.
        small = image.reduce(scale, box=crop)
        sx = small.width / (crop[2] - crop[0])
        sy = small.height / (crop[3] - crop[1])
        boxes = [((a - crop[0]) * sx, (b - crop[1]) * sy, (c - crop[0]) * sx,
                  (d - crop[1]) * sy) for a, b, c, d in boxes]
        image = small
    return np.stack([
        np.asarray(image.resize((size, size), Image.Resampling.BOX, box=box))
        for box in boxes
    ])
