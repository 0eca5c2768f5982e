"""What a run shows in the Prefect UI: its logs, a self-contained report and timings.

The report written next to a mosaic (``report.md``) links its images as files beside
it, which the Prefect UI cannot reach. The artifact copy embeds small JPEG thumbnails
as ``data:image/jpeg;base64`` URIs instead (a few tens of KB in all), which both Prefect
UIs render: the default one (``/v2``) allows ``data:image/`` sources explicitly, the
classic one passes them through.
"""

from __future__ import annotations

import base64
import io
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)

from mosaic.pipeline.results import ReportResult, RunTimes

PREVIEW_SIDE = 480
"""Longest side of the main preview (the target beside the mosaic), in pixels."""
FIGURE_SIDE = 240
"""Longest side of the other figures of the report (cost and weight maps)."""
SMALL_PNG_BYTES = 16_384
"""PNG figures this small are embedded as they are (sharper, and smaller than a JPEG of
the blocky cost map)."""
SHEET_CELL = 96
"""Side of one photo in the contact sheet of a scrape report."""
SHEET_PHOTOS = 12
"""Photos shown in the contact sheet of a scrape report."""

_IMAGE_LINK = re.compile(r"!\[(?P<alt>[^\]]*)\]\((?P<path>[^)\s]+)\)")


def route_logs() -> None:
    """Let the ``mosaic`` loggers' INFO records through to the run's logs in the UI.

    ``PREFECT_LOGGING_EXTRA_LOGGERS=mosaic`` (set by ``prefect.yaml`` and ``make ui``)
    attaches Prefect's API handler to the ``mosaic`` logger; its level decides what
    reaches the UI, and Python's default (WARNING, from the root logger) would drop the
    progress messages. The command line sets its own level before a run.
    """
    logger = logging.getLogger("mosaic")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)


def jpeg_data_uri(image: Image.Image, side: int, quality: int = 60) -> str:
    """A JPEG thumbnail of ``image`` (longest side at most ``side``) as a data URI.

    Parameters
    ----------
    image : PIL.Image.Image
        Any mode; converted to RGB.
    side : int
        Longest side of the thumbnail in pixels (never enlarged).
    quality : int
        JPEG quality.

    Returns
    -------
    str
        ``data:image/jpeg;base64,...``.
    """
    thumb = image.convert("RGB")
    thumb.thumbnail((side, side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    thumb.save(buffer, format="JPEG", quality=quality, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _embedded(path: Path, side: int) -> str | None:
    """The data URI of the image file at ``path``, or None when it cannot be read."""
    try:
        with Image.open(path) as image:
            if image.format == "PNG" and path.stat().st_size <= SMALL_PNG_BYTES:
                data = base64.b64encode(path.read_bytes()).decode("ascii")
                return f"data:image/png;base64,{data}"
            return jpeg_data_uri(image, side)
    except (OSError, UnidentifiedImageError, ValueError):
        return None


def self_contained(markdown: str, folder: str | Path) -> str:
    """Replace the relative image links of a report by embedded thumbnails.

    The first image becomes the preview (:data:`PREVIEW_SIDE`); the others are smaller
    (:data:`FIGURE_SIDE`). Links to absolute paths, URLs and missing files are kept.

    Parameters
    ----------
    markdown : str
        The report, with links such as ``![caption](comparison.jpg)``.
    folder : str or Path
        The folder the links are relative to.

    Returns
    -------
    str
        The report with ``data:`` URIs in place of the relative links.
    """
    base = Path(folder)
    count = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal count
        target = match["path"]
        if ":" in target or target.startswith("/"):
            return match[0]
        uri = _embedded(base / target, PREVIEW_SIDE if count == 0 else FIGURE_SIDE)
        if uri is None:
            return match[0]
        count += 1
        return f"![{match['alt']}]({uri})"

    return _IMAGE_LINK.sub(replace, markdown)


def contact_sheet(paths: Sequence[str | Path], cell: int = SHEET_CELL, columns: int = 6
                  ) -> Image.Image | None:
    """Square crops of some photos side by side (None when none can be read).

    Parameters
    ----------
    paths : sequence of path
        The photos, in display order; unreadable ones are left out.
    cell : int
        Side of each square in pixels.
    columns : int
        Squares per row.

    Returns
    -------
    PIL.Image.Image or None
        The sheet.
    """
    tiles: list[Image.Image] = []
    for path in paths:
        try:
            with Image.open(path) as photo:
                photo.draft("RGB", (cell * 2, cell * 2))
                upright = ImageOps.exif_transpose(photo).convert("RGB")
        except (OSError, UnidentifiedImageError, ValueError):
            continue
        tiles.append(ImageOps.fit(upright, (cell, cell), Image.Resampling.LANCZOS))
    if not tiles:
        return None
    columns = min(columns, len(tiles))
    rows = -(-len(tiles) // columns)
    sheet = Image.new("RGB", (columns * cell, rows * cell), (255, 255, 255))
    for index, tile in enumerate(tiles):
        sheet.paste(tile, ((index % columns) * cell, (index // columns) * cell))
    return sheet


def photos_preview(out_dir: str | Path, entries: Iterable[Mapping[str, Any]],
                   count: int = SHEET_PHOTOS) -> str:
    """A markdown section showing a few of the scraped photos (empty when there are none).

    Parameters
    ----------
    out_dir : str or Path
        The scrape's output folder.
    entries : iterable of mapping
        Manifest entries of the posts (``images`` lists ``file`` names).
    count : int
        Photos to show at most.

    Returns
    -------
    str
        ``## Preview`` and an embedded contact sheet, or ``""``.
    """
    files = [Path(out_dir) / image["file"] for entry in entries
             for image in entry.get("images", [])][:count]
    sheet = contact_sheet(files)
    if sheet is None:
        return ""
    uri = jpeg_data_uri(sheet, max(sheet.size))
    return f"\n## Preview\n\n![{len(files)} of the photos]({uri})\n"


def timing_rows(step_seconds: Mapping[str, float], cached: Iterable[str] = (),
                total: float | None = None) -> list[dict[str, Any]]:
    """Rows of a per-stage timing table: stage, seconds, and whether it came from the cache.

    Parameters
    ----------
    step_seconds : mapping
        Stage -> seconds, in run order.
    cached : iterable of str
        Stages taken from the cache.
    total : float, optional
        Wall-clock seconds of the whole run, added as a last ``total`` row.

    Returns
    -------
    list of dict
        ``{"stage", "seconds", "cached"}`` per stage.
    """
    from_cache = set(cached)
    rows = [{"stage": stage, "seconds": round(float(seconds), 3), "cached": stage in from_cache}
            for stage, seconds in step_seconds.items()]
    if total is not None:
        rows.append({"stage": "total", "seconds": round(float(total), 3), "cached": False})
    return rows


def publish_build_artifacts(reported: ReportResult, times: RunTimes) -> None:
    """Publish a build's report (``mosaic-report``) and timings (``mosaic-timings``).

    Parameters
    ----------
    reported : ReportResult
        What the report stage returned.
    times : RunTimes
        Compute seconds of each step in this run (0 for a cached step), the cached
        steps, and the wall-clock seconds of the run so far (the report included).
    """
    metrics = reported.metrics
    report_dir = Path(reported.report).parent
    create_markdown_artifact(markdown=self_contained(reported.markdown, report_dir),
                             key="mosaic-report", description=build_description(metrics))
    if metrics.get("report_html"):
        page = Path(metrics["report_html"]).resolve()
        create_link_artifact(link=page.as_uri(), link_text=f"HTML report: {page}",
                             key="mosaic-report-html",
                             description="The report with its figures, one file to open")
    steps = dict(times.seconds)
    steps["report"] = max(0.0, times.total - float(metrics["timings"]["total"]))
    create_table_artifact(table=timing_rows(steps, times.cached, times.total),
                          key="mosaic-timings",
                          description="Seconds per stage of this build (0 when cached)")


def build_description(metrics: Mapping[str, Any]) -> str:
    """One line saying what a build made and where: the description of its report."""
    width, height = metrics["output_size"]
    return (f"{metrics['output']} ({width}x{height} px, {metrics['rows']}x{metrics['cols']} "
            f"tiles, {metrics['method']})")


def publish_scrape_timings(step_seconds: Mapping[str, float], total: float) -> None:
    """Publish a scrape's per-stage timings as the table artifact ``instagram-timings``."""
    create_table_artifact(table=timing_rows(step_seconds, (), total), key="instagram-timings",
                          description="Seconds per stage of this scrape")


def scrape_description(summary: Mapping[str, Any]) -> str:
    """One line saying what a scrape saved and where: the description of its report."""
    failed = len(summary["failures"])
    gone = summary.get("posts_gone", 0) + summary.get("posts_partly_gone", 0)
    return (f"{summary['out_dir']} ({summary['images']} images of {summary['source']}"
            + (f", {gone} posts gone from the site" if gone else "")
            + (f", {failed} posts failed" if failed else "") + ")")


__all__ = ["build_description", "contact_sheet", "jpeg_data_uri", "photos_preview",
           "publish_build_artifacts", "publish_scrape_timings", "scrape_description",
           "self_contained", "timing_rows"]
