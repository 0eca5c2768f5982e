"""A long-lived Prefect server on 127.0.0.1:4200, shared by every ``mosaic`` run.

A temporary (ephemeral) Prefect server costs about 15 s per run on a 2-core machine;
with a server already running, a run's Prefect overhead is about 1 s. This module
finds, starts and stops such a server without importing Prefect.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from mosaic import processes

HOST = "127.0.0.1"
PORT = int(os.environ.get("MOSAIC_PREFECT_PORT", "4200"))
UI_URL = f"http://{HOST}:{PORT}"
API_URL = f"{UI_URL}/api"
STATE_DIR = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) / \
    "photo-mosaic"
PID_FILE = STATE_DIR / "prefect-server.pid"
LOG_FILE = STATE_DIR / "prefect-server.log"


def answers(api_url: str, timeout: float = 0.5) -> bool:
    """True when a Prefect API answers its health check at ``api_url``."""
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def is_running(timeout: float = 0.5) -> bool:
    """True when the long-lived local server answers at :data:`API_URL`."""
    return answers(API_URL, timeout)


def profile_api_url() -> str | None:
    """The ``PREFECT_API_URL`` of the active Prefect profile, read without importing Prefect."""
    home = Path(os.environ.get("PREFECT_HOME", Path.home() / ".prefect"))
    path = Path(os.environ.get("PREFECT_PROFILES_PATH", home / "profiles.toml"))
    try:
        profiles = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return None
    active = os.environ.get("PREFECT_PROFILE", profiles.get("active", "ephemeral"))
    settings = profiles.get("profiles", {}).get(active, {})
    url = settings.get("PREFECT_API_URL")
    return str(url) if url else None


def _prefect_command() -> str:
    return str(Path(sys.executable).with_name("prefect"))


def _server_env() -> dict[str, str]:
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
    env.pop("PREFECT_API_URL", None)
    env.pop("PREFECT_UI_API_URL", None)
    return env


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


class TemporaryServer:
    """A Prefect API server for one ``mosaic`` run, started as early as possible.

    Prefect's own temporary server starts only when the flow begins, and booting it
    takes about 15 s of one core. Started first thing instead, it boots on one core while
    the other imports Prefect, mediapipe and the rest, which saves several seconds.
    It runs without the UI and background services, and stops with the run.
    """

    def __init__(self) -> None:
        self.port = _free_port()
        self.api_url = f"http://{HOST}:{self.port}/api"
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = STATE_DIR / f"temporary-server-{self.port}.log"
        with open(self.log_path, "wb") as log:
            # It dies with this process, even when this process is killed (SIGKILL).
            self.process = processes.spawn(
                [_prefect_command(), "server", "start", "--host", HOST, "--port",
                 str(self.port), "--no-services", "--no-ui", "--analytics-off",
                 "--log-level", "WARNING"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=_server_env())

    def wait(self, timeout: float = 120.0) -> None:
        """Block until the server answers.

        Raises
        ------
        RuntimeError
            It exited or did not answer within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if answers(self.api_url, timeout=1.0):
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"the temporary Prefect server exited with status "
                                   f"{self.process.returncode}; see {self.log_path}")
            time.sleep(0.1)
        raise RuntimeError(f"the temporary Prefect server did not answer within "
                           f"{timeout:.0f} s; see {self.log_path}")

    def stop(self) -> None:
        """Stop the server (its whole process group) and remove its log."""
        processes.stop_group(self.process.pid, timeout=10)
        self.process.wait()
        self.log_path.unlink(missing_ok=True)


def start(wait_seconds: float = 120.0) -> int:
    """Start ``prefect server start`` in the background and wait until it answers.

    Returns
    -------
    int
        The server's process id (0 when a server was already running).

    Raises
    ------
    RuntimeError
        The server did not answer within ``wait_seconds``.
    """
    if is_running():
        return int(PID_FILE.read_text()) if PID_FILE.exists() else 0
    return start_in_background(
        [_prefect_command(), "server", "start", "--host", HOST, "--port", str(PORT)],
        {**_server_env(), "PREFECT_UI_API_URL": API_URL}, LOG_FILE, PID_FILE, is_running,
        "the Prefect server", wait_seconds)


def start_in_background(command: list[str], env: dict[str, str], log_path: Path,
                        pid_file: Path, is_up: Callable[[], bool], what: str,
                        wait_seconds: float) -> int:
    """Start ``command`` in a session of its own and wait until ``is_up()`` says it is up.

    Parameters
    ----------
    command, env
        The program and its environment.
    log_path : Path
        Its output is appended here.
    pid_file : Path
        Its process id is written here (and removed if it exits before it is up).
    is_up : callable
        True once the program serves.
    what : str
        Its name in messages ("the Prefect server").
    wait_seconds : float
        How long to wait.

    Returns
    -------
    int
        The process id.

    Raises
    ------
    RuntimeError
        It exited, or was not up within ``wait_seconds``; the message names the log.
    """
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    pid_file.write_text(str(process.pid))
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        if is_up():
            return process.pid
        if process.poll() is not None:
            pid_file.unlink(missing_ok=True)
            raise RuntimeError(f"{what} exited with status {process.returncode}; "
                               f"see {log_path}")
        time.sleep(0.5)
    raise RuntimeError(f"{what} did not answer within {wait_seconds:.0f} s; see {log_path}")


def stop(wait_seconds: float = 20.0) -> bool:
    """Stop the server :func:`start` started (its whole process group).

    Returns
    -------
    bool
        True when a server was stopped.
    """
    if not PID_FILE.exists():
        return False
    try:
        pid = int(PID_FILE.read_text())
        os.killpg(pid, signal.SIGTERM)
    except (ValueError, ProcessLookupError, PermissionError):
        PID_FILE.unlink(missing_ok=True)
        return False
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline and is_running(timeout=0.2):
        time.sleep(0.2)
    if is_running(timeout=0.2):
        os.killpg(pid, signal.SIGKILL)
    PID_FILE.unlink(missing_ok=True)
    return True
