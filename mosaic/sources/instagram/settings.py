"""Where to scrape and how politely: :class:`ScrapeSettings`."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from mosaic.sources.download.fetch import FetchSettings
from mosaic.sources.download.hosts import DEFAULT_ALLOWED_HOSTS, AllowList
from mosaic.sources.instagram.urls import DEFAULT_BASE_URL


@dataclass(frozen=True)
class ScrapeSettings:
    """Where to scrape and how politely.

    Attributes
    ----------
    base_url : str
        The site (``https://www.instagram.com``; a test site in tests).
    allow_hosts : tuple of str
        ``HOST[:PORT]`` entries images may be downloaded from.
    cookies : str or None
        Path of a Netscape ``cookies.txt``; the values are never logged or stored.
    delay : float
        Seconds between page loads (post pages, profile scrolls).
    fetch : FetchSettings
        Timeouts, size caps and retries of each request.
    idle_timeout : float
        Stop scrolling the profile after this long without new post links.
    max_scrolls : int
        Hard bound on profile scrolls.
    page_load_timeout : float
        Seconds Chromium may take to load the profile.
    """

    base_url: str = DEFAULT_BASE_URL
    allow_hosts: tuple[str, ...] = DEFAULT_ALLOWED_HOSTS
    cookies: str | None = None
    delay: float = 2.0
    fetch: FetchSettings = field(default_factory=FetchSettings)
    idle_timeout: float = 10.0
    max_scrolls: int = 2000
    page_load_timeout: float = 60.0

    def image_hosts(self) -> AllowList:
        """The allow-list for image downloads."""
        return AllowList.parse(self.allow_hosts)

    def page_hosts(self) -> AllowList:
        """The allow-list for pages: the site's own host and port."""
        return AllowList.parse((urlsplit(self.base_url).netloc,))
