"""Shared fixtures: real JPEGs from the bundled samples, and a real Prefect API."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

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
    folder = tmp_path / "photos"
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


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    """A real Prefect API (a temporary server on loopback) for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
