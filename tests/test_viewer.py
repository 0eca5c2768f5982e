"""The Deep Zoom output: its pyramid, its folder rules, and its viewer in headless Chromium."""

from __future__ import annotations

import io
import math
import os
import stat
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pyvips

from mosaic.errors import MosaicError
from mosaic.outputs import TEXT_MARK
from mosaic.processes import owner_tag
from mosaic.viewer import DZI_NAMESPACE, save_deep_zoom, viewer_assets
from tests.conftest import ROOT, in_mount_namespace
from tests.fixtures.headless import chromium

WIDTH, HEIGHT = 3000, 2000
DEEPEST = math.ceil(math.log2(max(WIDTH, HEIGHT)))
OUR_ENTRIES = {"mosaic.dzi", "mosaic_files", "viewer.html", "openseadragon"}


def pattern_image(width: int = WIDTH, height: int = HEIGHT) -> pyvips.Image:
    """Gradients and a checkerboard: every tile differs from its neighbours."""
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 // width, y * 255 // height,
                       ((x // 50 + y // 50) % 2) * 255], axis=-1).astype(np.uint8)
    return pyvips.Image.new_from_memory(np.ascontiguousarray(pixels).data, width, height, 3,
                                        "uchar")


@pytest.fixture(scope="module")
def image() -> pyvips.Image:
    return pattern_image()


@pytest.fixture(scope="module")
def site(image: pyvips.Image, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One Deep Zoom folder, written once for the tests that only read it."""
    out = tmp_path_factory.mktemp("dzi") / "site"
    assert save_deep_zoom(image, out, "Grace <Hopper> & friends") == out / "viewer.html"
    return out


def temporaries(folder: Path) -> list[str]:
    return sorted(entry.name for entry in folder.iterdir() if entry.name.startswith(".mosaic"))


def test_the_viewer_files_are_installed():
    """`make setup` installs them; without them the test fails (it is not skipped)."""
    folder = viewer_assets()
    assert (folder / "openseadragon.min.js").is_file()
    assert (folder / "images" / "zoomin_rest.png").is_file()


def test_missing_viewer_files_are_one_line_saying_how_to_install_them(image, tmp_path,
                                                                       monkeypatch):
    from mosaic import viewer

    monkeypatch.setattr(viewer, "VIEWER_ASSETS", tmp_path / "not-installed")
    with pytest.raises(MosaicError) as caught:
        save_deep_zoom(image, tmp_path / "site", "x")
    message = caught.value.for_command_line()
    assert "\n" not in message and str(tmp_path / "not-installed") in message
    assert message.endswith("run `make setup` (or `make viewer-assets`) in photo-mosaic's "
                            "source folder")
    assert sorted(entry.name for entry in tmp_path.iterdir()) == []  # nothing downloaded


def test_the_pyramid_matches_the_image(site):
    root = ET.parse(site / "mosaic.dzi").getroot()
    size = root.find(f"{{{DZI_NAMESPACE}}}Size")
    assert (root.get("TileSize"), root.get("Overlap"), root.get("Format")) == ("254", "1", "jpg")
    assert (int(size.get("Width")), int(size.get("Height"))) == (WIDTH, HEIGHT)
    assert (site / "mosaic_files" / str(DEEPEST)).is_dir()
    assert not (site / "mosaic_files" / str(DEEPEST + 1)).exists()
    assert (site / "mosaic_files" / "0" / "0_0.jpg").is_file()
    corner = pyvips.Image.new_from_file(str(site / "mosaic_files" / str(DEEPEST) / "0_0.jpg"))
    assert (corner.width, corner.height) == (255, 255)  # 254 and the overlap on one side
    assert (site / "openseadragon" / "openseadragon.min.js").is_file()
    assert (site / "openseadragon" / "images" / "home_rest.png").is_file()
    assert {entry.name for entry in site.iterdir()} == OUR_ENTRIES
    assert temporaries(site.parent) == []


def test_the_viewer_page_is_marked_escaped_and_offline(site):
    page = (site / "viewer.html").read_text(encoding="utf-8")
    assert page.startswith(TEXT_MARK + "\n")
    assert "<title>Grace &lt;Hopper&gt; &amp; friends</title>" in page
    assert "<Hopper>" not in page
    # The Deep Zoom namespace is an identifier OpenSeadragon checks, never fetched.
    assert page.count(DZI_NAMESPACE) == 1
    offline = page.replace(DZI_NAMESPACE, "")
    assert "http://" not in offline and "https://" not in offline and "//cdn" not in offline
    assert 'src="openseadragon/openseadragon.min.js"' in page
    assert 'prefixUrl: "openseadragon/images/"' in page
    assert '"Url": "mosaic_files/"' in page and '"Width": 3000' in page
    assert 'drawer: "canvas"' in page and "showNavigator: true" in page


def test_our_folder_is_replaced(image, tmp_path):
    out = tmp_path / "site"
    save_deep_zoom(image, out, "first")
    save_deep_zoom(image.crop(0, 0, 600, 400), out, "second")
    root = ET.parse(out / "mosaic.dzi").getroot()
    assert root.find(f"{{{DZI_NAMESPACE}}}Size").get("Width") == "600"
    assert "<title>second</title>" in (out / "viewer.html").read_text(encoding="utf-8")
    assert not (out / "mosaic_files" / str(DEEPEST)).exists()  # none of the old pyramid
    assert {entry.name for entry in out.iterdir()} == OUR_ENTRIES
    assert temporaries(tmp_path) == []


@pytest.mark.parametrize("extra", ["notes.txt", "mosaic_files/9/holiday.jpg",
                                   "openseadragon/images/me.jpg"])
def test_a_folder_with_a_file_of_the_users_is_refused_and_left_alone(image, tmp_path, extra):
    out = tmp_path / "site"
    save_deep_zoom(image.crop(0, 0, 300, 200), out, "mine")
    (out / extra).write_bytes(b"the user's")
    before = sorted(str(path.relative_to(out)) for path in out.rglob("*"))
    with pytest.raises(MosaicError) as caught:
        save_deep_zoom(image, out, "again")
    message = str(caught.value)
    assert "\n" not in message
    assert "is not a Deep Zoom folder written by photo-mosaic; choose another out" in message
    assert caught.value.for_command_line().endswith("choose another --out")
    assert sorted(str(path.relative_to(out)) for path in out.rglob("*")) == before
    assert (out / extra).read_bytes() == b"the user's"
    assert temporaries(tmp_path) == []


def test_a_folder_of_the_users_and_an_unmarked_page_are_refused(image, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "viewer.html").write_text("<!DOCTYPE html>\n<p>my own page</p>\n")
    with pytest.raises(MosaicError, match="not a Deep Zoom folder written by photo-mosaic"):
        save_deep_zoom(image, plain, "x")
    assert (plain / "viewer.html").read_text() == "<!DOCTYPE html>\n<p>my own page</p>\n"
    assert [entry.name for entry in plain.iterdir()] == ["viewer.html"]


def test_an_existing_file_at_out_is_refused(image, tmp_path):
    out = tmp_path / "poster.jpg"
    out.write_bytes(b"not a folder")
    with pytest.raises(MosaicError, match=r"poster\.jpg is a file; a Deep Zoom output is a "
                                          "folder"):
        save_deep_zoom(image, out, "x")
    assert out.read_bytes() == b"not a folder"
    assert temporaries(tmp_path) == []


def test_files_get_the_umasks_modes(image, tmp_path):
    previous = os.umask(0o022)
    try:
        out = save_deep_zoom(image.crop(0, 0, 600, 400), tmp_path / "site", "modes").parent
    finally:
        os.umask(previous)
    modes = {stat.S_IMODE(path.stat().st_mode)
             for path in [out, *out.rglob("*")] if path.is_dir()}
    assert modes == {0o755}
    modes = {stat.S_IMODE(path.stat().st_mode) for path in out.rglob("*") if path.is_file()}
    assert modes == {0o644}


def test_a_dead_builds_temporary_folder_is_removed_by_the_next(image, tmp_path):
    """A build killed mid-way leaves only its clearly named temporary folder."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    owner = f"{owner_tag()[:8]}-{dead.pid}-1"  # this host, a pid that has exited
    (tmp_path / f".mosaic-tmp.{owner}.0badcafe.site.part" / "mosaic_files").mkdir(parents=True)
    (tmp_path / f".mosaic-tmp.{owner}.0badcafe.site.old").mkdir()
    other = tmp_path / f".mosaic-tmp.{owner}.0badcafe.other.part"
    other.mkdir()
    save_deep_zoom(image.crop(0, 0, 300, 200), tmp_path / "site", "after a crash")
    assert temporaries(tmp_path) == [other.name]  # another output's: not this build's business


def test_a_full_disk_is_one_line_naming_the_folder_and_leaves_nothing(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from mosaic.errors import MosaicError
        from mosaic.viewer import save_deep_zoom
        from tests.test_viewer import pattern_image

        disk = Path({str(disk)!r})
        try:
            save_deep_zoom(pattern_image(), disk / "site", "full")
        except MosaicError as exc:
            print(exc)
        print(sorted(entry.name for entry in disk.iterdir()))
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = in_mount_namespace("size=256k", [str(disk), sys.executable, "-c", script], env,
                                timeout=60)
    assert result.returncode == 0, result.stderr
    line, listing = result.stdout.splitlines()
    assert line == (f"cannot write the Deep Zoom pyramid in {disk / 'site'}: the disk is full "
                    "(No space left on device)")
    assert listing == "[]"


# --- the viewer, opened from disk in headless Chromium ------------------------------------

OPENED_JS = """
const item = window.viewer && viewer.world.getItemCount() === 1 && viewer.world.getItemAt(0);
return Boolean(item && item.getFullyLoaded());
"""
RECORD_LEVELS_JS = """
window.__levels = [];
viewer.addHandler('tile-loaded', event => window.__levels.push(event.tile.level));
return viewer.world.getItemAt(0).source.maxLevel;
"""
ZOOM_JS = "viewer.viewport.zoomTo(viewer.viewport.getMaxZoom(), null, true);"
ZOOMED_JS = """
return viewer.world.getItemAt(0).getFullyLoaded() && window.__levels.includes(arguments[0])
    ? {levels: Array.from(new Set(window.__levels)).sort((a, b) => a - b),
       drawer: viewer.drawer.getType()}
    : null;
"""
IMAGE_POINTS_JS = """
return arguments[0].map(([x, y]) => {
    const point = viewer.viewport.viewerElementToImageCoordinates(new OpenSeadragon.Point(x, y));
    return [point.x, point.y];
});
"""
"""Where points of the page fall on the poster (its pixels)."""


def expected_colour(x: float, y: float) -> tuple[int, int, int]:
    """The colour :func:`pattern_image` has at poster pixel (x, y)."""
    return (int(x) * 255 // WIDTH, int(y) * 255 // HEIGHT,
            ((int(x) // 50 + int(y) // 50) % 2) * 255)


def assert_shows_the_poster(browser: Any) -> None:
    """The page's pixels are the poster's at full zoom (a canvas the page cannot read back:
    the tiles are cross-origin from file://, so the test reads a screenshot)."""
    from PIL import Image

    screen = Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB")
    width, height = browser.execute_script("return [innerWidth, innerHeight];")
    assert screen.size == (width, height)  # one screenshot pixel a CSS pixel
    # Two screen pixels a poster pixel, about the poster's middle: the checker's centres.
    points = [(width // 2 + dx, height // 2 + dy) for dx in (-150, 50, 250)
              for dy in (-150, 50, 250)]
    on_poster = browser.execute_script(IMAGE_POINTS_JS, points)
    checked = 0
    for (px, py), (x, y) in zip(points, on_poster, strict=True):
        if max(abs(x % 50 - 25), abs(y % 50 - 25)) > 20:
            continue  # on a checker edge: JPEG blurs it
        shown = screen.getpixel((px, py))
        assert all(abs(a - b) <= 16 for a, b in zip(shown, expected_colour(x, y), strict=True)
                   ), (px, py, x, y, shown)
        checked += 1
    assert checked >= 5


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium through Debian's chromedriver, with the console's messages."""
    with chromium("1200,800", console=True) as driver:
        yield driver


def test_the_viewer_opens_from_disk_and_zooms_to_the_deepest_tiles(site, browser):
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 15, poll_frequency=0.1)
    started = time.monotonic()
    browser.get((site / "viewer.html").as_uri())
    assert browser.title == "Grace <Hopper> & friends"
    wait.until(lambda driver: driver.execute_script(OPENED_JS))
    deepest = browser.execute_script(RECORD_LEVELS_JS)  # before the zoom asks for them
    assert deepest == DEEPEST
    browser.execute_script(ZOOM_JS)
    zoomed = wait.until(lambda driver: driver.execute_script(ZOOMED_JS, deepest))
    assert zoomed["drawer"] == "canvas"
    assert zoomed["levels"][-1] == DEEPEST
    assert_shows_the_poster(browser)
    severe = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert severe == []
    assert time.monotonic() - started < 15
