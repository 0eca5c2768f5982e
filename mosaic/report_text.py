"""The report's text from a run's metrics: numbers as the reports write them, summary rows.

Shared by the HTML page (:mod:`mosaic.report_html`) and the markdown report
(:mod:`mosaic.report`); everything here reads a
``metrics.json`` mapping in which any key may be missing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def number_text(value: object) -> str:
    """A number as the markdown report writes it (4 significant digits), else ``str``."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def cost_text(value: float | None) -> str:
    """A mean error as the blog writes it: 3 significant digits (0.093, 0.0069)."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.3g}"


def weights_line(metrics: Mapping[str, Any]) -> str:
    """The tile weights in one line, for both reports (missing keys allowed)."""
    settings = metrics.get("weights") or {}
    mode = settings.get("mode", "none")
    faces = metrics.get("faces_found")
    found = "" if faces is None else (
        f"{faces} face(s), people {100 * (metrics.get('person_fraction') or 0):.0f}% of "
        "target; ")
    if mode == "none":
        return found + (metrics.get("weights_note") or "uniform")
    return (found + f"{mode}: face x{settings.get('face_weight', '?')}, person x"
            f"{settings.get('person_weight', '?')}, fall-off "
            f"{settings.get('falloff_tiles', '?')} tile")


def class_cell(costs: Mapping[str, Any] | None, name: str) -> str:
    """One class's mean cost and tile count ("0.0123 (96)"), or "" when unknown."""
    entry = (costs or {}).get(name) or {}
    value = entry.get("mean_cost")
    return "" if value is None else f"{value:.4g} ({entry.get('tiles', 0)})"


def _photos_line(metrics: Mapping[str, Any]) -> str:
    line = f"{metrics.get('photos_used', '?')} used of {metrics.get('photos_available', '?')}"
    if (metrics.get("max_uses") or 1) > 1:
        line += (f"; the most used fills {metrics.get('most_uses')} tiles (at most "
                 f"{metrics['max_uses']}), copies at least {metrics.get('closest_copies')} "
                 "tiles apart")
    return line


def summary_rows(metrics: Mapping[str, Any], rows: int, cols: int) -> list[list[object]]:
    """The summary table's rows (label, value), the markdown report's, without gaps.

    Parameters
    ----------
    metrics : mapping
        The run's ``metrics.json`` content; any key may be missing.
    rows, cols : int
        The grid.

    Returns
    -------
    list of [str, object]
    """
    quality = metrics.get("quality") or {}
    method = str(metrics.get("method", "?"))
    if metrics.get("solver"):
        method += f" ({metrics['solver']})"
    table: list[list[object]] = [
        ["output", metrics.get("output", "")],
        ["grid", f"{rows} x {cols} = {metrics.get('tiles', rows * cols)} tiles"],
        *([["detail", detail_line(metrics["detail"])]] if metrics.get("detail") else []),
        ["photos", _photos_line(metrics)],
        ["method", method],
    ]
    if metrics.get("method_reason"):
        table.append(["why this method", metrics["method_reason"]])
    if str(metrics.get("dask", "")).startswith(("tcp://", "tls://")):
        table.append(["computed on", f"Dask cluster {metrics['dask']}"])
    for label, value in (("metric", metrics.get("metric")),
                         ("mean cost", metrics.get("mean_cost")),
                         ("tile error (RGB MSE, 16 px cells)", quality.get("tile_mse_rgb")),
                         ("SSIM", quality.get("ssim"))):
        if value is not None:
            table.append([label, value])
    table.append(["tile weights", weights_line(metrics)])
    strength = metrics.get("color_correct") or 0
    table.append(["colour correction", f"{strength:g}: each tile shifted toward its cell's "
                  "mean colour (costs are the errors left after the shift)" if strength
                  else "none: every pixel is a photo's own"])
    return table


def detail_line(detail: Mapping[str, Any]) -> str:
    """What ``--detail`` did: how many tiles became quarters, and the cells placed."""
    if not detail["split_tiles"]:
        return f"{detail['mode']}: no face found, every tile whole"
    return (f"{detail['mode']}: {detail['split_tiles']} face tiles drawn as 2x2 quarter "
            f"tiles; {detail['cells']} cells, one photo each")


def gap_rows(metrics: Mapping[str, Any]) -> list[list[object]]:
    """Rows for the method's gap to its lower bound, the bound, and the peak memory."""
    rows: list[list[object]] = []
    gap, bound = metrics.get("gap"), metrics.get("lower_bound")
    if gap is not None:
        rows.append(["gap to the lower bound", f"{100 * float(gap):.3g}%"])
    if bound is not None:
        rows.append(["lower bound (objective)", bound])
    if metrics.get("peak_rss_mb") is not None:
        rows.append(["peak memory", f"{metrics['peak_rss_mb']} MB"])
    return rows
