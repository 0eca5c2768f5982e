"""Manifest entries: one entry type for the web scraper and the export importer."""

from __future__ import annotations

from mosaic.sources import manifest

WEB_KEYS = ["code", "url", "date", "caption", "status", "found_by", "images", "skipped_videos",
            "error", "gone_images"]
EXPORT_KEYS = ["code", "url", "date", "title", "status", "found_by", "images",
               "skipped_videos", "error"]


def test_entry_constructors_keep_the_manifest_format(tmp_path):
    post = manifest.Post("ABCD", "https://x/p/ABCD/", "2024-01-01T00:00:00+00:00", "json", 1,
                         caption="hi")
    image = {"url": "https://cdn/a.jpg", "sha256": "0" * 64, "file": "a.jpg", "bytes": 3,
             "width": 10, "height": 20}
    entries = {
        "done": manifest.done_entry(post, [image]),
        "partial": manifest.partial_entry(post, [image], ["https://cdn/b.jpg"], "why"),
        "video": manifest.video_entry(post),
        "failed": manifest.failed_entry(post, "HTTP 403", [image]),
        "gone": manifest.gone_entry(post, "HTTP 404", ["https://cdn/b.jpg"]),
        "partly-gone": manifest.partly_gone_entry(post, [image], "HTTP 410", ["u"]),
    }
    for status, entry in entries.items():
        assert entry["status"] == status and list(entry) == WEB_KEYS
    assert entries["video"]["images"] == [] and entries["gone"]["images"] == []
    assert entries["done"]["error"] is None and entries["done"]["gone_images"] == []
    exported = manifest.Post("export:media/a.jpg", None, None, "export", 0, title="t",
                             exported=True)
    assert list(manifest.done_entry(exported, [image])) == EXPORT_KEYS
    manifest.update_posts(tmp_path, {"k": entries["partly-gone"]})
    assert manifest.read_manifest(tmp_path)["posts"]["k"] == entries["partly-gone"]
    kept = manifest.Post.from_previous("ABCD", post.url, entries["failed"])
    assert kept == post


def test_each_update_of_a_growing_post_is_written(tmp_path):
    post = manifest.Post("ABCD", "https://x/p/ABCD/")
    images = []
    for number in range(3):
        images.append({"url": f"https://cdn/{number}.jpg", "file": f"{number}.jpg"})
        manifest.update_posts(tmp_path, {"ABCD": manifest.partial_entry(post, images)})
        assert len(manifest.read_manifest(tmp_path)["posts"]["ABCD"]["images"]) == number + 1
