"""The Deep Zoom output: a tile pyramid and a viewer that works offline.

``mosaic build --format dzi --out site/`` writes a folder that opens from disk
(``file://``) or from any web server and zooms from the whole poster into each photo:

* ``mosaic.dzi`` and ``mosaic_files/``: the pyramid, written by libvips' ``dzsave``
  (Deep Zoom layout, JPEG tiles); the ``.dzi`` file is for other Deep Zoom viewers.
* ``viewer.html``: OpenSeadragon, with the pyramid's description inline.
* ``openseadragon/``: OpenSeadragon's script and button images, copied from
  ``mosaic/viewer_assets/`` (``make viewer-assets`` installs them from npm).

The folder is built next to ``out_dir`` under a temporary name and moved into place
when complete, so an interrupted build leaves either the previous folder or nothing,
plus at worst one temporary folder named ``.mosaic-tmp.<owner>.<random>.<name>.part``
(or ``.old``), which the next build into the same place deletes.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import re
import secrets
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from mosaic.errors import MosaicError
from mosaic.files import TEMP_PREFIX, TEMP_SUFFIX, OutputError, describe_os_error
from mosaic.outputs import TEXT_MARK, carries_mark
from mosaic.processes import owner_alive, owner_tag

if TYPE_CHECKING:
    import pyvips

VIEWER_ASSETS = Path(__file__).resolve().parent / "viewer_assets" / "openseadragon"
"""OpenSeadragon's build folder, as ``make viewer-assets`` copies it from npm."""
PYRAMID_NAME = "mosaic"
"""Stem of the pyramid: ``mosaic.dzi`` and ``mosaic_files/``."""
VIEWER_NAME = "viewer.html"
ASSETS_NAME = "openseadragon"
"""The viewer's copy of :data:`VIEWER_ASSETS`, next to ``viewer.html``."""
DZI_NAMESPACE = "http://schemas.microsoft.com/deepzoom/2008"
"""The Deep Zoom XML namespace: an identifier that OpenSeadragon checks, never fetched."""
_ENTRIES = frozenset({f"{PYRAMID_NAME}.dzi", f"{PYRAMID_NAME}_files", VIEWER_NAME,
                      ASSETS_NAME})
"""Everything a Deep Zoom folder of ours holds."""
_PYRAMID_FILE = re.compile(rf"{PYRAMID_NAME}_files/(\d+/\d+_\d+\.\w+|vips-properties\.xml)")
"""Files of ``dzsave``'s pyramid: ``mosaic_files/<level>/<column>_<row>.<format>``."""
_ASSET_FILE = re.compile(rf"{ASSETS_NAME}/([\w.-]+/)?[\w.-]+\.(js|png|svg|txt|map)")
"""Files of OpenSeadragon's build folder: its script, licence and button images."""
_OLD_SUFFIX = ".old"
_TEMPORARY = re.compile(re.escape(TEMP_PREFIX) + r"(?P<owner>[0-9a-f]{8}-\d+-\d+)\.[0-9a-f]+\."
                        r"(?P<name>.+)(?:" + re.escape(TEMP_SUFFIX) + "|" +
                        re.escape(_OLD_SUFFIX) + ")$")
"""Names of the folders :func:`save_deep_zoom` builds in and moves the old folder to."""


def viewer_assets() -> Path:
    """The OpenSeadragon build folder that every Deep Zoom folder gets a copy of.

    Returns
    -------
    pathlib.Path
        :data:`VIEWER_ASSETS`, holding ``openseadragon.min.js`` and ``images/``.

    Raises
    ------
    MosaicError
        The files are missing: they are built by ``make setup``, never downloaded here.
    """
    if not (VIEWER_ASSETS / "openseadragon.min.js").is_file() or not (
            VIEWER_ASSETS / "images").is_dir():
        raise MosaicError(f"the Deep Zoom viewer's files are missing from {VIEWER_ASSETS}; "
                          "run `make setup` (or `make viewer-assets`) in photo-mosaic's "
                          "source folder")
    return VIEWER_ASSETS


def save_deep_zoom(image: pyvips.Image, out_dir: str | os.PathLike[str], title: str,
                   tile_size: int = 254, overlap: int = 1, suffix: str = ".jpg[Q=90]",
                   advance: Callable[[int], None] | None = None) -> Path:
    """Write a Deep Zoom folder: the pyramid of ``image`` and a viewer that opens offline.

    Parameters
    ----------
    image : pyvips.Image
        The poster; it may be lazy (it is computed once, tile by tile).
    out_dir : path-like
        The folder to write. It is replaced if it is a Deep Zoom folder this tool
        wrote; any other existing file or folder there is refused.
    title : str
        Shown in the page's title and corner (escaped: any text is safe).
    tile_size : int
        Tile side in pixels, without the overlap (254 + 2 x 1 makes 256).
    overlap : int
        Pixels each tile repeats of its neighbours.
    suffix : str
        The tiles' format and options, as libvips takes them (``.jpg[Q=90]``).
    advance : callable, optional
        Called with each percent of the pyramid written.

    Returns
    -------
    pathlib.Path
        ``out_dir/viewer.html``.

    Raises
    ------
    MosaicError
        ``out_dir`` is not ours to replace, the viewer's files are not installed, or
        writing failed (a full disk, a read-only folder; the message names the folder).
    """
    import pyvips

    from mosaic.poster import run_stoppable

    out = Path(out_dir)
    assets = viewer_assets()
    existing = check_deep_zoom_out(out)
    target = Path(os.path.abspath(out))  # ".." and "." resolved: the folder has a name
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(describe_os_error(exc, out)) from None
    _remove_stale_temporaries(target)
    build = _new_sibling(target, TEMP_SUFFIX, out)
    try:
        try:
            # In a thread the main one waits on: a stop signal kills libvips at once.
            run_stoppable(image, lambda: image.dzsave(
                str(build / PYRAMID_NAME), layout="dz", tile_size=tile_size, overlap=overlap,
                suffix=suffix), advance)
        except pyvips.Error as exc:
            raise MosaicError(f"cannot write the Deep Zoom pyramid in {out}: "
                              f"{_vips_reason(exc)}") from None
        try:
            tile_source = _inline_tile_source(build / f"{PYRAMID_NAME}.dzi")
            _copy_tree(assets, build / ASSETS_NAME)
            (build / VIEWER_NAME).write_text(viewer_html(title, tile_source), encoding="utf-8")
            _move_into_place(build, target, existing, out)
        except OSError as exc:
            raise OutputError(describe_os_error(exc, out)) from None
    finally:
        shutil.rmtree(build, ignore_errors=True)  # gone already when it was moved into place
    return out / VIEWER_NAME


def viewer_html(title: str, tile_source: dict[str, object]) -> str:
    """The viewer page: full-window OpenSeadragon with a navigator, nothing fetched online.

    Parameters
    ----------
    title : str
        Plain text, escaped here.
    tile_source : dict
        OpenSeadragon's inline Deep Zoom description (``{"Image": {...}}``).

    Returns
    -------
    str
        The page, starting with this tool's mark.
    """
    text = html.escape(title)
    # json.dumps leaves "<" alone; escaped, no "</script>" can end the script early.
    source = json.dumps(tile_source, indent=2).replace("<", "\\u003c")
    return _PAGE.format(mark=TEXT_MARK, title=text, tile_source=source, assets=ASSETS_NAME)


_PAGE = """{mark}
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="data:,">
<style>
  html, body {{ margin: 0; height: 100%; overflow: hidden; background: #111; }}
  #viewer {{ position: fixed; inset: 0; }}
  h1 {{ position: fixed; left: 0; bottom: 0; z-index: 1; margin: 0; padding: 0.35em 0.8em;
       font: 600 15px/1.3 system-ui, sans-serif; color: #eee; background: rgba(0, 0, 0, 0.6);
       border-top-right-radius: 6px; pointer-events: none; }}
</style>
</head>
<body>
<h1>{title}</h1>
<div id="viewer"></div>
<noscript><p style="color: #eee">This viewer needs JavaScript.</p></noscript>
<script src="{assets}/openseadragon.min.js"></script>
<script>
  // The pyramid's description is inline: a page opened from disk (file://) may not
  // fetch mosaic.dzi (browsers block it as cross-origin), but it may load the tiles,
  // which are plain images.
  const tileSource = {tile_source};
  window.viewer = OpenSeadragon({{
    id: "viewer",
    prefixUrl: "{assets}/images/",
    tileSources: tileSource,
    // The 2D canvas drawer, not WebGL (OpenSeadragon's first choice since 5.0): from
    // file:// every tile is a cross-origin image, which WebGL may not upload as a
    // texture, while a 2D canvas may draw it. WebGL fails on the first tile ("Error
    // creating texture") and then draws nothing, or falls back to a canvas with
    // warnings when "canvas" is also allowed; without a GPU it also needs SwiftShader.
    drawer: "canvas",
    showNavigator: true,
    showRotationControl: false,
    // Zoom until one poster pixel covers two screen pixels: each photo at full size.
    maxZoomPixelRatio: 2,
  }});
</script>
</body>
</html>
"""


def check_deep_zoom_out(out: Path) -> bool:
    """Whether ``out`` exists (it is then ours to replace); anything else is refused.

    Raises
    ------
    MosaicError
        ``out`` is a link, a file, or a folder this tool did not write.
    """
    if out.is_symlink():
        raise MosaicError(f"`out` {out} is a symbolic link; give the folder's real path")
    if not out.exists():
        return False
    if not out.is_dir():
        kind = "a file" if out.is_file() else "not a folder"
        raise MosaicError(f"`out` {out} is {kind}; a Deep Zoom output is a folder: choose "
                          "another `out`")
    if not _is_our_folder(out):
        raise MosaicError(f"`out` {out} is not a Deep Zoom folder written by photo-mosaic; "
                          "choose another `out`")
    return True


def _is_our_folder(folder: Path) -> bool:
    """A folder holding only what :func:`save_deep_zoom` writes, with its marked viewer.

    Every file is looked at (a few thousand names for a 10,000-pixel poster): a photo
    of the user's put anywhere in it makes it the user's.
    """
    try:
        names = {entry.name for entry in os.scandir(folder)}
        page = folder / VIEWER_NAME
        return (names <= _ENTRIES and not page.is_symlink() and page.is_file()
                and carries_mark(page)
                and _holds_only(folder, f"{PYRAMID_NAME}_files", _PYRAMID_FILE)
                and _holds_only(folder, ASSETS_NAME, _ASSET_FILE))
    except OSError:
        return False


def _holds_only(root: Path, inside: str, allowed: re.Pattern[str]) -> bool:
    """Whether every file in ``root/inside`` (if it exists) has a path ``allowed`` matches.

    Paths are relative to ``root``, with ``/``; any link or special file is refused.
    """
    if not (root / inside).exists():
        return True
    for folder, folders, files in os.walk(root / inside):
        base = Path(folder).relative_to(root).as_posix()
        if any(Path(folder, name).is_symlink() for name in folders):
            return False
        for name in files:
            path = Path(folder, name)
            if (path.is_symlink() or not path.is_file()
                    or not allowed.fullmatch(f"{base}/{name}")):
                return False
    return True


def _temporary_name(target: Path) -> str:
    """The part of a temporary's name that says which output it is for."""
    return target.name[:80]


def _new_sibling(target: Path, kind: str, out: Path) -> Path:
    """A new empty folder next to ``target``, named as this process's temporary for it.

    ``os.mkdir`` gives it the umask's mode (0755 under umask 022); ``tempfile.mkdtemp``
    would make it 0700, and the whole output private once renamed.
    """
    while True:
        name = f"{TEMP_PREFIX}{owner_tag()}.{secrets.token_hex(4)}.{_temporary_name(target)}"
        folder = target.parent / f"{name}{kind}"
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            raise OutputError(describe_os_error(exc, out)) from None
        return folder


def _remove_stale_temporaries(target: Path) -> None:
    """Delete the temporary folders for ``target`` of builds that died (owner gone)."""
    with contextlib.suppress(OSError):
        for entry in target.parent.iterdir():
            match = _TEMPORARY.fullmatch(entry.name)
            if (match is None or match["name"] != _temporary_name(target)
                    or entry.is_symlink() or not entry.is_dir()
                    or owner_alive(match["owner"])):
                continue
            shutil.rmtree(entry, ignore_errors=True)


def _vips_reason(error: pyvips.Error) -> str:
    """One line for a libvips error: the system's reason when there is one."""
    lines = [line.strip() for line in (error.detail or "").splitlines() if line.strip()]
    reasons = [line.removeprefix("system error:").strip() for line in lines
               if line.startswith("system error:")]
    if any("No space left" in reason for reason in reasons):
        return "the disk is full (No space left on device)"
    known = [reason for reason in reasons if not reason.startswith("Unknown error")]
    return (known or lines or [error.message or "libvips failed"])[0]


def _inline_tile_source(dzi: Path) -> dict[str, object]:
    """The ``.dzi`` file libvips wrote, as OpenSeadragon's inline Deep Zoom object."""
    root = ET.parse(dzi).getroot()
    size = root.find(f"{{{DZI_NAMESPACE}}}Size")
    if size is None:
        raise MosaicError(f"{dzi}: libvips wrote no Size element")
    return {"Image": {
        "xmlns": DZI_NAMESPACE,
        "Url": f"{PYRAMID_NAME}_files/",
        "Format": root.attrib["Format"],
        "Overlap": int(root.attrib["Overlap"]),
        "TileSize": int(root.attrib["TileSize"]),
        "Size": {"Width": int(size.attrib["Width"]), "Height": int(size.attrib["Height"])},
    }}


def _copy_tree(source: Path, target: Path) -> None:
    """Copy a folder's files and folders with new modes (the umask's, like every output).

    ``shutil.copytree`` would copy the source's modes, whatever the install left there.
    """
    target.mkdir()
    for entry in sorted(source.iterdir()):
        if entry.is_dir():
            _copy_tree(entry, target / entry.name)
        else:
            shutil.copyfile(entry, target / entry.name)


def _move_into_place(build: Path, target: Path, existing: bool, out: Path) -> None:
    """Rename the finished ``build`` folder onto ``target``, replacing our earlier folder.

    A folder cannot be renamed onto a folder that holds files, so the old one is renamed
    aside first and deleted last; in between, ``target`` is missing for a moment.
    """
    if not existing:
        build.rename(target)
        return
    aside = _new_sibling(target, _OLD_SUFFIX, out)
    target.rename(aside)  # onto the new, empty folder: rename(2) replaces an empty folder
    try:
        build.rename(target)
    except OSError:
        aside.rename(target)  # the earlier folder back
        raise
    shutil.rmtree(aside, ignore_errors=True)
