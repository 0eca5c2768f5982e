"""The data-export importer: both layouts, mojibake, only post images, hostile ZIPs refused."""

from __future__ import annotations

import json
import zipfile

import pytest

from mosaic.errors import MosaicError
from mosaic.files import sha256_bytes
from mosaic.sources.instagram.export import fix_mojibake, import_instagram_export
from tests.fixtures.export_zips import (
    LAYOUTS,
    build_export,
    build_hostile_export,
    build_html_export,
    mojibake,
)
from tests.fixtures.logs import captured_logs


def _images(folder):
    return sorted(p.name for p in folder.iterdir() if p.name != "manifest.json")


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_import_takes_every_post_image_once(tmp_path, layout):
    export = build_export(tmp_path / "export.zip", layout)
    out = tmp_path / "photos"
    with captured_logs() as records:
        summary = import_instagram_export(export.path, out)
    expected = {sha256_bytes(data): data for data in export.expected.values()}
    assert _images(out) == sorted(f"{sha}.jpg" for sha in expected)
    for sha, data in expected.items():
        assert (out / f"{sha}.jpg").read_bytes() == data  # byte for byte
    assert not any(sha256_bytes(data) in expected for data in export.not_imported)
    assert summary.images == len(export.expected) and summary.new_files == len(expected)
    assert summary.skipped_videos == export.videos
    assert summary.layout == ("root" if layout == "root" else "your_instagram_activity")
    assert summary.missing == ["media/posts/202312/missing.jpg"]
    assert [r.getMessage() for r in records if "missing.jpg" in r.getMessage()]

    posts = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["posts"]
    for key, title in export.titles.items():
        assert posts[key]["title"] == title  # mojibake undone
    statuses = {entry["status"] for entry in posts.values()}
    assert statuses <= {"done", "video", "failed"}
    saved = {image["sha256"] for entry in posts.values() for image in entry["images"]}
    assert saved == set(expected)
    assert all(entry["date"].startswith("2023-") for key, entry in posts.items()
               if "missing" not in key)

    again = import_instagram_export(export.path, out)
    assert again.new_files == 0 and again.images == summary.images


def test_mojibake_is_fixed_and_correct_text_is_left_alone():
    for text in ["Café ☕ “quoted” 🎉", "plain", "Zürich", ""]:
        assert fix_mojibake(mojibake(text)) == text
    assert fix_mojibake("日本語") == "日本語"
    assert fix_mojibake("Ã") == "Ã"  # not valid UTF-8 once re-encoded: kept


@pytest.mark.parametrize(("kind", "message"), [
    ("zip-slip", "climbs out of the archive"),
    ("absolute", "absolute path"),
    ("symlink", "symbolic link"),
    ("huge", "over the 105 MB cap"),
    ("uri-escape", "outside the archive"),
    ("lying", "damaged"),
])
def test_hostile_archives_are_refused_before_anything_is_written(tmp_path, kind, message):
    path = build_hostile_export(tmp_path / f"{kind}.zip", kind)
    out = tmp_path / "photos"
    with pytest.raises(MosaicError, match=message) as caught:
        import_instagram_export(path, out)
    assert "\n" not in str(caught.value)
    assert list(out.iterdir()) == []
    assert not (tmp_path / "tmp").exists()


def test_html_export_is_refused_with_advice(tmp_path):
    path = build_html_export(tmp_path / "html.zip")
    with pytest.raises(MosaicError, match="HTML-format export; request a new one in JSON"):
        import_instagram_export(path, tmp_path / "photos")


def test_not_an_export(tmp_path):
    text = tmp_path / "notes.zip"
    text.write_text("not a zip")
    with pytest.raises(MosaicError, match="not a ZIP"):
        import_instagram_export(text, tmp_path / "out")
    with pytest.raises(MosaicError, match="file not found"):
        import_instagram_export(tmp_path / "nope.zip", tmp_path / "out")
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(MosaicError, match=r"no posts_1\.json"):
        import_instagram_export(empty, tmp_path / "out")
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(broken, "w") as archive:
        archive.writestr("content/posts_1.json", "[{not json")
    with pytest.raises(MosaicError, match="not valid JSON"):
        import_instagram_export(broken, tmp_path / "out")
