import io
import os
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import pyvips
from PIL import Image, ImageCms

from mosaic.errors import MosaicError
from mosaic.files import _umask
from mosaic.layout import Layout
from mosaic.outputs import MARK, carries_mark
from mosaic.poster import save_poster
from mosaic.render import render_mosaic
from mosaic.report import QUALITY_CELL
from mosaic.strips import ColourCorrection, StripFolder, strips_key
from tests.conftest import ROOT, in_mount_namespace, write_jpeg


def test_render_places_each_photo_on_its_tile(tmp_path):
    colours = [(250, 0, 0), (0, 250, 0), (0, 0, 250), (250, 250, 0), (0, 250, 250),
               (250, 0, 250)]
    paths = [write_jpeg(tmp_path / f"{i}.jpg", c, size=(60, 40)) for i, c in enumerate(colours)]
    layout = Layout(rows=2, cols=3, tile_px=20, crop=(0, 0, 60, 40), target_size=(60, 40))
    sources = [(str(p), (1 / 6, 0.0, 5 / 6, 1.0)) for p in paths]
    out = render_mosaic(layout, sources, tmp_path / "out" / "mosaic.png", dpi=300).path
    with Image.open(out) as image:
        assert image.size == (60, 40)
        assert round(image.info["dpi"][0]) == 300
        pixels = np.asarray(image.convert("RGB")).astype(int)
    for index, colour in enumerate(colours):
        row, col = divmod(index, 3)
        centre = pixels[row * 20 + 10, col * 20 + 10]
        assert np.abs(centre - colour).max() < 12
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["mosaic.png"]


def _six_tiles(tmp_path):
    colours = [(250, 0, 0), (0, 250, 0), (0, 0, 250), (250, 250, 0), (0, 250, 250),
               (250, 0, 250)]
    paths = [write_jpeg(tmp_path / f"{i}.jpg", c, size=(60, 40)) for i, c in enumerate(colours)]
    layout = Layout(rows=2, cols=3, tile_px=20, crop=(0, 0, 60, 40), target_size=(60, 40))
    return layout, [(str(p), (1 / 6, 0.0, 5 / 6, 1.0)) for p in paths]


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".tif", ".webp"])
def test_every_format_carries_the_mark_the_profile_and_the_resolution(tmp_path, suffix):
    layout, sources = _six_tiles(tmp_path)
    out = render_mosaic(layout, sources, tmp_path / f"mosaic{suffix}", dpi=300).path
    assert carries_mark(out)
    with Image.open(out) as image:
        assert image.size == (60, 40) and image.mode == "RGB"
        assert ImageCms.getProfileDescription(
            ImageCms.ImageCmsProfile(io.BytesIO(image.info["icc_profile"]))).startswith("sRGB")
        if suffix != ".webp":  # WebP stores no resolution
            assert round(image.info["dpi"][0]) == 300
    assert oct(out.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    render_mosaic(layout, sources, out)  # its own output is replaced


def test_the_quality_copy_is_the_poster_box_averaged(tmp_path):
    layout, sources = _six_tiles(tmp_path)
    poster = render_mosaic(layout, sources, tmp_path / "m.png")
    with Image.open(poster.path) as image:
        expected = np.asarray(image.convert("RGB").resize((3 * QUALITY_CELL, 2 * QUALITY_CELL),
                                                          Image.Resampling.BOX))
    assert poster.quality.shape == (2 * QUALITY_CELL, 3 * QUALITY_CELL, 3)
    assert np.abs(poster.quality.astype(int) - expected).max() <= 1
    assert poster.preview.shape[0] == 2 * layout.tile_px  # 480 px would need more than a tile


def test_a_render_resumes_from_the_rows_it_kept_and_redraws_another_posters(tmp_path):
    layout, sources = _six_tiles(tmp_path)
    rows = tmp_path / "rows"
    key = strips_key(sources, layout.tile_px)
    strips = StripFolder(rows / key[:16], key, 60, 20)
    strips.prepare()
    first_row = np.full((20, 60, 3), (7, 77, 177), np.uint8)
    strips.write_row(0, first_row)
    Path(sources[0][0]).unlink()  # row 0 is kept: its photo is not read again
    poster = render_mosaic(layout, sources, tmp_path / "m.png", rows_root=rows)
    with Image.open(poster.path) as image:
        pixels = np.asarray(image)
    assert (pixels[:20] == (7, 77, 177)).all() and abs(int(pixels[30, 30, 1]) - 250) < 12
    assert not (rows / key[:16]).exists()  # removed once the poster is written
    (rows / "0123456789abcdef").mkdir()  # another poster's rows
    with pytest.raises(MosaicError, match=r"0\.jpg"):  # row 0 must be drawn again now
        render_mosaic(layout, sources, tmp_path / "m.png", rows_root=rows, identity=["x"])
    assert not (rows / "0123456789abcdef").exists()


def test_the_bleed_mirrors_the_edge_tiles_outwards(tmp_path):
    layout, sources = _six_tiles(tmp_path)
    poster = render_mosaic(layout, sources, tmp_path / "m.png", bleed_px=5)
    assert (poster.width, poster.height) == (70, 50)
    with Image.open(poster.path) as image:
        pixels = np.asarray(image).astype(int)
    inner = pixels[5:45, 5:65]
    assert (pixels[5:45, 0:5] == inner[:, 4::-1]).all()
    assert (pixels[0:5, 5:65] == inner[4::-1, :]).all()
    assert poster.quality.shape == (2 * QUALITY_CELL, 3 * QUALITY_CELL, 3)  # the poster only


def test_a_stop_while_writing_kills_the_encoder_and_leaves_nothing(tmp_path):
    image = pyvips.Image.black(6000, 6000, bands=3).copy(interpretation="srgb")
    out = tmp_path / "big.tif"
    calls = []

    def stop(step):
        calls.append(step)
        raise KeyboardInterrupt

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        save_poster(image, out, "TIFF", stop)
    assert time.monotonic() - started < 5 and calls
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_folder_is_one_line(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    layout, sources = _six_tiles(tmp_path)
    folder = tmp_path / "locked"
    folder.mkdir(mode=0o500)
    with pytest.raises(MosaicError, match="cannot write"):
        render_mosaic(layout, sources, folder / "m.jpg")


def test_a_poster_too_big_for_pillows_guard_still_counts_as_ours(tmp_path):
    image = pyvips.Image.black(19000, 19000, bands=3).copy(interpretation="srgb")
    image.set_type(pyvips.GValue.gstr_type, "image-description", f"{MARK} 0")
    image.tiffsave(str(tmp_path / "big.tif"), tile=True, compression="deflate")
    assert carries_mark(tmp_path / "big.tif")
    theirs = image.copy()
    theirs.remove("image-description")
    theirs.tiffsave(str(tmp_path / "theirs.tif"), tile=True, compression="deflate")
    assert not carries_mark(tmp_path / "theirs.tif")


def test_a_poster_that_fills_the_disk_is_one_line_and_leaves_nothing(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    program = textwrap.dedent(f"""
        import sys
        import numpy as np
        from PIL import Image
        from mosaic.errors import MosaicError
        from mosaic.layout import Layout
        from mosaic.render import render_mosaic
        noise = np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8)
        Image.fromarray(noise).save({str(tmp_path / "noise.png")!r})
        layout = Layout(rows=4, cols=4, tile_px=250, crop=(0, 0, 4, 4), target_size=(4, 4))
        sources = [({str(tmp_path / "noise.png")!r}, (0.0, 0.0, 1.0, 1.0))] * 16
        try:
            render_mosaic(layout, sources, {str(disk / "poster.png")!r},
                          rows_root={str(tmp_path / "rows")!r})
        except MosaicError as exc:
            import os
            print(exc)
            print(os.listdir({str(disk)!r}))
            sys.exit(2)
    """)
    result = in_mount_namespace("size=256k", [str(disk), sys.executable, "-c", program],
                                {**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert result.returncode == 2, result.stderr
    message, left = result.stdout.strip().splitlines()
    assert message.startswith(f"cannot write {disk / 'poster.png'}: the disk is full")
    assert left == "[]"  # the half-written temporary is gone


def test_colour_correction_moves_tiles_toward_their_cells_and_is_off_by_default(tmp_path):
    layout, sources = _six_tiles(tmp_path)
    grey = np.full((6, 3), 128.0)
    plain = render_mosaic(layout, sources, tmp_path / "plain.png").path
    with Image.open(plain) as image:
        before = np.asarray(image).astype(float)
    corrected = render_mosaic(layout, sources, tmp_path / "c.png",
                              correction=ColourCorrection(0.5, grey)).path
    with Image.open(corrected) as image:
        after = np.asarray(image).astype(float)
    for index in range(6):
        row, col = divmod(index, 3)
        cell = (slice(row * 20, row * 20 + 20), slice(col * 20, col * 20 + 20))
        gap_before = before[cell].mean(axis=(0, 1)) - 128
        gap_after = after[cell].mean(axis=(0, 1)) - 128
        assert np.allclose(gap_after, gap_before / 2, atol=1.5)  # half the gap is closed
        texture = before[cell] - before[cell].mean(axis=(0, 1))
        assert np.abs(after[cell] - after[cell].mean(axis=(0, 1)) - texture).max() <= 1.5

