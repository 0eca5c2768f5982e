"""The HTML report's charts, drawn with matplotlib and returned as PNG bytes.

Only matplotlib's object API is used (:class:`~matplotlib.figure.Figure` on a
:class:`~matplotlib.backends.backend_agg.FigureCanvasAgg`), never ``pyplot``: pyplot keeps
global state (current figure, backend) that is not thread-safe, and the report may be
written from a Prefect worker thread while other figures are drawn elsewhere. Every
figure is sized by what it shows, not by the number of tiles: histograms are counted with
NumPy first and the heat map is one image pixel per tile, so 100,000 tiles draw about as
fast as 1,600.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 100
"""Figure resolution; charts are about 650 px wide, sharp enough on a phone."""
HISTOGRAM_BINS = 40
_WIDTH_IN = 6.5


def figure_png(figure: Figure) -> bytes:
    """Render ``figure`` with Agg and return the PNG file's bytes.

    Parameters
    ----------
    figure : matplotlib.figure.Figure
        A figure not yet attached to a canvas.

    Returns
    -------
    bytes
        The PNG.
    """
    canvas = FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    # metadata={"Software": None}: the PNG carries no matplotlib version, so the same run
    # gives the same bytes under another matplotlib patch release.
    canvas.print_png(buffer, metadata={"Software": None})
    return buffer.getvalue()


def _finite(costs: np.ndarray) -> np.ndarray:
    values = np.asarray(costs, dtype=np.float64).ravel()
    return values[np.isfinite(values)]


def shared_bin_edges(costs: Sequence[np.ndarray], bins: int = HISTOGRAM_BINS) -> np.ndarray:
    """Bin edges covering every method's finite costs, so the histograms line up.

    Parameters
    ----------
    costs : sequence of ndarray
        Per-tile costs of each method.
    bins : int
        Number of bins.

    Returns
    -------
    ndarray, shape (bins + 1,)
        From 0 (costs are never negative) to the largest cost; ``[0, 1]`` when there
        is nothing finite to show.
    """
    finite = [_finite(values) for values in costs]
    high = max((float(values.max()) for values in finite if values.size), default=0.0)
    low = min((float(values.min()) for values in finite if values.size), default=0.0)
    low = min(low, 0.0)
    if not high > low:
        high = low + 1.0
    return np.linspace(low, high, bins + 1)


def error_histogram(labels: Sequence[str], costs: Sequence[np.ndarray], xlabel: str
                    ) -> bytes:
    """Overlaid histograms of per-tile cost, one outline per method, shared bins.

    Outlines (not filled bars) keep every method visible where they overlap; a dashed
    line marks each method's mean in the same colour.

    Parameters
    ----------
    labels : sequence of str
        Method names, in the order of ``costs``.
    costs : sequence of ndarray
        Per-tile costs of each method.
    xlabel : str
        The x axis's label (what the cost measures).

    Returns
    -------
    bytes
        A PNG.
    """
    edges = shared_bin_edges(costs)
    figure = Figure(figsize=(_WIDTH_IN, 3.6), dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    for index, (label, values) in enumerate(zip(labels, costs, strict=True)):
        finite = _finite(values)
        counts, _ = np.histogram(finite, bins=edges)
        colour = f"C{index % 10}"
        axes.stairs(counts, edges, label=label, color=colour, linewidth=1.8)
        if finite.size:
            axes.axvline(float(finite.mean()), color=colour, linestyle="--", linewidth=1)
    axes.set_xlabel(xlabel)
    axes.set_ylabel("tiles")
    axes.set_xlim(float(edges[0]), float(edges[-1]))
    axes.set_ylim(bottom=0)
    if labels:
        axes.legend(title="dashed: mean", frameon=False)
    return figure_png(figure)


def mean_error_bars(labels: Sequence[str], means: Sequence[float], xlabel: str) -> bytes:
    """Horizontal bars of each method's mean cost, the value written at each bar's end.

    Parameters
    ----------
    labels : sequence of str
        Method names (the chosen one first, drawn at the top).
    means : sequence of float
        Mean per-tile cost of each method.
    xlabel : str
        The x axis's label.

    Returns
    -------
    bytes
        A PNG.
    """
    figure = Figure(figsize=(_WIDTH_IN, 0.9 + 0.45 * max(1, len(labels))), dpi=DPI,
                    layout="constrained")
    axes = figure.add_subplot()
    positions = np.arange(len(labels))
    given = np.asarray(means, dtype=np.float64)
    values = np.where(np.isfinite(given), given, 0.0)  # an unknown mean: no bar, "n/a"
    bars = axes.barh(positions, values, color=[f"C{i % 10}" for i in range(len(labels))])
    axes.bar_label(bars, padding=3, labels=[f"{value:.3g}" if np.isfinite(value) else "n/a"
                                            for value in given])
    axes.set_yticks(positions, labels=list(labels))
    axes.invert_yaxis()  # the chosen method (first) on top, as in the tables
    axes.set_xlabel(xlabel)
    axes.set_xlim(0, max(float(values.max(initial=0.0)) * 1.18, 1e-12))
    axes.spines[["top", "right"]].set_visible(False)
    return figure_png(figure)


def error_heat_map(tile_costs: np.ndarray, rows: int, cols: int, label: str) -> bytes:
    """The chosen method's cost of each tile over the grid, with a colour bar.

    Parameters
    ----------
    tile_costs : ndarray, shape (rows * cols,)
        Per-tile cost, row-major.
    rows, cols : int
        The grid.
    label : str
        The colour bar's label.

    Returns
    -------
    bytes
        A PNG, about 650 px on its long side.
    """
    grid = np.asarray(tile_costs, dtype=np.float64).reshape(rows, cols)
    # A masked array: a tile without a finite cost is left blank instead of breaking the
    # colour scale.
    shown = np.ma.masked_invalid(grid)
    long_side = 5.0  # plus the colour bar: about as wide as the other charts
    aspect = rows / cols
    size = (long_side, long_side * aspect) if aspect <= 1 else (long_side / aspect, long_side)
    # Room for the colour bar and the axis labels.
    figure = Figure(figsize=(size[0] + 1.4, size[1] + 0.7), dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    # interpolation="nearest" at the grid's own resolution: one array cell per tile, so a
    # 316 x 316 grid costs no more than drawing a 650-px picture.
    image = axes.imshow(shown, cmap="viridis", interpolation="nearest", aspect="equal")
    colour_bar = figure.colorbar(image, ax=axes, shrink=0.85)
    colour_bar.set_label(label)
    axes.set_xlabel("column")
    axes.set_ylabel("row")
    return figure_png(figure)
