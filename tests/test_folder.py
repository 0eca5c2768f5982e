import logging
import os
import socket

import pytest

from mosaic.errors import MosaicError
from mosaic.sources.folder import list_photo_files
from tests.conftest import write_jpeg

# Listing must never open a file, so none of these can block; the timeout is a backstop.
pytestmark = pytest.mark.timeout(20)


def _names(paths, root):
    return [str(p.relative_to(root)) for p in paths]


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_special_files_are_skipped_with_one_warning_each(tmp_path, caplog, monkeypatch):
    photos = tmp_path / "photos"
    photos.mkdir()
    write_jpeg(photos / "a.jpg", (10, 20, 30))
    os.mkfifo(photos / "x.jpg")
    os.mkfifo(photos / "pipe")
    (photos / "via-link.jpg").symlink_to("pipe")
    (photos / "null.png").symlink_to("/dev/null")
    monkeypatch.chdir(photos)  # a short relative name: socket paths are limited to 108 bytes
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind("y.png")
        with caplog.at_level(logging.WARNING, logger="mosaic"):
            found = list_photo_files(photos)
    finally:
        server.close()
    assert _names(found, photos) == ["a.jpg"]
    warnings = _warnings(caplog)
    assert len(warnings) == 4 and all("\n" not in w for w in warnings)
    by_name = {name: [w for w in warnings if f"{name}:" in w]
               for name in ["x.jpg", "via-link.jpg", "null.png", "y.png"]}
    assert all(len(hits) == 1 for hits in by_name.values()), by_name
    assert "named pipe" in by_name["x.jpg"][0] and "named pipe" in by_name["via-link.jpg"][0]
    assert "character device" in by_name["null.png"][0]
    assert "socket" in by_name["y.png"][0]
    assert all(r.name.startswith("mosaic.") for r in caplog.records)


def test_only_special_files_is_no_image_files(tmp_path, caplog):
    os.mkfifo(tmp_path / "x.jpg")
    with caplog.at_level(logging.WARNING, logger="mosaic"):
        with pytest.raises(MosaicError, match="holds no image files"):
            list_photo_files(tmp_path)
    assert len(_warnings(caplog)) == 1


def test_links_to_files_are_listed_and_dangling_links_warned(tmp_path, caplog):
    photos = tmp_path / "photos"
    photos.mkdir()
    write_jpeg(tmp_path / "outside.jpg", (200, 10, 10))
    write_jpeg(photos / "b.jpg", (10, 200, 10))
    (photos / "a.jpg").symlink_to(tmp_path / "outside.jpg")
    (photos / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    with caplog.at_level(logging.WARNING, logger="mosaic"):
        found = list_photo_files(photos)
    assert _names(found, photos) == ["a.jpg", "b.jpg"]
    warnings = _warnings(caplog)
    assert len(warnings) == 1
    assert "gone.jpg" in warnings[0] and "broken symbolic link" in warnings[0]
    assert "nowhere.jpg" in warnings[0]


def test_symlinked_sub_folder_is_followed(tmp_path, caplog):
    photos = tmp_path / "photos"
    elsewhere = tmp_path / "elsewhere"
    (photos / "real").mkdir(parents=True)
    (elsewhere / "deeper").mkdir(parents=True)
    write_jpeg(photos / "z.jpg", (1, 2, 3))
    write_jpeg(photos / "real" / "r.jpg", (4, 5, 6))
    write_jpeg(elsewhere / "e.jpg", (7, 8, 9))
    write_jpeg(elsewhere / "deeper" / "d.jpg", (10, 11, 12))
    (photos / "linked").symlink_to(elsewhere, target_is_directory=True)
    (photos / ".hidden-link").symlink_to(elsewhere, target_is_directory=True)
    with caplog.at_level(logging.WARNING, logger="mosaic"):
        found = list_photo_files(photos)
    # The real tree first, as before links were followed; then the linked folder.
    assert _names(found, photos) == ["z.jpg", "real/r.jpg", "linked/e.jpg",
                                     "linked/deeper/d.jpg"]
    assert all(p.is_file() for p in found)
    assert _warnings(caplog) == []


def test_symlink_loop_terminates_with_one_warning(tmp_path, caplog):
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    write_jpeg(photos / "a.jpg", (1, 2, 3))
    write_jpeg(photos / "sub" / "c.jpg", (4, 5, 6))
    (photos / "sub" / "loop").symlink_to("..", target_is_directory=True)
    with caplog.at_level(logging.WARNING, logger="mosaic"):
        found = list_photo_files(photos)
    assert _names(found, photos) == ["a.jpg", "sub/c.jpg"]
    warnings = _warnings(caplog)
    assert len(warnings) == 1
    assert "sub/loop" in warnings[0] and "\n" not in warnings[0]


def test_a_folder_reached_twice_is_listed_once(tmp_path, caplog):
    photos = tmp_path / "photos"
    outside = tmp_path / "outside"
    (photos / "real").mkdir(parents=True)
    outside.mkdir()
    write_jpeg(photos / "real" / "r.jpg", (1, 2, 3))
    write_jpeg(outside / "o.jpg", (4, 5, 6))
    # "alias" sorts before "real", yet the real folder is the one listed.
    (photos / "alias").symlink_to("real", target_is_directory=True)
    (photos / "one").symlink_to(outside, target_is_directory=True)
    (photos / "two").symlink_to(outside, target_is_directory=True)
    with caplog.at_level(logging.WARNING, logger="mosaic"):
        first = list_photo_files(photos)
    assert _names(first, photos) == ["real/r.jpg", "one/o.jpg"]
    warnings = _warnings(caplog)
    assert len(warnings) == 2
    assert any("alias" in w and "real" in w for w in warnings)
    assert any(f"{photos / 'two'}:" in w for w in warnings)
    assert list_photo_files(photos) == first
