"""A long-lived Prefect server on 127.0.0.1:4200, shared by every ``mosaic`` run.

A temporary (ephemeral) Prefect server costs about 15 s per run on a 2-core machine;
with a server already running, a run's Prefect overhead is about 1 s. This module
finds, starts and stops such a server without importing Prefect.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

HOST = "127.0.0.1"
PORT = int(os.environ.get("MOSAIC_PREFECT_PORT", "4200"))
UI_URL = f"http://{HOST}:{PORT}"
API_URL = f"{UI_URL}/api"
STATE_DIR = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) / \
    "photo-mosaic"
PID_FILE = STATE_DIR / "prefect-server.pid"
LOG_FILE = STATE_DIR / "prefect-server.log"


def is_running(timeout: float = 0.5) -> bool:
    """True when a Prefect API answers its health check at :data:`API_URL`."""
    try:
        with urllib.request.urlopen(f"{API_URL}/health", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


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
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    prefect = Path(sys.executable).with_name("prefect")
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
    env.pop("PREFECT_API_URL", None)
    with open(LOG_FILE, "ab") as log:
        process = subprocess.Popen(
            [str(prefect), "server", "start", "--host", HOST, "--port", str(PORT)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True)
    PID_FILE.write_text(str(process.pid))
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        if is_running():
            return process.pid
        if process.poll() is not None:
            raise RuntimeError(f"the Prefect server exited with status {process.returncode};"
                               f" see {LOG_FILE}")
        time.sleep(0.5)
    raise RuntimeError(f"the Prefect server did not answer within {wait_seconds:.0f} s; "
                       f"see {LOG_FILE}")


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
