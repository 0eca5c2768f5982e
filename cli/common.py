"""What every ``mosaic`` command shares: errors, logging, the Prefect API, progress bars.

Commands raise :class:`~mosaic.errors.MosaicError` (or :class:`IncompleteError`) for
anything the user can act on; :mod:`cli.main` turns it into one line on stderr and the
exit status, in one place. Prefect is imported only once the arguments have been checked,
so mistakes are reported at once, before any server starts.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
from typing import Any, NoReturn

import typer

from cli import prefect_server
from mosaic.errors import MosaicError

EXIT_BAD_INPUT = 2
"""Exit status of bad input and of everything else the user can fix."""
EXIT_INCOMPLETE = 1
"""Exit status of a run that did part of its work (a rerun does the rest)."""


class IncompleteError(MosaicError):
    """Part of the work failed for a reason that may pass (a rerun does the rest)."""

    exit_status = EXIT_INCOMPLETE


def fail(message: str) -> NoReturn:
    """Stop the command with a one-line error (exit status 2)."""
    raise MosaicError(message)


def verbose_requested() -> bool:
    """Whether the command line asks for Prefect's logs and full tracebacks."""
    return "--verbose" in sys.argv or "-v" in sys.argv


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"mosaic: {record.levelname.lower()}: {record.getMessage()}"


def setup_logging(verbose: bool) -> None:
    """Warnings (and, verbose, progress) of the ``mosaic`` loggers as one line each."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine())
    logger = logging.getLogger("mosaic")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    logger.propagate = True


def prefect_environment(verbose: bool) -> None:
    """Settings that must be in place before Prefect is imported.

    When no Prefect API is configured but a local server answers on 127.0.0.1:4200
    (``mosaic server start`` or ``make ui``), runs go there: about 1 s of Prefect
    overhead per run instead of about 15 s for a temporary server.
    """
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "mosaic")
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    if "PREFECT_API_URL" not in os.environ and prefect_server.is_running():
        os.environ["PREFECT_API_URL"] = prefect_server.API_URL


_temporary_server: prefect_server.TemporaryServer | None = None


def ensure_prefect_api() -> None:
    """Start a temporary Prefect server now (in the background) if no API is configured.

    Called first thing by commands that run a flow, so the server boots while the
    arguments are checked and the libraries are imported.
    """
    global _temporary_server
    if "PREFECT_API_URL" in os.environ or _temporary_server is not None:
        return
    if prefect_server.profile_api_url():  # the user's Prefect profile names a server
        return
    _temporary_server = prefect_server.TemporaryServer()
    atexit.register(_temporary_server.stop)
    os.environ["PREFECT_API_URL"] = _temporary_server.api_url


def temporary_server_running() -> bool:
    """True when this process started a temporary Prefect server."""
    return _temporary_server is not None


def wait_for_prefect_api(quiet: bool = True, what: str = "about 15 s to start") -> None:
    """Block until the temporary server (if any) answers; say so unless ``quiet``.

    Raises
    ------
    IncompleteError
        The temporary server exited or did not answer.
    """
    if _temporary_server is None:
        return
    if not quiet:
        typer.echo(f"mosaic: using a temporary Prefect server ({what}); `mosaic server start` "
                   "keeps one running for faster runs", err=True)
    try:
        _temporary_server.wait()
    except RuntimeError as exc:
        raise IncompleteError(str(exc)) from None


def progress_reporter(quiet: bool) -> Any:
    """Progress bars on stderr, or None when ``quiet``."""
    if quiet:
        return None
    from cli.progress_bar import RichReporter

    return RichReporter()
