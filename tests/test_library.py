import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import mosaic.library as library_module
from mosaic.errors import MosaicError
from mosaic.library import (
    build_library,
    hash_photos,
    load_records,
    near_duplicate_pairs,
    perceptual_hashes,
    save_library,
    skipped_entries,
    skipped_warnings,
)
from mosaic.sources.folder import list_photo_files
from tests.conftest import SAMPLE_PHOTOS, call_unblocking, write_jpeg


def _build(folder, **kwargs):
    return build_library(hash_photos(list_photo_files(folder)), **kwargs)


def _large_jpeg(path, orientation=1):
    # 3000 x 2000 stored: far above the draft size, so it is decoded at 1/8 scale.
    ramp = np.linspace(0, 255, 3000, dtype=np.float32)
    pixels = np.empty((2000, 3000, 3), np.uint8)
    pixels[..., 0] = ramp[None, :]
    pixels[..., 1] = np.linspace(0, 255, 2000, dtype=np.float32)[:, None]
    pixels[..., 2] = 90
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, quality=80, exif=exif.tobytes())
    return path


def test_identical_photos_count_once_and_unreadable_are_skipped(tmp_path, caplog):
    for i, path in enumerate(SAMPLE_PHOTOS[:5]):
        shutil.copy(path, tmp_path / f"p{i}.jpg")
    shutil.copy(SAMPLE_PHOTOS[0], tmp_path / "copy-of-p0.jpg")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    data = SAMPLE_PHOTOS[6].read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 3])
    with caplog.at_level(logging.WARNING, logger="mosaic"):
        library = _build(tmp_path, feature_size=8)
    assert len(library) == 5
    assert [d[0].endswith("p0.jpg") for d in library.duplicates] == [True]
    skipped = sorted(p.rsplit("/", 1)[-1] for p, _ in library.skipped)
    assert skipped == ["broken.jpg", "truncated.jpg"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert all("\n" not in w for w in warnings)
    assert any("broken.jpg" in w for w in warnings) and any("truncated.jpg" in w for w in warnings)
    assert library.thumbs.shape == (5, 1, 8, 8, 3) and library.thumbs.dtype == np.uint8


def test_no_readable_photo_is_an_error(tmp_path):
    (tmp_path / "a.jpg").write_text("nope")
    with pytest.raises(MosaicError, match="none of the 1 image files could be read"):
        _build(tmp_path)


def test_empty_or_missing_folder_is_an_error(tmp_path):
    with pytest.raises(MosaicError, match="holds no image files"):
        list_photo_files(tmp_path)
    with pytest.raises(MosaicError, match="does not exist"):
        list_photo_files(tmp_path / "nowhere")


def test_near_duplicates_are_reported(tmp_path):
    original = Image.open(SAMPLE_PHOTOS[10])
    original.save(tmp_path / "a.jpg", quality=95)
    original.resize((original.width // 2, original.height // 2)).save(tmp_path / "b.jpg",
                                                                       quality=70)
    shutil.copy(SAMPLE_PHOTOS[200], tmp_path / "c.jpg")
    library = _build(tmp_path, feature_size=8)
    pairs = [(a.rsplit("/", 1)[-1], b.rsplit("/", 1)[-1]) for a, b, _ in
             library.near_duplicates]
    assert pairs == [("a.jpg", "b.jpg")]


def test_phash_matches_hamming_search():
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (6, 32, 32)).astype(np.uint8)
    grey[5] = grey[0]
    hashes = perceptual_hashes(grey)
    assert hashes.dtype == np.uint64 and hashes[0] == hashes[5]
    assert (0, 5, 0) in near_duplicate_pairs(hashes)


def test_crop_candidates_and_saved_manifest(tmp_path):
    write_jpeg(tmp_path / "wide.jpg", (200, 10, 10), size=(90, 30))
    library = _build(tmp_path, feature_size=4, crops=3)
    assert library.thumbs.shape == (1, 3, 4, 4, 3)
    manifest, thumbs = save_library(library, tmp_path / "out")
    records = load_records(manifest)
    assert records[0].width == 90 and len(records[0].boxes) == 3
    assert np.load(thumbs).shape == (1, 3, 4, 4, 3)


def test_thumbnail_cache_resumes_without_decoding_again(tmp_path, monkeypatch):
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in SAMPLE_PHOTOS[:12]:
        shutil.copy(path, photos / path.name)
    first = _build(photos, feature_size=8, cache_dir=tmp_path / "cache")
    calls = []
    real_decode = library_module._decode

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(library_module, "_decode", counting)
    shutil.copy(SAMPLE_PHOTOS[20], photos / "new.jpg")
    second = _build(photos, feature_size=8, cache_dir=tmp_path / "cache")
    assert [p.name for p in calls] == ["new.jpg"]
    np.testing.assert_array_equal(second.thumbs[:12], first.thumbs)
    assert not list((tmp_path / "cache").rglob("*.part*"))


def test_file_swapped_for_a_fifo_after_listing_is_skipped(tmp_path, caplog):
    write_jpeg(tmp_path / "a.jpg", (10, 20, 30))
    write_jpeg(tmp_path / "x.jpg", (30, 20, 10))
    files = list_photo_files(tmp_path)
    (tmp_path / "x.jpg").unlink()
    os.mkfifo(tmp_path / "x.jpg")
    with caplog.at_level(logging.WARNING, logger="mosaic"):
        hashed = call_unblocking(lambda: hash_photos(files), tmp_path / "x.jpg")
    assert [h is None for _, h in hashed] == [False, True]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "x.jpg" in warnings[0] and "named pipe" in warnings[0]
    library = build_library(hashed, feature_size=4)
    assert len(library) == 1 and library.skipped == [(str(files[1]), "cannot read file")]


def test_file_swapped_for_a_fifo_after_hashing_is_skipped(tmp_path, caplog):
    write_jpeg(tmp_path / "a.jpg", (10, 20, 30))
    write_jpeg(tmp_path / "x.jpg", (30, 20, 10))
    hashed = hash_photos(list_photo_files(tmp_path))
    (tmp_path / "x.jpg").unlink()
    os.mkfifo(tmp_path / "x.jpg")
    with caplog.at_level(logging.WARNING, logger="mosaic"):
        library = call_unblocking(lambda: build_library(hashed, feature_size=4),
                                   tmp_path / "x.jpg")
    assert len(library) == 1
    assert library.skipped[0][0].endswith("x.jpg") and "named pipe" in library.skipped[0][1]


def test_fifo_in_the_photo_folder_does_not_hang_the_build(tmp_path, caplog):
    write_jpeg(tmp_path / "a.jpg", (10, 20, 30))
    os.mkfifo(tmp_path / "x.jpg")
    with caplog.at_level(logging.WARNING, logger="mosaic"):
        library = call_unblocking(lambda: _build(tmp_path, feature_size=4), tmp_path / "x.jpg")
    assert len(library) == 1 and library.skipped == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "x.jpg" in warnings[0]


@pytest.mark.parametrize(("orientation", "size", "centre"), [
    (1, (3000, 2000), (1 / 6, 0.0, 5 / 6, 1.0)),
    (6, (2000, 3000), (0.0, 1 / 6, 1.0, 5 / 6)),
])
def test_large_jpeg_records_its_true_upright_size(tmp_path, orientation, size, centre):
    photos = tmp_path / "photos"
    photos.mkdir()
    _large_jpeg(photos / "big.jpg", orientation)
    library = _build(photos, feature_size=8, crops=2)
    manifest, _ = save_library(library, tmp_path / "out")
    record = load_records(manifest)[0]
    assert (record.width, record.height) == size
    np.testing.assert_allclose(record.boxes[0], centre, atol=0.01)


def test_thumbnail_cache_with_the_old_reduced_sizes_is_not_reused(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    _large_jpeg(photos / "big.jpg")
    hashed = hash_photos(list_photo_files(photos))
    # What the previous version cached for this photo: its 1/8 draft size.
    old = library_module._ShardCache(tmp_path / "cache" / "thumbs-s8-k1")
    old.add(library_module._Decoded(
        hashed[0][1], hashed[0][0], 375, 250, np.array([[0.1, 0.0, 0.9, 1.0]], np.float32),
        np.zeros((1, 8, 8, 3), np.uint8), np.zeros((32, 32), np.uint8)))
    old.flush()
    library = build_library(hashed, feature_size=8, cache_dir=tmp_path / "cache")
    assert (library.records[0].width, library.records[0].height) == (3000, 2000)
    again = build_library(hashed, feature_size=8, cache_dir=tmp_path / "cache")
    assert (again.records[0].width, again.records[0].height) == (3000, 2000)


def test_identical_broken_copies_are_all_named_in_one_warning(tmp_path, caplog):
    for i, path in enumerate(SAMPLE_PHOTOS[:3]):
        shutil.copy(path, tmp_path / f"p{i}.jpg")
    for name in ("a-broken.jpg", "b-copy.jpg", "c-copy.jpg"):
        (tmp_path / name).write_bytes(b"\xff\xd8\xff\xe0 the same broken bytes")
    (tmp_path / "d-other.jpg").write_bytes(b"other junk")
    with caplog.at_level(logging.WARNING, logger="mosaic"):
        library = _build(tmp_path, feature_size=8)
    warnings = sorted(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert len(warnings) == 2 and all("\n" not in w for w in warnings)
    assert "a-broken.jpg" in warnings[0] and warnings[0].endswith(
        f"(and 2 identical copies: {tmp_path / 'b-copy.jpg'}, {tmp_path / 'c-copy.jpg'})")
    assert "d-other.jpg" in warnings[1] and "identical cop" not in warnings[1]
    assert len(library) == 3 and library.duplicates == []
    entries = skipped_entries(library)
    assert sorted(Path(e["path"]).name for e in entries) == [
        "a-broken.jpg", "b-copy.jpg", "c-copy.jpg", "d-other.jpg"]
    assert {Path(e["path"]).name: Path(e["same_as"]).name for e in entries if "same_as" in e
            } == {"b-copy.jpg": "a-broken.jpg", "c-copy.jpg": "a-broken.jpg"}
    assert skipped_warnings(entries) == warnings  # what a cached library says again
