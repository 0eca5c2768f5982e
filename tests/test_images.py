import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from mosaic.errors import ImageTooLargeError, UnreadableImageError
from mosaic.images import (
    MAX_CROP_BOXES,
    crop_boxes,
    open_rgb,
    pixel_box,
    square_crop_boxes,
    upright_size,
)
from tests.conftest import call_unblocking


def _exif_rotated_jpeg(path, orientation):
    # A 60x30 image: left half red, right half blue; stored with an EXIF orientation.
    pixels = np.zeros((30, 60, 3), np.uint8)
    pixels[:, :30] = (255, 0, 0)
    pixels[:, 30:] = (0, 0, 255)
    image = Image.fromarray(pixels)
    exif = Image.Exif()
    exif[0x0112] = orientation
    image.save(path, quality=95, exif=exif.tobytes())
    return path


def test_exif_orientation_is_applied(tmp_path):
    # Orientation 6: the camera was turned; viewers rotate 90 degrees clockwise.
    upright = open_rgb(_exif_rotated_jpeg(tmp_path / "r.jpg", 6))
    assert upright.size == (30, 60)
    top = np.asarray(upright)[5, 15]
    bottom = np.asarray(upright)[55, 15]
    assert top[0] > 200 and top[2] < 60  # red now on top
    assert bottom[2] > 200 and bottom[0] < 60
    plain = open_rgb(_exif_rotated_jpeg(tmp_path / "p.jpg", 1))
    assert plain.size == (60, 30)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "L", "CMYK", "I;16", "I", "1", "F"])
def test_every_mode_becomes_rgb(tmp_path, mode):
    base = Image.new("RGB", (20, 10), (200, 100, 50))
    if mode == "I;16":
        image = Image.fromarray(np.full((10, 20), 40000, np.uint16))
        path = tmp_path / "x.png"
    elif mode in {"I", "F"}:
        image = base.convert("L").convert(mode)
        path = tmp_path / "x.tif"
    else:
        image = base.convert(mode)
        path = tmp_path / ("x.jpg" if mode in {"L", "CMYK"} else "x.png")
    image.save(path)
    rgb = open_rgb(path)
    assert rgb.mode == "RGB" and rgb.size == (20, 10)
    if mode == "I;16":
        assert abs(int(np.asarray(rgb)[0, 0, 0]) - round(40000 / 257)) <= 1


def test_transparency_composited_on_white(tmp_path):
    image = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    image.save(tmp_path / "clear.png")
    assert np.asarray(open_rgb(tmp_path / "clear.png")).min() == 255


def test_truncated_jpeg_is_unreadable(tmp_path):
    Image.new("RGB", (200, 200), (10, 200, 30)).save(tmp_path / "whole.jpg", quality=95)
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(UnreadableImageError, match=r"cut\.jpg"):
        open_rgb(tmp_path / "cut.jpg")


def test_not_an_image_is_unreadable(tmp_path):
    (tmp_path / "fake.jpg").write_text("hello")
    with pytest.raises(UnreadableImageError, match=r"fake\.jpg: cannot read image"):
        open_rgb(tmp_path / "fake.jpg")


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    Image.new("L", (3000, 3000)).save(tmp_path / "bomb.png", optimize=True)
    with pytest.raises(ImageTooLargeError, match=r"decompression-bomb cap"):
        open_rgb(tmp_path / "bomb.png", max_pixels=1_000_000)


def test_draft_decoding_keeps_enough_pixels(tmp_path):
    Image.new("RGB", (1600, 1200), (1, 2, 3)).save(tmp_path / "big.jpg")
    small = open_rgb(tmp_path / "big.jpg", draft_size=64)
    assert min(small.size) >= 64 and small.size[0] < 1600


def test_square_crop_boxes():
    boxes = square_crop_boxes(400, 200, 7)
    assert boxes[0] == (0.25, 0.0, 0.75, 1.0)
    assert boxes[1] == (0.0, 0.0, 0.5, 1.0) and boxes[2] == (0.5, 0.0, 1.0, 1.0)
    assert len(boxes) == 7
    for box in boxes:
        left, top, right, bottom = pixel_box(box, 400, 200)
        assert right - left == bottom - top and 0 <= left and right <= 400 and bottom <= 200
    # A square photo has no distinct ends: only centre and four zoomed corners.
    assert len(square_crop_boxes(100, 100, 7)) == 7 and len(square_crop_boxes(100, 100, 13)) == 13
    assert len(square_crop_boxes(100, 100, MAX_CROP_BOXES)) == 28  # the ends coincide
    assert len(square_crop_boxes(400, 200, 3)) == 3
    every = square_crop_boxes(400, 200, 13)
    assert every[:7] == boxes and len(set(every)) == 13  # the first seven as before
    for box in every:
        left, top, right, bottom = pixel_box(box, 400, 200)
        assert right - left == bottom - top and 0 <= left and right <= 400 and bottom <= 200
    close = pixel_box(every[-1], 400, 200)  # the close centre: 0.6 of the short side
    assert (close[2] - close[0], (close[0] + close[2]) / 2) == (120, 200)
    every = square_crop_boxes(400, 200, MAX_CROP_BOXES)
    assert every[:13] == square_crop_boxes(400, 200, 13) and len(set(every)) == MAX_CROP_BOXES
    sides = []
    for box in every:
        left, top, right, bottom = pixel_box(box, 400, 200)
        assert right - left == bottom - top and 0 <= left and right <= 400 and bottom <= 200
        sides.append(right - left)
    assert min(sides) == 120  # nothing closer than the close centre
    # Asking for more never changes the first ones (cached libraries, crop indexes).
    for size, aspect in (((100, 100), 1.0), ((1080, 1350), 0.8), ((1920, 1080), 1.0)):
        longest = crop_boxes(*size, MAX_CROP_BOXES, aspect)
        for count in (1, 7, 11, 13, 20):
            assert crop_boxes(*size, count, aspect) == longest[:count]


def _png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_with_trailing_exif(path, orientation):
    # Pillow writes eXIf before the pixel data; other writers put it after, before IEND.
    pixels = np.zeros((30, 60, 3), np.uint8)
    pixels[:, 30:] = 255
    Image.fromarray(pixels).save(path)
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = path.read_bytes()
    assert data[-12:-8] == b"\0\0\0\0" and data[-8:-4] == b"IEND"
    path.write_bytes(data[:-12] + _png_chunk(b"eXIf", exif.tobytes()[6:]) + data[-12:])
    return path


@pytest.fixture
def header_only(monkeypatch):
    """Make any pixel decoding fail, to prove that only the header is read."""
    def refuse(self):
        raise AssertionError("decoded the pixels")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


@pytest.mark.parametrize(("orientation", "size"), [
    (1, (60, 30)), (2, (60, 30)), (3, (60, 30)), (4, (60, 30)),
    (5, (30, 60)), (6, (30, 60)), (7, (30, 60)), (8, (30, 60)),
])
def test_upright_size_applies_exif_orientation(tmp_path, orientation, size):
    path = _exif_rotated_jpeg(tmp_path / "r.jpg", orientation)
    assert open_rgb(path).size == size
    assert upright_size(path) == size


def test_upright_size_reads_only_the_header(tmp_path, header_only):
    assert upright_size(_exif_rotated_jpeg(tmp_path / "r.jpg", 6)) == (30, 60)
    Image.new("RGB", (40, 10)).save(tmp_path / "plain.png")
    assert upright_size(tmp_path / "plain.png") == (40, 10)
    exif = Image.Exif()
    exif[0x0112] = 8
    Image.new("RGB", (40, 10)).save(tmp_path / "exif.png", exif=exif)
    assert upright_size(tmp_path / "exif.png") == (10, 40)
    assert upright_size(_png_with_trailing_exif(tmp_path / "late.png", 6)) == (30, 60)


def test_upright_size_of_png_with_exif_after_the_pixels_matches_decoding(tmp_path):
    for orientation in (1, 6):
        path = _png_with_trailing_exif(tmp_path / f"late{orientation}.png", orientation)
        assert upright_size(path) == open_rgb(path).size
    assert upright_size(tmp_path / "late6.png") == (30, 60)


@pytest.mark.parametrize("read", [upright_size, open_rgb])
def test_fifo_is_refused_without_blocking(tmp_path, read):
    os.mkfifo(tmp_path / "target.jpg")
    with pytest.raises(UnreadableImageError) as caught:
        call_unblocking(lambda: read(tmp_path / "target.jpg"), tmp_path / "target.jpg")
    message = str(caught.value)
    assert "target.jpg" in message and "named pipe" in message and "\n" not in message


@pytest.mark.parametrize("read", [upright_size, open_rgb])
def test_device_is_refused(tmp_path, read):
    (tmp_path / "zero.jpg").symlink_to("/dev/zero")
    with pytest.raises(UnreadableImageError, match=r"zero\.jpg: a character device"):
        read(tmp_path / "zero.jpg")


def test_folder_named_like_an_image_is_refused(tmp_path):
    (tmp_path / "odd.jpg").mkdir()
    with pytest.raises(UnreadableImageError, match=r"odd\.jpg: a folder, not a regular file"):
        upright_size(tmp_path / "odd.jpg")


def test_upright_size_refuses_decompression_bombs(tmp_path, header_only):
    Image.new("L", (3000, 3000)).save(tmp_path / "bomb.png", optimize=True)
    with pytest.raises(ImageTooLargeError, match=r"bomb\.png: 3000x3000 .* decompression-bomb cap"):
        upright_size(tmp_path / "bomb.png", max_pixels=1_000_000)
    assert upright_size(tmp_path / "bomb.png") == (3000, 3000)
    # A header claiming 30000 x 30000 pixels (900 MP) over a few bytes of data.
    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    (tmp_path / "huge.png").write_bytes(
        b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _png_chunk(b"IEND", b""))
    with pytest.raises(ImageTooLargeError, match=r"huge\.png: ") as caught:
        upright_size(tmp_path / "huge.png")
    assert "\n" not in str(caught.value)


def test_upright_size_of_a_missing_or_broken_file(tmp_path):
    with pytest.raises(UnreadableImageError, match=r"missing\.jpg: cannot read image"):
        upright_size(tmp_path / "missing.jpg")
    (tmp_path / "fake.jpg").write_text("hello")
    with pytest.raises(UnreadableImageError, match=r"fake\.jpg: cannot read image"):
        upright_size(tmp_path / "fake.jpg")
