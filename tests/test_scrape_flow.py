"""The scrape flow with a real Prefect API: 150 posts with faults, retries, caching, artifacts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from mosaic.files import sha256_bytes
from mosaic.sources import manifest
from mosaic.sources.instagram.options import ScrapeOptions
from tests.fixtures.fake_browsers import YEAR, firefox_profile
from tests.fixtures.fake_instagram import FAULTS, FakeInstagram, Post, make_posts
from tests.fixtures.logs import captured_logs


def _options(site: FakeInstagram, out: Path, workdir: Path, **kwargs: Any) -> ScrapeOptions:
    """Options for the fake site: no politeness delay, short timeouts and back-offs."""
    values = {"base_url": site.base_url, "allow_hosts": (site.image_host,), "delay": 0.0,
              "connect_timeout": 2.0, "read_timeout": 1.0, "request_attempts": 4,
              "request_backoff": 0.1, "idle_timeout": 8.0, "out": str(out),
              "workdir": str(workdir), **kwargs}
    return ScrapeOptions(**values)


def _artifact(flow_run_id: UUID) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
            key=ArtifactFilterKey(any_=["instagram-scrape"])))
    assert len(artifacts) == 1
    return str(artifacts[0].data)


def _all_text(folder: Path) -> str:
    return "\n".join(p.read_bytes().decode("latin-1") for p in folder.rglob("*") if p.is_file())


def _post_url(site: FakeInstagram, post: Post) -> str:
    return f"{site.base_url}/p/{post.code}/"


def test_gone_posts_complete_the_run_and_are_not_fetched_again(prefect_api, tmp_path):
    from flows.scrape_instagram import run_scrape

    posts = make_posts(8, carousels=2, videos=1, reels=0, seed=29, og_every=0)
    single = next(p for p in posts if p.kind == "image" and p.variant != "graphql-min")
    carousel = next(p for p in posts if p.kind == "carousel")
    deleted = next(p for p in posts if p.kind == "image" and p is not single)
    with FakeInstagram(posts) as site:
        site.remove_image(single.photos[0])  # every size: 404
        site.remove_image(next(ph for ph in carousel.photos if not ph.video), status=410)
        site.remove_post(deleted)
        request = _options(site, tmp_path / "photos", tmp_path / "work",
                           username=site.username, retry_delay=0.1)
        with captured_logs() as records:
            state = run_scrape(request, return_state=True)
        assert state.is_completed(), state
        summary = state.result()
        assert summary["failures"] == []
        assert (summary["posts_gone"], summary["posts_partly_gone"]) == (2, 1)
        entries = manifest.read_manifest(tmp_path / "photos")["posts"]
        assert entries[single.code]["status"] == "gone"
        assert entries[deleted.code]["status"] == "gone"
        assert entries[carousel.code]["status"] == "partly-gone"
        assert entries[carousel.code]["images"]  # what was left is saved
        warnings = [r.getMessage() for r in records if r.levelname == "WARNING"]
        assert len(warnings) == 1 and "\n" not in warnings[0]
        assert all(p.code in warnings[0] for p in (single, carousel, deleted))
        assert records[0].name.startswith("mosaic.")
        artifact = _artifact(state.state_details.flow_run_id)
        assert "| posts gone from the site (404/410) | 2 |" in artifact
        assert "| posts partly gone (some images 404/410) | 1 |" in artifact
        assert all(p.code in artifact for p in (single, carousel, deleted))
        assert set(site.downloads()) == set(site.expected_downloads())

        images, pages = site.requested("image"), site.requested("page")
        with captured_logs() as records:
            again = run_scrape(request)
        assert again["posts_gone"] == 2 and again["failures"] == []
        assert site.requested("image") == images  # nothing fetched again, gone or not
        after = site.requested("page")
        assert all(after[f"/p/{p.code}/"] == pages[f"/p/{p.code}/"] for p in posts)
        assert not [r for r in records if r.levelname == "WARNING"]  # named once, not again


def test_failed_posts_are_retried_then_only_they_are_fetched_again(prefect_api, tmp_path):
    from flows.scrape_instagram import ScrapeIncompleteError, run_scrape

    posts = make_posts(10, carousels=2, videos=1, reels=0, seed=21, variants=("v1",), og_every=0)
    images = [p for p in posts if p.kind == "image"]
    flaky, broken = images[0], images[1]
    with FakeInstagram(posts) as site:
        urls = [_post_url(site, p) for p in posts] + [f"{site.base_url}/p/GONE1/"]
        site.force_faults(f"/p/{flaky.code}/", ["500", "503", "500"])
        broken_image = site.image_path(broken.photos[0], 1080)
        site.force_faults(broken_image, ["500"] * 20)
        request = _options(site, tmp_path / "photos", tmp_path / "work",
                           post_urls=tuple(urls), retries=2, retry_delay=0.1,
                           connect_timeout=10.0, request_attempts=2, request_backoff=0.05)
        state = run_scrape(request, return_state=True)
        assert state.is_failed()
        error = state.result(raise_on_failure=False)
        assert isinstance(error, ScrapeIncompleteError)
        reasons = {f["url"]: f["reason"] for f in error.summary["failures"]}
        assert set(reasons) == {_post_url(site, broken)}  # a deleted post is not a failure
        assert "HTTP 500" in reasons[_post_url(site, broken)]
        assert [g["code"] for g in error.summary["gone"]] == ["GONE1"]
        pages = site.requested("page")
        assert pages[f"/p/{flaky.code}/"] == 4  # 2 in-request tries, then a task retry
        assert pages["/p/GONE1/"] == 1  # a 404 is not retried
        assert site.requested("image")[broken_image] == 6  # 2 tries x 3 task runs
        artifact = _artifact(state.state_details.flow_run_id)
        assert "## Failures" in artifact and "## Gone from the site" in artifact
        assert "GONE1" in artifact and "HTTP 404" in artifact
        posts_now = manifest.read_manifest(tmp_path / "photos")["posts"]
        assert posts_now[broken.code]["status"] == "failed"
        assert posts_now["GONE1"]["status"] == "gone"

        site.force_faults(broken_image, [])
        lost = images[2]
        lost_file = posts_now[lost.code]["images"][0]["file"]
        (tmp_path / "photos" / lost_file).unlink()  # its cached result is stale now
        (tmp_path / "photos" / "manifest.json").unlink()  # only Prefect's cache is left
        before = site.requested("page")
        summary = run_scrape(request)
        assert summary["failures"] == [] and summary["posts_gone"] == 1
        after = site.requested("page")
        fetched = {path for path in after if after[path] != before[path]}
        assert fetched == {f"/p/{broken.code}/", f"/p/{lost.code}/"}  # not GONE1 again
        assert (tmp_path / "photos" / lost_file).is_file()
        rebuilt = manifest.read_manifest(tmp_path / "photos")["posts"]
        assert rebuilt[broken.code]["status"] == "done"
        assert rebuilt["GONE1"]["status"] == "gone"  # put back from Prefect's cache
        assert {code for code, e in rebuilt.items() if e["status"] in {"done", "video"}} == {
            p.code for p in posts}


@dataclass
class Scrape:
    site: FakeInstagram
    root: Path
    out: Path
    summary: dict[str, Any]
    artifact: str
    seconds: float


@pytest.fixture(scope="module")
def scrape150(prefect_api, tmp_path_factory) -> Iterator[Scrape]:
    """One scrape of a 150-post profile (20 carousels, 10 videos) with 20 % transient faults.

    Over 13 pages of the profile's feed (more than its DOM keeps), with every fault kind
    (80-odd faults: as many as 10 % of a profile twice the size), in half the time.
    """
    from flows.scrape_instagram import run_scrape

    posts = make_posts(150, carousels=20, videos=10, reels=4, seed=1)
    root = tmp_path_factory.mktemp("scrape150")
    with FakeInstagram(posts, fault_rate=0.20, slow_seconds=1.5) as site:
        name, secret = site.session_cookie
        cookies = root / "cookies.txt"
        cookies.write_text("# Netscape HTTP Cookie File\n"
                           f"127.0.0.1\tFALSE\t/\tFALSE\t0\t{name}\t{secret}\n")
        request = _options(site, root / "photos", root / "work", cookies=str(cookies),
                           username=site.username, retry_delay=0.2)
        started = time.perf_counter()
        state = run_scrape(request, return_state=True)
        seconds = time.perf_counter() - started
        summary = state.result()
        yield Scrape(site, root, root / "photos", summary,
                     _artifact(state.state_details.flow_run_id), seconds)


def test_every_image_is_downloaded_exactly_once(scrape150):
    site = scrape150.site
    expected = site.expected_downloads()
    downloads = site.downloads()
    assert {path: downloads[path] for path in expected} == dict.fromkeys(expected, 1)
    assert set(downloads) == set(expected)
    requested = site.requested("image")
    assert not set(requested) & site.forbidden_paths()  # no video, cover or small size


def test_the_folder_holds_the_images_byte_for_byte_and_nothing_else(scrape150):
    expected = {sha256_bytes(data): data for data in scrape150.site.expected_downloads().values()}
    files = {p.name for p in scrape150.out.iterdir()}
    assert files == {f"{sha}.jpg" for sha in expected} | {"manifest.json"}
    for sha, data in expected.items():
        assert (scrape150.out / f"{sha}.jpg").read_bytes() == data
    assert sorted(p.name for p in scrape150.root.iterdir()) == ["cookies.txt", "photos", "work"]
    assert not [p for p in (scrape150.root / "work").rglob("*") if "chromium" in p.name]


def test_manifest_records_every_post(scrape150):
    site = scrape150.site
    posts = manifest.read_manifest(scrape150.out)["posts"]
    listed = [p for p in site.posts if p.kind != "reel"]
    assert set(posts) == {p.code for p in listed}
    for post in listed:
        entry = posts[post.code]
        if post.kind == "video":
            assert entry["status"] == "video" and entry["images"] == []
            continue
        assert entry["status"] == "done"
        assert entry["date"] or post.variant == "og"  # a thumbnail-only page has no date
        width = 320 if post.variant == "og" else 1080
        assert [image["sha256"] for image in entry["images"]] == [
            sha256_bytes(site.jpeg(photo.seed, width)) for photo in post.photos if not photo.video]
        assert entry["skipped_videos"] == sum(photo.video for photo in post.photos)
        assert all((scrape150.out / image["file"]).is_file() for image in entry["images"])


def test_summary_and_artifact(scrape150):
    summary, site = scrape150.summary, scrape150.site
    videos = [p for p in site.posts if p.kind == "video"]
    assert summary["posts_listed"] == 146 and summary["reels_skipped"] == 4
    assert summary["video_posts"] == len(videos) == 6
    assert summary["images"] == summary["new_images"] == len(site.expected_downloads())
    assert summary["failures"] == []
    faults = site.fault_count()
    assert sum(faults.values()) >= 50 and faults["fault:429"] > 0
    assert set(faults) == {f"fault:{kind}" for kind in FAULTS}  # each kind, survived
    assert summary["retries"] > 0
    artifact = scrape150.artifact
    assert "| posts listed | 146 |" in artifact
    assert f"| images | {summary['images']} (" in artifact
    assert "skipped videos" in artifact and "failed posts | 0" in artifact


def test_cookies_are_never_stored(scrape150):
    _, secret = scrape150.site.session_cookie
    assert secret not in _all_text(scrape150.out)
    assert secret not in _all_text(scrape150.root / "work")
    assert secret not in scrape150.artifact
    assert secret not in repr(scrape150.summary)


def test_a_stop_is_never_retried():
    from prefect.states import Failed

    from mosaic.processes import Stopped
    from mosaic.sources.download.errors import PermanentFetchError, TransientFetchError
    from mosaic.sources.download.stop import StopRequested, clear_stop, request_stop
    from tasks.scrape import retry_on_network_faults

    def retried(error: BaseException) -> bool:
        return retry_on_network_faults(None, None, Failed(data=error))  # type: ignore[arg-type]

    assert retried(TransientFetchError("HTTP 503"))
    assert not retried(PermanentFetchError("HTTP 404", status=404))
    assert not retried(KeyboardInterrupt())
    assert not retried(Stopped(2))
    assert not retried(StopRequested("stopped"))
    request_stop()
    try:
        assert not retried(TransientFetchError("HTTP 503"))  # nothing once told to stop
    finally:
        clear_stop()


def test_a_foreign_manifest_stops_the_flow_before_any_request(prefect_api, tmp_path):
    from flows.scrape_instagram import run_scrape

    out = tmp_path / "photos"
    out.mkdir()
    (out / "manifest.json").write_text('{"files": ["mine"]}')
    with FakeInstagram(make_posts(3, carousels=0, videos=0, reels=0, seed=61)) as site:
        request = _options(site, out, tmp_path / "work", username=site.username)
        state = run_scrape(request, return_state=True)
        assert state.is_failed()
        error = state.result(raise_on_failure=False)
        assert isinstance(error, manifest.ForeignManifestError)
        assert str(error) == (f"{out / 'manifest.json'} is not a photo-mosaic manifest; "
                              "choose another out folder")
        assert site.hits == []
    assert (out / "manifest.json").read_text() == '{"files": ["mine"]}'
    assert [p.name for p in out.iterdir()] == ["manifest.json"]


def test_a_guest_s_dozen_posts_is_one_warning_and_a_browser_login_gets_them_all(prefect_api,
                                                                                 tmp_path):
    from flows.scrape_instagram import run_scrape

    posts = make_posts(20, carousels=2, videos=1, reels=1, seed=67, og_every=0)
    with FakeInstagram(posts, guest_posts=12) as site:
        request = _options(site, tmp_path / "photos", tmp_path / "work", username=site.username)
        with captured_logs() as records:
            state = run_scrape(request, return_state=True)
        assert state.is_completed(), state
        summary = state.result()
        assert summary["hidden_posts"]["visible"] == 12 and summary["posts_stated"] == 20
        warnings = [r.getMessage() for r in records if r.levelname == "WARNING"]
        assert warnings == ["12 of 20 posts visible without login: pass cookies or "
                            "cookies_from_browser, or import your data export "
                            "(mosaic import instagram-export)"]
        artifact = _artifact(state.state_details.flow_run_id)
        assert ("> **Warning:** 12 of 20 posts visible without login: pass `cookies` or "
                "`cookies_from_browser`") in artifact
        assert "| posts the profile states | 20 (12 visible) |" in artifact

        name, secret = site.session_cookie
        connection = firefox_profile(tmp_path / "firefox", [
            ("127.0.0.1", name, secret, int(time.time()) + YEAR)])
        try:
            logged_in = request.model_copy(update={"cookies_from_browser": "firefox",
                                                   "browser_profile": str(tmp_path / "firefox")})
            with captured_logs() as records:
                state = run_scrape(logged_in, return_state=True)
        finally:
            connection.close()
        assert state.is_completed(), state
        summary = state.result()
        assert summary["hidden_posts"] is None and summary["posts_listed"] == 19
        assert not [r for r in records if r.levelname == "WARNING"]
        artifact = _artifact(state.state_details.flow_run_id)
        assert "Warning" not in artifact and "| posts the profile states | 20 |" in artifact
        assert secret not in (artifact + repr(summary) + _all_text(tmp_path / "photos")
                              + _all_text(tmp_path / "work"))
        assert set(site.downloads()) == set(site.expected_downloads())
