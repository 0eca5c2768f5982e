"""Exact assignment solvers on real mosaic cost matrices: ours vs lapx ``lapjvs`` and scipy.

Run as ``python -m benchmarks.bench_exact [--repeat 3] [--matrices obama:2500 ...]``.
Matrices are loaded from ``/tmp/cost_<target>_<n>_lab.npy`` when present, otherwise built
with :mod:`benchmarks.real_costs` (and saved there). Reference solves above
``--reference-limit`` tiles take minutes, so their results are cached in
``/tmp/bench_exact_references.json`` (keyed by file, size and mtime) and reused.
Timings are the best of ``--repeat`` runs (``--reference-repeat`` for the references, 1 by
default since they are slow); the machine may be shared, so repeat.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from mosaic.assign.exact import default_threads, relative_gap, solve_dense_with_bound

DEFAULT_MATRICES = ["grace_hopper:1000", "obama:2500", "astronaut:2500", "bar55:2500",
                    "jesper:5000", "obama:10000"]
CACHE = Path("/tmp/bench_exact_references.json")
HAVE_LAPX = importlib.util.find_spec("lap") is not None
"""lapx comes with the ``bench`` extra (``pip install -e '.[bench]'``); without it, no lapjvs."""


def matrix_path(target: str, photos: int) -> Path:
    """Where the cost matrix of ``target`` with ``photos`` photos is kept."""
    return Path(f"/tmp/cost_{target}_{photos}_lab.npy")


def load_matrix(target: str, photos: int) -> np.ndarray:
    """The float32 cost matrix, built and saved on first use."""
    path = matrix_path(target, photos)
    if not path.exists():
        from benchmarks.real_costs import real_cost_matrix

        np.save(path, real_cost_matrix(target, photos))
    return np.load(path)


def solve_lapjvs(cost: np.ndarray) -> np.ndarray:
    """Solve with lapx ``lapjvs`` (float64, rectangular)."""
    import lap

    rows, cols = lap.lapjvs(np.asarray(cost, dtype=np.float64), return_cost=False,
                            jvx_like=True)
    out = np.empty(cost.shape[0], dtype=np.int64)
    out[np.asarray(rows)] = np.asarray(cols)
    return out


def solve_scipy(cost: np.ndarray) -> np.ndarray:
    """Solve with ``scipy.optimize.linear_sum_assignment`` (float64, rectangular)."""
    rows, cols = linear_sum_assignment(np.asarray(cost, dtype=np.float64))
    out = np.empty(cost.shape[0], dtype=np.int64)
    out[rows] = cols
    return out


def objective(cost: np.ndarray, photo_of_tile: np.ndarray) -> float:
    """Total cost in float64."""
    rows = np.arange(cost.shape[0])
    return float(cost[rows, photo_of_tile].astype(np.float64).sum())


def best_time(run: Callable[[], object], repeat: int) -> tuple[float, object]:
    """Best wall time over ``repeat`` runs, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - started)
    return best, result


def cache_key(path: Path, solver: str) -> str:
    """Identifies one reference solve of one matrix file version."""
    stat = path.stat()
    return f"{path.name}:{stat.st_size}:{int(stat.st_mtime)}:{solver}"


def reference(path: Path, cost: np.ndarray, solver: str, repeat: int, limit: int,
              cache: dict[str, dict[str, float]]) -> dict[str, float] | None:
    """Seconds and objective of a reference solver, cached; only lapjvs above ``limit``."""
    key = cache_key(path, solver)
    if key in cache:
        return cache[key]
    if solver == "lapjvs" and not HAVE_LAPX:
        return None
    big = cost.shape[0] > limit
    if big and solver != "lapjvs":
        return None
    solve = solve_lapjvs if solver == "lapjvs" else solve_scipy
    seconds, photo_of_tile = best_time(lambda: solve(cost), 1 if big else repeat)
    assert isinstance(photo_of_tile, np.ndarray)
    entry = {"seconds": seconds, "objective": objective(cost, photo_of_tile), "runs": repeat}
    cache[key] = entry
    CACHE.write_text(json.dumps(cache, indent=1))
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matrices", nargs="*", default=DEFAULT_MATRICES,
                        help="target:photos pairs")
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing (best kept)")
    parser.add_argument("--threads", type=int, default=default_threads())
    parser.add_argument("--reference-repeat", type=int, default=1,
                        help="runs per reference timing (results are cached)")
    parser.add_argument("--reference-limit", type=int, default=5000,
                        help="above this many tiles run only lapjvs, once")
    args = parser.parse_args()
    cache = json.loads(CACHE.read_text()) if CACHE.exists() else {}

    header = (f"{'matrix':20s} {'T x P':>12s} {'solver':>12s} {'seconds':>9s} "
              f"{'objective':>18s} {'rel. diff':>9s} {'LB gap':>8s}")
    print(header)
    print("-" * len(header))
    for spec in args.matrices:
        target, photos = spec.split(":")
        path = matrix_path(target, int(photos))
        cost = load_matrix(target, int(photos))
        shape = f"{cost.shape[0]} x {cost.shape[1]}"
        seconds, (photo_of_tile, bound) = best_time(
            lambda c=cost: solve_dense_with_bound(c, threads=args.threads), args.repeat)
        ours = objective(cost, photo_of_tile)
        refs = {name: reference(path, cost, name, args.reference_repeat,
                                args.reference_limit, cache)
                for name in ("lapjvs", "scipy")}
        best_ref = next((r["objective"] for r in refs.values() if r is not None), None)
        diff = "" if best_ref is None else f"{(ours - best_ref) / best_ref:+.1e}"
        print(f"{spec:20s} {shape:>12s} {'auction+SAP':>12s} {seconds:9.3f} {ours:18.10f} "
              f"{diff:>9s} {relative_gap(ours, bound):8.1e}")
        for name, ref in refs.items():
            if ref is None:
                print(f"{'':20s} {'':>12s} {name:>12s} {'skipped':>9s}")
                continue
            rel = (ref["objective"] - ours) / ours
            print(f"{'':20s} {'':>12s} {name:>12s} {ref['seconds']:9.3f} "
                  f"{ref['objective']:18.10f} {rel:+9.1e}")


if __name__ == "__main__":
    main()
