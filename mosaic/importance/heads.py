"""Whole heads: a face's box grown to forehead, hair, ears and chin, and the tiles it touches.

A viewer reads every tile showing part of a face (forehead to chin, ear to ear, hair
included) as the face, so the weights and the face-tile measure both use this region,
not the FaceMesh hull (which stops at the brows' top and the cheeks). The head is the
ellipse inscribed in the face box grown by fixed fractions of the face's own size, so it
scales with the face whatever the image's resolution.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

HEAD_SIDES = 0.15
"""Growth on each side, in face widths: the FaceMesh hull ends at the cheeks, the ears
stand out about a sixth of the face's width beyond them."""
HEAD_ABOVE = 0.45
"""Growth above, in face heights: the hull's top (landmark 10, mid-forehead) is about
half a face height under the top of the hair."""
HEAD_BELOW = 0.1
"""Growth below, in face heights: the hull ends at the chin; a little margin for the
chin's underside and a beard."""

Ellipses = np.ndarray
"""(N, 4) float64: centre x, centre y, half width, half height, in target pixels."""


def head_ellipses(faces: Sequence[Sequence[float]], scale: float = 1.0) -> Ellipses:
    """The whole-head ellipse of every face box.

    Parameters
    ----------
    faces : sequence of (left, top, right, bottom)
        Face boxes in target pixels (:attr:`Detection.faces`, or boxes drawn by hand).
    scale : float
        Multiplies the three growths (:data:`HEAD_SIDES`, :data:`HEAD_ABOVE`,
        :data:`HEAD_BELOW`); 0 gives the ellipse inscribed in the box itself.

    Returns
    -------
    ndarray of float64, shape (N, 4)
        ``(cx, cy, rx, ry)`` per face, in target pixels.
    """
    boxes = np.asarray(faces, dtype=np.float64).reshape(-1, 4)
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    left = boxes[:, 0] - scale * HEAD_SIDES * width
    right = boxes[:, 2] + scale * HEAD_SIDES * width
    top = boxes[:, 1] - scale * HEAD_ABOVE * height
    bottom = boxes[:, 3] + scale * HEAD_BELOW * height
    return np.column_stack([(left + right) / 2, (top + bottom) / 2,
                            (right - left) / 2, (bottom - top) / 2])


def rectangles_touching(ellipses: Ellipses, x_edges: np.ndarray, y_edges: np.ndarray
                        ) -> np.ndarray:
    """Which cells of a grid overlap (or touch) at least one ellipse.

    The test is exact: in coordinates where the ellipse is the unit circle, a cell is a
    rectangle, and it meets the circle when its point nearest the centre (the centre
    clamped into it, one axis at a time) is less than 1 away; a cell meeting the ellipse
    in a single point does not overlap it.

    Parameters
    ----------
    ellipses : ndarray, shape (N, 4)
        From :func:`head_ellipses`.
    x_edges, y_edges : ndarray, shapes (W + 1,) and (H + 1,)
        Increasing cell boundaries, in target pixels.

    Returns
    -------
    ndarray of bool, shape (H, W)
    """
    x_edges, y_edges = np.asarray(x_edges, float), np.asarray(y_edges, float)
    touched = np.zeros((len(y_edges) - 1, len(x_edges) - 1), dtype=bool)
    for cx, cy, rx, ry in np.asarray(ellipses, dtype=np.float64).reshape(-1, 4):
        if rx <= 0 or ry <= 0:
            continue
        # Offset of each column's (row's) nearest point to the centre: 0 when it spans it.
        dx = (np.clip(cx, x_edges[:-1], x_edges[1:]) - cx) / rx
        dy = (np.clip(cy, y_edges[:-1], y_edges[1:]) - cy) / ry
        touched |= dy[:, None] ** 2 + dx[None, :] ** 2 < 1.0  # a shared point is no overlap
    return touched


def tiles_touching(ellipses: Ellipses, crop: Sequence[float], rows: int, cols: int
                   ) -> np.ndarray:
    """Which tiles of the grid over ``crop`` overlap at least one ellipse.

    Parameters
    ----------
    ellipses : ndarray, shape (N, 4)
        From :func:`head_ellipses`.
    crop : (left, top, right, bottom)
        The part of the target the grid covers.
    rows, cols : int
        The grid; tiles numbered row by row.

    Returns
    -------
    ndarray of bool, shape (rows * cols,)
    """
    left, top, right, bottom = (float(v) for v in crop)
    x_edges = np.linspace(left, right, cols + 1)
    y_edges = np.linspace(top, bottom, rows + 1)
    return rectangles_touching(ellipses, x_edges, y_edges).ravel()
