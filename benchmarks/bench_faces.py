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

Run ``python -m benchmarks.bench_faces`` (about half a minute on 2 idle cores);
``--targets a b`` runs some targets only.

Which of these targets shaped which detection rule, and by how much the rules pass
(the margins are small): ``benchmarks/TUNING-importance.md``.
"""

from __future__ import annotations

import argparse
import time

from benchmarks.synthetic import TARGETS
from benchmarks.table import machine, print_table
from mosaic import importance
from mosaic.images import open_rgb

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


def _matches(found: Box, truth: Box) -> bool:
    cx, cy = (found[0] + found[2]) / 2, (found[1] + found[3]) / 2
    inside = truth[0] <= cx <= truth[2] and truth[1] <= cy <= truth[3]
    return inside or importance.box_iou(found, truth) >= 0.3


def score(name: str, faces: list[Box]) -> tuple[list[str], list[str], list[Box]]:
    """Required faces found, optional faces found, and false positives (boxes)."""
    required, optional = dict(REQUIRED.get(name, {})), dict(OPTIONAL.get(name, {}))
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


def main() -> None:
    """Print faces found, missed and false per target, with the detection time."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", nargs="*", default=None, help="target names")
    args = parser.parse_args()
    print(f"Machine: {machine()}")
    names = args.targets or sorted(p.stem for p in TARGETS.glob("*.jpg"))
    rows = []
    totals = [0, 0, 0, 0]
    for name in names:
        image = open_rgb(TARGETS / f"{name}.jpg")
        started = time.perf_counter()
        detection = importance.detect_people(image)
        seconds = time.perf_counter() - started
        hit, extra, false = score(name, detection.faces)
        missed = [k for k in REQUIRED.get(name, {}) if k not in hit]
        totals[0] += len(hit)
        totals[1] += len(REQUIRED.get(name, {}))
        totals[2] += len(extra)
        totals[3] += len(false)
        rows.append([name, detection.faces_found,
                     f"{len(hit)}/{len(REQUIRED.get(name, {}))}",
                     f"{len(extra)}/{len(OPTIONAL.get(name, {}))}", len(false),
                     f"{seconds:.2f}", "; ".join(missed) or "-",
                     " ".join(str(b) for b in false) or "-"])
        print(f"{name}: {detection.faces} ({seconds:.1f} s)", flush=True)
    print_table("Faces found per target (required = clearly visible faces)",
                ["target", "faces", "required found", "optional found", "false",
                 "detect s", "missed", "false boxes"], rows)
    print(f"required faces found: {totals[0]}/{totals[1]}; optional found: {totals[2]}; "
          f"false positives: {totals[3]}")


if __name__ == "__main__":
    main()
