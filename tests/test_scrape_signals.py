"""A scrape stopped by SIGINT, or killed by SIGKILL: real processes, real signals.

Each test runs ``python -m cli scrape instagram ...`` against the fake site, slowed
down so that the signal lands mid-scrape: while Chromium scrolls the profile, or while
the posts are being fetched. SIGINT goes to the command's whole process group, as a
Ctrl-C at a terminal does. The child gets a temporary folder of its own (``TMPDIR``)
so its private folders (browser profile, cookies) are easy to find and to search.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mosaic import processes
from mosaic.sources import manifest
from tests.fixtures.fake_instagram import FakeInstagram, make_posts
from tests.fixtures.prefect_db import seed_prefect_home

ROOT = Path(__file__).resolve().parents[1]
STOP_SECONDS = 5.0
"""A stopped scrape exits within this long after SIGINT."""
LEFT_SECONDS = 10.0
"""Nothing it started is left running this long after it ends."""

Identity = tuple[int, str]


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _identity(pid: int) -> Identity | None:
    """``(pid, start time)``: names a process even after its id is reused."""
    fields = _stat(pid)
    return (pid, fields[19]) if fields and fields[0] != "Z" else None


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
    except OSError:
        return ""


def _pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def _descendants(root: int) -> set[Identity]:
    """Every live process below ``root`` in the process tree."""
    children: dict[int, list[int]] = {}
    for pid in _pids():
        fields = _stat(pid)
        if fields:
            children.setdefault(int(fields[1]), []).append(pid)
    found: set[Identity] = set()
    pending = list(children.get(root, []))
    while pending:
        pid = pending.pop()
        identity = _identity(pid)
        if identity is not None:
            found.add(identity)
        pending.extend(children.get(pid, []))
    return found


def _naming(text: str) -> list[str]:
    """Command lines of live processes that contain ``text`` (not this test's own)."""
    return [line for pid in _pids() if pid != os.getpid() and _identity(pid)
            and text in (line := _command(pid))]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def child_tmp(tmp_path: Path) -> Iterator[Path]:
    """The child's temporary folder: short, as a real one is (Chromium puts a Unix socket
    there, whose path must stay under 108 bytes), and searched by the tests."""
    folder = Path(tempfile.mkdtemp(prefix="ms-"))
    (tmp_path / "tmp").symlink_to(folder)  # so that tmp_path.rglob() searches it too
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _environment(tmp_path: Path, api_url: str | None) -> dict[str, str]:
    """The child's environment: its temporary files, state and Prefect home in tmp_path."""
    env = {key: value for key, value in os.environ.items()
           if key not in {"PREFECT_API_URL", "PREFECT_PROFILE", "XDG_RUNTIME_DIR"}}
    for name in ("state", "prefect-home"):
        (tmp_path / name).mkdir()
    env.update(PYTHONPATH=str(ROOT), TMPDIR=str((tmp_path / "tmp").resolve()),
               XDG_STATE_HOME=str(tmp_path / "state"),
               PREFECT_HOME=str(tmp_path / "prefect-home"),
               MOSAIC_PREFECT_PORT=str(_free_port()))  # never a `mosaic server` on 4200
    if api_url is not None:
        env["PREFECT_API_URL"] = api_url
    else:
        seed_prefect_home(tmp_path / "prefect-home")  # its own server skips the migrations
    return env


def _scrape(site: FakeInstagram, tmp_path: Path, env: dict[str, str], *extra: str
            ) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "cli", "scrape", "instagram", site.username,
               "--out", "photos", "--workdir", "run", "--base-url", site.base_url,
               "--allow-host", site.image_host, "--delay", "1", *extra]
    # A session of its own, like a command started at a terminal: a Ctrl-C there sends
    # SIGINT to the whole foreground process group, which the tests do with killpg.
    return subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _browser_folders(tmp_path: Path, child: subprocess.Popen[str]) -> list[Path]:
    """The child's private Chromium folders: in its TMPDIR, and Chromium's scratch folder,
    which goes to /tmp when a socket path in TMPDIR would be too long."""
    prefix = f"mosaic-chromium-{processes.owner_tag(child.pid)}-"
    roots = {(tmp_path / "tmp").resolve(), Path("/tmp")}
    return [p for root in roots for p in root.iterdir() if p.name.startswith(prefix)]


def _listing(tmp_path: Path, child: subprocess.Popen[str], site: FakeInstagram
             ) -> Callable[[], bool]:
    """True once Chromium, started by ``child``, has loaded the profile (with the cookies)."""
    def check() -> bool:
        if not site.requested("page")[f"/{site.username}/"]:
            return False
        return any(_naming(str(folder)) for folder in _browser_folders(tmp_path, child))
    return check


def _fetching(tmp_path: Path) -> Callable[[], bool]:
    """True once a few posts are saved (the post tasks are running)."""
    def check() -> bool:
        posts = manifest.read_manifest(tmp_path / "photos")["posts"].values()
        return sum(entry["status"] == "done" for entry in posts) >= 2
    return check


def _wait_for(ready: Callable[[], bool], child: subprocess.Popen[str], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if child.poll() is not None:
            pytest.fail(f"the scrape ended before the signal: {child.communicate()}")
        if ready():
            return
        time.sleep(0.05)
    child.kill()
    pytest.fail(f"the scrape did not get there in {seconds:.0f} s: {child.communicate()}")


def _left_running(started: set[Identity], marks: list[str]) -> list[str]:
    """What is still alive, LEFT_SECONDS at most after the scrape ended."""
    deadline = time.monotonic() + LEFT_SECONDS
    while True:
        alive = [f"{pid}: {_command(pid)[:160]}" for pid, start in started
                 if _identity(pid) == (pid, start)]
        alive += [line[:160] for mark in marks for line in _naming(mark)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


def _site(page_size: int = 6) -> FakeInstagram:
    # Six posts a page and --delay 1: about 10 s of scrolling; then slow downloads. With
    # every post on the first page (page_size=60) the listing ends after one page load.
    posts = make_posts(60, carousels=8, videos=3, reels=1, seed=53)
    return FakeInstagram(posts, image_drip=0.5, page_size=page_size)


@pytest.mark.parametrize("phase", ["listing", "fetching"])
def test_sigint_stops_a_scrape_at_once_and_leaves_nothing(prefect_api, tmp_path, child_tmp,
                                                           phase):
    from prefect.settings import PREFECT_API_URL

    env = _environment(tmp_path, PREFECT_API_URL.value())
    # Stopped while fetching, the scrape need not scroll the profile for 10 s first.
    with _site(page_size=6 if phase == "listing" else 60) as site:
        child = _scrape(site, tmp_path, env)
        try:
            ready = (_listing(tmp_path, child, site) if phase == "listing"
                     else _fetching(tmp_path))
            _wait_for(ready, child, 120)
            started = _descendants(child.pid)
            folders = _browser_folders(tmp_path, child)
            signalled = time.monotonic()
            os.killpg(child.pid, signal.SIGINT)  # Ctrl-C at the terminal
            stdout, stderr = child.communicate(timeout=30)
            seconds = time.monotonic() - signalled
        finally:
            if child.poll() is None:
                child.kill()
                child.communicate()
        assert seconds < STOP_SECONDS, (seconds, stderr)
        assert child.returncode == 130, stderr
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("mosaic: stopped by SIGINT"), stderr
        assert "Traceback" not in stderr + stdout
        assert _left_running(started, [str(folder) for folder in folders]) == []
        assert not list(child_tmp.glob("mosaic-*"))  # private folders removed
        assert not [folder for folder in folders if folder.exists()]
        assert not [p for p in (tmp_path / "photos").iterdir() if p.name.startswith(".")]
        requests_then = len(site.hits)
        time.sleep(1.0)
        assert len(site.hits) == requests_then  # nothing goes on fetching


def test_sigkill_leaves_no_process_and_no_cookie(prefect_api, tmp_path, child_tmp):
    # prefect_api: not for the child (it starts its own server), for the migrated database.
    secret = f"COOKIE-VALUE-{uuid.uuid4()}"
    cookies = tmp_path / "cookies.txt"
    cookies.write_text(f"# Netscape HTTP Cookie File\n"
                       f"127.0.0.1\tFALSE\t/\tFALSE\t0\tsessionid\t{secret}\n")
    env = _environment(tmp_path, None)  # its own temporary Prefect server, in PREFECT_HOME
    with _site() as site:
        child = _scrape(site, tmp_path, env, "--cookies", "cookies.txt")
        try:
            _wait_for(_listing(tmp_path, child, site), child, 180)  # it holds the cookie
            started = _descendants(child.pid)
            commands = [_command(pid) for pid, _ in started]
            folders = _browser_folders(tmp_path, child)
            child.send_signal(signal.SIGKILL)
            child.communicate(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
                child.communicate()
        assert any("chromedriver" in line for line in commands), commands
        assert any("prefect server start" in line for line in commands), commands
        assert _left_running(started, [str(folder) for folder in folders]) == []
    assert not list(child_tmp.glob("mosaic-*"))  # browser profile deleted
    assert folders and not [folder for folder in folders if folder.exists()]
    searched = [*tmp_path.rglob("*"), *child_tmp.rglob("*")]  # rglob does not follow links
    leaks = [str(path) for path in searched if path.is_file() and not path.is_symlink()
             and path != cookies and secret.encode() in path.read_bytes()]
    assert leaks == []
    # The child's own server kept the run in the private PREFECT_HOME.
    assert _flows_run(tmp_path / "prefect-home" / "prefect.db") == ["scrape-instagram"]


def _flows_run(database: Path) -> list[str]:
    """The flow of each flow run a Prefect database holds."""
    with contextlib.closing(sqlite3.connect(database)) as db:
        return [name for (name,) in db.execute(
            "SELECT flow.name FROM flow_run JOIN flow ON flow.id = flow_run.flow_id")]
