"""The ``mosaic`` command: one entry point, one place where errors become exit statuses.

Every command raises :class:`~mosaic.errors.MosaicError` for what the user can fix;
:func:`main` prints it as one line on stderr (``mosaic: error: ...``) and exits with its
status (2, or 1 for work that a rerun completes). SIGINT and SIGTERM end any command in
one line with status 130 or 143. Nothing here imports Prefect.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import click
import typer

from cli import build, compare, render, runs, scrape, server, weights
from cli.common import prefect_environment, verbose_requested
from mosaic import processes
from mosaic.errors import MosaicError
from mosaic.files import describe_os_error, is_disk_error, remove_live_temporaries

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Turn your own photos into a print-quality photo mosaic.",
    pretty_exceptions_enable=False,
)
app.command("build")(build.build)
app.command("demo")(build.demo)
app.command("compare")(compare.compare)
app.command("weights")(weights.weights)
app.command("render")(render.render)
app.command("runs")(runs.runs)
app.add_typer(server.server_app, name="server")
app.add_typer(scrape.scrape_app, name="scrape")
app.add_typer(scrape.import_app, name="import")


def _stop_message(signum: int) -> str:
    name = signal.Signals(signum).name
    return (f"mosaic: stopped by {name}; nothing half-written was left, and the same "
            "command resumes")


def _error_line(exc: BaseException) -> tuple[str, int] | None:
    """The one line and exit status for an error the user can act on, else None."""
    if isinstance(exc, MosaicError):
        return f"mosaic: error: {exc.for_command_line()}", exc.exit_status
    if isinstance(exc, OSError) and is_disk_error(exc):  # a full disk, a forbidden folder
        return f"mosaic: error: {describe_os_error(exc, exc.filename or os.getcwd())}", 2
    return None


def _guarded(command: click.Command) -> click.Command:
    """Run ``command`` so that errors and signals end it in one line.

    Click would turn an interrupt into "Aborted!" and status 1. On a signal the children
    (a temporary Prefect server, Chromium) are stopped by the guardian once this process
    is gone, so the exit need not wait for them.
    """
    invoke = command.invoke

    def stoppable(ctx: click.Context) -> Any:
        try:
            return invoke(ctx)
        except BaseException as exc:
            signum = processes.stop_signal_of(exc)
            if signum is None:
                raise
            remove_live_temporaries()  # a stop, maybe disguised by a library's clean-up
            typer.echo(_stop_message(signum), err=True)
            sys.stderr.flush()
            os._exit(128 + signum)

    def reported(ctx: click.Context) -> Any:
        try:
            return stoppable(ctx)
        except (typer.Exit, click.exceptions.ClickException, click.exceptions.Abort):
            raise
        except Exception as exc:
            known = _error_line(exc)
            if known is not None:
                typer.echo(known[0], err=True)
                raise typer.Exit(known[1]) from None
            if verbose_requested():
                raise
            typer.echo(f"mosaic: internal error: {type(exc).__name__}: {exc} (run again with "
                       "--verbose for the traceback)", err=True)
            raise typer.Exit(1) from None

    command.invoke = reported  # type: ignore[method-assign]
    return command


command = _guarded(typer.main.get_command(app))
"""The whole ``mosaic`` command as a click command (what tests invoke)."""


def main() -> None:
    """Entry point of the ``mosaic`` script."""
    prefect_environment(verbose_requested())
    processes.stop_on_signals(_stop_message)
    command()


if __name__ == "__main__":
    main()
