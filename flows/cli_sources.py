"""``mosaic scrape`` and ``mosaic import``: photos from Instagram and from its data export.

``flows/cli.py`` registers :data:`scrape_app` and :data:`import_app`; ``mosaic build
--instagram USER`` calls :func:`fetch_instagram_photos` before building. Bad input is one
line on stderr and exit status 2 (an ``--out`` folder whose ``manifest.json`` is not ours
among it); posts that failed to download, and a site that cannot be reached, exit with
status 1 (a rerun fetches only what is missing). Posts gone from the site (404/410) are
a warning, not a failure. Prefect is imported only after the arguments are checked.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from mosaic.errors import MosaicError
from mosaic.sources import manifest
from mosaic.sources.download import DEFAULT_ALLOWED_HOSTS, AllowList, load_cookie_jar
from mosaic.sources.instagram_web import (
    DEFAULT_BASE_URL,
    ScrapeSettings,
    check_username,
    normalise_base_url,
    read_post_list,
)

log = logging.getLogger("mosaic.cli")

EXIT_INCOMPLETE = 1
RUNS = Path("mosaic-runs")

scrape_app = typer.Typer(help="Download your photos from Instagram.", no_args_is_help=True)
import_app = typer.Typer(help="Import photos from a data export.", no_args_is_help=True)

_Out = Annotated[Path, typer.Option(help="Folder for the photos and manifest.json.")]
_Delay = Annotated[float, typer.Option(help="Seconds between page loads (politeness).")]
_Cookies = Annotated[Optional[Path], typer.Option(
    help="Netscape cookies.txt exported from a logged-in browser (never logged or stored).")]
_BaseUrl = Annotated[str, typer.Option(help="The site to scrape.")]
_AllowHost = Annotated[Optional[list[str]], typer.Option(
    "--allow-host", help="Image host (HOST or HOST:PORT) downloads may come from; repeatable."
    f" Default: {', '.join(DEFAULT_ALLOWED_HOSTS)} and their subdomains.")]
_Workdir = Annotated[Optional[Path], typer.Option(
    help="Run folder (default ./mosaic-runs/instagram-<name>).")]
_Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the output folder.")]
_Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Show progress and Prefect logs.")]


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"mosaic: error: {message}", err=True)
    raise typer.Exit(code)


def _setup_logging(verbose: bool) -> None:
    from flows import cli

    cli._setup_logging(verbose)


def make_settings(base_url: str, allow_hosts: list[str] | tuple[str, ...] | None,
                  cookies: Path | None, delay: float) -> ScrapeSettings:
    """Check the scrape options and build :class:`ScrapeSettings`.

    Raises
    ------
    MosaicError
        A bad URL, host, cookies file or delay.
    """
    if delay < 0:
        raise MosaicError("--delay must be 0 or more seconds")
    hosts = tuple(allow_hosts) if allow_hosts else DEFAULT_ALLOWED_HOSTS
    AllowList.parse(hosts)
    if cookies is not None:
        load_cookie_jar(cookies)
    return ScrapeSettings(base_url=normalise_base_url(base_url), allow_hosts=hosts,
                          cookies=str(cookies.resolve()) if cookies else None, delay=delay)


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


def _scrape_request(**fields: Any) -> Any:
    """A ``ScrapeRequest``, once the options are checked; starts the Prefect API first.

    Prefect reads ``PREFECT_API_URL`` when it is imported: the temporary server must be
    configured before (otherwise Prefect starts a server of its own, which nothing stops
    if this process is killed).
    """
    from flows import cli

    cli.ensure_prefect_api()
    from flows.scrape_instagram import ScrapeRequest

    return ScrapeRequest(**fields)


def _run_flow(request: Any, quiet: bool) -> dict[str, Any]:
    """Run the scrape flow (raises what it raises)."""
    from flows import cli

    cli.ensure_prefect_api()
    if not quiet and cli.temporary_server_running():
        typer.echo("mosaic: using a temporary Prefect server (about 15 s to start); "
                   "`mosaic server start` keeps one running for faster runs", err=True)
    from flows.scrape_instagram import run_scrape

    cli.wait_for_prefect_api()
    return run_scrape(request)


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


def _scrape(request: Any, quiet: bool, verbose: bool) -> None:
    """Run a scrape for a command: report, or turn its errors into exit statuses."""
    from flows.scrape_instagram import ScrapeIncompleteError
    from mosaic.sources.download import FetchError

    try:
        summary = _run_flow(request, quiet)
    except MosaicError as exc:
        _fail(str(exc))
    except ScrapeIncompleteError as exc:
        _fail(str(exc), EXIT_INCOMPLETE)
    except FetchError as exc:
        _fail(f"{exc}; run the same command again later", EXIT_INCOMPLETE)
    except Exception as exc:
        if verbose:
            raise
        _fail(f"internal error: {type(exc).__name__}: {exc} (run again with --verbose for "
              "the traceback)", EXIT_INCOMPLETE)
    else:
        _report(summary, quiet)


def _workdir(workdir: Path | None, name: str) -> str:
    from mosaic.outputs import prepare_run_folder

    return str(prepare_run_folder(workdir if workdir is not None else RUNS / name))


def instagram_request(username: str, out: Path, base_url: str, allow_hosts: list[str] | None,
                      cookies: Path | None, max_posts: int | None, delay: float,
                      workdir: Path | None = None) -> Any:
    """Check the options of a profile scrape and build its ``ScrapeRequest``.

    Raises
    ------
    MosaicError
        Any bad option.
    """
    name = check_username(username)
    if max_posts is not None and max_posts < 1:
        raise MosaicError("--max-posts must be at least 1")
    settings = make_settings(base_url, allow_hosts, cookies, delay)
    _check_out(out)
    run_dir = _workdir(workdir, f"instagram-{name}")
    return _scrape_request(out_dir=str(out.resolve()), workdir=run_dir, settings=settings,
                           username=name, max_posts=max_posts)


@scrape_app.command("instagram")
def scrape_instagram_command(
    username: Annotated[str, typer.Argument(help="The profile's user name.")],
    out: _Out,
    max_posts: Annotated[Optional[int], typer.Option(help="Newest posts to fetch (default: all).")
                         ] = None,
    delay: _Delay = 2.0,
    cookies: _Cookies = None,
    base_url: _BaseUrl = DEFAULT_BASE_URL,
    allow_host: _AllowHost = None,
    workdir: _Workdir = None,
    quiet: _Quiet = False,
    verbose: _Verbose = False,
) -> None:
    """Download the photos of an Instagram profile (videos are skipped)."""
    try:
        request = instagram_request(username, out, base_url, allow_host, cookies, max_posts,
                                    delay, workdir)
    except MosaicError as exc:
        _fail(str(exc))
    _setup_logging(verbose)
    _scrape(request, quiet, verbose)


@scrape_app.command("posts")
def scrape_posts_command(
    urls: Annotated[Path, typer.Argument(help="Text file: one post URL per line.")],
    out: _Out,
    delay: _Delay = 2.0,
    cookies: _Cookies = None,
    base_url: _BaseUrl = DEFAULT_BASE_URL,
    allow_host: _AllowHost = None,
    workdir: _Workdir = None,
    quiet: _Quiet = False,
    verbose: _Verbose = False,
) -> None:
    """Download the photos of the posts listed in URLS (videos and reels are skipped)."""
    try:
        settings = make_settings(base_url, allow_host, cookies, delay)
        posts, reels = read_post_list(urls, settings.base_url)
        _check_out(out)
        run_dir = _workdir(workdir, f"instagram-posts-{urls.stem}")
    except MosaicError as exc:
        _fail(str(exc))
    request = _scrape_request(out_dir=str(out.resolve()), workdir=run_dir, settings=settings,
                              post_urls=posts, reels=reels)
    _setup_logging(verbose)
    _scrape(request, quiet, verbose)


@import_app.command("instagram-export")
def import_instagram_export_command(
    zip_file: Annotated[Path, typer.Argument(
        help="The \"Download your information\" ZIP (JSON format).")],
    out: _Out,
    quiet: _Quiet = False,
    verbose: _Verbose = False,
) -> None:
    """Import the photos of your posts from an Instagram data export."""
    from mosaic.sources.instagram_export import import_instagram_export

    _setup_logging(verbose)
    try:
        _check_out(out)
        summary = import_instagram_export(zip_file, out)
    except MosaicError as exc:
        _fail(str(exc))
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
                           max_posts: int | None = None, delay: float = 2.0) -> Path:
    """Scrape a profile into ``out_dir`` (fetching only what is missing) before a build.

    When some posts fail, or the login wall stops the scrape, the photos already saved are
    used with a warning; only with no photo at all is it an error.

    Parameters
    ----------
    username : str
        The profile.
    out_dir : pathlib.Path
        Where the photos go (see :func:`instagram_photos_dir` for the default).
    base_url, allow_hosts, cookies, max_posts, delay
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
    from flows.scrape_instagram import ScrapeIncompleteError
    from mosaic.sources.download import FetchError
    from mosaic.sources.manifest import read_manifest

    request = instagram_request(username, out_dir, base_url, allow_hosts, cookies, max_posts,
                                delay)
    try:
        summary = _run_flow(request, quiet=True)
    except (ScrapeIncompleteError, FetchError, MosaicError) as exc:
        posts = read_manifest(out_dir)["posts"].values()
        saved = sum(len(p.get("images", [])) for p in posts
                    if p.get("status") in {manifest.DONE, manifest.PARTLY_GONE})
        if not saved:
            raise MosaicError(str(exc)) from None
        log.warning("%s; building with the %d photos already saved", exc, saved)
        return out_dir
    log.info("%d images from @%s in %s", summary["images"], username, out_dir)
    return out_dir
