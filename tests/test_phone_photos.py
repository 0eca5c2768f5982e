"""Phone photos: HEIC/HEIF and AVIF decode upright from a folder and from an export ZIP.

Every image is a real file encoded here (HEIC by pillow-heif's libheif/x265, AVIF by
Pillow's libavif). The picture is asymmetric (top red, bottom blue, portrait) and stored
turned, with the EXIF orientation that turns it back, so a decode that forgets the
orientation, or applies it twice, gives a different picture.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mosaic.files import sha256_bytes
from mosaic.images import open_rgb, sniff_heif, upright_size
from mosaic.library import build_library
from mosaic.pipeline.library import scan_photos
from mosaic.sources.instagram.export import import_instagram_export
from tests.conftest import ROOT, SAMPLE_PHOTOS, write_jpeg
from tests.fixtures.logs import captured_logs

UPRIGHT = (48, 64)
# EXIF orientation -> the turn (PIL's counter-clockwise degrees) that stores the upright
# picture so that a viewer applying the orientation shows it upright again.
STORED_TURN = {1: 0, 3: 180, 6: 90, 8: 270}
FORMATS = {".heic": "HEIF", ".heif": "HEIF", ".hif": "HEIF", ".avif": "AVIF"}


def _upright(size: tuple[int, int] = UPRIGHT) -> Image.Image:
    width, height = size
    picture = Image.new("RGB", size, (255, 0, 0))
    picture.paste((0, 0, 255), (0, height // 2, width, height))
    return picture


def write_phone_photo(path: Path, orientation: int = 6, size: tuple[int, int] = UPRIGHT,
                      **options: object) -> Path:
    """The upright picture stored turned, tagged with the orientation that undoes it."""
    stored = _upright(size).rotate(STORED_TURN[orientation], expand=True)
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(path, format=FORMATS[path.suffix.lower()], exif=exif.tobytes(), quality=90,
                **options)
    return path


def assert_upright(pixels: np.ndarray) -> None:
    """Top rows red, bottom rows blue: upright, neither turned nor upside down."""
    height = pixels.shape[0]
    top, bottom = pixels[height // 8].astype(int), pixels[-1 - height // 8].astype(int)
    assert (top[:, 0] > 200).all() and (top[:, 2] < 60).all(), "top is not red"
    assert (bottom[:, 2] > 200).all() and (bottom[:, 0] < 60).all(), "bottom is not blue"


@pytest.mark.parametrize("suffix", sorted(FORMATS))
@pytest.mark.parametrize("orientation", sorted(STORED_TURN))
def test_phone_photos_decode_upright_exactly_once(tmp_path, suffix, orientation):
    path = write_phone_photo(tmp_path / f"IMG_0001{suffix.upper()}", orientation)
    with Image.open(path) as stored:
        assert stored.format == FORMATS[suffix]
    image = open_rgb(path)
    assert image.mode == "RGB" and image.size == UPRIGHT
    assert_upright(np.asarray(image))
    assert upright_size(path) == UPRIGHT


def test_heic_thumbnail_draft_is_upright_and_the_true_size_is_kept(tmp_path):
    # An embedded 48x64 thumbnail (as phones store): a small draft decodes it instead.
    path = write_phone_photo(tmp_path / "big.heic", 6, size=(192, 256), thumbnails=[64])
    small = open_rgb(path, draft_size=32)
    assert small.size == (48, 64)
    assert_upright(np.asarray(small))
    assert open_rgb(path).size == (192, 256)
    assert upright_size(path) == (192, 256)


def test_folder_of_only_phone_photos_builds_a_library(tmp_path):
    folder = tmp_path / "iphone"
    folder.mkdir()
    names = ["IMG_0001.HEIC", "IMG_0002.heic", "IMG_0003.heif", "IMG_0004.avif"]
    for index, name in enumerate(names):
        write_phone_photo(folder / name, [6, 1, 8, 3][index])
    with captured_logs() as records:
        photos = scan_photos(str(folder))
        library = build_library(photos, feature_size=8, crops=1, workers=1)
    assert [Path(path).name for path, _ in photos] == names
    assert library.skipped == [] and not records
    assert [Path(r.path).name for r in library.records] == names
    assert all((r.width, r.height) == UPRIGHT for r in library.records)
    for thumbs in library.thumbs:  # the centre square of each: red above blue
        assert_upright(thumbs[0])


def test_heic_without_pillow_heif_is_named_unreadable(tmp_path):
    # A real interpreter where pillow-heif cannot be imported (its module entry is None).
    folder = tmp_path / "photos"
    folder.mkdir()
    write_phone_photo(folder / "IMG_0001.HEIC")
    write_jpeg(folder / "b.jpg", (10, 200, 30))
    script = (
        "import sys, json\n"
        "sys.modules['pillow_heif'] = None\n"
        "from mosaic.images import HEIF_SUPPORTED\n"
        "from mosaic.library import build_library\n"
        "from mosaic.pipeline.library import scan_photos\n"
        "library = build_library(scan_photos(sys.argv[1]), feature_size=8, workers=1)\n"
        "print(json.dumps([HEIF_SUPPORTED, len(library), library.skipped]))\n"
    )
    done = subprocess.run([sys.executable, "-W", "error", "-c", script, str(folder)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    supported, count, skipped = json.loads(done.stdout)
    assert supported is False and count == 1
    reason = ("cannot read image (HEIC/HEIF photos need the pillow-heif package, which is "
              "not installed)")
    assert skipped == [[str(folder / "IMG_0001.HEIC"), reason]]
    assert f"skipped {folder / 'IMG_0001.HEIC'}: {reason}" in done.stderr


def _ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = b"ftyp" + major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return (len(body) + 4).to_bytes(4, "big") + body + b"\x00\x00\x00\x08meta"


def test_sniff_heif_tells_heic_from_avif_and_videos():
    assert sniff_heif(_ftyp(b"heic", b"mif1", b"heic")) == "heic"
    assert sniff_heif(_ftyp(b"mif1", b"mif1", b"heic")) == "heic"
    assert sniff_heif(_ftyp(b"avif", b"mif1", b"miaf")) == "avif"
    assert sniff_heif(_ftyp(b"mif1", b"mif1", b"miaf", b"avif")) == "avif"
    assert sniff_heif(_ftyp(b"mp42", b"isom", b"mp42")) is None
    assert sniff_heif(_ftyp(b"qt  ")) is None
    assert sniff_heif(b"\xff\xd8\xff\xe0") is None


def test_export_keeps_heic_and_avif_posts(tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    files = {
        "media/posts/202301/17900000001.heic": write_phone_photo(media / "a.heic", 6),
        "media/posts/202301/17900000002.avif": write_phone_photo(media / "b.avif", 8),
        "media/posts/202302/17900000003.jpg": SAMPLE_PHOTOS[0],
    }
    path = tmp_path / "export.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for uri, source in files.items():
            archive.writestr(uri, source.read_bytes())
        posts = [{"media": [{"uri": uri, "creation_timestamp": 1_700_000_000, "title": ""}]}
                 for uri in files]
        archive.writestr("your_instagram_activity/content/posts_1.json", json.dumps(posts))
    out = tmp_path / "photos"
    with captured_logs() as records:
        summary = import_instagram_export(path, out)
    assert not records and summary.missing == []
    assert summary.posts == summary.images == summary.new_files == 3
    for source, ext in zip(files.values(), ["heic", "avif", "jpg"], strict=True):
        data = source.read_bytes()
        saved = out / f"{sha256_bytes(data)}.{ext}"
        assert saved.read_bytes() == data  # byte for byte
        if ext != "jpg":
            assert open_rgb(saved).size == UPRIGHT
            assert_upright(np.asarray(open_rgb(saved)))
    assert len(scan_photos(str(out))) == 3  # the imported folder is a photo folder
