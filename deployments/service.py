"""``make ui`` / ``make stop-ui``: a Prefect server with its UI, and a process worker.

Usage::

    .venv/bin/python deployments/service.py start    # make ui
    .venv/bin/python deployments/service.py stop     # make stop-ui
    .venv/bin/python deployments/service.py status

``start`` uses the server on 127.0.0.1:4200 when one answers there (``mosaic server
start`` starts the same one), or starts it in the background; then it starts a worker of
the work pool ``mosaic`` (type process; the worker creates the pool if it is missing),
waits until the worker is online and prints the UI's address. ``stop`` stops the worker
and the flow runs it started, then the server (when ``make ui`` or ``mosaic server start``
started it), so nothing is left running.

Environment: ``MOSAIC_PREFECT_PORT`` (default 4200) and ``XDG_STATE_HOME`` (where the
process ids and logs go, ``~/.local/state/photo-mosaic``) as for ``mosaic server``;
``MOSAIC_POOL`` (default ``mosaic``). Prefect's own settings (``PREFECT_HOME``,
``PREFECT_WORKER_QUERY_SECONDS``...) pass through to the server and the worker.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from cli import prefect_server

POOL = os.environ.get("MOSAIC_POOL", "mosaic")
WORKER_PID = prefect_server.STATE_DIR / "prefect-worker.pid"
WORKER_LOG = prefect_server.STATE_DIR / "prefect-worker.log"
WORKER_NAME = f"mosaic-{socket.gethostname()}-{prefect_server.PORT}"


def _alive(pid: int) -> bool:
    """True when process ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _children() -> dict[int, list[int]]:
    """Parent pid -> child pids, for every process (read from ``/proc``)."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        tree.setdefault(parent, []).append(int(entry.name))
    return tree


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children...).

    Flow runs are started in sessions of their own, so stopping the worker's process
    group does not reach them: they are found here, by parentage, before the worker goes.
    """
    tree = _children()
    found: list[int] = []
    pending = list(tree.get(pid, []))
    while pending:
        child = pending.pop()
        found.append(child)
        pending.extend(tree.get(child, []))
    return found


def _signal(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _wait_gone(pids: list[int], seconds: float) -> list[int]:
    """Wait until the processes have exited; return those still alive after ``seconds``."""
    deadline = time.monotonic() + seconds
    alive = [pid for pid in pids if _alive(pid)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [pid for pid in alive if _alive(pid)]
    return alive


def worker_pid() -> int | None:
    """The process id of the worker ``start`` started, if it is running."""
    try:
        pid = int(WORKER_PID.read_text())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def _worker_online(api_url: str) -> bool:
    """True when the server lists this machine's worker of :data:`POOL` as online."""
    request = urllib.request.Request(
        f"{api_url}/work_pools/{POOL}/workers/filter", data=b"{}", method="POST",
        headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            workers = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return any(w.get("name") == WORKER_NAME and w.get("status") == "ONLINE" for w in workers)


def start_worker(wait_seconds: float = 120.0) -> int:
    """Start a process worker of :data:`POOL` in the background; wait until it is online.

    Returns
    -------
    int
        The worker's process id.

    Raises
    ------
    RuntimeError
        The worker exited or did not come online in time.
    """
    running = worker_pid()
    if running is not None:
        return running
    env = {**os.environ, "PREFECT_API_URL": prefect_server.API_URL, "DO_NOT_TRACK": "1"}
    env.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "mosaic")
    command = [str(Path(sys.executable).with_name("prefect")), "--no-prompt", "worker",
               "start", "--pool", POOL, "--type", "process", "--name", WORKER_NAME,
               "--install-policy", "never"]
    return prefect_server.start_in_background(
        command, env, WORKER_LOG, WORKER_PID, lambda: _worker_online(prefect_server.API_URL),
        "the worker", wait_seconds)


def stop_worker(wait_seconds: float = 20.0) -> bool:
    """Stop the worker and every process it started (flow runs, their browsers).

    Returns
    -------
    bool
        True when a worker was running.
    """
    pid = worker_pid()
    WORKER_PID.unlink(missing_ok=True)
    if pid is None:
        return False
    below = descendants(pid)
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    _signal(below, signal.SIGTERM)
    left = _wait_gone([pid, *below], wait_seconds)
    _signal(left, signal.SIGKILL)
    _wait_gone(left, 5.0)
    return True


def start() -> None:
    """Start (or reuse) the server, then the worker; print where the UI is.

    Raises
    ------
    RuntimeError
        The server or the worker did not start (what this call started is stopped again).
    """
    os.environ.setdefault("PREFECT_UI_API_URL", prefect_server.API_URL)
    started_server = False
    if prefect_server.is_running():
        print(f"Prefect server already running at {prefect_server.UI_URL}")
    else:
        print(f"starting a Prefect server on {prefect_server.UI_URL} "
              f"(log: {prefect_server.LOG_FILE})", flush=True)
        started_server = True
    try:
        if started_server:
            prefect_server.start()
        pid = start_worker()
    except RuntimeError:
        stop_worker()
        if started_server:
            prefect_server.stop()
        raise
    print(f"worker {WORKER_NAME} (pid {pid}) is polling work pool {POOL!r} "
          f"(log: {WORKER_LOG})")
    print(f"Prefect UI: {prefect_server.UI_URL}")
    print(f"for the prefect CLI: export PREFECT_API_URL={prefect_server.API_URL}")


def stop_server(wait_seconds: float = 20.0) -> bool:
    """Stop the server ``make ui`` or ``mosaic server start`` started; wait for its processes.

    What outlives ``wait_seconds`` is killed.

    Returns
    -------
    bool
        True when such a server was running.
    """
    try:
        pid = int(prefect_server.PID_FILE.read_text())
    except (OSError, ValueError):
        pid = None
    processes = [pid, *descendants(pid)] if pid is not None and _alive(pid) else []
    stopped = prefect_server.stop()
    left = _wait_gone(processes, wait_seconds)
    _signal(left, signal.SIGKILL)
    _wait_gone(left, 5.0)
    return stopped


def stop() -> None:
    """Stop the worker, then the server."""
    print("worker stopped" if stop_worker() else "no worker started by make ui is running")
    print("server stopped" if stop_server()
          else "no server started by make ui or mosaic server start is running")


def status() -> int:
    """Print whether the server and the worker run; 0 when both do."""
    server = prefect_server.is_running()
    worker = worker_pid()
    print(f"server: {'running at ' + prefect_server.UI_URL if server else 'not running'}")
    print(f"worker: {f'running (pid {worker})' if worker else 'not running'}")
    return 0 if server and worker else 1


def main(argv: list[str]) -> int:
    """Run ``start``, ``stop`` or ``status``."""
    if len(argv) != 1 or argv[0] not in {"start", "stop", "status"}:
        print("usage: service.py start|stop|status", file=sys.stderr)
        return 2
    if argv[0] == "status":
        return status()
    try:
        start() if argv[0] == "start" else stop()
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
