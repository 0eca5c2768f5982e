"""Process groups (``mosaic.processes``): what counts as running, and stopping one promptly."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from mosaic import processes


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_a_group_whose_processes_all_exited_is_not_running_and_stops_at_once():
    """A zombie (exited, not yet collected) is not running: nothing to wait for.

    Orphaned zombies are collected by init, which some machines' init does only every
    second or so; this one is ours, so it stays a zombie until collected.
    """
    child = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while _state(child.pid) != "Z" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _state(child.pid) == "Z"
        os.killpg(child.pid, 0)  # the group is still there: the zombie is in it
        assert not processes.group_alive(child.pid)
        started = time.monotonic()
        processes.stop_group(child.pid, timeout=5.0)
        assert time.monotonic() - started < 1.0
    finally:
        child.wait()  # stop_group collected it; this only closes the Popen


def test_a_group_with_a_running_process_is_running_until_stopped():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                             start_new_session=True)
    try:
        assert processes.group_alive(child.pid)
    finally:
        processes.stop_group(child.pid, timeout=5.0)
        child.wait()
    assert not processes.group_alive(child.pid)
