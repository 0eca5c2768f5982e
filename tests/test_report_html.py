"""The self-contained HTML report: pictures, figures, the file it writes, and a real browser."""

from __future__ import annotations

import base64
import io
import os
import re
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import numpy as np
import pytest
from PIL import Image

from mosaic.errors import MosaicError
from mosaic.outputs import TEXT_MARK
from mosaic.report_html import MethodRun, method_picture, report_html, write_report_html
from tests.fixtures.headless import chromium

ROWS, COLS = 6, 9
"""Not square, so a rows/cols mix-up shows."""


# --- synthetic run ---------------------------------------------------------------------------


def _thumbs(photos: int = 12, crops: int = 3, side: int = 4) -> np.ndarray:
    """Thumbnails whose every pixel says which photo, crop, row and column it is."""
    p, k, y, x = np.meshgrid(np.arange(photos), np.arange(crops), np.arange(side),
                             np.arange(side), indexing="ij")
    return np.stack([p * 20, k * 80 + y, x * 60], axis=-1).astype(np.uint8)


def _classes(face: float, person: float, background: float) -> dict[str, dict[str, Any]]:
    return {"face": {"mean_cost": face, "tiles": 4},
            "person": {"mean_cost": person, "tiles": 10},
            "background": {"mean_cost": background, "tiles": ROWS * COLS - 14}}


def _run(label: str, mean: float, seed: int, classes: dict[str, Any] | None = None
         ) -> MethodRun:
    rng = np.random.default_rng(seed)
    costs = rng.gamma(2.0, mean / 2.0, ROWS * COLS)
    picture = method_picture(_thumbs(), rng.integers(0, 12, ROWS * COLS),
                             rng.integers(0, 3, ROWS * COLS), ROWS, COLS)
    return MethodRun(label, mean, float(costs.sum()), 0.25 + seed, costs, picture, classes)


def _metrics(**changes: Any) -> dict[str, Any]:
    metrics = {
        "output": "/runs/portrait/mosaic.jpg", "rows": ROWS, "cols": COLS,
        "tiles": ROWS * COLS, "photos_used": 40, "photos_available": 120,
        "method": "optimal", "solver": "auction + shortest augmenting paths",
        "method_reason": "the dense matrix fits in memory", "metric": "lab",
        "mean_cost": 0.075, "gap": 2e-15, "lower_bound": 4.04,
        "quality": {"tile_mse_rgb": 0.0123, "ssim": 0.456, "cell": 16},
        "weights": {"mode": "faces+people", "face_weight": 4.0, "person_weight": 2.0,
                    "falloff_tiles": 1.0},
        "weights_note": None, "faces_found": 1, "person_fraction": 0.31,
        "timings": {"load": 0.5, "detect": 1.25, "score": 0.75, "solve": 2.5, "render": 1.0,
                    "total": 6.0},
        "peak_rss_mb": 812.5, "max_uses": 1, "most_uses": 1, "closest_copies": None,
        "dask": "local threads",
    }
    return {**metrics, **changes}


def _target() -> Image.Image:
    gradient = np.linspace(0, 255, COLS * 10, dtype=np.uint8)
    return Image.fromarray(np.tile(gradient, (ROWS * 10, 1))).convert("RGB")


def _full_page() -> str:
    methods = [_run("optimal", 0.075, 1, _classes(0.031, 0.052, 0.081)),
               _run("greedy", 0.1, 2, _classes(0.09, 0.095, 0.101)),
               _run("optimal, unweighted", 0.072, 3, _classes(0.06, 0.07, 0.074))]
    weights = Image.new("RGB", (90, 70), (200, 60, 40))
    return report_html(_metrics(), _target(), methods, weights, ROWS, COLS)


class _Resources(HTMLParser):
    """Every ``<img src>`` and every other attribute that could load something."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if tag == "img" and name == "src":
                self.images.append(value or "")
            elif name in {"src", "href", "srcset", "poster", "data"}:
                self.links.append(value or "")


def _resources(page: str) -> _Resources:
    parser = _Resources()
    parser.feed(page)
    parser.close()
    return parser


# --- method_picture ----------------------------------------------------------------------------


def test_method_picture_puts_each_tiles_crop_in_its_cell():
    thumbs = _thumbs(photos=12, crops=3, side=4)
    rng = np.random.default_rng(7)
    photo_of_tile = rng.permutation(ROWS * COLS) % 12
    tile_crop = rng.integers(0, 3, ROWS * COLS)
    picture = method_picture(thumbs, photo_of_tile, tile_crop, ROWS, COLS)
    assert picture.mode == "RGB" and picture.size == (COLS * 4, ROWS * 4)
    pixels = np.asarray(picture)
    for tile in range(ROWS * COLS):
        row, col = divmod(tile, COLS)  # row-major
        cell = pixels[row * 4:(row + 1) * 4, col * 4:(col + 1) * 4]
        np.testing.assert_array_equal(cell, thumbs[photo_of_tile[tile], tile_crop[tile]],
                                      err_msg=f"tile {tile} (row {row}, col {col})")


def test_method_picture_without_crops_uses_crop_zero():
    thumbs = _thumbs(photos=4, crops=2, side=3)
    photo_of_tile = np.array([3, 0, 1, 2, 2, 1])
    pixels = np.asarray(method_picture(thumbs, photo_of_tile, None, 2, 3))
    assert pixels.shape == (6, 9, 3)
    np.testing.assert_array_equal(pixels[3:6, 0:3], thumbs[2, 0])
    np.testing.assert_array_equal(pixels[0:3, 6:9], thumbs[1, 0])


def test_method_picture_refuses_an_assignment_that_does_not_fill_the_grid():
    with pytest.raises(ValueError, match="6 tiles"):
        method_picture(_thumbs(), np.zeros(6, int), None, 2, 4)


# --- report_html -------------------------------------------------------------------------------


def test_the_page_is_marked_and_quotes_the_reduction_against_greedy():
    page = _full_page()
    assert page.splitlines()[0] == TEXT_MARK
    assert page.splitlines()[1] == "<!DOCTYPE html>"
    # (0.1 - 0.075) / 0.1 = 25%, computed from the given means
    assert "Greedy 0.1 → optimal 0.075: 25% lower" in page
    assert "Optimal, unweighted 0.072 → optimal 0.075: 4% higher" in page
    # the summary, the per-class costs (mean (tiles)), timings, gap, memory
    for text in ("6 x 9 = 54 tiles", "40 used of 120", "auction + shortest augmenting paths",
                 "0.031 (4)", "0.101 (40)", "<td>solve</td><td>2.5</td>", "812.5 MB",
                 "gap to the lower bound", "4.04", "face x4.0, person x2.0",
                 "Tile weights (faces and people get the best photos)"):
        assert text in page, text


def test_the_page_is_self_contained_and_every_picture_decodes():
    page = _full_page()
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page and "url(" not in page
    found = _resources(page)
    # target, three mosaics, mean-error bars, histogram, heat map, weight map
    assert len(found.images) == 8
    assert all(link.startswith("data:") for link in found.links)
    sizes = []
    for src in found.images:
        match = re.fullmatch(r"data:image/(png|jpeg);base64,([A-Za-z0-9+/=]+)", src)
        assert match, src[:60]
        with Image.open(io.BytesIO(base64.b64decode(match.group(2), validate=True))) as image:
            image.load()
            assert image.format == {"png": "PNG", "jpeg": "JPEG"}[match.group(1)]
            sizes.append(image.size)
    assert all(width > 20 and height > 20 for width, height in sizes)


def test_text_from_the_run_is_escaped():
    methods = [_run("optimal <b>&", 0.075, 1), _run("greedy", 0.1, 2)]
    page = report_html(_metrics(output="/runs/<script>alert(1)</script>.jpg"), _target(),
                       methods, None, ROWS, COLS)
    assert "<b>&" not in page and "optimal &lt;b&gt;&amp;" in page
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_without_greedy_the_page_compares_with_what_there_is():
    methods = [_run("optimal", 0.05, 1), _run("optimal, unweighted", 0.04, 2)]
    page = report_html(_metrics(), _target(), methods, None, ROWS, COLS)
    assert "Greedy" not in page
    assert "Optimal, unweighted 0.04 → optimal 0.05: 25% higher" in page
    assert "The tiles were weighted uniformly" in page


def test_a_regional_run_with_few_metrics_still_gets_a_page():
    methods = [_run("regional", 0.06, 4)]
    metrics = {"method": "regional", "output": "poster.tif", "gap": None, "lower_bound": None,
               "timings": {"solve": 3.0}}
    page = report_html(metrics, _target(), methods, None, ROWS, COLS)
    assert page.startswith(TEXT_MARK + "\n")
    assert "→" not in page and "No greedy or unweighted baseline" in page
    assert "gap to the lower bound" not in page
    assert len(_resources(page).images) == 5  # target, mosaic, bars, histogram, heat map
    assert "regional: mean error 0.06" in page


def test_report_html_refuses_costs_that_do_not_fill_the_grid():
    run = _run("optimal", 0.05, 1)
    with pytest.raises(ValueError, match="54 tile costs for a 6 x 8 grid"):
        report_html(_metrics(), _target(), [run], None, ROWS, 8)


def test_figures_for_forty_by_forty_tiles_are_fast():
    rng = np.random.default_rng(3)
    rows = cols = 40
    thumbs = rng.integers(0, 256, (50, 2, 8, 8, 3), dtype=np.uint8)
    methods = [MethodRun(label, mean, 1.0, 1.0, rng.gamma(2.0, mean / 2, rows * cols),
                         method_picture(thumbs, rng.integers(0, 50, rows * cols), None,
                                        rows, cols), None)
               for label, mean in (("optimal", 0.07), ("greedy", 0.09))]
    report_html(_metrics(), _target(), methods, None, rows, cols)  # matplotlib warmed up
    start = time.perf_counter()
    report_html(_metrics(), _target(), methods, None, rows, cols)
    assert time.perf_counter() - start < 2.0  # about 0.3 s here; slack for a loaded machine


def test_the_class_columns_appear_only_when_some_method_has_class_costs():
    without = report_html(_metrics(), _target(), [_run("optimal", 0.05, 1)], None, ROWS, COLS)
    assert "face tiles" not in without and "Per class" not in without
    with_classes = report_html(_metrics(), _target(),
                               [_run("optimal", 0.05, 1, _classes(0.02, None, 0.06))], None,
                               ROWS, COLS)
    assert "<th>face tiles</th>" in with_classes and "0.02 (4)" in with_classes


# --- write_report_html -------------------------------------------------------------------------


def test_write_report_html_replaces_its_own_page_but_not_the_users_file(tmp_path):
    page = _full_page()
    ours = write_report_html(tmp_path / "report.html", page)
    assert ours == tmp_path / "report.html"
    assert ours.read_text(encoding="utf-8") == page
    write_report_html(ours, page.replace("25% lower", "25% lower!"))  # its own: replaced
    assert "25% lower!" in ours.read_text(encoding="utf-8")
    users = tmp_path / "notes.html"
    users.write_text("<html><body>my notes</body></html>\n", encoding="utf-8")
    with pytest.raises(MosaicError, match="exists and was not written by mosaic"):
        write_report_html(users, page)
    assert users.read_text(encoding="utf-8") == "<html><body>my notes</body></html>\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes.html", "report.html"]


# --- in a real browser -------------------------------------------------------------------------


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium through Debian's chromedriver, with its console log kept."""
    with chromium("1400,1000", console=True) as driver:
        yield driver


IMAGES_JS = """
return Array.from(document.images).map(image => ({
    alt: image.getAttribute('alt'), complete: image.complete, width: image.naturalWidth,
    height: image.naturalHeight, shown: image.getBoundingClientRect().width}));
"""


def test_the_page_loads_in_headless_chromium_from_a_file(browser, tmp_path):
    from selenium.webdriver.support.ui import WebDriverWait

    path = write_report_html(tmp_path / "report.html", _full_page())
    browser.get(path.resolve().as_uri())
    wait = WebDriverWait(browser, 20, poll_frequency=0.1)
    wait.until(lambda driver: driver.execute_script(
        "return document.readyState === 'complete' && "
        "Array.from(document.images).every(image => image.complete)"))
    images = browser.execute_script(IMAGES_JS)
    assert len(images) == 8
    broken = [image for image in images if not (image["complete"] and image["width"] > 0)]
    assert not broken
    assert all(image["shown"] > 50 for image in images)
    assert browser.title == "Mosaic report: mosaic.jpg"
    # the mark before the doctype leaves the page in standards mode
    assert browser.execute_script("return document.compatMode") == "CSS1Compat"
    assert "Greedy 0.1 → optimal 0.075: 25% lower" in browser.find_element(
        "tag name", "body").text
    # a phone-sized screen: nothing wider than the screen (tables scroll inside their box)
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": 390, "height": 844, "deviceScaleFactor": 3, "mobile": True})
    browser.refresh()
    wait.until(lambda driver: driver.execute_script(
        "return document.readyState === 'complete'"))
    assert browser.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth") is True
    severe = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not severe, severe



def test_the_demos_report_shows_optimal_lowering_greedys_error_with_its_own_numbers(
        prefect_api, browser, tmp_path):
    """The blog's figure, reproduced by ``mosaic demo`` on the bundled sample."""
    import json
    import subprocess
    import sys

    from prefect.settings import PREFECT_API_URL
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.conftest import ROOT

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    done = subprocess.run([sys.executable, "-m", "cli", "demo", "--out-dir",
                           str(tmp_path / "demo"), "--quiet"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "demo" / "metrics.json").read_text(encoding="utf-8"))
    means = {entry["method"]: entry["mean_cost"] for entry in metrics["comparison"]}
    browser.get((tmp_path / "demo" / "report.html").resolve().as_uri())
    WebDriverWait(browser, 20, poll_frequency=0.1).until(lambda driver: driver.execute_script(
        "return document.readyState === 'complete' && "
        "Array.from(document.images).every(image => image.complete && image.naturalWidth)"))
    text = browser.find_element("tag name", "body").text
    found = re.search(r"Greedy ([0-9.]+) → optimal ([0-9.]+): (\d+)% lower", text)
    assert found, text[:2000]
    greedy, optimal, percent = float(found[1]), float(found[2]), int(found[3])
    assert greedy == pytest.approx(means["greedy"], rel=2e-3)
    assert optimal == pytest.approx(means["optimal"], rel=2e-3) and optimal < greedy
    assert abs(percent - 100 * (1 - means["optimal"] / means["greedy"])) <= 0.5
    assert len(browser.execute_script("return document.images")) >= 5  # target + 3 + figures
    assert not [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
