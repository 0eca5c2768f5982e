"""What guests see: a dozen posts of a profile that states more, and the one line saying so.

The listing runs in real headless Chromium against the fake site's login-wall mode
(``guest_posts``); the summary and its warning are pure functions.
"""

from __future__ import annotations

import pytest

from mosaic.sources.instagram.errors import LoginRequiredError
from mosaic.sources.instagram.profile import list_profile_posts
from mosaic.sources.instagram.settings import ScrapeSettings
from mosaic.sources.instagram.summary import hidden_posts_warning, summarise, summary_markdown
from mosaic.sources.instagram.urls import post_code
from tests.fixtures.fake_instagram import FakeInstagram, make_posts


def _settings(site: FakeInstagram, **kwargs) -> ScrapeSettings:
    # A long idle timeout: a listing that waited for it instead of seeing the wall is slow.
    return ScrapeSettings(base_url=site.base_url, allow_hosts=(site.image_host,), delay=0.0,
                          idle_timeout=20.0, **kwargs)


def test_guests_see_a_dozen_posts_and_a_login_gets_them_all(tmp_path):
    posts = make_posts(30, carousels=3, videos=3, reels=2, seed=71)
    with FakeInstagram(posts, guest_posts=12) as site:
        guest = list_profile_posts(site.username, _settings(site), tmp_path)
        assert (guest.found, guest.expected, guest.login_wall, guest.short) == (12, 30, True, True)
        assert guest.scrolls <= 1  # the login dialog ended it, not the idle timeout
        assert [post_code(u) for u in guest.posts] == [
            p.code for p in posts[:12] if p.kind != "reel"]  # the newest, in order
        assert not {f"/p/{p.code}/" for p in posts[12:]} & set(site.requested("page"))

        name, secret = site.session_cookie
        cookies = tmp_path / "cookies.txt"
        cookies.write_text(f"127.0.0.1\tFALSE\t/\tFALSE\t0\t{name}\t{secret}\n")
        member = list_profile_posts(site.username, _settings(site, cookies=str(cookies)),
                                    tmp_path)
        assert (member.found, member.expected, member.short) == (30, 30, False)
        assert len(member.posts) == sum(p.kind != "reel" for p in posts)


def test_a_login_page_while_scrolling_keeps_the_posts_seen(tmp_path):
    posts = make_posts(40, carousels=4, videos=2, reels=1, seed=73)
    with FakeInstagram(posts, guest_posts=24, page_size=24, guest_wall="page") as site:
        listing = list_profile_posts(site.username, _settings(site), tmp_path)
        assert (listing.found, listing.login_wall, listing.short) == (24, True, True)
        assert site.requested("page")["/accounts/login/"] == 1  # the browser went there
        # Enough posts asked for: not short, whatever the wall hid.
        few = list_profile_posts(site.username, _settings(site), tmp_path, max_posts=5)
        assert len(few.posts) == 5 and not few.short


def test_a_wall_before_any_post_is_the_login_error(tmp_path):
    with (FakeInstagram(make_posts(6, carousels=0, videos=0, reels=0), guest_posts=0) as site,
          pytest.raises(LoginRequiredError, match="log in and pass cookies")):
        list_profile_posts(site.username, _settings(site), tmp_path)


def _summary(listing: dict, with_cookies: bool = False) -> dict:
    return summarise("@someone", "/photos", {"posts": [], "reels": [], **listing}, {}, {},
                     set(), 0, 1.0, with_cookies=with_cookies)


def test_the_hidden_posts_are_one_line_naming_what_logs_in():
    guest = _summary({"expected": 340, "found": 12, "login_wall": True, "short": True})
    assert guest["posts_stated"] == 340
    assert guest["hidden_posts"] == {"visible": 12, "stated": 340, "login_wall": True,
                                     "with_cookies": False}
    warning = hidden_posts_warning(guest)
    assert warning is not None
    assert str(warning) == ("12 of 340 posts visible without login: pass cookies or "
                            "cookies_from_browser, or import your data export "
                            "(mosaic import instagram-export)")
    assert warning.for_command_line().startswith(
        "12 of 340 posts visible without login: pass --cookies or --cookies-from-browser, ")
    markdown = summary_markdown(guest)
    assert ("> **Warning:** 12 of 340 posts visible without login: pass `cookies` or "
            "`cookies_from_browser`") in markdown
    assert "| posts the profile states | 340 (12 visible) |" in markdown
    assert markdown.count("posts visible") == 1

    expired = hidden_posts_warning(_summary(
        {"expected": 340, "found": 12, "login_wall": True, "short": True}, with_cookies=True))
    assert expired is not None and "the session may have expired" in str(expired)
    assert "\n" not in str(expired)
    full = _summary({"expected": 12, "found": 12, "login_wall": False, "short": False})
    assert hidden_posts_warning(full) is None and full["hidden_posts"] is None
    assert "| posts the profile states | 12 |" in summary_markdown(full)
    listed = summarise("post list", "/photos", {"posts": [], "reels": []}, {}, {}, set(), 0, 1.0)
    assert listed["posts_stated"] is None and hidden_posts_warning(listed) is None
    assert "profile states" not in summary_markdown(listed)
