"""Printing benchmark tables (markdown, so they paste into the README)."""

from __future__ import annotations

import json
import os
import platform
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def machine() -> str:
    """One line describing this machine."""
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GB, Python "
            f"{platform.python_version()}, {platform.system()} {platform.machine()}")


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print a markdown table with a title."""
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(v) for v in row) + " |")
    print(flush=True)


def saved_results(path: Path, targets: Sequence[str]) -> list[dict[str, Any]]:
    """The entries of a saved ``results.json`` whose target is one of ``targets``."""
    saved = json.loads(path.read_text(encoding="utf-8"))
    return [entry for entry in saved if entry["target"] in targets]


def save_results(out_dir: Path, results: Sequence[object]) -> None:
    """Write ``out_dir/results.json`` (dataclass instances, by their fields)."""
    (out_dir / "results.json").write_text(json.dumps([vars(m) for m in results], indent=1),
                                          encoding="utf-8")


def fresh_folder(folder: Path) -> Path:
    """``folder``, emptied (a benchmark's own output folder) and created."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder
