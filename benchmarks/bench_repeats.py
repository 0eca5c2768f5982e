"""Few photos, big poster: 400 photos into 2,000 tiles, each up to 5 times, copies 6 apart.

Each row is one ``mosaic build --photos P --target T --out O --tiles 2000 --max-uses 5
--min-repeat-distance 6 --tile-px 16`` (every other option at its default) in a fresh
process, on the first 400 distinct photos of the shared library. Columns: wall seconds
and the solve seconds of ``metrics.json``, the build's peak resident memory, the smallest
distance between copies on the poster, the mean cost, and the spaced placement's gap to
the capacity-only optimum (the same build without the distance rule, solved again from
the run's cost matrix: a proven lower bound) and to the solver's own bound; the last
column is how close to the capacity optimum any spaced placement could be at best (the
own bound's distance to it), so a goal below it cannot be met on that target.

Run ``python -m benchmarks.bench_repeats`` (all shared targets) or ``--targets a,b``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks.bench_builds import mosaic_command
from benchmarks.synthetic import TARGETS, library_paths
from benchmarks.table import machine, print_table
from mosaic.assign.methods import solve_dense
from mosaic.files import sha256_file

PHOTOS = 400
TILES = 2000
MAX_USES = 5
DISTANCE = 6


def distinct_photos(folder: Path, count: int) -> Path:
    """Links to the first ``count`` distinct photos of the shared library in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    for path in library_paths():
        digest = sha256_file(path)
        if digest in seen:
            continue
        seen.add(digest)
        (folder / path.name).symlink_to(path)
        if len(seen) == count:
            return folder
    raise SystemExit(f"the shared library has only {len(seen)} distinct photos")


def capacity_objective(run: Path) -> float:
    """The optimum of the run's own cost matrix and weights without the distance rule."""
    cost = np.load(next((run / "score").glob("*/cost.npy")), mmap_mode="r")
    weights = np.load(next((run / "weights").glob("*/weights.npy"))).reshape(-1)
    return solve_dense("optimal", np.asarray(cost), weights, MAX_USES).objective


def build(photos: Path, target: Path, folder: Path) -> list[object]:
    """One row: the build of ``target`` and its figures."""
    run = folder / "run"
    command = [*mosaic_command(), "build", "--photos", str(photos), "--target", str(target),
               "--out", str(folder / "poster.jpg"), "--workdir", str(run), "--tiles",
               str(TILES), "--max-uses", str(MAX_USES), "--min-repeat-distance",
               str(DISTANCE), "--tile-px", "16", "--quiet"]
    env = {**os.environ, "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        return [target.stem, f"failed: {done.stderr.strip().splitlines()[-1:]}"] + [""] * 8
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    bound = capacity_objective(run)
    objective = float(metrics["objective"])
    gap = metrics.get("gap")
    # No placement beats the solver's own bound (objective x (1 - gap)), so none is closer
    # to the capacity optimum than this: a floor under the first gap column.
    own = None if gap is None else objective * (1 - float(gap))
    floor = "" if not own else f"{100 * max(0.0, own - bound) / own:.2f}%"
    return [target.stem, f"{metrics['tiles']:,}", f"{wall:.0f}",
            f"{metrics['timings']['solve']:.1f}", f"{metrics['peak_rss_mb']:,.0f}",
            metrics["closest_copies"], f"{metrics['mean_cost']:.4f}",
            f"{100 * (objective - bound) / objective:.2f}%",
            "" if gap is None else f"{100 * gap:.2f}%", floor]


def main(argv: Sequence[str] | None = None) -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default=None, help="comma-separated target names")
    args = parser.parse_args(argv)
    names = (args.targets.split(",") if args.targets
             else sorted(p.stem for p in TARGETS.glob("*.jpg")))
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-repeats-") as scratch:
        photos = distinct_photos(Path(scratch) / "photos", PHOTOS)
        for name in names:
            with tempfile.TemporaryDirectory(dir=scratch) as folder:
                rows.append(build(photos, TARGETS / f"{name}.jpg", Path(folder)))
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print_table(f"{PHOTOS} photos, {TILES:,} tiles asked, --max-uses {MAX_USES} "
                f"--min-repeat-distance {DISTANCE} ({machine()}; largest child {peak:,.0f} MB)",
                ["target", "tiles", "wall s", "solve s", "peak MB", "closest copies",
                 "mean cost", "gap to capacity optimum", "gap to own bound",
                 "least gap any placement has to the capacity optimum"], rows)


if __name__ == "__main__":
    main()
