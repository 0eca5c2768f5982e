"""``mosaic scrape`` and ``mosaic import``: photos from Instagram and from its data export.

:mod:`cli.main` registers :data:`scrape_app` and :data:`import_app`; ``mosaic build
--instagram USER`` calls :func:`fetch_instagram_photos` before building. Bad input is one
line on stderr and exit status 2 (an ``--out`` folder whose ``manifest.json`` is not ours
among it); posts that failed to download, and a site that cannot be reached, exit with
status 1 (a rerun fetches only what is missing). Posts gone from the site (404/410) are
a warning, not a failure, and so is a profile that showed fewer posts than it states
(guests see about a dozen: ``--cookies`` or ``--cookies-from-browser`` log in). Prefect is
imported only after the arguments are checked, the browser's cookies among them.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from cli.common import (
    IncompleteError,
    ensure_prefect_api,
    setup_logging,
    wait_for_prefect_api,
)
from mosaic.errors import MosaicError
from mosaic.sources import manifest
from mosaic.sources.download.hosts import DEFAULT_ALLOWED_HOSTS
from mosaic.sources.instagram.options import ScrapeOptions, scrape_options
from mosaic.sources.instagram.urls import (
    DEFAULT_BASE_URL,
    check_username,
    normalise_base_url,
    read_post_list,
)

log = logging.getLogger("mosaic.cli")

RUNS = Path("mosaic-runs")

scrape_app = typer.Typer(help="Download your photos from Instagram.", no_args_is_help=True)
import_app = typer.Typer(help="Import photos from a data export.", no_args_is_help=True)

_Out = Annotated[Path, typer.Option(help="Folder for the photos and manifest.json.")]
_Delay = Annotated[float, typer.Option(help="Seconds between page loads (politeness).")]
_Cookies = Annotated[Optional[Path], typer.Option(
    help="Netscape cookies.txt exported from a logged-in browser (never logged or stored).")]
_FromBrowser = Annotated[Optional[str], typer.Option(
    metavar="chromium|firefox", help="Read the Instagram session from this browser's profile "
    "(log in there first; never logged or stored).")]
_BrowserProfile = Annotated[Optional[Path], typer.Option(
    help="The browser's profile folder or cookie database (default: its default profile).")]
_BaseUrl = Annotated[str, typer.Option(help="The site to scrape.")]
_AllowHost = Annotated[Optional[list[str]], typer.Option(
    "--allow-host", help="Image host (HOST or HOST:PORT) downloads may come from; repeatable."
    f" Default: {', '.join(DEFAULT_ALLOWED_HOSTS)} and their subdomains.")]
_Workdir = Annotated[Optional[Path], typer.Option(
    help="Run folder (default ./mosaic-runs/instagram-<name>).")]
_Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the output folder.")]
_Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Show progress and Prefect logs.")]


def _check_out(out: Path) -> Path:
    if out.exists() and not out.is_dir():
        raise MosaicError(f"--out {out} is a file; give a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MosaicError(f"--out {out}: cannot create the folder ({exc.strerror})") from None
    if not os.access(out, os.W_OK):
        raise MosaicError(f"--out {out}: folder is not writable")
    manifest.check_manifest(out)  # another tool's manifest.json is the user's: refuse
    return out


def _scrape_options(workdir: Path | None, run_name: str, **values: Any) -> ScrapeOptions:
    """Check the options, prepare the folders, then start the Prefect API.

    Prefect reads ``PREFECT_API_URL`` when it is imported: the temporary server must be
    configured before (otherwise Prefect starts a server of its own, which nothing stops
    if this process is killed).
    """
    given = {name: value for name, value in values.items() if value is not None}
    # The command line uses only the cookies file it is given, never a Secret or $VAR.
    options = scrape_options(cookies_secret=None, cookies_env=None, **given)
    if options.cookies_from_browser:  # a profile without a session: one line now, exit 2
        from mosaic.sources.instagram.browser_cookies import read_browser_cookies

        read_browser_cookies(options.cookies_from_browser, options.browser_profile,
                             options.base_url)
    _check_out(Path(options.out or ""))
    options = options.model_copy(update={"workdir": _workdir(workdir, run_name)})
    ensure_prefect_api()
    return options


class _Flags(logging.Formatter):
    """Another formatter, with warnings naming parameters by their flags.

    Arguments that word themselves (``ScrapeWarning``, ``MosaicError``) are given as
    ``for_command_line()``, as the command line's errors are.
    """

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        args = record.args if isinstance(record.args, tuple) else ()
        if not any(callable(getattr(arg, "for_command_line", None)) for arg in args):
            return self.inner.format(record)
        # A copy: the same record goes on to the Prefect UI, which names the parameters.
        worded = logging.makeLogRecord(record.__dict__)
        worded.args = tuple(arg.for_command_line() if callable(
            getattr(arg, "for_command_line", None)) else arg for arg in args)
        return self.inner.format(worded)


def _flags_in_warnings() -> None:
    """Word the scrape's warnings with flags on stderr (the handler ``setup_logging`` made)."""
    for handler in logging.getLogger("mosaic").handlers:
        if (isinstance(handler, logging.StreamHandler) and handler.stream is sys.stderr
                and not isinstance(handler.formatter, _Flags)):
            handler.setFormatter(_Flags(handler.formatter))


def _run_flow(options: ScrapeOptions, quiet: bool) -> dict[str, Any]:
    """Run the scrape flow; a partial scrape is an :class:`IncompleteError` (exit 1)."""
    from flows.scrape_instagram import ScrapeIncompleteError, run_scrape
    from mosaic.sources.download.errors import FetchError

    _flags_in_warnings()
    ensure_prefect_api()
    wait_for_prefect_api(quiet)
    try:
        return run_scrape(options)
    except ScrapeIncompleteError as exc:
        raise IncompleteError(str(exc)) from None
    except FetchError as exc:
        raise IncompleteError(f"{exc}; run the same command again later") from None


def _report(summary: dict[str, Any], quiet: bool) -> None:
    if quiet:
        typer.echo(summary["out_dir"])
        return
    skipped = (summary["video_posts"] + summary["reels_skipped"]
               + summary["video_children_skipped"])
    gone = summary["posts_gone"] + summary["posts_partly_gone"]
    typer.echo(f"mosaic: {summary['images']} images from {summary['posts_saved']} posts in "
               f"{summary['out_dir']} ({summary['new_images']} new, {skipped} videos skipped, "
               + (f"{gone} posts gone from the site, " if gone else "")
               + f"{summary['retries']} requests retried, {summary['seconds']} s)\n"
               f"manifest: {summary['manifest']}")


def _scrape(options: ScrapeOptions, quiet: bool) -> None:
    """Run a scrape for a command and report it."""
    _report(_run_flow(options, quiet), quiet)


def _workdir(workdir: Path | None, name: str) -> str:
    from mosaic.outputs import prepare_run_folder

    return str(prepare_run_folder(workdir if workdir is not None else RUNS / name))


def _browser_values(browser: str | None, profile: Path | None) -> dict[str, Any]:
    return {"cookies_from_browser": browser,
            "browser_profile": str(profile.expanduser().resolve()) if profile else None}


def instagram_request(username: str, out: Path, base_url: str, allow_hosts: list[str] | None,
                      cookies: Path | None, max_posts: int | None, delay: float,
                      workdir: Path | None = None, cookies_from_browser: str | None = None,
                      browser_profile: Path | None = None) -> ScrapeOptions:
    """Check the options of a profile scrape and build its :class:`ScrapeOptions`.

    Raises
    ------
    MosaicError
        Any bad option (a browser profile without an Instagram session among them).
    """
    name = check_username(username)
    return _scrape_options(workdir, f"instagram-{name}", username=name, out=str(out.resolve()),
                           base_url=base_url, allow_hosts=tuple(allow_hosts or ()) or None,
                           cookies=str(cookies.resolve()) if cookies else None,
                           max_posts=max_posts, delay=delay,
                           **_browser_values(cookies_from_browser, browser_profile))


@scrape_app.command("instagram")
def scrape_instagram_command(
    username: Annotated[str, typer.Argument(help="The profile's user name.")],
    out: _Out,
    max_posts: Annotated[Optional[int], typer.Option(help="Newest posts to fetch (default: all).")
                         ] = None,
    delay: _Delay = 2.0,
    cookies: _Cookies = None,
    cookies_from_browser: _FromBrowser = None,
    browser_profile: _BrowserProfile = None,
    base_url: _BaseUrl = DEFAULT_BASE_URL,
    allow_host: _AllowHost = None,
    workdir: _Workdir = None,
    quiet: _Quiet = False,
    verbose: _Verbose = False,
) -> None:
    """Download the photos of an Instagram profile (videos are skipped)."""
    request = instagram_request(username, out, base_url, allow_host, cookies, max_posts, delay,
                                workdir, cookies_from_browser, browser_profile)
    setup_logging(verbose)
    _scrape(request, quiet)


@scrape_app.command("posts")
def scrape_posts_command(
    urls: Annotated[Path, typer.Argument(help="Text file: one post URL per line.")],
    out: _Out,
    delay: _Delay = 2.0,
    cookies: _Cookies = None,
    cookies_from_browser: _FromBrowser = None,
    browser_profile: _BrowserProfile = None,
    base_url: _BaseUrl = DEFAULT_BASE_URL,
    allow_host: _AllowHost = None,
    workdir: _Workdir = None,
    quiet: _Quiet = False,
    verbose: _Verbose = False,
) -> None:
    """Download the photos of the posts listed in URLS (videos and reels are skipped)."""
    site = normalise_base_url(base_url)
    posts, reels = read_post_list(urls, site)
    request = _scrape_options(workdir, f"instagram-posts-{urls.stem}",
                              out=str(out.resolve()), post_urls=posts,
                              reels=reels, base_url=site,
                              allow_hosts=tuple(allow_host or ()) or None,
                              cookies=str(cookies.resolve()) if cookies else None,
                              delay=delay,
                              **_browser_values(cookies_from_browser, browser_profile))
    setup_logging(verbose)
    _scrape(request, quiet)


@import_app.command("instagram-export")
def import_instagram_export_command(
    zip_file: Annotated[Path, typer.Argument(
        help="The \"Download your information\" ZIP (JSON format).")],
    out: _Out,
    quiet: _Quiet = False,
    verbose: _Verbose = False,
) -> None:
    """Import the photos of your posts from an Instagram data export."""
    from mosaic.sources.instagram.export import import_instagram_export

    setup_logging(verbose)
    _check_out(out)
    summary = import_instagram_export(zip_file, out)
    if quiet:
        typer.echo(str(out.resolve()))
        return
    typer.echo(f"mosaic: {summary.images} images from {summary.posts} posts in {out} "
               f"({summary.new_files} new, {summary.skipped_videos} videos skipped"
               + (f", {len(summary.missing)} missing" if summary.missing else "") + ")\n"
               f"manifest: {out / 'manifest.json'}")


def instagram_photos_dir(username: str) -> Path:
    """Where ``mosaic build --instagram USER`` keeps the photos by default."""
    return RUNS / f"instagram-{check_username(username)}" / "photos"


def fetch_instagram_photos(username: str, out_dir: Path, base_url: str = DEFAULT_BASE_URL,
                           allow_hosts: list[str] | None = None, cookies: Path | None = None,
                           max_posts: int | None = None, delay: float = 2.0,
                           cookies_from_browser: str | None = None,
                           browser_profile: Path | None = None) -> Path:
    """Scrape a profile into ``out_dir`` (fetching only what is missing) before a build.

    When some posts fail, or the login wall stops the scrape, the photos already saved are
    used with a warning; only with no photo at all is it an error.

    Parameters
    ----------
    username : str
        The profile.
    out_dir : pathlib.Path
        Where the photos go (see :func:`instagram_photos_dir` for the default).
    base_url, allow_hosts, cookies, max_posts, delay, cookies_from_browser, browser_profile
        As for ``mosaic scrape instagram``.

    Returns
    -------
    pathlib.Path
        ``out_dir``, holding the photos.

    Raises
    ------
    MosaicError
        Bad options, no such profile, or no photo could be saved.
    """
    from mosaic.sources.manifest import read_manifest

    request = instagram_request(username, out_dir, base_url, allow_hosts, cookies, max_posts,
                                delay, cookies_from_browser=cookies_from_browser,
                                browser_profile=browser_profile)
    try:
        summary = _run_flow(request, quiet=True)
    except MosaicError as exc:
        posts = read_manifest(out_dir)["posts"].values()
        saved = sum(len(p.get("images", [])) for p in posts
                    if p.get("status") in {manifest.DONE, manifest.PARTLY_GONE})
        if not saved:
            raise MosaicError(*exc.args) from None  # no photo at all: exit 2
        log.warning("%s; building with the %d photos already saved", exc.for_command_line(),
                    saved)
        return out_dir
    log.info("%d images from @%s in %s", summary["images"], username, out_dir)
    return out_dir
