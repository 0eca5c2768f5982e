"""``mosaic server``: a long-lived local Prefect server (127.0.0.1:4200) for faster runs."""

from __future__ import annotations

import typer

from cli import prefect_server
from cli.common import fail

server_app = typer.Typer(help="A long-lived local Prefect server (127.0.0.1:4200).",
                         no_args_is_help=True)


@server_app.command("start")
def server_start() -> None:
    """Start a Prefect server in the background, unless one is running."""
    try:
        pid = prefect_server.start()
    except RuntimeError as exc:
        fail(str(exc))
    typer.echo(f"Prefect server running at {prefect_server.UI_URL} (pid {pid}); "
               f"log: {prefect_server.LOG_FILE}")


@server_app.command("stop")
def server_stop() -> None:
    """Stop the server that `mosaic server start` started."""
    typer.echo("stopped" if prefect_server.stop() else "no server started by mosaic is running")


@server_app.command("status")
def server_status() -> None:
    """Say whether a local Prefect server answers."""
    running = prefect_server.is_running()
    typer.echo(f"running at {prefect_server.UI_URL}" if running else "not running")
    raise typer.Exit(0 if running else 1)
