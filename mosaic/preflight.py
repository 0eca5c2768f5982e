"""Checks made before a build starts: whatever the user can fix is found before any work.

:func:`check_build` refuses, each in one line, what would otherwise fail late or destroy
something: an output that is the target, one of the photos or inside the photo folder; a
file of the user's at an output's name; a format that cannot be written and read back; a
poster its format cannot hold or the memory budget cannot render; a run folder that is
not writable or is a folder of the user's; a disk without room for the files planned.
The command line and the deployments both call it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mosaic.errors import MosaicError
from mosaic.images import open_rgb, upright_size
from mosaic.options import BuildOptions
from mosaic.outputs import (
    check_apart,
    check_output_format,
    check_output_pixels,
    check_replaceable,
    check_room,
    prepare_run_folder,
)
from mosaic.pipeline.assign import plan as plan_assignment
from mosaic.sources.folder import scan_photo_folder
from mosaic.viewer import check_deep_zoom_out, viewer_assets

REPORT_BYTES = 8_000_000
"""Room for the report, its pictures and Prefect's small result files."""


@dataclass(frozen=True)
class BuildPlan:
    """What a build is expected to make, from the photo files found (an upper bound).

    Attributes
    ----------
    photo_files : int
        Image files in the photo folder (distinct photos can only be fewer).
    rows, cols : int
        The grid planned for that many photos.
    width, height : int
        The poster in pixels.
    output_format : str
        Pillow's name of the output format.
    planned_bytes : dict
        Folder -> bytes the build will write there.
    """

    photo_files: int
    rows: int
    cols: int
    width: int
    height: int
    output_format: str
    planned_bytes: dict[Path, int]


def output_bytes(width: int, height: int, output_format: str) -> int:
    """A generous estimate of the poster's file size (uncompressed for TIFF and PNG)."""
    per_pixel = 3 if output_format in {"TIFF", "PNG"} else 1
    pyramid = 4 / 3 if output_format == "DZI" else 1  # the levels above the full size
    return round(pyramid * per_pixel * width * height)


def library_bytes(photos: int, crops: int, feature_size: int) -> int:
    """Thumbnails on disk: the resumable cache and the library's own copy."""
    return 2 * photos * crops * feature_size**2 * 3


def check_target(options: BuildOptions) -> tuple[int, int]:
    """The target's upright size, once it is known to be a readable picture.

    Raises
    ------
    MosaicError
        Missing, not a file, unreadable, or over ``--max-pixels``.
    """
    target = Path(options.target)
    if not target.is_file():
        raise MosaicError(f"target {target} does not exist or is not a file")
    size = upright_size(target, options.max_pixels)
    open_rgb(target, max_pixels=options.max_pixels, draft_size=64)  # it decodes, too
    return size


def check_build(options: BuildOptions) -> BuildPlan:
    """Check a build's inputs, outputs, run folder and disk before it starts.

    The run folder is created (or adopted) here; the metrics file's folder too.

    Parameters
    ----------
    options : BuildOptions
        The build, with its options already validated one by one.

    Returns
    -------
    BuildPlan
        The grid and poster planned from the photo files found.

    Raises
    ------
    MosaicError
        Anything that would make the build fail or replace a file of the user's.
    """
    options = options.resolved()
    photos = scan_photo_folder(str(options.photos), warn=False)  # the build warns when it lists
    files = photos.files
    options = options.with_crops_for(len(files))
    target_size = check_target(options)
    out, metrics = Path(options.out), Path(str(options.metrics))
    workdir = Path(str(options.workdir))
    deep_zoom = options.format == "dzi"
    for path, what in ((out, "`out`"), (metrics, "`metrics`")):
        if path.is_dir() and not (deep_zoom and path == out):
            raise MosaicError(f"{what} {path} is a folder; give a file name")
    for path, what in ((workdir, "`workdir`"), (out, "`out`"), (metrics, "`metrics`")):
        check_apart(path, what, options.target, photos)
    if deep_zoom:
        viewer_assets()  # before any work: the viewer's script must be installed
        check_deep_zoom_out(out)
        output_format = "DZI"
    else:
        check_replaceable(out, "`out`")
        output_format = check_output_format(out)
    check_replaceable(metrics, "`metrics`")
    run_dir = prepare_run_folder(workdir)
    for path, what in ((out, "`out`"), (metrics, "`metrics`")):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MosaicError(f"{what} {path}: cannot create folder {path.parent} "
                              f"({exc.strerror or exc})") from None
    layout = options.layout.plan(target_size, len(files))
    bleed = options.bleed_px
    width, height = (side + 2 * bleed for side in layout.output_size)
    # The photo files bound the distinct photos from above: a budget enough for them is
    # enough for the build (the flow checks again with the exact count).
    plan = plan_assignment(options.method, layout.tiles, len(files), options.crops,
                           options.feature_size, options.scale, max_uses=options.max_uses,
                           min_distance=options.min_repeat_distance)
    check_output_pixels(width, height, output_format, options.scale.budget(), layout.tile_side)
    # The drawn rows stay in the run folder until the poster is written.
    planned = {run_dir: REPORT_BYTES + 3 * layout.output_size[0] * layout.output_size[1]
               + library_bytes(len(files), options.crops, options.feature_size)}
    if plan.dense:
        per_pair = 4 + (1 if options.crops > 1 else 0)
        planned[run_dir] += per_pair * layout.tiles * len(files)
    out_folder = out.parent.resolve()
    planned[out_folder] = planned.get(out_folder, 0) + output_bytes(width, height,
                                                                    output_format)
    check_room(planned)
    return BuildPlan(len(files), layout.rows, layout.cols, width, height, output_format,
                     planned)
