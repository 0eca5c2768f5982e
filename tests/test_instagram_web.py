"""The Instagram scraper against the fake site: page parsing, real headless Chromium, posts."""

from __future__ import annotations

import logging
import os
import signal
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mosaic import processes
from mosaic.errors import MosaicError
from mosaic.files import sha256_bytes
from mosaic.sources import manifest
from mosaic.sources.download.errors import PermanentFetchError, TransientFetchError
from mosaic.sources.download.fetch import FetchSettings, RetryPolicy
from mosaic.sources.instagram.browser import browser_errors, browser_network_error, open_browser
from mosaic.sources.instagram.errors import (
    LoginRequiredError,
    ProfileError,
    SiteUnreachableError,
)
from mosaic.sources.instagram.parse import parse_post_page, parse_srcset, unescape_js_string
from mosaic.sources.instagram.politeness import login_wall_seen
from mosaic.sources.instagram.post import record_failure, scrape_post
from mosaic.sources.instagram.profile import list_profile_posts, stated_post_count
from mosaic.sources.instagram.settings import ScrapeSettings
from mosaic.sources.instagram.urls import (
    normalise_base_url,
    parse_post_reference,
    post_code,
    read_post_list,
)
from tests.fixtures.fake_instagram import (
    LOGIN_PAGE,
    NOT_FOUND_PAGE,
    FakeInstagram,
    Post,
    make_posts,
    variant_matrix,
)
from tests.fixtures.logs import captured_logs

FAST = FetchSettings(connect_timeout=2.0, read_timeout=1.0,
                     retry=RetryPolicy(attempts=3, backoff=0.05))


def _settings(site: FakeInstagram, **kwargs) -> ScrapeSettings:
    return ScrapeSettings(base_url=site.base_url, allow_hosts=(site.image_host,), delay=0.0,
                          fetch=FAST, idle_timeout=5.0, **kwargs)


def _url(site: FakeInstagram, post: Post) -> str:
    return f"{site.base_url}/p/{post.code}/"


def _private_roots() -> set[Path]:
    roots = {Path(tempfile.gettempdir())}
    if os.environ.get("XDG_RUNTIME_DIR"):
        roots.add(Path(os.environ["XDG_RUNTIME_DIR"]))
    return roots


def _my_browser_folders() -> list[Path]:
    """The private Chromium folders of this process that still exist."""
    prefix = f"mosaic-chromium-{processes.owner_tag()}-"
    return [p for root in _private_roots() if root.is_dir() for p in root.iterdir()
            if p.name.startswith(prefix)]


def _processes_naming(text: str) -> list[str]:
    """Command lines of running processes that contain ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if text in line:
                found.append(line)
    return found


@pytest.fixture(scope="module")
def matrix() -> Iterator[FakeInstagram]:
    with FakeInstagram(variant_matrix(), username="matrix") as site:
        yield site


@pytest.fixture(scope="module")
def profile_site() -> Iterator[FakeInstagram]:
    posts = make_posts(40, carousels=6, videos=5, reels=3, seed=5)
    with FakeInstagram(posts, dom_limit=24, profile_failures=1) as site:
        yield site


# --- page parsing -----------------------------------------------------------------------------

def test_every_page_variant_gives_the_largest_images_and_skips_videos(matrix):
    for post in matrix.posts:
        if post.kind == "reel":
            continue
        with captured_logs() as records:
            media = parse_post_page(matrix.post_page(post), post.code, _url(matrix, post))
        width = 320 if post.variant == "og" else 1080
        wanted = [matrix.image_url(photo, width) for photo in post.photos if not photo.video]
        if post.kind == "video":
            assert media.is_video and media.images == (), post.variant
            continue
        assert [image.url for image in media.images] == wanted, post.variant
        assert media.skipped_videos == sum(photo.video for photo in post.photos)
        expected_source = {"srcset": "srcset", "og": "og:image"}.get(post.variant, "json")
        assert media.found_by == expected_source
        warned = [r.getMessage() for r in records]
        assert (len(warned) == 1 and "og:image" in warned[0]) if post.variant == "og" \
            else warned == []
        if expected_source == "json":
            assert media.caption == post.caption
            assert media.date == manifest.timestamp_iso(post.taken_at)


def test_escaped_json_is_unescaped_once_per_level(matrix):
    post = next(p for p in matrix.posts if p.variant == "escaped" and p.kind == "image")
    page = matrix.post_page(post)
    url = matrix.image_url(post.photos[0], 1080)
    assert url not in page and "\\\\u0026" in page  # only the double-escaped form is there
    media = parse_post_page(page, post.code, _url(matrix, post))
    assert media.images[0].url == url and "&oh=" in url


def test_the_post_is_told_apart_from_suggested_posts(matrix):
    post = next(p for p in matrix.posts if p.variant == "v1" and p.kind == "image")
    page = matrix.post_page(post)
    others = [p for p in matrix.posts if p is not post and p.kind == "image"
              and matrix.image_url(p.photos[0], 1080).replace("/", "\\/").replace(
                  "&", "\\u0026") in page]
    assert others, "the page should suggest other posts"
    media = parse_post_page(page, post.code, _url(matrix, post))
    assert [i.url for i in media.images] == [matrix.image_url(post.photos[0], 1080)]


def test_login_page_is_recognised():
    with pytest.raises(LoginRequiredError, match="log in and pass cookies"):
        parse_post_page(LOGIN_PAGE, "ABCDE", "https://www.instagram.com/p/ABCDE/")


def test_small_parsers():
    assert unescape_js_string(r"a\/b\u0026c \"q\" \ud83c\udf89 \x41\n") == 'a/b&c "q" 🎉 A\n'
    refs = parse_srcset("https://a/x,1.jpg 320w, https://a/y.jpg?a=1&b=2 1080w,"
                        "https://a/z.jpg 640w")
    assert [(r.url, r.width) for r in refs] == [("https://a/x,1.jpg", 320),
                                                ("https://a/y.jpg?a=1&b=2", 1080),
                                                ("https://a/z.jpg", 640)]
    assert [r.width for r in parse_srcset("a.jpg 1x, b.jpg 2x")] == [1000, 2000]
    html = '<meta name="description" content="1,234 Followers, 5 Following, 1,024 Posts - See">'
    assert stated_post_count(html) == 1024
    assert stated_post_count(html.replace("1,024 Posts", "1.2K Posts")) is None
    assert normalise_base_url("HTTP://127.0.0.1:8080/") == "http://127.0.0.1:8080"
    for bad in ["ftp://x", "www.instagram.com", "https://x.com/path", "http://x:99999"]:
        with pytest.raises(MosaicError, match="base_url"):
            normalise_base_url(bad)


def test_post_references_and_lists(tmp_path):
    base = "https://www.instagram.com"
    assert parse_post_reference("https://www.instagram.com/p/Cx1_-aB/?igsh=abc", base) == (
        "p", "Cx1_-aB")
    assert parse_post_reference("instagram.com/someone/p/Cx1aB/", base) == ("p", "Cx1aB")
    assert parse_post_reference("https://instagr.am/reel/Cx1aB", base) == ("reel", "Cx1aB")
    assert parse_post_reference("https://example.com/p/Cx1aB/", base) is None
    assert parse_post_reference("https://www.instagram.com/someone/", base) is None
    assert post_code("http://127.0.0.1:9/p/Cx1aB/") == "Cx1aB"
    listing = tmp_path / "urls.txt"
    listing.write_text("\ufeff# my favourites\nhttps://www.instagram.com/p/AAAAA/\n\n"
                       "www.instagram.com/p/BBBBB/?img_index=2\n"
                       "https://www.instagram.com/p/AAAAA/\n"
                       "https://www.instagram.com/reel/CCCCC/\n", encoding="utf-8")
    posts, reels = read_post_list(listing, "http://127.0.0.1:8000")
    assert posts == ("http://127.0.0.1:8000/p/AAAAA/", "http://127.0.0.1:8000/p/BBBBB/")
    assert reels == ("http://127.0.0.1:8000/reel/CCCCC/",)
    listing.write_text("https://www.instagram.com/p/AAAAA/\nhttps://example.com/x\n")
    with pytest.raises(MosaicError, match="line 2"):
        read_post_list(listing, base)
    listing.write_text("# nothing\n")
    with pytest.raises(MosaicError, match="no post URLs"):
        read_post_list(listing, base)
    with pytest.raises(MosaicError, match="not found"):
        read_post_list(tmp_path / "missing.txt", base)


# --- the profile in headless Chromium ----------------------------------------------------------

def test_profile_scroll_collects_every_post_in_order(profile_site, tmp_path):
    site = profile_site
    feed = f"/api/v1/feed/{site.username}/?count=12&max_id="
    site.force_faults(feed + "12", ["429"])
    site.force_faults(feed + "24", ["500", "reset"])
    listing = list_profile_posts(site.username, _settings(site), tmp_path / "work")
    assert [post_code(url) for url in listing.posts] == [
        p.code for p in site.posts if p.kind != "reel"]
    assert [post_code(url) for url in listing.reels] == [
        p.code for p in site.posts if p.kind == "reel"]
    assert listing.expected == 40
    assert not (tmp_path / "work").exists()  # the browser profile is not in the run folder
    assert _my_browser_folders() == []  # and its private folder is gone
    assert site.requested("image") == {}  # the browser loads no images


def test_max_posts_takes_the_newest(profile_site, tmp_path):
    listing = list_profile_posts(profile_site.username, _settings(profile_site), tmp_path,
                                 max_posts=5)
    newest = [p.code for p in profile_site.posts if p.kind != "reel"][:5]
    assert [post_code(url) for url in listing.posts] == newest
    assert listing.scrolls == 0  # the first page was enough


def test_login_wall_and_cookies(tmp_path):
    posts = make_posts(8, carousels=1, videos=1, reels=0, seed=9)
    with FakeInstagram(posts, login_wall_after=0) as site:
        with pytest.raises(LoginRequiredError, match="log in and pass cookies"):
            list_profile_posts(site.username, _settings(site), tmp_path)
        name, secret = site.session_cookie
        cookies = tmp_path / "cookies.txt"
        cookies.write_text("# Netscape HTTP Cookie File\n"
                           f"127.0.0.1\tFALSE\t/\tFALSE\t0\t{name}\t{secret}\n"
                           ".example.com\tTRUE\t/\tFALSE\t0\tother\tx\n")
        stale = tmp_path / "chromium-profile-killed"  # a killed run's browser profile
        (stale / "Default").mkdir(parents=True)
        (stale / "Default" / "Cookies").write_text(secret)
        with captured_logs("", logging.DEBUG) as records:
            listing = list_profile_posts(site.username, _settings(site, cookies=str(cookies)),
                                         tmp_path)
        assert len(listing.posts) == 8
        assert records and not any(secret in r.getMessage() for r in records)
        assert [p.name for p in tmp_path.iterdir()] == ["cookies.txt"]


def test_missing_profile(profile_site, tmp_path):
    with pytest.raises(ProfileError, match="no such profile"):
        list_profile_posts("nobody.here", _settings(profile_site), tmp_path)


# --- one post, end to end -----------------------------------------------------------------------

def test_carousel_saves_its_photos_and_skips_its_video(matrix, tmp_path):
    post = next(p for p in matrix.posts if p.variant == "graphql" and p.kind == "carousel")
    result = scrape_post(_url(matrix, post), tmp_path, _settings(matrix))
    entry = result["entry"]
    assert entry["status"] == "done" and entry["skipped_videos"] == 1
    photos = [photo for photo in post.photos if not photo.video]
    assert [image["sha256"] for image in entry["images"]] == [
        sha256_bytes(matrix.jpeg(photo.seed, 1080)) for photo in photos]
    assert result["new_images"] == 2 and not result["reused"]
    video = next(photo for photo in post.photos if photo.video)
    requested = matrix.requested("image")
    assert all(requested[matrix.image_path(video, w)] == 0 for w in (320, 640, 1080))
    assert manifest.read_manifest(tmp_path)["posts"][post.code] == entry
    again = scrape_post(_url(matrix, post), tmp_path, _settings(matrix))
    assert again["reused"] and matrix.requested("page")[f"/p/{post.code}/"] == 1


def test_video_post_downloads_nothing(matrix, tmp_path):
    post = next(p for p in matrix.posts if p.variant == "escaped" and p.kind == "video")
    result = scrape_post(_url(matrix, post), tmp_path, _settings(matrix))
    assert result["entry"]["status"] == "video" and result["entry"]["images"] == []
    assert not any(matrix.requested("image")[matrix.image_path(post.photos[0], w)]
                   for w in (320, 640, 1080))
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def test_interrupted_carousel_resumes_without_refetching(matrix, tmp_path):
    post = next(p for p in matrix.posts if p.variant == "v1" and p.kind == "carousel")
    first, _, third = post.photos
    matrix.force_faults(matrix.image_path(third, 1080), ["500"] * FAST.retry.attempts)
    with pytest.raises(TransientFetchError, match="HTTP 500"):
        scrape_post(_url(matrix, post), tmp_path, _settings(matrix))
    partial = manifest.read_manifest(tmp_path)["posts"][post.code]
    assert partial["status"] == "partial" and len(partial["images"]) == 1
    result = scrape_post(_url(matrix, post), tmp_path, _settings(matrix))
    assert result["entry"]["status"] == "done" and result["new_images"] == 1
    downloads = matrix.downloads()
    assert downloads[matrix.image_path(first, 1080)] == 1
    assert downloads[matrix.image_path(third, 1080)] == 1


def test_missing_file_is_fetched_again(matrix, tmp_path):
    post = next(p for p in matrix.posts if p.variant == "srcset" and p.kind == "image")
    entry = scrape_post(_url(matrix, post), tmp_path, _settings(matrix))["entry"]
    (tmp_path / entry["images"][0]["file"]).unlink()
    again = scrape_post(_url(matrix, post), tmp_path, _settings(matrix))
    assert not again["reused"] and again["new_images"] == 1


def test_deleted_post_is_gone_at_once_and_not_fetched_again(matrix, tmp_path):
    url = f"{matrix.base_url}/p/GONE0/"
    result = scrape_post(url, tmp_path, _settings(matrix))
    entry = result["entry"]
    assert entry["status"] == "gone" and entry["images"] == []
    assert entry["error"] == "the post page answers HTTP 404"
    assert matrix.requested("page")["/p/GONE0/"] == 1  # a 404 is not retried
    assert manifest.read_manifest(tmp_path)["posts"]["GONE0"] == entry
    record_failure(tmp_path, url, "HTTP 500")  # a finished post stays as it is
    assert manifest.read_manifest(tmp_path)["posts"]["GONE0"]["status"] == "gone"
    assert scrape_post(url, tmp_path, _settings(matrix))["reused"]
    assert matrix.requested("page")["/p/GONE0/"] == 1


def test_login_wall_on_post_pages_stops_the_run(tmp_path):
    posts = make_posts(6, carousels=0, videos=0, reels=0, seed=13, variants=("v1",))
    with FakeInstagram(posts, login_wall_after=1) as site:
        settings = _settings(site)
        scrape_post(_url(site, posts[0]), tmp_path, settings, run_key="run-1")
        with pytest.raises(LoginRequiredError, match="log in and pass cookies"):
            scrape_post(_url(site, posts[1]), tmp_path, settings, run_key="run-1")
        assert login_wall_seen("run-1")
        pages = sum(site.requested("page").values())
        with pytest.raises(LoginRequiredError):
            scrape_post(_url(site, posts[2]), tmp_path, settings, run_key="run-1")
        assert sum(site.requested("page").values()) == pages  # no request once walled
        assert scrape_post(_url(site, posts[0]), tmp_path, settings, run_key="run-1")["reused"]


def test_images_off_the_allow_list_are_refused(matrix, tmp_path):
    post = next(p for p in matrix.posts if p.variant == "v1" and p.kind == "image")
    settings = ScrapeSettings(base_url=matrix.base_url, delay=0.0, fetch=FAST)
    with pytest.raises(PermanentFetchError, match="not on the allow-list"):
        scrape_post(_url(matrix, post), tmp_path, settings)
    assert matrix.requested("image")[matrix.image_path(post.photos[0], 1080)] == 0
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == []


# --- gone is not failed ---------------------------------------------------------------------

@pytest.fixture
def fresh() -> Iterator[FakeInstagram]:
    """A variant matrix of its own: these tests delete media from it."""
    with FakeInstagram(variant_matrix(seed=23), username="fresh") as site:
        yield site


def _first(site: FakeInstagram, variant: str, kind: str) -> Post:
    return next(p for p in site.posts if p.variant == variant and p.kind == kind)


def test_every_size_a_page_offers_is_kept_largest_first(matrix):
    for post in matrix.posts:
        if post.kind in {"video", "reel"}:
            continue
        media = parse_post_page(matrix.post_page(post), post.code, _url(matrix, post))
        photos = [photo for photo in post.photos if not photo.video]
        assert [[size.url for size in image.sizes()] for image in media.images] == [
            [matrix.image_url(photo, w) for w in matrix.offered_widths(post)]
            for photo in photos], post.variant


def test_a_size_that_is_gone_gives_way_to_the_next(fresh, tmp_path):
    post = _first(fresh, "srcset", "image")
    photo = post.photos[0]
    fresh.remove_image(photo, (1080,))
    entry = scrape_post(_url(fresh, post), tmp_path, _settings(fresh))["entry"]
    assert entry["status"] == "done" and entry["gone_images"] == []
    assert [(i["sha256"], i["width"]) for i in entry["images"]] == [
        (sha256_bytes(fresh.jpeg(photo.seed, 640)), 640)]
    requested = fresh.requested("image")
    assert [requested[fresh.image_path(photo, w)] for w in (1080, 640, 320)] == [1, 1, 0]


@pytest.mark.parametrize("status", [404, 410])
def test_an_image_gone_on_every_size_makes_the_post_gone(fresh, tmp_path, status):
    post = _first(fresh, "v1", "image")
    photo = post.photos[0]
    fresh.remove_image(photo, status=status)
    result = scrape_post(_url(fresh, post), tmp_path, _settings(fresh))
    entry = result["entry"]
    assert entry["status"] == "gone" and entry["images"] == [] and result["new_images"] == 0
    assert entry["error"] == f"every size of its image answers HTTP {status}"
    assert entry["gone_images"] == [fresh.image_url(photo, 1080)]
    requested = fresh.requested("image")
    assert [requested[fresh.image_path(photo, w)] for w in (1080, 640, 320)] == [1, 1, 1]
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]
    assert manifest.read_manifest(tmp_path)["posts"][post.code] == entry
    again = scrape_post(_url(fresh, post), tmp_path, _settings(fresh))
    assert again["reused"] and fresh.requested("image") == requested
    assert fresh.requested("page")[f"/p/{post.code}/"] == 1


def test_a_carousel_with_a_gone_image_keeps_the_others(fresh, tmp_path):
    post = _first(fresh, "graphql", "carousel")
    first, _video, third = post.photos
    fresh.remove_image(first)
    entry = scrape_post(_url(fresh, post), tmp_path, _settings(fresh))["entry"]
    assert entry["status"] == "partly-gone" and entry["skipped_videos"] == 1
    assert [i["sha256"] for i in entry["images"]] == [sha256_bytes(fresh.jpeg(third.seed, 1080))]
    assert entry["gone_images"] == [fresh.image_url(first, 1080)]
    assert entry["error"] == "every size of 1 of its 2 images answers HTTP 404"
    assert scrape_post(_url(fresh, post), tmp_path, _settings(fresh))["reused"]


def test_a_page_that_is_gone_or_says_so(fresh, tmp_path):
    post = _first(fresh, "escaped", "image")
    fresh.remove_post(post, status=410)
    entry = scrape_post(_url(fresh, post), tmp_path, _settings(fresh))["entry"]
    assert entry["status"] == "gone" and entry["error"] == "the post page answers HTTP 410"
    media = parse_post_page(NOT_FOUND_PAGE, "ABCDE", "https://www.instagram.com/p/ABCDE/")
    assert media.found_by == "unavailable" and media.images == ()


def test_403_is_still_a_failure_and_no_smaller_size_is_tried(fresh, tmp_path):
    post = _first(fresh, "v1", "image")
    photo = post.photos[0]
    fresh.add_route(fresh.image_path(photo, 1080), 403, b"URL signature expired",
                    {"Content-Type": "text/plain"})
    with pytest.raises(PermanentFetchError, match="HTTP 403"):
        scrape_post(_url(fresh, post), tmp_path, _settings(fresh))
    assert fresh.requested("image")[fresh.image_path(photo, 640)] == 0
    assert manifest.finished_entry(tmp_path, post.code) is None  # a rerun tries again


# --- the browser: one-line errors, a private folder, nothing left running --------------------

def test_browser_network_errors_are_classified():
    refused = browser_network_error("http://127.0.0.1:9/x/", "ERR_CONNECTION_REFUSED")
    assert isinstance(refused, SiteUnreachableError) and not refused.retryable
    assert str(refused) == "cannot reach http://127.0.0.1:9 (net::ERR_CONNECTION_REFUSED)"
    dns = browser_network_error("https://nowhere.invalid/u/",
                                "unknown error: net::ERR_NAME_NOT_RESOLVED")
    assert isinstance(dns, SiteUnreachableError)
    assert isinstance(browser_network_error("https://x/", "ERR_CERT_DATE_INVALID"),
                      SiteUnreachableError)
    reset = browser_network_error("https://x/u/", "ERR_CONNECTION_RESET")
    assert isinstance(reset, TransientFetchError) and reset.retryable
    assert isinstance(browser_network_error("https://x/u/", "odd"), TransientFetchError)


def test_an_unreachable_site_is_one_line(tmp_path):
    cookies = tmp_path / "cookies.txt"
    cookies.write_text("# Netscape HTTP Cookie File\n"
                       "127.0.0.1\tFALSE\t/\tFALSE\t0\tsessionid\tnot-a-real-one\n")
    for extra in ({}, {"cookies": str(cookies)}):
        settings = ScrapeSettings(base_url="http://127.0.0.1:9", allow_hosts=("127.0.0.1:9",),
                                  delay=0.0, fetch=FAST, **extra)
        with pytest.raises(SiteUnreachableError) as caught:
            list_profile_posts("someone", settings, tmp_path / "work")
        assert str(caught.value) == ("cannot reach http://127.0.0.1:9 "
                                     "(net::ERR_CONNECTION_REFUSED)")
    assert _my_browser_folders() == []


def test_the_browser_lives_in_a_private_folder_and_leaves_nothing(tmp_path):
    with open_browser(tmp_path / "work") as driver:
        driver.get("about:blank")
        folder = next(f for f in _my_browser_folders() if (f / "profile").is_dir())
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert not folder.is_relative_to(tmp_path)
        running = _processes_naming(str(folder))
        assert any("--user-data-dir=" in line for line in running)
        # The crash handler leaves the browser's session: its command line names the
        # folder (its database is there), which is how the guardian finds it.
        assert any("chrome_crashpad_handler" in line for line in running), running
        group = driver.service.process.pid
        assert os.getsid(group) == group  # its own session: the terminal's Ctrl-C misses it
    assert not folder.exists() and _my_browser_folders() == []
    assert _processes_naming(str(folder)) == []
    assert not processes.group_alive(group)
    assert not (tmp_path / "work").exists()


def test_a_browser_that_died_is_one_line_and_cleaned_up(tmp_path):
    started = time.monotonic()
    with open_browser(tmp_path) as driver:
        group = driver.service.process.pid
        with pytest.raises(TransientFetchError, match="chromedriver is gone") as caught:
            with browser_errors("http://127.0.0.1:1/someone/"):
                os.killpg(group, signal.SIGKILL)
                time.sleep(0.2)
                driver.execute_script("return 1")
        assert "\n" not in str(caught.value)
    assert _my_browser_folders() == [] and not processes.group_alive(group)
    assert time.monotonic() - started < 30
