"""Tile weighting: does it buy better faces, and what does it cost elsewhere.

For every target in ``../shared/data/targets`` with the real photo library
(``../shared/data/library``, loaded once): the exact assignment (Lab costs, 16 x 16) with
uniform weights (``--weights none``) against weighted assignments over a small grid of
(face weight, fall-off, head growth, person rule). Both use the same face-aware crop, so
only the weights differ.

**Measured face tiles** are the whole-face tiles of the issue (any tile showing part of
a face, forehead to chin, ear to ear, hair included), taken from the faces counted by
eye in ``benchmarks/bench_faces.py`` (``REQUIRED``), not from the detector: every tile
overlapping the head ellipse of a hand-drawn box (:func:`mosaic.importance.heads.
head_ellipses` at the default growth, whatever growth the weights try). The hand boxes
are a little larger than FaceMesh's, so this counts more tiles than the weights' own
head region. Person tiles are a quarter person (detector mask) and not face tiles. The
tables also give the face change on the detector's own heads (:func:`mosaic.importance.
tile_classes`, what a build's report counts), for comparison.

**Split.** The targets sorted by name, odd places (1st, 3rd, ...) are half A, even
places half B. Settings are picked on one half and reported on the other. A target whose
measured face tiles are over a quarter of its tiles is a close-up: reported, not held to
the goal. The goal (per non-close-up target with faces): face-tile cost at least 40 %
lower than unweighted, overall mean cost at most 3 % higher. The pick maximises, in
order: targets meeting the goal, person tiles not worse on average, the smallest worst
shortfall (points), the widest worst-case margin to the two goals (relative to each).

Run ``python -m benchmarks.bench_weights`` (450 settings, 4,510 exact solves of about
775 x 775: a few minutes on 2 shared cores); ``--quick`` tries fewer settings; ``--tiles N`` uses
fewer tiles than photos. What the defaults achieved when they were chosen:
``benchmarks/TUNING-importance.md``.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks import faces_album
from benchmarks.bench_faces import TRUTH_REQUIRED
from benchmarks.synthetic import LIBRARY, TARGETS, halves
from benchmarks.table import machine, print_table
from mosaic import importance
from mosaic.assign.exact import assign_optimal
from mosaic.cost import cost_matrix
from mosaic.features import tile_thumbnails, to_features
from mosaic.images import open_rgb
from mosaic.importance.heads import head_ellipses, tiles_touching
from mosaic.layout import plan_layout, tiles_to_grid
from mosaic.library import build_library, hash_photos

FACE_WEIGHTS = (2.0, 2.5, 3.0, 4.0, 5.0)
PERSON_WEIGHTS = (1.0, 1.1, 1.25)
FALLOFFS = (0.0, 0.25, 0.5)
HEAD_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5)
PERSON_TOUCH = (True, False)
SHOWN = 12  # best settings listed per half
QUICK = ((3.0, 5.0), (1.25,), (0.25,), (0.5, 1.0), (True,))
FACE_GOAL = -40.0
OVERALL_LIMIT = 3.0
CLOSE_UP = 0.25  # measured face tiles over this fraction of the grid: a close-up
Setting = tuple[float, float, float, float, bool]
"""(face weight, person weight, fall-off in tiles, head scale, person touch)."""


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
    detector_classes: np.ndarray
    detect_seconds: float

    @property
    def face_fraction(self) -> float:
        """Measured face tiles over all tiles."""
        return float((self.classes == importance.FACE).mean())

    @property
    def close_up(self) -> bool:
        """Faces on over :data:`CLOSE_UP` of the tiles: reported, not held to the goal."""
        return self.face_fraction > CLOSE_UP

    @property
    def has_faces(self) -> bool:
        """At least one measured face tile."""
        return bool((self.classes == importance.FACE).any())


@dataclass
class Outcome:
    """Mean costs of one solve: overall and per class (None for a class without tiles)."""

    overall: float
    face: float | None
    person: float | None
    background: float | None
    detector_face: float | None
    seconds: float


def library_features() -> np.ndarray:
    """Lab features (P, D) of the shared photo library, thumbnails cached in /tmp."""
    paths = sorted(LIBRARY.glob("*.jpg"))
    cache = Path(tempfile.gettempdir()) / "mosaic-bench-weights-thumbs"
    library = build_library(hash_photos(paths), feature_size=16, crops=1, cache_dir=cache)
    return to_features(library.thumbs[:, 0], "lab")


def measured_classes(name: str, detection: importance.Detection,
                     crop: tuple[int, int, int, int], rows: int, cols: int) -> np.ndarray:
    """Face tiles from the hand-counted faces (whole heads), person tiles from the mask."""
    labels = importance.tile_classes(detection, crop, rows, cols)
    labels[labels == importance.FACE] = importance.PERSON  # the detector's faces are people
    boxes = list(TRUTH_REQUIRED.get(name, {}).values())
    labels[tiles_touching(head_ellipses(boxes), crop, rows, cols)] = importance.FACE
    return labels


def prepare(name: str, photos: np.ndarray, tiles: int | None, folder: Path = TARGETS
            ) -> Problem:
    """Detect, lay out (face-aware crop), score: everything but the assignment."""
    image = open_rgb(folder / f"{name}.jpg")
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
    classes = measured_classes(name, detection, crop, rows, cols)
    return Problem(name, detection, crop, rows, cols, cost, classes,
                   importance.tile_classes(detection, crop, rows, cols), detect_seconds)


def solve(problem: Problem, setting: Setting | None) -> Outcome:
    """Exact assignment with the weights of ``setting`` (uniform for None)."""
    weights = None
    if setting is not None:
        face, person, falloff, scale, touch = setting
        weights = importance.tile_weights(problem.detection, problem.crop, problem.rows,
                                          problem.cols, "faces+people", face, person, falloff,
                                          head_scale=scale, person_touch=touch)
    result = assign_optimal(problem.cost, weights)
    per_class = importance.class_costs(result.tile_cost, problem.classes)
    detector = importance.class_costs(result.tile_cost, problem.detector_classes)
    return Outcome(result.mean_cost, per_class["face"]["mean_cost"],
                   per_class["person"]["mean_cost"], per_class["background"]["mean_cost"],
                   detector["face"]["mean_cost"], result.seconds)


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


Results = dict[tuple[str, "Setting | None"], Outcome]


def changes(problem: Problem, setting: Setting, results: Results, tiles: str = "face"
            ) -> tuple[float | None, float]:
    """(face- or person-tile change %, overall change %) of ``setting`` against unweighted."""
    base, run = results[(problem.name, None)], results[(problem.name, setting)]
    return (change(getattr(run, tiles), getattr(base, tiles)),
            change(run.overall, base.overall) or 0.0)


def margins(face: float | None, overall: float) -> float:
    """The smaller relative margin to the two goals (negative when one is missed).

    Relative, so that 5 points of face gain and 0.4 points of overall rise weigh alike:
    ``(goal - face) / |goal|`` and ``(limit - overall) / limit``.
    """
    face_margin = 1.0 if face is None else (FACE_GOAL - face) / abs(FACE_GOAL)
    return min(face_margin, (OVERALL_LIMIT - overall) / OVERALL_LIMIT)


def setting_label(setting: Setting) -> str:
    face, person, falloff, scale, touch = setting
    return (f"face {face:g}, person {person:g}, fall-off {falloff:g}, head x{scale:g}, "
            f"person {'touch' if touch else 'half'}")


def pick(settings: list[Setting], problems: list[Problem], results: Results
         ) -> tuple[list[list[object]], Setting]:
    """Summary rows per setting over the goal targets of ``problems``, and the pick.

    Goal targets have measured faces and are not close-ups. The pick maximises, in order:
    targets meeting the goal; person tiles not worse on average than unweighted; minus
    the worst shortfall; the worst target's smaller relative margin (:func:`margins`),
    so the pick sits away from both limits rather than on one.
    """
    goal = [p for p in problems if p.has_faces and not p.close_up]
    rows: list[tuple[tuple[float, ...], list[object]]] = []
    for setting in settings:
        pairs = [changes(p, setting, results) for p in goal]
        faces = [f for f, _ in pairs if f is not None]
        rises = [o for _, o in pairs]
        gaps = [shortfall(f, o) for f, o in pairs]
        meeting = sum(gap == 0.0 for gap in gaps)
        worst_face, worst_rise = max(faces, default=0.0), max(rises, default=0.0)
        people = [changes(p, setting, results, "person")[0] for p in goal]
        person_mean = float(np.mean([v for v in people if v is not None] or [0.0]))
        margin = min(margins(f, o) for f, o in pairs) if pairs else 0.0
        key = (meeting, person_mean <= 0.0, -max(gaps, default=0.0), margin)
        rows.append((key, [setting_label(setting), f"{meeting}/{len(goal)}",
                           f"{worst_face:+.1f} %", f"{np.mean(faces) if faces else 0.0:+.1f} %",
                           f"{worst_rise:+.2f} %", f"{person_mean:+.1f} %",
                           f"{max(gaps, default=0.0):.1f}", f"{margin:.2f}"]))
    order = sorted(range(len(rows)), key=lambda i: rows[i][0], reverse=True)
    return [rows[i][1] for i in order], settings[order[0]]


def target_rows(problems: list[Problem], results: Results, setting: Setting
                ) -> list[list[object]]:
    """Per target: unweighted vs ``setting``, per class and overall."""
    rows = []
    for problem in problems:
        base, run = results[(problem.name, None)], results[(problem.name, setting)]
        counts = np.bincount(problem.classes, minlength=3)
        face, overall = changes(problem, setting, results)
        status = ("no faces" if not problem.has_faces else "close-up" if problem.close_up
                  else "met" if shortfall(face, overall) == 0 else "MISSED")
        rows.append([
            problem.name, problem.detection.faces_found, f"{problem.face_fraction:.0%}",
            f"{counts[2]}/{counts[1]}/{counts[0]}",
            fmt(base.face), fmt(run.face), fmt(face, "{:+.1f} %"),
            fmt(change(run.person, base.person), "{:+.1f} %"),
            fmt(change(run.background, base.background), "{:+.1f} %"),
            fmt(base.overall), fmt(run.overall), f"{overall:+.2f} %",
            fmt(change(run.detector_face, base.detector_face), "{:+.1f} %"),
            f"{(problem.detector_classes == importance.FACE).mean():.0%}", status])
    return rows


TARGET_HEADER = ["target", "faces found", "face tiles", "tiles f/p/b", "face none",
                 "face w", "face %", "person %", "bg %", "overall none", "overall w",
                 "overall %", "face % (detector heads)", "detector face tiles", "goal"]


def default_setting() -> Setting:
    """The shipped weights as a setting."""
    return (importance.DEFAULT_FACE_WEIGHT, importance.DEFAULT_PERSON_WEIGHT,
            importance.DEFAULT_FALLOFF, importance.DEFAULT_HEAD_SCALE,
            importance.DEFAULT_PERSON_TOUCH)


def held_out(photos: np.ndarray, tiles: int | None) -> None:
    """The defaults against no weights on the album's photos with people (never tuned on)."""
    defaults = default_setting()
    names = [name for name, faces in faces_album.REQUIRED.items() if faces]
    problems = [prepare(name, photos, tiles, faces_album.ALBUM) for name in names]
    results: Results = {(p.name, setting): solve(p, setting)
                        for p in problems for setting in (None, defaults)}
    print_table(f"Held-out album with the defaults ({setting_label(defaults)})",
                TARGET_HEADER, target_rows(problems, results, defaults))


def main() -> None:
    """Pick on each half, report on the other; then the defaults on every target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="try a few settings only")
    parser.add_argument("--tiles", type=int, default=None,
                        help="tiles per mosaic (default: as many as photos, like a build)")
    parser.add_argument("--album", action="store_true",
                        help="only the defaults, on the held-out album's photos with people")
    args = parser.parse_args()
    print(f"Machine: {machine()}")
    started = time.perf_counter()
    photos = library_features()
    print(f"library: {len(photos)} photos ({time.perf_counter() - started:.1f} s)", flush=True)
    if args.album:
        held_out(photos, args.tiles)
        return
    names = sorted(p.stem for p in TARGETS.glob("*.jpg"))
    split = halves(names)
    print(f"split: A = {', '.join(split['A'])}; B = {', '.join(split['B'])}")
    problems = {name: prepare(name, photos, args.tiles) for name in names}
    print_table("Detection (mediapipe, offline) and measured face tiles (hand-counted heads)",
                ["target", "half", "faces found", "face boxes", "measured face tiles",
                 "close-up", "detect s"],
                [[p.name, "A" if p.name in split["A"] else "B", p.detection.faces_found,
                  " ".join(str(b) for b in p.detection.faces), f"{p.face_fraction:.0%}",
                  "yes" if p.close_up else "no", f"{p.detect_seconds:.2f}"]
                 for p in problems.values()])
    grid = QUICK if args.quick else (FACE_WEIGHTS, PERSON_WEIGHTS, FALLOFFS, HEAD_SCALES,
                                     PERSON_TOUCH)
    settings: list[Setting] = list(itertools.product(*grid))  # type: ignore[arg-type]
    defaults = default_setting()
    if defaults not in settings:
        settings.append(defaults)
    results: Results = {}
    solve_seconds = []
    for problem in problems.values():
        for setting in [None, *settings]:
            outcome = solve(problem, setting)
            results[(problem.name, setting)] = outcome
            solve_seconds.append(outcome.seconds)
        print(f"{problem.name}: {len(settings) + 1} exact solves", flush=True)
    for chosen_on, reported_on in (("A", "B"), ("B", "A")):
        chosen = [problems[n] for n in split[chosen_on]]
        summary, best = pick(settings, chosen, results)
        print_table(f"Best {SHOWN} settings on half {chosen_on} (not close-ups; face <= "
                    f"{FACE_GOAL:+.0f} %, overall <= {OVERALL_LIMIT:+.0f} %)",
                    ["setting", "meeting goal", "face, worst", "face, mean", "overall, worst",
                     "person, mean", "worst shortfall (points)", "worst margin"],
                    summary[:SHOWN])
        print(f"picked on half {chosen_on}: {setting_label(best)}")
        print_table(f"Half {reported_on} with the setting picked on half {chosen_on} "
                    f"({setting_label(best)})", TARGET_HEADER,
                    target_rows([problems[n] for n in split[reported_on]], results, best))
    print_table(f"Every target with the defaults ({setting_label(defaults)})", TARGET_HEADER,
                target_rows(list(problems.values()), results, defaults))
    _, overall_best = pick(settings, list(problems.values()), results)
    print(f"best on all targets: {setting_label(overall_best)}; "
          f"defaults: {setting_label(defaults)}")
    print(f"exact solves: {len(solve_seconds)}, mean {np.mean(solve_seconds):.2f} s; "
          f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
