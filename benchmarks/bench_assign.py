"""Assignment: the blog's PuLP + CBC vs greedy, exact and HiGHS, on real targets."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable

import numpy as np

from benchmarks.real_costs import real_cost_matrix
from benchmarks.table import print_table
from mosaic.assign import lp
from mosaic.assign.exact import assign_optimal
from mosaic.assign.greedy import assign_greedy
from mosaic.assign.result import Assignment, evaluate

PULP_SIZES = (200, 500)
SIZES = (500, 2500, 10000)
HIGHS_LIMIT = 2500
"""Above this the HiGHS LP (one variable per pair: 100M at 10k) does not fit in memory."""
HIGHS_SECONDS = 600.0
"""Time limit for one HiGHS LP solve."""
LAPJVS_LIMIT = 2500
"""lapx ``lapjvs`` takes about 15 minutes at 10k on this machine: not run there."""
HAVE_LAPX = importlib.util.find_spec("lap") is not None
"""lapx comes with the ``bench`` extra (``pip install -e '.[bench]'``); its rows need it."""


def _pulp_cbc(cost: np.ndarray) -> Assignment:
    return lp.assign_lp_pulp(cost, solver="cbc")


def _highs(cost: np.ndarray) -> Assignment:
    previous = lp.MAX_LP_VARIABLES
    lp.MAX_LP_VARIABLES = cost.size
    try:
        return lp.assign_lp_highs(cost, time_limit=HIGHS_SECONDS)
    finally:
        lp.MAX_LP_VARIABLES = previous


def _lapjvs(cost: np.ndarray) -> Assignment:
    import lap

    started = time.perf_counter()
    rows, cols = lap.lapjvs(np.ascontiguousarray(cost, dtype=np.float64), return_cost=False,
                            jvx_like=True)
    photo_of_tile = np.empty(cost.shape[0], dtype=np.int64)
    photo_of_tile[np.asarray(rows)] = np.asarray(cols)
    return evaluate(cost, photo_of_tile, None, "lapjvs", time.perf_counter() - started,
                    "optimal")


def _row(name: str, solve: Callable[[np.ndarray], Assignment], cost: np.ndarray,
         optimum: float | None) -> list[object]:
    started = time.perf_counter()
    try:
        result = solve(cost)
    except TimeoutError:
        return [name, cost.shape[1], cost.shape[0], f"> {HIGHS_SECONDS:.0f} (time limit)",
                "", "", ""]
    seconds = time.perf_counter() - started
    gap = "" if optimum is None else f"{100 * (result.objective / optimum - 1):.2f}%"
    return [name, cost.shape[1], cost.shape[0], f"{seconds:.2f}", f"{result.objective:.3f}",
            f"{result.mean_cost:.4f}", gap]


def run(target: str = "obama") -> list[list[object]]:
    """One row per (method, size)."""
    rows = []
    for count in sorted(set(PULP_SIZES) | set(SIZES)):
        cost = real_cost_matrix(target, count)
        optimum = assign_optimal(cost).objective
        if count in PULP_SIZES:
            rows.append(_row("PuLP + CBC (blog)", _pulp_cbc, cost, optimum))
        if count in SIZES:
            rows.append(_row("greedy (blog)", assign_greedy, cost, optimum))
            rows.append(_row("optimal (ours: auction + exact finish)", assign_optimal, cost,
                             optimum))
            if count <= LAPJVS_LIMIT and HAVE_LAPX:
                rows.append(_row("lapx lapjvs (reference)", _lapjvs, cost, optimum))
            if count <= HIGHS_LIMIT:
                rows.append(_row("HiGHS LP", _highs, cost, optimum))
    return rows


def main() -> None:
    """Print the assignment table."""
    if not HAVE_LAPX:
        print("lapx is not installed (pip install -e '.[bench]'): no lapjvs rows")
    print_table("Assignment on a real target (obama, Lab 16x16 costs)",
                ["method", "photos", "tiles", "solve s", "objective", "mean cost",
                 "vs optimum"], run())


if __name__ == "__main__":
    main()
