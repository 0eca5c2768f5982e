"""The Instagram scraper against the fake site: page parsing, real headless Chromium, posts."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from mosaic.errors import MosaicError
from mosaic.files import sha256_bytes
from mosaic.sources import manifest
from mosaic.sources.download import (
    FetchSettings,
    PermanentFetchError,
    RetryPolicy,
    TransientFetchError,
)
from mosaic.sources.instagram_web import (
    LoginRequiredError,
    ProfileError,
    ScrapeSettings,
    list_profile_posts,
    login_wall_seen,
    normalise_base_url,
    parse_post_page,
    parse_post_reference,
    parse_srcset,
    post_code,
    read_post_list,
    record_failure,
    scrape_post,
    stated_post_count,
    unescape_js_string,
)
from tests.fixtures.fake_instagram import (
    LOGIN_PAGE,
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
    with pytest.raises(LoginRequiredError, match="log in and pass --cookies"):
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
        with pytest.raises(MosaicError, match="--base-url"):
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
    assert list((tmp_path / "work").iterdir()) == []  # the browser profile is gone
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
        with pytest.raises(LoginRequiredError, match="log in and pass --cookies"):
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


def test_deleted_post_fails_at_once_and_is_recorded(matrix, tmp_path):
    url = f"{matrix.base_url}/p/GONE0/"
    with pytest.raises(PermanentFetchError, match="HTTP 404"):
        scrape_post(url, tmp_path, _settings(matrix))
    assert matrix.requested("page")["/p/GONE0/"] == 1
    record_failure(tmp_path, url, "HTTP 404")
    entry = manifest.read_manifest(tmp_path)["posts"]["GONE0"]
    assert entry["status"] == "failed" and entry["error"] == "HTTP 404"


def test_login_wall_on_post_pages_stops_the_run(tmp_path):
    posts = make_posts(6, carousels=0, videos=0, reels=0, seed=13, variants=("v1",))
    with FakeInstagram(posts, login_wall_after=1) as site:
        settings = _settings(site)
        scrape_post(_url(site, posts[0]), tmp_path, settings, run_key="run-1")
        with pytest.raises(LoginRequiredError, match="log in and pass --cookies"):
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
