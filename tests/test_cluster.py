"""A regional build on a real Dask cluster: a scheduler and two workers, separate processes.

The same build runs on local threads and through ``--dask-address``; both must place
every photo on the same tile, and a cost matrix scored on the workers must be the local
one bit for bit (else the exact assignment can break near-ties differently).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mosaic.blocks import BlockRunner, prepare_features, score_to_memmap
from mosaic.cost_refine import refine_features
from tests.conftest import ROOT, SAMPLE_PHOTOS
from tests.large_problems import photo_features, tile_features

DASK = Path(sys.executable).with_name("dask")
BUILD = ("--grid", "16x12", "--method", "regional", "--regions", "4", "--weights", "none",
         "--no-compare", "--feature-size", "8", "--crops", "3", "--tile-px", "8", "--quiet")


def _start(*args: str, log: Path) -> subprocess.Popen:
    with log.open("w") as handle:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([str(DASK), *args], stdout=handle, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1; their address.

    One cluster for the module: its tests only submit work to it, none changes it.
    """
    tmp_path = tmp_path_factory.mktemp("dask-cluster")
    scheduler_file = tmp_path / "scheduler.json"
    processes = [_start("scheduler", "--host", "127.0.0.1", "--port", "0",
                        "--dashboard-address", ":0", "--scheduler-file", str(scheduler_file),
                        log=tmp_path / "scheduler.log")]
    try:
        for number in range(2):
            processes.append(_start("worker", "--scheduler-file", str(scheduler_file),
                                    "--nthreads", "1", "--nworkers", "1",
                                    "--host", "127.0.0.1", "--dashboard-address", ":0",
                                    "--name", f"test-worker-{number}",
                                    log=tmp_path / f"worker-{number}.log"))
        address = _wait_for_workers(scheduler_file, 2, tmp_path)
        yield address
    finally:
        for process in reversed(processes):
            _stop(process)


def _wait_for_workers(scheduler_file: Path, count: int, logs: Path) -> str:
    from distributed import Client

    deadline = time.monotonic() + 120
    while not scheduler_file.exists():
        if time.monotonic() > deadline:
            raise RuntimeError((logs / "scheduler.log").read_text())
        time.sleep(0.2)
    address = json.loads(scheduler_file.read_text())["address"]
    with Client(address, timeout="30s", set_as_default=False) as client:
        client.wait_for_workers(count, timeout=120)
        info = client.scheduler_info(n_workers=-1)["workers"]
        assert {worker["name"] for worker in info.values()} == {"test-worker-0",
                                                                "test-worker-1"}
    return address


def _start_build(photos: Path, tmp_path: Path, name: str, *extra: str) -> subprocess.Popen:
    """``mosaic build`` as a real process against the test session's Prefect API."""
    from prefect.settings import PREFECT_API_URL

    target = SAMPLE_PHOTOS[0].parents[1] / "targets" / "obama.jpg"
    return subprocess.Popen(
        [sys.executable, "-m", "cli", "build", "--photos", str(photos), "--target",
         str(target), "--out", str(tmp_path / name / "mosaic.jpg"), "--workdir",
         str(tmp_path / name / "work"), "--metrics", str(tmp_path / name / "metrics.json"),
         *BUILD, *extra],
        cwd=ROOT, env={**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _metrics(builds: dict[str, subprocess.Popen], tmp_path: Path) -> dict[str, dict]:
    """Wait for the builds (killed if one fails or hangs); the metrics of each, by name."""
    try:
        for build in builds.values():
            _, stderr = build.communicate(timeout=300)
            assert build.returncode == 0, stderr
    finally:
        for build in builds.values():
            if build.poll() is None:
                build.kill()
                build.communicate()
    return {name: json.loads((tmp_path / name / "metrics.json").read_text())
            for name in builds}


def _placement(metrics: dict) -> list[int]:
    assignment = json.loads(Path(metrics["assignment_file"]).read_text())
    return assignment["photo_of_tile"]


@pytest.mark.slow
@pytest.mark.timeout(400)
@pytest.mark.usefixtures("prefect_api")
def test_regional_build_on_a_dask_cluster_matches_the_local_run(dask_cluster, tmp_path):
    """Separate scheduler and worker processes give the same placement as local threads."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in SAMPLE_PHOTOS[:260]:
        shutil.copy(path, photos / path.name)
    # Both at once (they share only the photos, read): a second core is there for it.
    built = _metrics({"local": _start_build(photos, tmp_path, "local"),
                      "cluster": _start_build(photos, tmp_path, "cluster", "--dask-address",
                                              dask_cluster)}, tmp_path)
    local, remote = built["local"], built["cluster"]
    assert local["method"] == remote["method"] == "regional"
    assert remote["dask"] == dask_cluster and local["dask"] == "local threads"
    assert local["regional"]["regions"] == remote["regional"]["regions"] == 4
    placement = _placement(remote)
    assert len(placement) == 16 * 12 == len(set(placement))
    assert placement == _placement(local)
    assert remote["objective"] == pytest.approx(local["objective"], rel=1e-9)
    assert remote["gap"] >= 0


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_cluster_scores_the_same_bits_as_local_threads(dask_cluster, tmp_path):
    """Big enough blocks that BLAS would use its threads locally: the same float32 bits."""
    from distributed import Client

    rng = np.random.default_rng(0)
    photos = np.concatenate([photo_features()] * 3)[:2500]
    photos = np.clip(photos + rng.normal(0, 0.02, photos.shape).astype(np.float32), 0, 1)
    scoring = refine_features(prepare_features(tile_features(50, 50), photos))
    local, local_crop = score_to_memmap(scoring, tmp_path / "local.npy", 2**30,
                                        with_crops=True)
    with Client(dask_cluster, timeout="30s", set_as_default=False) as client:
        remote, remote_crop = score_to_memmap(scoring, tmp_path / "remote.npy", 2**30,
                                              runner=BlockRunner(client), with_crops=True)
    assert local.shape == (2500, 2500)
    np.testing.assert_array_equal(remote, local)
    np.testing.assert_array_equal(remote_crop, local_crop)
