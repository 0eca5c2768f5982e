"""Face recall of :func:`mosaic.importance.detect_people` on the shared targets.

Ground truth was counted by eye on every target in ``../shared/data/targets`` (zoomed,
brightened crops): each visible human face, profile, turned, dark or small ones
included; a head seen from behind does not count. ``REQUIRED`` faces must be found;
``OPTIONAL`` ones are faces too, but tiny (under ~16 px), mostly hidden or turned
away, so finding them is a bonus and not a false positive. Boxes are approximate
(left, top, right, bottom) in target pixels.

A detected face matches a ground-truth face when its box centre lies inside the
ground-truth box or the boxes overlap with IoU >= 0.3; every ground-truth face is
matched at most once, and a detection matching nothing is a false positive.

Run ``python -m benchmarks.bench_faces`` (about a minute on 2 idle cores): the shared
targets in their two fixed halves (``bench_weights.halves``) and the held-out album of
:mod:`benchmarks.faces_album` (photos no rule was tuned on), with recall (required faces
found) and precision (detections that are faces, optional ones included) per group.
``--targets a b`` runs some images only; ``--sweep`` also varies the one threshold the
album's false faces hinge on (the detector score a face without landmarks needs) and
picks it on each group, reporting it on the others.

Which of these targets shaped which detection rule, and by how much the rules pass
(the margins are small): ``benchmarks/TUNING-importance.md``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import faces_album
from benchmarks.synthetic import TARGETS, halves
from benchmarks.table import machine, print_table
from mosaic import importance
from mosaic.images import open_rgb
from mosaic.importance import faces as face_rules

Box = tuple[int, int, int, int]

REQUIRED: dict[str, dict[str, Box]] = {
    "anne_helene": {"woman": (135, 135, 230, 245)},
    "astronaut": {"astronaut": (170, 60, 280, 185)},
    "bar55": {
        "woman with glasses, left edge": (0, 140, 80, 240),
        "dark-haired woman, 3/4 view": (112, 235, 170, 305),
        "woman behind, turned left (dark)": (140, 190, 188, 246),
        "woman behind, 3/4 view (dark)": (218, 166, 262, 216),
        "blond woman": (250, 215, 380, 365),
        "man": (340, 125, 478, 298),
        "grey-bearded man, profile": (545, 30, 645, 145),
        "man with glasses, right (dark)": (692, 165, 750, 236),
    },
    "biden": {"Biden": (300, 160, 520, 415)},
    "cold_water": {
        "man with sunglasses, front": (430, 160, 495, 245),
        "man with sunglasses, behind": (224, 212, 254, 250),
        "blond woman, half hidden by a head": (143, 226, 192, 278),
    },
    "grace_hopper": {"Grace Hopper": (165, 125, 365, 345)},
    "jesper": {"man, close-up": (140, 0, 750, 533)},
    "landscape-kite": {},
    "obama": {"Obama": (360, 120, 630, 420)},
    "qt-logo": {
        "left man": (120, 40, 295, 250),
        "middle man": (330, 40, 495, 260),
        "right man": (560, 10, 740, 225),
    },
}
OPTIONAL: dict[str, dict[str, Box]] = {
    "anne_helene": {"tiny people on the beach": (0, 95, 135, 155)},
    "bar55": {
        "man behind, turned away": (185, 175, 214, 215),
        "face behind the woman with glasses": (58, 193, 84, 227),
        "face behind the blond hair": (266, 160, 297, 192),
    },
    "cold_water": {
        "woman left, looking down (~14 px)": (26, 246, 54, 272),
        "far-away people (< 15 px)": (0, 215, 420, 250),
    },
    "qt-logo": {
        "man behind, profile (dark)": (486, 102, 527, 175),
        "man behind, looking down (dark)": (528, 133, 588, 197),
    },
}


TRUTH_REQUIRED = {**REQUIRED, **faces_album.REQUIRED}
TRUTH_OPTIONAL = {**OPTIONAL, **faces_album.OPTIONAL}
SWEEP_SCORES = (0.6, 0.7, 0.8, 0.9)
"""Values of ``faces._ALONE_SCORE`` tried by ``--sweep`` (0.6 is the shipped one)."""


def _matches(found: Box, truth: Box) -> bool:
    cx, cy = (found[0] + found[2]) / 2, (found[1] + found[3]) / 2
    inside = truth[0] <= cx <= truth[2] and truth[1] <= cy <= truth[3]
    return inside or importance.box_iou(found, truth) >= 0.3


def score(name: str, faces: list[Box]) -> tuple[list[str], list[str], list[Box]]:
    """Required faces found, optional faces found, and false positives (boxes)."""
    required = dict(TRUTH_REQUIRED.get(name, {}))
    optional = dict(TRUTH_OPTIONAL.get(name, {}))
    hit_required: list[str] = []
    hit_optional: list[str] = []
    false: list[Box] = []
    for box in faces:
        label = next((k for k, v in required.items() if _matches(box, v)), None)
        if label is not None:
            hit_required.append(label)
            del required[label]
            continue
        label = next((k for k, v in optional.items() if _matches(box, v)), None)
        if label is not None:
            hit_optional.append(label)
            if not label.startswith(("tiny", "far-away")):
                del optional[label]
            continue
        false.append(box)
    return hit_required, hit_optional, false


def groups() -> dict[str, dict[str, Path]]:
    """Image paths by group: the targets' halves A and B, and the held-out album."""
    split = halves([p.stem for p in TARGETS.glob("*.jpg")])
    found = {f"targets {half}": {name: TARGETS / f"{name}.jpg" for name in names}
             for half, names in split.items()}
    found["album (held out)"] = {name: faces_album.ALBUM / f"{name}.jpg"
                                 for name in sorted(faces_album.REQUIRED)}
    return found


@dataclass
class Counted:
    """One image's faces against the truth."""

    name: str
    group: str
    required: int
    hit: list[str]
    extra: list[str]
    false: list[Box]
    seconds: float
    faces: list[Box] = field(default_factory=list)


def count(group: str, name: str, path: Path) -> Counted:
    """Detect the faces of one image and score them."""
    image = open_rgb(path)
    started = time.perf_counter()
    detection = importance.detect_people(image)
    seconds = time.perf_counter() - started
    hit, extra, false = score(name, detection.faces)
    return Counted(name, group, len(TRUTH_REQUIRED.get(name, {})), hit, extra, false, seconds,
                   list(detection.faces))


def recall_precision(counted: list[Counted]) -> tuple[int, int, int, int]:
    """(required found, required, detections that are faces, detections)."""
    found = sum(len(c.hit) for c in counted)
    true = found + sum(len(c.extra) for c in counted)
    return found, sum(c.required for c in counted), true, true + sum(len(c.false)
                                                                     for c in counted)


def _ratio(part: int, whole: int) -> str:
    return f"{part}/{whole} ({100 * part / whole:.0f}%)" if whole else "-"


def summary_rows(counted: list[Counted], names: list[str]) -> list[list[object]]:
    """Recall and precision per group."""
    rows = []
    for group in names:
        found, required, true, detections = recall_precision(
            [c for c in counted if c.group == group])
        rows.append([group, _ratio(found, required), _ratio(true, detections)])
    return rows


def run(selected: dict[str, dict[str, Path]], echo: bool) -> list[Counted]:
    """Every selected image counted, in group order."""
    counted = []
    for group, images in selected.items():
        for name, path in images.items():
            counted.append(count(group, name, path))
            if echo:
                print(f"{name}: {counted[-1].faces} ({counted[-1].seconds:.1f} s)", flush=True)
    return counted


def f1(counted: list[Counted]) -> float:
    """The harmonic mean of recall and precision (0 when either is 0)."""
    found, required, true, detections = recall_precision(counted)
    recall = found / required if required else 1.0
    precision = true / detections if detections else 1.0
    return 2 * recall * precision / (recall + precision) if recall + precision else 0.0


def _figures(counted: list[Counted], group: str) -> str:
    found, required, true, detections = recall_precision([c for c in counted
                                                          if c.group == group])
    return f"recall {_ratio(found, required)}, precision {_ratio(true, detections)}"


def sweep(selected: dict[str, dict[str, Path]]) -> None:
    """Vary ``_ALONE_SCORE``; pick it on each group (best F1, lowest on ties), report all."""
    shipped = face_rules._ALONE_SCORE
    results: dict[float, list[Counted]] = {}
    try:
        for value in SWEEP_SCORES:
            face_rules._ALONE_SCORE = value
            results[value] = run(selected, echo=False)
    finally:
        face_rules._ALONE_SCORE = shipped
    names = list(selected)
    rows = []
    for value, counted in results.items():
        row: list[object] = [f"{value:g}" + (" (shipped)" if value == shipped else "")]
        rows.append(row + [_figures(counted, group) for group in names])
    print_table("Recall, precision per group for each detector score a face without "
                "landmarks needs", ["score", *names], rows)
    for group in names:
        best = max(SWEEP_SCORES, key=lambda v: (round(f1([c for c in results[v]
                                                           if c.group == group]), 9), -v))
        others = "; ".join(f"{other}: {_figures(results[best], other)}"
                           for other in names if other != group)
        print(f"picked on {group}: {best:g}; on the others: {others}")


def image_row(c: Counted) -> list[object]:
    """One image's line: faces, required and optional found, false, time, misses."""
    missed = [k for k in TRUTH_REQUIRED.get(c.name, {}) if k not in c.hit]
    return [c.name, c.group, len(c.hit) + len(c.extra) + len(c.false),
            f"{len(c.hit)}/{c.required}", f"{len(c.extra)}/{len(TRUTH_OPTIONAL.get(c.name, {}))}",
            len(c.false), f"{c.seconds:.2f}", "; ".join(missed) or "-",
            " ".join(str(b) for b in c.false) or "-"]


def main() -> None:
    """Print faces found, missed and false per image, then recall and precision per group."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", nargs="*", default=None, help="image names")
    parser.add_argument("--sweep", action="store_true",
                        help=f"also try the scores {SWEEP_SCORES} for faces without landmarks")
    args = parser.parse_args()
    print(f"Machine: {machine()}")
    selected = {group: {n: p for n, p in images.items()
                        if args.targets is None or n in args.targets}
                for group, images in groups().items()}
    selected = {group: images for group, images in selected.items() if images}
    counted = run(selected, echo=True)
    rows = [image_row(c) for c in counted]
    print_table("Faces found per image (required = clearly visible faces)",
                ["image", "group", "faces", "required found", "optional found", "false",
                 "detect s", "missed", "false boxes"], rows)
    print_table("Recall (required faces found) and precision (detections that are faces)",
                ["group", "recall", "precision"], summary_rows(counted, list(selected)))
    if args.sweep:
        sweep(selected)


if __name__ == "__main__":
    main()
