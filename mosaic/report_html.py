"""The run report as one self-contained HTML page, with the blog's figures.

The page holds everything it shows: pictures and charts are embedded as ``data:`` URIs
and the style sheet is inline, so the one file can be mailed, opened from ``file://``
with no network, or attached to a Prefect artifact. A Content-Security-Policy that
allows nothing but inline styles and ``data:`` images makes the browser refuse any
resource from elsewhere, should one ever slip in.

Sections: the summary table; the target next to each method's mosaic; mean error per
method and how much lower it is than greedy's; the per-class (face, person,
background) costs; histograms of per-tile error; the chosen method's error over the
grid; the tile weights; timings, gap and memory. Charts are drawn by
:mod:`mosaic.report_figures`.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mosaic import __version__
from mosaic.cells import CellGrid
from mosaic.files import write_bytes_atomic
from mosaic.outputs import TEXT_MARK, check_replaceable
from mosaic.report_figures import error_heat_map, error_histogram, mean_error_bars
from mosaic.report_text import (
    class_cell,
    cost_text,
    gap_rows,
    number_text,
    summary_rows,
    weights_line,
)

DISPLAY_HEIGHT = 360
"""CSS pixels a picture is shown tall (the side-by-side row)."""
_PIXEL_HEIGHT = 2 * DISPLAY_HEIGHT
"""Pixels a picture is stored tall at most: twice its display, sharp on phone screens."""
CLASSES = ("face", "person", "background")


@dataclass(frozen=True)
class MethodRun:
    """One solve the report compares (the chosen one first)."""

    label: str
    """The method, e.g. "optimal", "greedy", "optimal, unweighted"."""
    mean_cost: float
    """Mean per-tile cost (MSE in [0, 1]) of this solve."""
    objective: float
    seconds: float
    tile_costs: np.ndarray
    """Per-tile cost, row-major, length rows * cols."""
    picture: Image.Image
    """A small picture of this method's mosaic (see :func:`method_picture`)."""
    class_costs: Mapping[str, Any] | None
    """Like :func:`mosaic.importance.class_costs`: ``{"face": {"mean_cost", "tiles"}, ...}``."""


# --- pictures ----------------------------------------------------------------------------


def method_picture(thumbs: np.ndarray, photo_of_tile: np.ndarray, tile_crop: np.ndarray | None,
                   rows: int, cols: int, split: tuple[int, ...] = ()) -> Image.Image:
    """The mosaic of one assignment drawn from the library's thumbnails.

    Parameters
    ----------
    thumbs : ndarray of uint8, shape (N, K, s, s, 3)
        Each photo's K crops as ``s x s`` thumbnails (shape (N, s, s, 3) counts as K = 1).
    photo_of_tile : ndarray of int, shape (rows * cols,)
        The photo of each tile, row-major.
    tile_crop : ndarray of int, shape (rows * cols,), or None
        The crop (0..K-1) of each tile's photo; None means crop 0 everywhere.
    rows, cols : int
        The grid.
    split : tuple of int
        Tiles drawn as four quarters (:mod:`mosaic.cells`): ``photo_of_tile`` and
        ``tile_crop`` then list cells, and each quarter shows its photo at half size.

    Returns
    -------
    PIL.Image.Image
        RGB, ``cols * s`` wide and ``rows * s`` tall (``s`` rounded down to even with
        ``split``).

    Raises
    ------
    ValueError
        Shapes that do not fit together.
    """
    library = np.asarray(thumbs)
    if library.ndim == 4:
        library = library[:, None]
    if library.ndim != 5 or library.shape[-1] != 3 or library.shape[2] != library.shape[3]:
        raise ValueError(f"thumbs must be (N, K, s, s, 3), not {library.shape}")
    photos = np.asarray(photo_of_tile, dtype=np.intp).ravel()
    grid = CellGrid(rows, cols, split)
    if photos.size != grid.count:
        raise ValueError(f"photo_of_tile has {photos.size} tiles, the grid {rows} x {cols}"
                         f" {grid.count} cells")
    crops = (np.zeros_like(photos) if tile_crop is None
             else np.asarray(tile_crop, dtype=np.intp).ravel())
    if crops.shape != photos.shape:
        raise ValueError(f"tile_crop has {crops.size} tiles, photo_of_tile {photos.size}")
    side = library.shape[2]
    cells = library[photos, crops]  # (T, s, s, 3), one gather, no Python loop over tiles
    if split:
        cells, rows, cols, side = _unit_cells(cells, grid), 2 * rows, 2 * cols, side // 2
    # (rows, cols, s, s, 3) -> (rows, s, cols, s, 3): each pixel row of the picture then
    # runs through one grid row's cells in turn, so a plain reshape lays the picture out.
    grid = cells.reshape(rows, cols, side, side, 3).transpose(0, 2, 1, 3, 4)
    pixels = np.ascontiguousarray(grid.reshape(rows * side, cols * side, 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB")


def _unit_cells(cells: np.ndarray, grid: CellGrid) -> np.ndarray:
    """Cell pictures (C, s, s, 3) cut into the half-tile units (4 rows cols, s/2, s/2, 3).

    A whole tile's picture gives its four units a quadrant each; a quarter's is shrunk
    (2x2 average) onto its one unit.
    """
    half = cells.shape[1] // 2
    units = np.zeros((4 * grid.rows * grid.cols, half, half, 3), np.uint8)
    for cell, (_, quarter, top, left, _) in enumerate(grid.table.tolist()):
        picture = cells[cell, :2 * half, :2 * half]
        first = top * 2 * grid.cols + left
        if quarter >= 0:
            shrunk = picture.reshape(half, 2, half, 2, 3).mean(axis=(1, 3))
            units[first] = np.rint(shrunk).astype(np.uint8)
            continue
        for dy in (0, 1):
            for dx in (0, 1):
                units[first + dy * 2 * grid.cols + dx] = picture[dy * half:(dy + 1) * half,
                                                                 dx * half:(dx + 1) * half]
    return units


def _display_size(image: Image.Image) -> tuple[int, int]:
    width = max(1, round(image.width * DISPLAY_HEIGHT / max(1, image.height)))
    return width, DISPLAY_HEIGHT


def _stored(image: Image.Image) -> Image.Image:
    """``image`` in RGB, shrunk to at most twice its display height (never enlarged)."""
    rgb = image.convert("RGB")
    if rgb.height <= _PIXEL_HEIGHT:
        return rgb
    width = max(1, round(rgb.width * _PIXEL_HEIGHT / rgb.height))
    # reducing_gap: a fast box pre-shrink, then Lanczos; a 5,000-px mosaic shrinks in
    # about half the time (0.1 s instead of 0.2 s here) and looks the same.
    return rgb.resize((width, _PIXEL_HEIGHT), Image.Resampling.LANCZOS, reducing_gap=3.0)


def data_uri(data: bytes, mime: str) -> str:
    """``data:`` URI of ``data`` (base64), to embed a file in the page."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _jpeg_uri(image: Image.Image) -> str:
    buffer = io.BytesIO()
    _stored(image).save(buffer, format="JPEG", quality=85, optimize=True)
    return data_uri(buffer.getvalue(), "image/jpeg")


def _png_uri(image: Image.Image) -> str:
    buffer = io.BytesIO()
    _stored(image).save(buffer, format="PNG", optimize=False)
    return data_uri(buffer.getvalue(), "image/png")


def _img(src: str, alt: str, size: tuple[int, int] | None = None) -> str:
    # width/height give the display size before the picture decodes (no layout jump);
    # the style sheet's max-width/height:auto then shrinks it on a narrow screen.
    dims = f' width="{size[0]}" height="{size[1]}"' if size else ""
    return f'<img src="{src}" alt="{html.escape(alt)}"{dims}>'


def _figure(image_html: str, caption: str) -> str:
    return f"<figure>{image_html}<figcaption>{html.escape(caption)}</figcaption></figure>"


# --- text and tables ---------------------------------------------------------------------


def _table(header: Sequence[str] | None, rows: Sequence[Sequence[object]]) -> str:
    """An HTML table, every cell escaped; wrapped so it scrolls sideways on a phone."""
    head = ("" if header is None else "<thead><tr>" + "".join(
        f"<th>{html.escape(str(cell))}</th>" for cell in header) + "</tr></thead>")
    body = "".join("<tr>" + "".join(f"<td>{html.escape(number_text(cell))}</td>" for cell in row)
                   + "</tr>" for row in rows)
    return f'<div class="scroll"><table>{head}<tbody>{body}</tbody></table></div>'


def _relative_change(base: float, ours: float) -> str | None:
    """'26% lower' / '3% higher' / 'the same' of ``ours`` against ``base``."""
    if not (math.isfinite(base) and math.isfinite(ours)) or base <= 0:
        return None
    change = 100 * (base - ours) / base
    # Whole percent as the blog writes it; one decimal only when that would read "0%".
    shown = f"{abs(change):.0f}" if abs(change) >= 0.95 else f"{abs(change):.1f}"
    if shown in ("0.0", "0"):
        return "the same"
    return f"{shown}% {'lower' if change > 0 else 'higher'}"


def _is_greedy(method: MethodRun) -> bool:
    return method.label.strip().lower().startswith("greedy")


def comparison_sentences(methods: Sequence[MethodRun]) -> list[str]:
    """Each baseline's mean error against the chosen method's, greedy's first.

    Parameters
    ----------
    methods : sequence of MethodRun
        The chosen solve first.

    Returns
    -------
    list of str
        E.g. ``"Greedy 0.093 → optimal 0.069: 26% lower"``; empty with one method, or
        when no mean is comparable.
    """
    if len(methods) < 2:
        return []
    chosen, baselines = methods[0], list(methods[1:])
    # Greedy is the baseline the blog quotes: the reduction optimal assignment buys.
    baselines.sort(key=lambda method: not _is_greedy(method))
    sentences = []
    for base in baselines:
        change = _relative_change(float(base.mean_cost), float(chosen.mean_cost))
        if change is None:
            continue
        label = base.label[:1].upper() + base.label[1:]
        sentences.append(f"{label} {cost_text(base.mean_cost)} → {chosen.label} "
                         f"{cost_text(chosen.mean_cost)}: {change}")
    return sentences


def methods_table(methods: Sequence[MethodRun]) -> str:
    """The methods table: mean error, per-class mean (tiles) when known, objective, seconds.

    Parameters
    ----------
    methods : sequence of MethodRun
        The chosen solve first.

    Returns
    -------
    str
        An HTML table; the face, person and background columns only when some method
        has class costs.
    """
    classes = any(method.class_costs for method in methods)
    header = ["method", "mean error", *(("face tiles", "person tiles", "background")
                                        if classes else ()), "objective", "solve s"]
    rows = [[method.label, cost_text(method.mean_cost),
             *((class_cell(method.class_costs, name) for name in CLASSES) if classes else ()),
             method.objective, method.seconds] for method in methods]
    return _table(header, rows)


def _pictures_section(target: Image.Image, methods: Sequence[MethodRun]) -> str:
    figures = [_figure(_img(_jpeg_uri(target), "The target", _display_size(target)),
                       "Target")]
    for method in methods:
        caption = f"{method.label}: mean error {cost_text(method.mean_cost)}"
        figures.append(_figure(_img(_jpeg_uri(method.picture), f"Mosaic, {method.label}",
                                    _display_size(method.picture)), caption))
    return ('<h2>Target and mosaics</h2><p>Each mosaic is drawn from the thumbnails its photos '
            'were scored with, so the methods are compared as the solver saw them.</p>'
            '<div class="row">' + "".join(figures) + "</div>")


def _cost_label(metrics: Mapping[str, Any]) -> str:
    metric = metrics.get("metric")
    return f"cost per tile ({metric} MSE)" if metric else "cost per tile (MSE)"


def _methods_section(metrics: Mapping[str, Any], methods: Sequence[MethodRun]) -> str:
    parts = ["<h2>Mean error per method</h2>"]
    sentences = comparison_sentences(methods)
    if sentences:
        parts.append('<ul class="headline">' + "".join(
            f"<li>{html.escape(sentence)}</li>" for sentence in sentences) + "</ul>")
    elif len(methods) == 1:
        note = "One method only, no baseline to compare with."
        if metrics.get("method") == "regional":
            note = ("No greedy or unweighted baseline: they need the dense tiles x photos "
                    "matrix that the regional method avoids.")
        parts.append(f"<p>{html.escape(note)}</p>")
    label = _cost_label(metrics)
    bars = mean_error_bars([m.label for m in methods], [m.mean_cost for m in methods],
                           f"mean {label}")
    parts.append(_figure(_img(data_uri(bars, "image/png"), "Mean error per method"),
                         "Mean error per method (lower is better)"))
    if any(method.class_costs for method in methods):
        parts.append("<p>Per class: mean cost (tiles) over face, person and background "
                     "tiles.</p>")
    parts.append(methods_table(methods))
    return "".join(parts)


def _charts_section(metrics: Mapping[str, Any], methods: Sequence[MethodRun], rows: int,
                    cols: int) -> str:
    label = _cost_label(metrics)
    histogram = error_histogram([m.label for m in methods], [m.tile_costs for m in methods],
                                label)
    chosen = methods[0]
    heat = error_heat_map(chosen.tile_costs, rows, cols, label)
    return ("<h2>Error per tile</h2>"
            + _figure(_img(data_uri(histogram, "image/png"), "Histogram of per-tile error"),
                      "Per-tile error of each method (shared bins)")
            + _figure(_img(data_uri(heat, "image/png"), f"Tile error over the grid, "
                           f"{chosen.label}"),
                      f"Error of each tile over the grid, {chosen.label} (dark = good match, "
                      "yellow = poor)"))


def _weights_section(metrics: Mapping[str, Any], weight_map: Image.Image | None) -> str:
    if weight_map is None:
        note = metrics.get("weights_note")
        text = "The tiles were weighted uniformly" + (f" ({note})." if note else ".")
        return f"<h2>Tile weights</h2><p>{html.escape(text)}</p>"
    return ("<h2>Tile weights</h2>"
            + _figure(_img(_png_uri(weight_map), "Tile weights"),
                      "Tile weights (faces and people get the best photos): "
                      + weights_line(metrics)))


def _timings_section(metrics: Mapping[str, Any]) -> str:
    timings = metrics.get("timings") or {}
    parts = ["<h2>Timings</h2>"]
    if timings:
        parts.append(_table(["step", "seconds"], [[k, v] for k, v in timings.items()]))
    extra = gap_rows(metrics)
    if extra:
        parts.append(_table(None, extra))
    if not timings and not extra:
        parts.append("<p>Not recorded.</p>")
    return "".join(parts)


_CSS = """
body{font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;
max-width:72rem;margin:0 auto;padding:1rem}
h1{font-size:1.6rem;margin:.2rem 0 1rem}h2{font-size:1.25rem;margin:2rem 0 .6rem}
table{border-collapse:collapse;font-size:.95rem}
th,td{border:1px solid #ddd;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#f4f4f4}.scroll{overflow-x:auto}
.row{display:flex;flex-wrap:wrap;gap:1rem;align-items:flex-start}
.row figure{flex:1 1 10rem;max-width:24rem}.row img{width:100%}
figure{margin:0 0 1rem}figcaption{font-size:.9rem;color:#555;margin-top:.25rem}
img{max-width:100%;height:auto;display:block}
.headline{font-size:1.1rem;font-weight:600}
footer{margin-top:2rem;font-size:.8rem;color:#777}
"""
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
"""Nothing loads from anywhere but the page itself (see the module docstring)."""


def _check(methods: Sequence[MethodRun], rows: int, cols: int) -> None:
    if not methods:
        raise ValueError("report_html needs at least one method (the chosen one)")
    for method in methods:
        size = np.asarray(method.tile_costs).size
        if size != rows * cols:
            raise ValueError(f"{method.label}: {size} tile costs for a {rows} x {cols} grid")


def report_html(metrics: Mapping[str, Any], target: Image.Image, methods: Sequence[MethodRun],
                weight_map: Image.Image | None, rows: int, cols: int) -> str:
    """The whole report page as one string, starting with TEXT_MARK on its first line.

    Parameters
    ----------
    metrics : mapping
        The run's ``metrics.json`` content (:func:`mosaic.pipeline.report.build_metrics`
        plus quality); missing keys leave their line out.
    target : PIL.Image.Image
        The part of the target the mosaic covers.
    methods : sequence of MethodRun
        The chosen solve first, then the baselines (none for a regional run).
    weight_map : PIL.Image.Image or None
        :func:`mosaic.importance.weight_map_image`, or None for uniform weights.
    rows, cols : int
        The grid.

    Returns
    -------
    str
        A self-contained HTML page: every picture and chart is a ``data:`` URI.

    Raises
    ------
    ValueError
        No method, or a method whose tile costs do not fill the grid.
    """
    _check(methods, rows, cols)
    output = metrics.get("output")
    title = "Mosaic report" + (f": {Path(str(output)).name}" if output else "")
    body = "".join([
        f"<h1>{html.escape(title)}</h1>",
        _table(None, summary_rows(metrics, int(metrics.get("rows", rows)),
                                  int(metrics.get("cols", cols)))),
        _pictures_section(target, methods),
        _methods_section(metrics, methods),
        _charts_section(metrics, methods, rows, cols),
        _weights_section(metrics, weight_map),
        _timings_section(metrics),
        f"<footer>Written by photo-mosaic {html.escape(__version__)}.</footer>",
    ])
    return (f"{TEXT_MARK}\n<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
            # An empty icon: otherwise the browser asks for /favicon.ico.
            '<link rel="icon" href="data:,">'
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>"
            f"<body>{body}</body></html>\n")


def write_report_html(path: str | os.PathLike[str], html: str) -> Path:
    """Write the HTML report atomically, unless a file of the user's is at ``path``.

    Parameters
    ----------
    path : path-like
        Where to write (``report.html`` in the run folder).
    html : str
        From :func:`report_html` (it starts with this tool's mark).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    MosaicError
        ``path`` holds a file this tool did not write (see
        :func:`mosaic.outputs.check_replaceable`).
    """
    check_replaceable(path, "the report")
    write_bytes_atomic(path, html.encode("utf-8"))
    return Path(path)
