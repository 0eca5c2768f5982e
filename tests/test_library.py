import logging
import shutil

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
)
from mosaic.sources.folder import list_photo_files
from tests.conftest import SAMPLE_PHOTOS, write_jpeg


def _build(folder, **kwargs):
    return build_library(hash_photos(list_photo_files(folder)), **kwargs)


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
