"""Rows, table and verdicts of :mod:`benchmarks.bench_quality`."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import ClassVar

from benchmarks.peers import Box, box_slug

OURS_DEFAULT = "ours default"
OURS_CC = "ours --color-correct 0.3"
OURS_UNWEIGHTED = "ours unweighted (--face-weight 1 --person-weight 1)"
CC_BOUND = "ours cc 0.3 bound (unweighted --metric rgb)"
PHOMO_OPTIMAL = "phomo -m norm (optimal)"
MC_DEFAULT = "mosaicraft default"
MAX_TILE_RATIO = 0.75
MIN_SSIM_RATIO = 1.20
MIN_FACE_GAIN = 0.40
MAX_OVERALL_COST = 0.03
CLOSE_UP_SHARE = 0.25


@dataclass
class Row:
    """One measured mosaic; ``figures`` stays empty and ``error`` is set when it failed."""

    target: str
    half: str
    grid: str
    tool: str
    box: Box | None = None
    photos: str = ""
    seconds: float = math.nan
    peak_mb: float = math.nan
    figures: dict[str, float] = field(default_factory=dict)
    face_tiles: dict[str, int] = field(default_factory=dict)
    command: list[str] = field(default_factory=list)
    error: str | None = None

    HEADER: ClassVar[list[str]] = [
        "target", "half", "grid", "region (l,t,r,b)", "tool", "tile error", "CIEDE2000",
        "SSIM", "face tiles (hand)", "face tiles (Haar)", "photos", "seconds", "peak MB"]

    def figure(self, name: str) -> float:
        """One figure, NaN when not measured."""
        return self.figures.get(name, math.nan)

    def as_dict(self) -> dict[str, object]:
        """The row as JSON-ready values (NaN as None)."""
        def clean(value: object) -> object:
            return None if isinstance(value, float) and math.isnan(value) else value
        out = asdict(self)
        out["figures"] = {k: clean(v) for k, v in self.figures.items()}
        return {k: clean(v) for k, v in out.items()}


def _fmt(value: float, pattern: str) -> str:
    return "n/a" if math.isnan(value) else pattern.format(value)


def table_rows(results: Sequence[Row]) -> list[list[object]]:
    """Markdown rows (FAILED rows keep the start of their error)."""
    out: list[list[object]] = []
    for r in results:
        region = box_slug(r.box).replace("-", ",") if r.box is not None else ""
        head = [r.target, r.half, r.grid, region, r.tool]
        if r.error is not None or not r.figures:
            out.append([*head, "FAILED", "", "", "", "", "", "", (r.error or "")[:80]])
            continue
        faces = [_fmt(r.figure(f"face_{s}"), "{:.4f}") + f" ({r.face_tiles.get(s, 0)})"
                 for s in ("hand", "haar")]
        out.append([*head, f"{r.figure('tile_mse'):.5f}", f"{r.figure('ciede2000'):.2f}",
                    f"{r.figure('ssim'):.4f}", *faces, r.photos, f"{r.seconds:.1f}",
                    f"{r.peak_mb:.0f}"])
    return out


def find(results: Sequence[Row], target: str, tool: str) -> Row | None:
    """The measured row of ``tool`` on ``target``, or None."""
    return next((r for r in results if r.target == target and r.tool == tool
                 and r.error is None and r.figures), None)


def _goal_line(results: Sequence[Row], label: str,
               check: Callable[[str], tuple[bool, str] | None]) -> str:
    """``label``: met or missed per half, naming the misses, from ``check(target)``."""
    parts = []
    for half in ("A", "B"):
        targets = sorted({r.target for r in results if r.half == half})
        checked = {t: check(t) for t in targets}
        measured = {t: c for t, c in checked.items() if c is not None}
        missed = [f"{t} {c[1]}" for t, c in measured.items() if not c[0]]
        text = f"half {half}: met on {len(measured) - len(missed)} of {len(measured)}"
        if missed:
            text += f" (MISSED: {'; '.join(missed)})"
        parts.append(text)
    return f"- {label}: " + ", ".join(parts)


def summary(results: Sequence[Row]) -> list[str]:
    """The issue's goals, target by target, by half of the shared targets."""
    def against_phomo(target: str) -> tuple[bool, str] | None:
        ours, peer = find(results, target, OURS_DEFAULT), find(results, target, PHOMO_OPTIMAL)
        if ours is None or peer is None:
            return None
        error = ours.figure("tile_mse") / peer.figure("tile_mse")
        ssim = ours.figure("ssim") / peer.figure("ssim")
        return (error <= MAX_TILE_RATIO and ssim >= MIN_SSIM_RATIO,
                f"{error:.2f}x / {ssim:.2f}x")

    def faces(target: str) -> tuple[bool, str] | None:
        ours, flat = find(results, target, OURS_DEFAULT), find(results, target, OURS_UNWEIGHTED)
        if ours is None or flat is None or not ours.face_tiles.get("hand"):
            return None
        share = ours.face_tiles["hand"] / _cells(ours.grid)
        if share >= CLOSE_UP_SHARE:
            return None
        gain = 1 - ours.figure("face_hand") / flat.figure("face_hand")
        overall = ours.figure("tile_mse") / flat.figure("tile_mse") - 1
        return (gain >= MIN_FACE_GAIN and overall <= MAX_OVERALL_COST,
                f"face tiles {-gain:+.1%}, overall {overall:+.2%}")

    def against_mosaicraft(tool: str) -> Callable[[str], tuple[bool, str] | None]:
        def check(target: str) -> tuple[bool, str] | None:
            ours, peer = find(results, target, tool), find(results, target, MC_DEFAULT)
            if ours is None or peer is None:
                return None
            error, ssim = ours.figure("tile_mse"), ours.figure("ssim")
            return (error < peer.figure("tile_mse") and ssim > peer.figure("ssim"),
                    f"{error / peer.figure('tile_mse'):.2f}x tile error, SSIM "
                    f"{ssim - peer.figure('ssim'):+.4f}")
        return check

    return [
        _goal_line(results, f"ours default vs phomo optimal (tile error <= {MAX_TILE_RATIO}x, "
                   f"SSIM >= {MIN_SSIM_RATIO}x)", against_phomo),
        _goal_line(results, "face tiles (hand-counted heads) vs unweighted: at least "
                   f"{MIN_FACE_GAIN:.0%} lower, overall at most +{MAX_OVERALL_COST:.0%}, "
                   f"targets with faces on under {CLOSE_UP_SHARE:.0%} of tiles", faces),
        _goal_line(results, "ours --color-correct 0.3 beats mosaicraft default on both",
                   against_mosaicraft(OURS_CC)),
        _goal_line(results, "the S=0.3 tile-error bound beats mosaicraft default on both "
                   "(if not, no one-use placement of these crops with that shift can)",
                   against_mosaicraft(CC_BOUND)),
    ]


def _cells(grid: str) -> int:
    rows, cols = grid.split("x")
    return int(rows) * int(cols)
