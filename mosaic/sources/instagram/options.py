"""A scrape's options, validated in one place for the command line and the deployment.

:class:`ScrapeOptions` is the one parameter of the ``scrape-instagram`` flow: ``mosaic
scrape`` builds one from its flags, and the deployment ``scrape-instagram/nightly`` takes
one from its parameter set, so the Prefect UI draws a form for it and refuses bad values
before a worker starts. Messages name parameters in backticks (see :mod:`mosaic.errors`).

``{username}`` in a path stands for the run's account, so one deployment serves any
number of accounts, each run in its own folders. Cookies are never a value here: only the
path of a file (``cookies``), a browser whose profile holds them (``cookies_from_browser``,
``browser_profile``), or where a run looks them up (``cookies_secret``, ``cookies_env``).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mosaic.errors import MosaicError, validated
from mosaic.sources.download.cookies import load_cookie_jar
from mosaic.sources.download.fetch import FetchSettings, RetryPolicy
from mosaic.sources.download.hosts import DEFAULT_ALLOWED_HOSTS, AllowList
from mosaic.sources.instagram.browser_cookies import Browser
from mosaic.sources.instagram.settings import ScrapeSettings
from mosaic.sources.instagram.urls import DEFAULT_BASE_URL, check_username, normalise_base_url

RUNS = Path("mosaic-runs")
"""Where run folders go by default (relative to the working folder)."""
ACCOUNT = "{username}"
"""In a path: the run's account."""
COOKIES_SECRET = "instagram-cookies"
"""The Prefect Secret block a deployed scrape reads its cookies from, by default."""
COOKIES_ENV = "MOSAIC_INSTAGRAM_COOKIES"
"""The environment variable it reads when that block does not exist."""


def for_account(path: str, account: str | None, parameter: str) -> str:
    """``path`` with :data:`ACCOUNT` replaced by the run's account.

    Raises
    ------
    MosaicError
        The path mentions the account but the run has none.
    """
    if ACCOUNT not in path:
        return path
    if not account:
        raise MosaicError(f"`{parameter}` {path!r} names {ACCOUNT} but this run has no "
                          "Instagram account (`username`)")
    return path.replace(ACCOUNT, account)


class ScrapeOptions(BaseModel):
    """Everything a scrape needs. Relative paths are relative to the working folder."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    username: str | None = Field(None, description="The profile to scrape (or give "
                                 "post_urls).")
    post_urls: tuple[str, ...] = Field((), description="Post URLs to fetch instead of a "
                                       "profile.")
    reels: tuple[str, ...] = Field((), description="Reel URLs of the list: reported as "
                                   "skipped videos.")
    out: str | None = Field(None, description="Folder for the photos and manifest.json "
                            "(default mosaic-runs/instagram-{username}/photos).")
    workdir: str | None = Field(None, description="Run folder: cached post results, the "
                                "browser's profile (default mosaic-runs/instagram-{username}).")
    max_posts: int | None = Field(None, ge=1, description="Newest posts to take (default "
                                  "all).")
    delay: float = Field(2.0, ge=0, allow_inf_nan=False,
                         description="Seconds between this run's page loads.")
    base_url: str = Field(DEFAULT_BASE_URL, description="The site (a test site in tests).")
    allow_hosts: tuple[str, ...] = Field(DEFAULT_ALLOWED_HOSTS, description="Image hosts "
                                         "(HOST or HOST:PORT) downloads may come from.")
    cookies: str | None = Field(None, description="Path of a Netscape cookies.txt.")
    cookies_from_browser: Browser | None = Field(
        None, description="Read the Instagram session from this browser's profile on the "
        "machine the run runs on, when it starts (never stored).")
    browser_profile: str | None = Field(None, description="That browser's profile folder or "
                                        "cookie database (default: its default profile).")
    cookies_secret: str | None = Field(COOKIES_SECRET, description="Prefect Secret block "
                                       "holding the text of a cookies.txt, looked up when "
                                       "the run starts (the command line passes None).")
    cookies_env: str | None = Field(COOKIES_ENV, description="Environment variable with the "
                                    "path of a cookies.txt, or its text (when the Secret "
                                    "block does not exist).")
    retries: int = Field(3, ge=0, description="Task retries per post.")
    retry_delay: float = Field(2.0, ge=0, allow_inf_nan=False,
                               description="Seconds before a post's first task retry.")
    request_attempts: int = Field(5, ge=1, description="Tries per HTTP request (network "
                                  "faults, 5xx, 429).")
    request_backoff: float = Field(1.0, ge=0, allow_inf_nan=False,
                                   description="Seconds before a request's first retry.")
    connect_timeout: float = Field(10.0, gt=0, allow_inf_nan=False)
    read_timeout: float = Field(30.0, gt=0, allow_inf_nan=False)
    idle_timeout: float = Field(10.0, gt=0, allow_inf_nan=False,
                                description="Stop scrolling the profile after this long "
                                "without new posts.")

    @field_validator("username")
    @classmethod
    def _username(cls, value: str | None) -> str | None:
        return check_username(value) if value else None

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        return normalise_base_url(value)

    @field_validator("allow_hosts")
    @classmethod
    def _hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        AllowList.parse(value)
        return value or DEFAULT_ALLOWED_HOSTS

    @field_validator("cookies")
    @classmethod
    def _cookies(cls, value: str | None) -> str | None:
        if value is not None:
            load_cookie_jar(value)  # a bad file is one line now, not a failed run later
        return value

    @field_validator("browser_profile")
    @classmethod
    def _profile(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).expanduser().exists():
            raise MosaicError(f"`browser_profile` {value}: not found")
        return value

    @model_validator(mode="after")
    def _one_source_of_cookies(self) -> ScrapeOptions:
        if self.cookies is not None and self.cookies_from_browser is not None:
            raise MosaicError("give `cookies` or `cookies_from_browser`, not both")
        if self.browser_profile is not None and self.cookies_from_browser is None:
            raise MosaicError("`browser_profile` needs `cookies_from_browser` (the browser "
                              "the profile is of: chromium or firefox)")
        return self

    def resolved(self) -> ScrapeOptions:
        """These options with the account in the paths and the default folders filled in.

        Raises
        ------
        MosaicError
            Neither an account nor posts, or a path naming an account the run lacks.
        """
        if not self.username and not self.post_urls:
            raise MosaicError("no Instagram account: give `username` (for a deployment run, "
                              "-p username=NAME) or post URLs")
        account = self.username
        workdir = (for_account(self.workdir, account, "workdir") if self.workdir
                   else str(RUNS / (f"instagram-{account}" if account else "instagram-posts")))
        out = for_account(self.out, account, "out") if self.out else str(Path(workdir) / "photos")
        return self.model_copy(update={"workdir": str(Path(workdir).resolve()),
                                       "out": str(Path(out).resolve())})

    def settings(self, cookies: str | None) -> ScrapeSettings:
        """The site, hosts, politeness and request settings, with the run's cookies file."""
        retry = RetryPolicy(attempts=self.request_attempts, backoff=self.request_backoff)
        fetch = FetchSettings(connect_timeout=self.connect_timeout,
                              read_timeout=self.read_timeout, retry=retry)
        return ScrapeSettings(base_url=self.base_url, allow_hosts=self.allow_hosts,
                              cookies=cookies, delay=self.delay, fetch=fetch,
                              idle_timeout=self.idle_timeout)


def scrape_options(**values: object) -> ScrapeOptions:
    """:class:`ScrapeOptions` from keyword values; any problem is a :class:`MosaicError`.

    Raises
    ------
    MosaicError
        The first value that cannot work, naming its parameter.
    """
    return validated(ScrapeOptions, "a scrape", values)


__all__ = ["ACCOUNT", "COOKIES_ENV", "COOKIES_SECRET", "ScrapeOptions", "for_account",
           "scrape_options"]
