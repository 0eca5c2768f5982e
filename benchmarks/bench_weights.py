"""Tile weighting: does it buy better faces, and what does it cost elsewhere.

For every target in ``../shared/data/targets`` with the real photo library
(``../shared/data/library``, loaded once): the exact assignment (Lab costs, 16 x 16) with
uniform weights (``--weights none``) against weighted assignments over a small grid of
(face weight, person weight, fall-off). Both use the same face-aware crop, so only the
weights differ. Reported per target: faces found, mean cost on face, person and
background tiles, and overall, with the change against the unweighted run.

The goal (issue 3): face-tile cost at least 30 % lower than unweighted, overall mean cost
at most 5 % higher, on every target with faces. Among the settings that meet it
everywhere, the one with the largest worst-case face gain is picked; ties go to the
smaller overall rise.

Run ``python -m benchmarks.bench_weights`` (about a minute on 2 idle cores, 370 exact
solves of 775 x 775; much longer when the cores are shared);
``--quick`` tries fewer settings; ``--tiles N`` uses fewer tiles than photos. What the
defaults achieved when they were chosen: ``benchmarks/TUNING-importance.md``.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.synthetic import LIBRARY, TARGETS
from benchmarks.table import machine, print_table
from mosaic import importance
from mosaic.assign.exact import assign_optimal
from mosaic.cost import cost_matrix
from mosaic.features import tile_thumbnails, to_features
from mosaic.images import open_rgb
from mosaic.layout import plan_layout, tiles_to_grid
from mosaic.library import build_library, hash_photos

FACE_WEIGHTS = (2.0, 3.0, 5.0, 10.0)
PERSON_WEIGHTS = (1.0, 1.25, 1.5)
FALLOFFS = (0.25, 0.5, 1.0)
QUICK = ((3.0, 5.0), (1.0, 1.25), (0.5,))
FACE_GOAL = -30.0
OVERALL_LIMIT = 5.0
Setting = tuple[float, float, float]


@dataclass
class Problem:
    """One target ready to solve: its cost matrix, tile classes and detection."""

    name: str
    detection: importance.Detection
    crop: tuple[int, int, int, int]
    rows: int
    cols: int
    cost: np.ndarray
    classes: np.ndarray
    detect_seconds: float


@dataclass
class Outcome:
    """Mean costs of one solve: overall and per class (None for a class without tiles)."""

    overall: float
    face: float | None
    person: float | None
    background: float | None
    seconds: float


def library_features() -> np.ndarray:
    """Lab features (P, D) of the shared photo library, thumbnails cached in /tmp."""
    paths = sorted(LIBRARY.glob("*.jpg"))
    cache = Path(tempfile.gettempdir()) / "mosaic-bench-weights-thumbs"
    library = build_library(hash_photos(paths), feature_size=16, crops=1, cache_dir=cache)
    return to_features(library.thumbs[:, 0], "lab")


def prepare(name: str, photos: np.ndarray, tiles: int | None) -> Problem:
    """Detect, lay out (face-aware crop), score: everything but the assignment."""
    image = open_rgb(TARGETS / f"{name}.jpg")
    started = time.perf_counter()
    detection = importance.detect_people(image)
    detect_seconds = time.perf_counter() - started
    if tiles is None:
        layout = plan_layout(image.size, len(photos))
        rows, cols = layout.rows, layout.cols
    else:
        rows, cols = tiles_to_grid(tiles, image.width / image.height)
    crop = importance.face_crop(detection, cols / rows)
    thumbs = tile_thumbnails(image, crop, rows, cols, 16)
    cost, _ = cost_matrix(to_features(thumbs, "lab"), photos)
    classes = importance.tile_classes(detection, crop, rows, cols)
    return Problem(name, detection, crop, rows, cols, cost, classes, detect_seconds)


def solve(problem: Problem, setting: Setting | None) -> Outcome:
    """Exact assignment with the weights of ``setting`` (uniform for None)."""
    weights = None
    if setting is not None:
        face, person, falloff = setting
        weights = importance.tile_weights(problem.detection, problem.crop, problem.rows,
                                          problem.cols, "faces+people", face, person, falloff)
    result = assign_optimal(problem.cost, weights)
    per_class = importance.class_costs(result.tile_cost, problem.classes)
    return Outcome(result.mean_cost, per_class["face"]["mean_cost"],
                   per_class["person"]["mean_cost"], per_class["background"]["mean_cost"],
                   result.seconds)


def change(new: float | None, old: float | None) -> float | None:
    """Percentage change, None when either side is missing."""
    if new is None or old is None or old == 0:
        return None
    return 100.0 * (new - old) / old


def fmt(value: float | None, pattern: str = "{:.4f}") -> str:
    return "-" if value is None else pattern.format(value)


def shortfall(face: float | None, overall: float) -> float:
    """How far one target is from the goal, in percentage points (0 when met)."""
    face_gap = 0.0 if face is None else max(0.0, face - FACE_GOAL)
    return face_gap + max(0.0, overall - OVERALL_LIMIT)


def pick(settings: list[Setting], problems: list[Problem],
         results: dict[tuple[str, Setting | None], Outcome]) -> tuple[list[list[object]],
                                                                    Setting | None]:
    """Summary rows per setting over the targets with faces, and the pick.

    The pick maximises, in order: the number of targets meeting the goal; person tiles
    not worse on average than unweighted (the issue: faces *and people* get the best
    photos); the smallest worst shortfall from the goal; the largest mean face gain.
    """
    rows, best, best_key = [], None, None
    with_faces = [p for p in problems if p.detection.faces]
    for setting in settings:
        faces, people, overall, gaps = [], [], [], []
        for problem in with_faces:
            base, run = results[(problem.name, None)], results[(problem.name, setting)]
            face = change(run.face, base.face)
            rise = change(run.overall, base.overall) or 0.0
            person = change(run.person, base.person)
            faces += [face] if face is not None else []
            people += [person] if person is not None else []
            overall.append(rise)
            gaps.append(shortfall(face, rise))
        meeting = sum(gap == 0.0 for gap in gaps)
        face_mean = float(np.mean(faces)) if faces else 0.0
        person_mean = float(np.mean(people)) if people else 0.0
        rows.append([*setting, f"{meeting}/{len(with_faces)}", fmt(max(faces, default=None),
                                                                   "{:+.1f} %"),
                     f"{face_mean:+.1f} %", f"{person_mean:+.1f} %",
                     f"{max(overall, default=0.0):+.2f} %", f"{np.mean(overall):+.2f} %",
                     f"{max(gaps, default=0.0):.1f}"])
        key = (meeting, person_mean <= 0.0, -max(gaps, default=0.0), -face_mean)
        if best_key is None or key > best_key:
            best, best_key = setting, key
    return rows, best


def matrix_rows(settings: list[Setting], problems: list[Problem],
                results: dict[tuple[str, Setting | None], Outcome]) -> list[list[object]]:
    """Per setting, per target: "face % / overall %" against the unweighted run."""
    rows = []
    for setting in settings:
        cells = []
        for problem in problems:
            base, run = results[(problem.name, None)], results[(problem.name, setting)]
            face = change(run.face, base.face)
            overall = change(run.overall, base.overall) or 0.0
            cells.append(f"{fmt(face, '{:+.0f}')} / {overall:+.1f}")
        rows.append([*setting, *cells])
    return rows


def target_rows(problems: list[Problem], results: dict[tuple[str, Setting | None], Outcome],
                setting: Setting) -> list[list[object]]:
    """Per target: unweighted vs ``setting``, per class and overall."""
    rows = []
    for problem in problems:
        base, run = results[(problem.name, None)], results[(problem.name, setting)]
        counts = np.bincount(problem.classes, minlength=3)
        rows.append([
            problem.name, problem.detection.faces_found,
            f"{problem.rows}x{problem.cols}", f"{counts[2]}/{counts[1]}/{counts[0]}",
            fmt(base.face), fmt(run.face), fmt(change(run.face, base.face), "{:+.1f} %"),
            fmt(base.person), fmt(run.person), fmt(change(run.person, base.person), "{:+.1f} %"),
            fmt(base.background), fmt(run.background),
            fmt(change(run.background, base.background), "{:+.1f} %"),
            fmt(base.overall), fmt(run.overall), fmt(change(run.overall, base.overall),
                                                     "{:+.2f} %"),
        ])
    return rows


def main() -> None:
    """Print the detection table, the settings grid and the per-target table of the pick."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="try a few settings only")
    parser.add_argument("--tiles", type=int, default=None,
                        help="tiles per mosaic (default: as many as photos, like a build)")
    args = parser.parse_args()
    print(f"Machine: {machine()}")
    started = time.perf_counter()
    photos = library_features()
    print(f"library: {len(photos)} photos ({time.perf_counter() - started:.1f} s)", flush=True)
    names = sorted(p.stem for p in TARGETS.glob("*.jpg"))
    problems = [prepare(name, photos, args.tiles) for name in names]
    print_table("Detection (mediapipe, offline)", ["target", "faces", "face boxes",
                                                   "person fraction", "detect s", "notes"],
                [[p.name, p.detection.faces_found, " ".join(str(b) for b in p.detection.faces),
                  f"{p.detection.person_fraction:.2f}", f"{p.detect_seconds:.2f}",
                  "; ".join(p.detection.notes)] for p in problems])
    grid = QUICK if args.quick else (FACE_WEIGHTS, PERSON_WEIGHTS, FALLOFFS)
    settings: list[Setting] = list(itertools.product(*grid))
    defaults = (importance.DEFAULT_FACE_WEIGHT, importance.DEFAULT_PERSON_WEIGHT,
                importance.DEFAULT_FALLOFF)
    if defaults not in settings:
        settings.append(defaults)
    results: dict[tuple[str, Setting | None], Outcome] = {}
    solve_seconds = []
    for problem in problems:
        for setting in [None, *settings]:
            outcome = solve(problem, setting)
            results[(problem.name, setting)] = outcome
            solve_seconds.append(outcome.seconds)
        print(f"{problem.name}: {len(settings) + 1} exact solves", flush=True)
    summary, best = pick(settings, problems, results)
    print_table(
        f"Settings over the targets with faces, change against unweighted (goal: face <= "
        f"{FACE_GOAL:+.0f} %, overall <= {OVERALL_LIMIT:+.0f} %)",
        ["face W", "person W", "fall-off (tiles)", "targets meeting goal", "face cost, worst",
         "face cost, mean", "person cost, mean", "overall, worst", "overall, mean",
         "worst shortfall (points)"], summary)
    print_table("Face-tile cost % / overall mean cost % against unweighted, per target",
                ["face W", "person W", "fall-off", *[p.name for p in problems]],
                matrix_rows(settings, problems, results))
    header = ["target", "faces", "grid", "tiles f/p/b", "face none", "face w", "face %",
              "person none", "person w", "person %", "bg none", "bg w", "bg %",
              "overall none", "overall w", "overall %"]
    print_table(f"Per target, defaults in mosaic/importance/weights.py {defaults}",
                header, target_rows(problems, results, defaults))
    if best is not None and best != defaults:
        print_table(f"Per target, best setting of this run {best}", header,
                    target_rows(problems, results, best))
    print(f"best setting of this run: {best}; defaults in mosaic/importance/weights.py: {defaults}")
    print(f"exact solves: {len(solve_seconds)}, mean {np.mean(solve_seconds):.2f} s; "
          f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
