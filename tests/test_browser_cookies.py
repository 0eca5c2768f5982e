"""Session cookies read from browser profiles: a Firefox one written here, a Chromium one
made by real headless Chromium against the fake site, and the one-line errors."""

from __future__ import annotations

import logging
import os
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mosaic import processes
from mosaic.errors import MosaicError
from mosaic.sources.download.cookies import load_cookie_jar
from mosaic.sources.instagram.browser_cookies import (
    cookie_database,
    netscape_text,
    read_browser_cookies,
    site_domain,
)
from mosaic.sources.instagram.errors import BrowserCookiesError
from mosaic.sources.instagram.options import ScrapeOptions, scrape_options
from mosaic.sources.instagram.profile import list_profile_posts
from mosaic.sources.instagram.settings import ScrapeSettings
from tasks.cookies import cookies_file
from tests.fixtures.fake_browsers import YEAR, chromium_login, firefox_profile
from tests.fixtures.fake_instagram import FakeInstagram, make_posts
from tests.fixtures.logs import captured_logs

SITE = "http://127.0.0.1:8000"
SECRET = "ff-s3ss10n-value-do-not-leak"


def _leftovers() -> set[Path]:
    """Private folders of this process, and SQLite copies in the shared temporary folder."""
    prefix = f"mosaic-browser-cookies-{processes.owner_tag()}-"
    roots = {Path(tempfile.gettempdir())}
    if os.environ.get("XDG_RUNTIME_DIR"):
        roots.add(Path(os.environ["XDG_RUNTIME_DIR"]))
    return {p for root in roots if root.is_dir() for p in root.iterdir()
            if p.name.startswith(prefix) or p.suffix == ".sqlite"}


@pytest.fixture
def firefox(tmp_path: Path) -> Iterator[Path]:
    """A Firefox profile logged in to the site at 127.0.0.1, still open (rows in the log)."""
    later = int(time.time()) + YEAR
    connection = firefox_profile(tmp_path / "ff", [
        ("127.0.0.1", "sessionid", SECRET, later), ("127.0.0.1", "csrftoken", "c-1", later),
        ("127.0.0.1", "old", "x", int(time.time()) - 60),  # expired
        (".example.com", "sessionid", "elsewhere", later)])
    yield tmp_path / "ff"
    connection.close()


def test_site_domain_and_databases(tmp_path):
    assert site_domain("https://www.instagram.com") == "instagram.com"
    assert site_domain("http://127.0.0.1:8000") == "127.0.0.1"
    (tmp_path / "Default").mkdir()
    (tmp_path / "Default" / "Cookies").write_bytes(b"")
    assert cookie_database("chromium", str(tmp_path)) == tmp_path / "Default" / "Cookies"
    assert cookie_database("chromium", str(tmp_path / "Default" / "Cookies")).name == "Cookies"
    with pytest.raises(BrowserCookiesError, match="no Firefox cookie database in this folder"):
        cookie_database("firefox", str(tmp_path))
    with pytest.raises(BrowserCookiesError, match=r"^browser_profile .*: not found"):
        cookie_database("firefox", str(tmp_path / "nowhere"))


def test_a_firefox_profile_gives_the_site_s_live_cookies(firefox):
    before = _leftovers()
    assert (firefox / "cookies.sqlite-wal").stat().st_size > 0  # the rows are in the log
    with captured_logs("", logging.DEBUG) as records:
        jar = read_browser_cookies("firefox", str(firefox), SITE)
    assert sorted((c.domain, c.name, c.value) for c in jar) == [
        ("127.0.0.1", "csrftoken", "c-1"), ("127.0.0.1", "sessionid", SECRET)]
    assert not any(SECRET in r.getMessage() for r in records)
    assert _leftovers() == before  # no copy left, here or in the shared temporary folder
    text = netscape_text(jar)
    assert text.startswith("# Netscape HTTP Cookie File\n") and "#HttpOnly_127.0.0.1\t" in text
    path = Path(tempfile.mkdtemp()) / "cookies.txt"
    path.write_text(text)
    assert {c.name: c.value for c in load_cookie_jar(path)}["sessionid"] == SECRET


def test_firefox_profiles_that_cannot_serve(tmp_path, firefox):
    connection = firefox_profile(tmp_path / "guest", [
        ("127.0.0.1", "csrftoken", "c-1", int(time.time()) + YEAR)])
    with pytest.raises(BrowserCookiesError) as caught:
        read_browser_cookies("firefox", str(tmp_path / "guest"), SITE)
    connection.close()
    assert "no 127.0.0.1 session" in str(caught.value)
    assert caught.value.for_command_line().startswith("--cookies-from-browser firefox: ")
    with pytest.raises(BrowserCookiesError, match=r"no instagram\.com session"):
        read_browser_cookies("firefox", str(firefox), "https://www.instagram.com")
    junk = tmp_path / "junk" / "cookies.sqlite"
    junk.parent.mkdir()
    junk.write_bytes(b"this is not SQLite at all, but long enough to look like a header" * 4)
    with pytest.raises(BrowserCookiesError, match=r"cannot read .*not a database"):
        read_browser_cookies("firefox", str(junk.parent), SITE)
    with pytest.raises(BrowserCookiesError, match="is not a Chromium cookie database"):
        read_browser_cookies("chromium", str(firefox / "cookies.sqlite"), SITE)
    locked = tmp_path / "locked"
    firefox_profile(locked, []).close()
    (locked / "cookies.sqlite").chmod(0)
    if os.geteuid() != 0:  # root reads it all the same
        with pytest.raises(BrowserCookiesError, match=r"cannot read .*Permission denied"):
            read_browser_cookies("firefox", str(locked), SITE)


def test_options_take_a_browser_and_refuse_what_cannot_work(tmp_path, firefox):
    options = ScrapeOptions(username="someone", cookies_from_browser="firefox",
                            browser_profile=str(firefox))
    assert options.cookies_from_browser == "firefox"
    assert ScrapeOptions().cookies_from_browser is None and ScrapeOptions().browser_profile is None
    cookies = tmp_path / "cookies.txt"
    cookies.write_text("127.0.0.1\tFALSE\t/\tFALSE\t0\tsessionid\tx\n")
    for values, message in [
            ({"cookies_from_browser": "safari"}, "`cookies_from_browser` 'safari': choose one of"),
            ({"browser_profile": str(firefox)}, "`browser_profile` needs `cookies_from_browser`"),
            ({"cookies_from_browser": "firefox", "cookies": str(cookies)}, "not both"),
            ({"cookies_from_browser": "firefox", "browser_profile": str(tmp_path / "none")},
             "not found")]:
        with pytest.raises(MosaicError) as caught:
            scrape_options(username="someone", **values)
        assert message in caught.value.args[0], caught.value.args[0]


def test_a_chromium_profile_made_by_chromium_logs_the_scraper_in(tmp_path):
    """Chromium sets and encrypts the session cookie; the scrape then sees every post."""
    posts = make_posts(20, carousels=2, videos=2, reels=1, seed=61)
    with FakeInstagram(posts, guest_posts=12) as site:
        _, secret = site.session_cookie
        home = chromium_login(tmp_path / "chromium", site)
        database = cookie_database("chromium", str(tmp_path / "chromium"))
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
            stored = connection.execute("SELECT encrypted_value FROM cookies WHERE name = "
                                        "'sessionid'").fetchone()[0]
        assert stored[:3] == b"v10" and secret.encode() not in stored  # encrypted on disk
        assert secret not in {p.read_bytes().decode("latin-1") for p in home.rglob("*")
                              if p.is_file()}
        with cookies_file(None, None, None, browser="chromium",
                          browser_profile=str(tmp_path / "chromium"),
                          base_url=site.base_url) as path:
            assert path is not None and Path(path).stat().st_mode & 0o077 == 0
            assert {c.name: c.value for c in load_cookie_jar(path)}["sessionid"] == secret
            settings = ScrapeSettings(base_url=site.base_url, allow_hosts=(site.image_host,),
                                      delay=0.0, idle_timeout=5.0, cookies=path)
            listing = list_profile_posts(site.username, settings, tmp_path / "work")
        assert not Path(path).exists()  # the private cookies file went with the context
        assert listing.found == 20 and not listing.short and not listing.login_wall
        # Unreadable: a value encrypted with a key in a keyring this process cannot reach.
        with sqlite3.connect(database) as connection:
            connection.execute("UPDATE cookies SET encrypted_value = ? WHERE name = 'sessionid'",
                               (b"v11" + bytes(range(32)),))
        with pytest.raises(BrowserCookiesError, match="cannot decrypt the cookies"):
            read_browser_cookies("chromium", str(tmp_path / "chromium"), site.base_url)


def test_the_default_profile_is_the_browser_s_own(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    for browser in ("chromium", "firefox"):
        with pytest.raises(BrowserCookiesError) as caught:
            read_browser_cookies(browser, None, SITE)
        assert caught.value.for_command_line().endswith(
            "profile found on this machine; give its folder with --browser-profile")
    firefox = tmp_path / ".mozilla" / "firefox"
    connection = firefox_profile(firefox / "x1y2z3.default-release", [
        ("127.0.0.1", "sessionid", SECRET, int(time.time()) + YEAR)])
    (firefox / "profiles.ini").write_text("[Profile0]\nName=default-release\nIsRelative=1\n"
                                          "Path=x1y2z3.default-release\nDefault=1\n")
    try:
        jar = read_browser_cookies("firefox", None, SITE)
    finally:
        connection.close()
    assert [c.value for c in jar if c.name == "sessionid"] == [SECRET]
