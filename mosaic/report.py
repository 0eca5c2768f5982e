"""Measuring a mosaic and writing its report.

Quality is measured the same way for every tool, so mosaics from other programs can be
compared with ours: the mosaic and the target crop are both shrunk (area average) so
that every tile becomes ``cell x cell`` pixels (16 by default); the *tile error* is the
mean RGB MSE of those cells (values in [0, 1]) and *SSIM* is
``skimage.metrics.structural_similarity`` on the same two images.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from skimage.metrics import structural_similarity

from mosaic.files import atomic_path, write_bytes_atomic
from mosaic.outputs import OUTPUT_FORMATS, TEXT_MARK, check_replaceable, image_exif
from mosaic.report_text import class_cell, detail_line, weights_line

QUALITY_CELL = 16


def shrink_to_cells(image: Image.Image, rows: int, cols: int, cell: int = QUALITY_CELL
                    ) -> np.ndarray:
    """Area-average ``image`` to ``cols*cell`` x ``rows*cell`` pixels, float in [0, 1]."""
    small = image.convert("RGB").resize((cols * cell, rows * cell), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float64) / 255.0


def mosaic_quality(mosaic: Image.Image, target: Image.Image, rows: int, cols: int,
                   cell: int = QUALITY_CELL) -> dict[str, float]:
    """Tile error (RGB MSE of ``cell`` x ``cell`` tiles) and SSIM of a mosaic vs its target.

    Parameters
    ----------
    mosaic : PIL.Image.Image
        The rendered mosaic.
    target : PIL.Image.Image
        The part of the target the mosaic covers (same aspect).
    rows, cols : int
        The mosaic's grid.
    cell : int
        Pixels per tile side at which both are compared.

    Returns
    -------
    dict
        ``tile_mse_rgb`` (mean over tiles, [0, 1], lower is better), ``ssim``
        ([-1, 1], higher is better), ``cell``.
    """
    ours = shrink_to_cells(mosaic, rows, cols, cell)
    reference = shrink_to_cells(target, rows, cols, cell)
    mse = float(np.mean((ours - reference) ** 2))
    ssim = float(structural_similarity(ours, reference, channel_axis=2, data_range=1.0))
    return {"tile_mse_rgb": mse, "ssim": ssim, "cell": cell}


_HEAT = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]],
                 dtype=np.float64)


def heat_map(values: np.ndarray, rows: int, cols: int, cell: int = 8) -> Image.Image:
    """Per-tile values as a colour image (dark purple = low, yellow = high)."""
    grid = np.asarray(values, dtype=np.float64).reshape(rows, cols)
    low, high = float(grid.min()), float(grid.max())
    scaled = (grid - low) / (high - low) if high > low else np.zeros_like(grid)
    position = scaled * (len(_HEAT) - 1)
    lower = np.floor(position).astype(int).clip(0, len(_HEAT) - 2)
    frac = (position - lower)[..., None]
    colours = _HEAT[lower] * (1 - frac) + _HEAT[lower + 1] * frac
    image = Image.fromarray(colours.astype(np.uint8), "RGB")
    return image.resize((cols * cell, rows * cell), Image.Resampling.NEAREST)


def save_image_atomic(image: Image.Image, path: str | os.PathLike[str], quality: int = 85
                      ) -> Path:
    """Save ``image`` atomically (JPEG quality ``quality`` when the suffix is .jpg)."""
    out = Path(path)
    options: dict[str, Any] = {"exif": image_exif()}
    if out.suffix.lower() in {".jpg", ".jpeg"}:
        options["quality"] = quality
    check_replaceable(out, "the report picture")
    with atomic_path(out) as tmp:
        image.save(tmp, format=OUTPUT_FORMATS.get(out.suffix.lower()), **options)
    return out


def side_by_side(target: Image.Image, mosaic: Image.Image, height: int = 480) -> Image.Image:
    """The target and the mosaic next to each other, ``height`` pixels tall."""
    def scaled(image: Image.Image) -> Image.Image:
        width = max(1, round(image.width * height / image.height))
        return image.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)

    left, right = scaled(target), scaled(mosaic)
    canvas = Image.new("RGB", (left.width + right.width + 8, height), (255, 255, 255))
    canvas.paste(left, (0, 0))
    canvas.paste(right, (left.width + 8, 0))
    return canvas


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def cost_histogram(costs: np.ndarray, bins: int = 10, width: int = 40) -> str:
    """A text histogram of per-tile costs, as a markdown code block."""
    counts, edges = np.histogram(costs, bins=bins)
    peak = max(int(counts.max()), 1)
    lines = [f"{edges[i]:.3f}-{edges[i + 1]:.3f} | {'#' * round(width * c / peak)} {c}"
             for i, c in enumerate(counts)]
    return "```\n" + "\n".join(lines) + "\n```"


def report_markdown(metrics: Mapping[str, object], comparison: Sequence[Mapping[str, object]],
                    tile_costs: np.ndarray, images: Mapping[str, str]) -> str:
    """The run report: summary, quality, methods compared, timings, histogram, images.

    Parameters
    ----------
    metrics : mapping
        The run's ``metrics.json`` content.
    comparison : sequence of mapping
        One entry per method: method, objective, mean_cost, seconds.
    tile_costs : ndarray
        Per-tile cost of the chosen assignment.
    images : mapping
        Caption -> relative image path to embed.
    """
    quality = metrics.get("quality", {})
    summary = markdown_table(["", ""], [
        ["output", f"`{metrics['output']}`"],
        ["grid", f"{metrics['rows']} x {metrics['cols']} = {metrics['tiles']} tiles"],
        *([["detail", detail_line(metrics["detail"])]] if metrics.get("detail") else []),
        ["photos", f"{metrics['photos_used']} used of {metrics['photos_available']}"
         + (f"; the most used fills {metrics['most_uses']} tiles (at most "
            f"{metrics['max_uses']}), copies at least {metrics.get('closest_copies')} tiles "
            "apart" if metrics.get("max_uses", 1) > 1 else "")],
        ["method", f"{metrics['method']} ({metrics.get('solver', '')})"],
        *([["why this method", metrics["method_reason"]]]
          if metrics.get("method_reason") else []),
        *([["computed on", f"Dask cluster {metrics['dask']}"]]
          if str(metrics.get("dask", "")).startswith(("tcp://", "tls://")) else []),
        ["metric", metrics["metric"]],
        ["mean cost", metrics["mean_cost"]],
        ["tile error (RGB MSE, 16 px cells)", quality.get("tile_mse_rgb", "")],
        ["SSIM", quality.get("ssim", "")],
        ["tile weights", weights_line(metrics)],
    ])
    methods = markdown_table(
        ["method", "mean cost", "face tiles", "person tiles", "background", "objective",
         "solve s"],
        [[c["method"], c["mean_cost"],
          *(class_cell(c.get("class_costs"), name) for name in ("face", "person", "background")),
          c["objective"],
          c["seconds"]] for c in comparison])
    timings = metrics.get("timings", {})
    timing_table = markdown_table(["step", "seconds"], [[k, v] for k, v in timings.items()])
    if len(comparison) == 1 and metrics.get("method") == "regional":
        methods += ("\n\nNo greedy or unweighted baseline: they need the dense tiles x "
                    "photos matrix that the regional method avoids.")
    parts = [
        "# Mosaic report", "", summary, "", "## Methods", "", methods, "",
        "## Timings", "", timing_table, "", "## Tile costs", "", cost_histogram(tile_costs),
    ]
    for caption, path in images.items():
        parts += ["", f"### {caption}", "", f"![{caption}]({path})"]
    return "\n".join(parts) + "\n"


def write_report(path: str | os.PathLike[str], text: str) -> Path:
    """Write the markdown report atomically, marked as this tool's (first line)."""
    check_replaceable(path, "the report")
    write_bytes_atomic(path, f"{TEXT_MARK}\n{text}".encode())
    return Path(path)
