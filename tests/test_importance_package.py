"""The mosaic.importance package: its public names and the direction of its imports."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

from mosaic import importance

PACKAGE = Path(importance.__file__).parent


def test_public_names_are_exported():
    for name in importance.__all__:
        assert hasattr(importance, name), name
    # What callers outside the package use (mosaic.steps, the CLI, deployments, benchmarks).
    for name in ("DEFAULT_FACE_WEIGHT", "DEFAULT_FALLOFF", "DEFAULT_PERSON_WEIGHT", "MODES",
                 "SEGMENTERS", "FACE", "PERSON", "BACKGROUND", "Detection", "box_iou",
                 "check_segmenter", "check_weights", "class_costs", "detect_people",
                 "face_crop", "faces_centre", "falloff_weights", "load_detection",
                 "resolve_mode", "save_detection", "tile_classes", "tile_weights",
                 "weight_map_image", "weights_settings"):
        assert name in importance.__all__, name


def _imports_within(path: Path) -> set[str]:
    """Modules of the package that ``path`` imports (by their short name)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            parts = node.module.split(".")
            if parts[:2] == ["mosaic", "importance"] and len(parts) == 3:
                found.add(parts[2])
    return found


def test_modules_import_one_way():
    graph = {path.stem: _imports_within(path) for path in PACKAGE.glob("*.py")
             if path.stem != "__init__"}
    assert all(module in graph for imported in graph.values() for module in imported)
    # static_order raises CycleError when a module imports back into one that imports it.
    order = list(graphlib.TopologicalSorter(graph).static_order())
    assert sorted(order) == sorted(graph)


def test_mediapipe_opens_with_warnings_as_errors_in_a_fresh_process():
    """On Python 3.12 protobuf's extension warns while mediapipe loads; that must not fail."""
    import subprocess
    import sys

    program = ("from mosaic.importance.session import mediapipe_session\n"
               "with mediapipe_session() as mp:\n"
               "    print(type(mp.solutions.face_detection).__name__)\n")
    done = subprocess.run([sys.executable, "-W", "error", "-c", program], capture_output=True,
                          text=True, timeout=120, check=False,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "module"
