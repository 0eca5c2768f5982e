"""The default command at scale: whole ``mosaic build`` runs on 10,000 to 100,000 photos.

Each row is one ``mosaic build --photos DIR --target T --out OUT --tiles N --tile-px 16``
in a fresh run folder and a fresh process: the default options (7 crops, 16x16 Lab
features, faces and people weighting, the comparison baselines, ``--method auto`` and its
memory budget), with as many tiles as photos (the hardest case) and 16 px tiles so the
poster stays small. Photos are synthetic JPEGs cut from the shared library
(:func:`benchmarks.synthetic.write_synthetic_folder`, cached in ``~/.cache``; writing them
is not timed). A row with ``--dask-address`` scores and solves on a local multi-process
Dask cluster (2 workers, 1 thread each) and must give the same placement as the row
without it.

Columns: wall seconds of the whole command; the stage times of ``metrics.json``; "peak
MB" the largest resident memory of the build process (``ru_maxrss`` of the child; Dask
workers' own peak, sampled, in "workers MB"); the method ``auto`` chose and its gap to the
proven lower bound.

Run ``python -m benchmarks.bench_builds`` (10,000 photos), ``--photos 10000,50000,100000``,
``--cluster`` to add the cluster rows (``--cluster-only``: those alone; regional rows print
a placement digest, so runs made apart compare), ``--max-memory 1GB`` to pass a budget.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import psutil

from benchmarks.bench_scale import default_cache
from benchmarks.synthetic import TARGETS, write_synthetic_folder
from benchmarks.table import machine, print_table

TARGET = "obama"
REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 3600.0
"""Seconds one build may run before it is stopped."""
BUILD_ENVIRONMENT = dict(os.environ)
"""The builds' environment, taken before a LocalCluster sets ``OMP_NUM_THREADS=1`` and the
like in this process (a cluster row's client would otherwise run with one BLAS thread)."""


def mosaic_command() -> list[str]:
    """The ``mosaic`` command of this environment."""
    script = Path(sys.executable).with_name("mosaic")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "cli.main"]


def children_peak_bytes() -> int:
    """Largest resident memory of any finished child process so far (bytes)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024


class WorkerPeak:
    """Samples the resident memory of a cluster's worker processes (their peak, bytes)."""

    def __init__(self, pids: Sequence[int], every: float = 0.5) -> None:
        self.processes = [psutil.Process(pid) for pid in pids]
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(every,), daemon=True)
        self._thread.start()

    def _sample(self, every: float) -> None:
        while not self._stop.wait(every):
            for process in self.processes:
                try:
                    self.peak = max(self.peak, process.memory_info().rss)
                except psutil.Error:  # a worker that ended has no memory to read
                    continue

    def stop(self) -> int:
        """Stop sampling; the peak seen."""
        self._stop.set()
        self._thread.join()
        return self.peak


def run_build(photos: Path, count: int, folder: Path, max_memory: str | None,
              dask_address: str | None) -> dict[str, object]:
    """One default-command build; its metrics plus wall time and peak memory."""
    command = [*mosaic_command(), "build", "--photos", str(photos),
               "--target", str(TARGETS / f"{TARGET}.jpg"), "--out", str(folder / "mosaic.jpg"),
               "--workdir", str(folder / "run"), "--tiles", str(count), "--tile-px", "16"]
    if max_memory:
        command += ["--max-memory", max_memory]
    if dask_address:
        command += ["--dask-address", dask_address]
    env = {**BUILD_ENVIRONMENT, "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}
    before = children_peak_bytes()
    started = time.perf_counter()
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
        raise RuntimeError(f"build failed ({done.returncode}): {' '.join(tail)}")
    metrics = json.loads((folder / "run" / "metrics.json").read_text(encoding="utf-8"))
    peak = children_peak_bytes()
    metrics["wall_seconds"] = wall
    # ru_maxrss of children only grows: a smaller row after a larger one shows its own
    # peak in metrics.json (peak_rss_mb, measured by the build itself).
    metrics["peak_bytes"] = (peak if peak > before
                             else int(metrics.get("peak_rss_mb", 0) * 2**20))
    chosen = Path(str(metrics["assignment_file"]))  # the method's, not a baseline's
    metrics["placement"] = json.loads(chosen.read_text(encoding="utf-8"))["photo_of_tile"]
    return metrics


def distinct_photos(folder: Path) -> int:
    """Distinct photos (by SHA-256) in ``folder``.

    A few synthetic crops of flat regions come out byte-identical; a build counts them once.
    """
    from mosaic.files import sha256_file

    return len({sha256_file(path) for path in folder.iterdir() if path.suffix == ".jpg"})


def cluster_build(photos: Path, count: int, folder: Path, max_memory: str | None
                  ) -> dict[str, object]:
    """The same build on a local 2-process Dask cluster; adds the workers' peak memory."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        # The cluster's processes (nannies and workers) are all the children so far.
        sampler = WorkerPeak([child.pid for child in
                              psutil.Process().children(recursive=True)])
        try:
            metrics = run_build(photos, count, folder, max_memory, cluster.scheduler_address)
        finally:
            metrics_peak = sampler.stop()
    metrics["workers_peak_bytes"] = metrics_peak
    return metrics


def row(name: str, count: int, metrics: dict[str, object]) -> list[object]:
    """One table row."""
    timings = metrics.get("timings") or {}
    gap = metrics.get("gap")
    workers = metrics.get("workers_peak_bytes")

    def seconds(key: str) -> str:
        value = timings.get(key)
        return "" if value is None else f"{value:.1f}"

    return [name, f"{count:,}", metrics.get("method", ""), f"{metrics['wall_seconds']:.0f}",
            seconds("load"), seconds("score"), seconds("solve"), seconds("render"),
            f"{metrics['peak_bytes'] / 1e6:,.0f}",
            "" if workers is None else f"{workers / 1e6:,.0f}",
            "" if gap is None else f"{100 * gap:.3f}%", f"{metrics.get('mean_cost', 0):.4f}"]


def stage_line(name: str, count: int, metrics: dict[str, object]) -> str:
    """The regional method's stage seconds of one row (empty for other methods)."""
    regional = metrics.get("regional") or {}
    seconds = regional.get("seconds") if isinstance(regional, dict) else None
    if not seconds:
        return ""
    parts = ", ".join(f"{stage} {value:.0f}" for stage, value in seconds.items())
    return (f"{name}, {count:,} photos, regional stages (s): {parts}; placement "
            f"{placement_digest(metrics)}")


def placement_digest(metrics: dict[str, object]) -> str:
    """Short SHA-256 of a row's placement: rows of separate runs compare by it."""
    placement = json.dumps(metrics.get("placement"), separators=(",", ":"))
    return hashlib.sha256(placement.encode()).hexdigest()[:16]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", default="10000", help="comma-separated photo counts")
    parser.add_argument("--cluster", action="store_true",
                        help="also build each count on a local Dask cluster")
    parser.add_argument("--cluster-only", action="store_true",
                        help="only the cluster rows (compare their placement digests with "
                        "a run without it)")
    parser.add_argument("--max-memory", default=None, help="pass --max-memory to the builds")
    parser.add_argument("--cache", type=Path, default=default_cache())
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Print the default-command table."""
    args = parse_args(argv)
    counts = [int(c) for c in args.photos.split(",")]
    rows: list[list[object]] = []
    stages: list[str] = []
    for count in counts:
        photos = write_synthetic_folder(args.cache / f"photos-{count}", count)
        distinct = distinct_photos(photos)
        if distinct < count:
            print(f"{count:,} photos hold {distinct:,} distinct ones: {distinct:,} tiles",
                  file=sys.stderr, flush=True)
        kinds = ([] if args.cluster_only else [("default command", None)]) + (
            [("on a Dask cluster", "cluster")] if args.cluster or args.cluster_only else [])
        placements = {}
        for name, kind in kinds:
            print(f"--- {name} at {count:,} photos (load {os.getloadavg()[0]:.2f})",
                  file=sys.stderr, flush=True)
            with tempfile.TemporaryDirectory(prefix="bench-builds-") as folder:
                try:
                    metrics = (cluster_build(photos, distinct, Path(folder), args.max_memory)
                               if kind else
                               run_build(photos, distinct, Path(folder), args.max_memory,
                                         None))
                except (RuntimeError, subprocess.TimeoutExpired) as error:
                    rows.append([name, f"{count:,}", str(error)] + [""] * 9)
                    continue
            placements[name] = metrics.get("placement")
            rows.append(row(name, count, metrics))
            stages.append(stage_line(name, count, metrics))
        if len(placements) == 2:
            same = placements["default command"] == placements["on a Dask cluster"]
            print(f"{count:,} photos: the cluster's placement is "
                  f"{'the same' if same else 'DIFFERENT'}", flush=True)
    budget = f"--max-memory {args.max_memory}" if args.max_memory else "default --max-memory"
    print_table(f"Default command at scale ({budget}; {machine()})",
                ["build", "photos", "method", "wall s", "load s", "score s", "solve s",
                 "render s", "peak MB", "workers MB", "gap", "mean cost"], rows)
    for line in filter(None, stages):
        print(line)


if __name__ == "__main__":
    main()
