"""Shared fixtures: real JPEGs from the bundled samples, and a real Prefect API."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.fixtures import prefect_db

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
SAMPLE_PHOTOS = sorted((SAMPLES / "photos").glob("*.jpg"))
PORTRAIT = SAMPLES / "targets" / "grace_hopper.jpg"

os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    """A folder with 120 real sample photos (every 7th of the bundled set)."""
    return copy_sample_photos(tmp_path / "photos")


def copy_sample_photos(folder: Path) -> Path:
    """Make ``folder`` with the photos of :func:`photo_dir` (for fixtures of wider scope)."""
    folder.mkdir()
    for path in SAMPLE_PHOTOS[::7][:120]:
        shutil.copy(path, folder / path.name)
    return folder


@pytest.fixture
def portrait() -> Path:
    """A real portrait target."""
    return PORTRAIT


def write_jpeg(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (40, 30)
               ) -> Path:
    """A solid-colour JPEG with a little noise (so no two are byte-identical)."""
    rng = np.random.default_rng(abs(hash((colour, size, path.name))) % 2**32)
    pixels = np.clip(np.array(colour)[None, None, :] + rng.integers(-3, 4, (size[1], size[0], 3)),
                     0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, quality=95)
    return path


def call_unblocking(function, fifo, timeout=10.0):
    """Call ``function`` in a thread; if it hangs on ``fifo``, release the reader and fail.

    A reader blocked opening a FIFO cannot be interrupted; opening the write end lets it
    through (it reads end of file), so a failing test ends instead of hanging the run.
    """
    outcome = {}

    def run():
        try:
            outcome["value"] = function()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(timeout)
        pytest.fail(f"blocked reading the FIFO {fifo}")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def in_mount_namespace(mount: str, command: list[str], env: dict[str, str], timeout: float,
                       cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run ``command[1:]`` in a private mount namespace with a tmpfs mounted at ``command[0]``.

    ``mount`` holds the tmpfs options (``size=600k``, ``ro``): a full or read-only disk
    that only this command sees and that vanishes with it.
    """
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "--user", "--map-root-user", "--mount",
                                          "true"], capture_output=True).returncode != 0:
        pytest.skip("unshare cannot make a private mount namespace on this machine")
    script = f'mount -t tmpfs -o {mount} tmpfs "$1" && shift && exec "$@"'
    return subprocess.run([unshare, "--user", "--map-root-user", "--mount", "sh", "-c", script,
                           "sh", *command], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A real Prefect API (a temporary server on loopback) for the whole session.

    Its database, migrated and still empty, is copied at once: see
    :func:`tests.fixtures.prefect_db.seed_prefect_home`.
    """
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        prefect_db.copy_migrated_database(tmp_path_factory.mktemp("prefect-db"))
        yield
