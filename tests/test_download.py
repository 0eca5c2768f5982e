"""Downloads: allow-list, retries, size and type checks, atomic files (real HTTP on loopback)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from mosaic import processes
from mosaic.errors import MosaicError
from mosaic.files import TEMP_PREFIX, remove_stale_temporaries, sha256_bytes
from mosaic.sources.download.cookies import load_cookie_jar
from mosaic.sources.download.errors import (
    PermanentFetchError,
    RateLimitedError,
    TransientFetchError,
    is_gone,
    is_retryable,
)
from mosaic.sources.download.fetch import FetchSettings, RetryPolicy, fetch_page, make_session
from mosaic.sources.download.hosts import AllowList, HostRule
from mosaic.sources.download.images import download_image, image_is_complete, sniff_image
from mosaic.sources.download.stop import StopRequested, clear_stop, request_stop, stop_requested
from tests.fixtures.fake_instagram import FakeInstagram, make_posts

FAST = FetchSettings(connect_timeout=2.0, read_timeout=0.5,
                     retry=RetryPolicy(attempts=4, backoff=0.05, jitter=0.5))


@pytest.fixture(scope="module")
def site() -> Iterator[FakeInstagram]:
    posts = make_posts(20, carousels=3, videos=2, reels=0, seed=3)
    with FakeInstagram(posts, slow_seconds=1.0) as fake:
        yield fake


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with make_session(FAST) as http:
        yield http


def _photo(site: FakeInstagram, index: int):
    return [photo for post in site.posts for photo in post.photos if not photo.video][index]


def _allow(site: FakeInstagram) -> AllowList:
    return AllowList.parse([site.image_host])


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_allow_list_rules():
    allow = AllowList.parse(["cdninstagram.com", "fbcdn.net", "127.0.0.1:8081"])
    assert allow.allows("https://scontent-lhr8-1.cdninstagram.com/v/x.jpg?a=1&b=2")
    assert allow.allows("https://instagram.fxyz1-1.fna.fbcdn.net/v/x.jpg")
    assert allow.allows("http://127.0.0.1:8081/x.jpg")
    assert not allow.allows("http://127.0.0.1:8082/x.jpg")
    assert not allow.allows("https://cdninstagram.com.evil.example/x.jpg")
    assert not allow.allows("https://evilcdninstagram.com/x.jpg")
    assert not allow.allows("https://scontent.cdninstagram.com:8443/x.jpg")
    assert not allow.allows("ftp://scontent.cdninstagram.com/x.jpg")
    assert not allow.allows("file:///etc/passwd")
    assert HostRule.parse("Example.COM.") == HostRule("example.com")
    for bad in ["", "http://x.com", "x.com:0", "x.com:99999", "x.com:abc", "a/b", ".x.com"]:
        with pytest.raises(MosaicError, match="allow_host"):
            HostRule.parse(bad)


def test_download_is_byte_for_byte_and_named_by_hash(site, session, tmp_path):
    photo = _photo(site, 0)
    saved = download_image(session, site.image_url(photo, 1080), tmp_path, _allow(site), FAST)
    expected = site.jpeg(photo.seed, 1080)
    assert saved.sha256 == sha256_bytes(expected)
    assert saved.file == f"{saved.sha256}.jpg" and saved.new and saved.attempts == 1
    assert (tmp_path / saved.file).read_bytes() == expected
    again = download_image(session, site.image_url(photo, 1080), tmp_path, _allow(site), FAST)
    assert not again.new and _files(tmp_path) == [saved.file]


@pytest.mark.parametrize(("index", "faults"), [
    (1, ["500", "503"]), (2, ["reset"]), (3, ["truncate"]), (4, ["cut"]), (5, ["slow"]),
    (6, ["500", "reset", "cut"])])
def test_transient_faults_are_retried_and_leave_no_partial_file(site, session, tmp_path, index,
                                                                 faults):
    photo = _photo(site, index)
    path = site.image_path(photo, 1080)
    site.force_faults(path, faults)
    saved = download_image(session, site.image_url(photo, 1080), tmp_path, _allow(site), FAST)
    assert saved.attempts == len(faults) + 1
    assert (tmp_path / saved.file).read_bytes() == site.jpeg(photo.seed, 1080)
    assert _files(tmp_path) == [saved.file]


def test_429_honours_retry_after(site, session, tmp_path):
    photo = _photo(site, 9)
    site.force_faults(site.image_path(photo, 1080), ["429"])
    started = time.monotonic()
    saved = download_image(session, site.image_url(photo, 1080), tmp_path, _allow(site), FAST)
    assert time.monotonic() - started >= 1.0  # the fake site says Retry-After: 1
    assert saved.attempts == 2


def test_too_many_faults_give_up_with_a_retryable_error(site, session, tmp_path):
    photo = _photo(site, 10)
    site.force_faults(site.image_path(photo, 1080), ["500"] * 6)
    with pytest.raises(TransientFetchError, match="HTTP 500") as caught:
        download_image(session, site.image_url(photo, 1080), tmp_path, _allow(site), FAST)
    assert is_retryable(caught.value)
    assert site.requested("image")[site.image_path(photo, 1080)] == FAST.retry.attempts
    assert _files(tmp_path) == []


@pytest.mark.parametrize("status", [403, 404, 410])
def test_403_404_and_410_are_not_retried(site, session, tmp_path, status):
    path = f"/gone/{status}.jpg"
    site.add_route(path, status, b"nope", {"Content-Type": "text/plain"})
    url = f"http://{site.image_host}{path}"
    with pytest.raises(PermanentFetchError, match=f"HTTP {status}") as caught:
        download_image(session, url, tmp_path, _allow(site), FAST)
    assert not is_retryable(caught.value) and caught.value.status == status
    assert is_gone(caught.value) == (status != 403)  # 403: an expired URL, not deleted
    assert site.requested("image")[path] == 1


def test_redirects_stay_on_the_allow_list(site, session, tmp_path):
    photo = _photo(site, 11)
    site.add_route("/hop.jpg", 302, b"", {"Location": site.image_url(photo, 1080)})
    saved = download_image(session, f"http://{site.image_host}/hop.jpg", tmp_path,
                           _allow(site), FAST)
    assert saved.sha256 == sha256_bytes(site.jpeg(photo.seed, 1080))
    off_list = f"{site.base_url}/robots.txt"
    site.add_route("/away.jpg", 302, b"", {"Location": off_list})
    before = site.requested("page")["/robots.txt"]
    with pytest.raises(PermanentFetchError, match="not on the allow-list"):
        download_image(session, f"http://{site.image_host}/away.jpg", tmp_path, _allow(site),
                       FAST)
    assert site.requested("page")["/robots.txt"] == before
    with pytest.raises(PermanentFetchError, match="not on the allow-list"):
        download_image(session, off_list, tmp_path, _allow(site), FAST)


def test_wrong_content_is_refused_and_nothing_is_kept(site, session, tmp_path):
    jpeg = site.jpeg(_photo(site, 0).seed, 1080)
    cases = {
        "/page.jpg": (b"<html>login</html>", {"Content-Type": "text/html"}, "not a JPEG"),
        "/liar.jpg": (b"<html>" + b"x" * 100, {"Content-Type": "image/jpeg"}, "does not start"),
        "/empty.jpg": (b"", {"Content-Type": "image/jpeg"}, "empty or not an image"),
        "/huge.jpg": (jpeg, {"Content-Type": "image/jpeg"}, "cap"),
    }
    small = FetchSettings(read_timeout=0.5, max_image_bytes=len(jpeg) - 1,
                          retry=FAST.retry)
    for path, (body, headers, message) in cases.items():
        site.add_route(path, 200, body, headers)
        with pytest.raises(PermanentFetchError, match=message):
            download_image(session, f"http://{site.image_host}{path}", tmp_path, _allow(site),
                           small)
        assert site.requested("image")[path] == 1
    assert _files(tmp_path) == []


def test_image_checks():
    jpeg = b"\xff\xd8\xff\xe0" + b"\x00" * 100 + b"\xff\xd9"
    assert sniff_image(jpeg[:16]) == "jpg"
    assert sniff_image(b"\x89PNG\r\n\x1a\n" + b"\x00" * 8) == "png"
    assert sniff_image(b"RIFF\x10\x00\x00\x00WEBPVP8 ") == "webp"
    assert sniff_image(b"<!DOCTYPE html>") is None
    assert image_is_complete("jpg", jpeg[:16], jpeg[-64:], len(jpeg))
    assert not image_is_complete("jpg", jpeg[:16], jpeg[:60], 60)
    webp = b"RIFF" + (20).to_bytes(4, "little") + b"WEBP" + b"\x00" * 16
    assert image_is_complete("webp", webp[:16], webp[-64:], len(webp))
    assert not image_is_complete("webp", webp[:16], webp[-64:], len(webp) - 1)


def test_pages_are_fetched_with_retries_and_truncation_is_noticed(site, session):
    post = site.posts[0]
    path = f"/p/{post.code}/"
    site.force_faults(path, ["cut", "503"])
    page = fetch_page(session, f"{site.base_url}{path}", AllowList.parse([
        site.base_url.removeprefix("http://")]), FAST)
    assert page.attempts == 3 and page.text.rstrip().endswith("</html>")
    assert post.code in page.text


def test_rate_limit_longer_than_allowed_fails_fast(site, session, tmp_path):
    photo = _photo(site, 8)
    site.force_faults(site.image_path(photo, 1080), ["429"])
    impatient = FetchSettings(read_timeout=0.5, retry=RetryPolicy(attempts=3,
                                                                   max_retry_after=0.5))
    with pytest.raises(RateLimitedError, match="try again later"):
        download_image(session, site.image_url(photo, 1080), tmp_path, _allow(site), impatient)


def test_stale_partial_downloads_are_removed(tmp_path):
    host, pid, _ = processes.owner_tag().split("-")
    dead = f"{TEMP_PREFIX}{host}-{pid}-1.k1ll3d.download.part"  # this pid, another start
    (tmp_path / dead).write_bytes(b"\xff\xd8\xff half")
    (tmp_path / ".thesis.part2.docx").write_bytes(b"the user's")
    (tmp_path / "abc.jpg").write_bytes(b"keep")
    removed = remove_stale_temporaries(tmp_path)
    assert [p.name for p in removed] == [dead]
    assert _files(tmp_path) == [".thesis.part2.docx", "abc.jpg"]


def test_a_stop_ends_retry_waits_at_once(site, session, tmp_path):
    photo = _photo(site, 12)
    site.force_faults(site.image_path(photo, 1080), ["500"] * 10)
    patient = FetchSettings(read_timeout=0.5, retry=RetryPolicy(attempts=5, backoff=30.0))
    timer = threading.Timer(0.5, request_stop)
    timer.start()
    started = time.monotonic()
    try:
        with pytest.raises(StopRequested):
            download_image(session, site.image_url(photo, 1080), tmp_path, _allow(site),
                           patient)
        assert stop_requested()
        with pytest.raises(StopRequested):  # nor does a new request start
            download_image(session, site.image_url(photo, 640), tmp_path, _allow(site), FAST)
    finally:
        timer.cancel()
        clear_stop()
    assert time.monotonic() - started < 5  # not the 30 s back-off
    assert site.requested("image")[site.image_path(photo, 1080)] == 1
    assert site.requested("image")[site.image_path(photo, 640)] == 0
    assert _files(tmp_path) == []
    assert not isinstance(StopRequested(), Exception)  # nothing retries it by mistake


def test_cookie_files(tmp_path):
    good = tmp_path / "cookies.txt"
    good.write_text("# Netscape HTTP Cookie File\n"
                    ".instagram.com\tTRUE\t/\tTRUE\t0\tsessionid\tTOPSECRET\n"
                    "#HttpOnly_.instagram.com\tTRUE\t/\tTRUE\t4102444800\tcsrftoken\tabc\n"
                    ".instagram.com\tTRUE\t/\tTRUE\t1000\told\tgone\n")
    jar = load_cookie_jar(good)
    assert sorted(c.name for c in jar) == ["csrftoken", "sessionid"]
    session_cookie = next(c for c in jar if c.name == "sessionid")
    assert session_cookie.expires is None and session_cookie.discard
    with make_session(FAST, str(good)) as http:
        sent = http.prepare_request(requests.Request("GET", "https://www.instagram.com/p/x/"))
        assert "sessionid=TOPSECRET" in sent.headers["Cookie"]
    bad = tmp_path / "bad.txt"
    bad.write_text("# Netscape HTTP Cookie File\nsessionid=TOPSECRET\n")
    with pytest.raises(MosaicError, match="line 2: not a Netscape") as caught:
        load_cookie_jar(bad)
    assert "TOPSECRET" not in str(caught.value)
    with pytest.raises(MosaicError, match="not found"):
        load_cookie_jar(tmp_path / "missing.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("# Netscape HTTP Cookie File\n")
    with pytest.raises(MosaicError, match="no cookies"):
        load_cookie_jar(empty)
