"""Wall time of `mosaic demo`, cold (fresh run folder) and cached, and Prefect's share."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.table import print_table

ROOT = Path(__file__).resolve().parents[1]


def _demo(out_dir: Path) -> tuple[float, dict[str, object]]:
    mosaic = Path(sys.executable).with_name("mosaic")
    started = time.perf_counter()
    subprocess.run([str(mosaic), "demo", "--out-dir", str(out_dir), "--quiet"], cwd=ROOT,
                   check=True, capture_output=True)
    wall = time.perf_counter() - started
    return wall, json.loads((out_dir / "metrics.json").read_text())


def run() -> list[list[object]]:
    """Rows: run, wall s, steps s, Prefect and start-up s."""
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        out_dir = Path(scratch) / "demo"
        for label in ("cold", "cached"):
            wall, metrics = _demo(out_dir)
            timings = metrics["timings"]
            steps = sum(float(timings[k]) for k in ("load", "score", "solve", "render"))
            rows.append([label, f"{wall:.1f}", f"{steps:.1f}", f"{wall - steps:.1f}",
                         metrics["tiles"], f"{metrics['mean_cost']:.4f}"])
        shutil.rmtree(out_dir, ignore_errors=True)
    return rows


def main() -> None:
    """Print the demo timing table."""
    print_table("`mosaic demo` wall time (775 photos, 31x25 tiles)",
                ["run", "wall s", "pipeline steps s", "Prefect + start-up s", "tiles",
                 "mean cost"], run())


if __name__ == "__main__":
    main()
