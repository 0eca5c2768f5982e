"""The face weight chosen end to end: the default command, its rendered poster, faces by hand.

Run from the project folder::

    .venv/bin/python -m benchmarks.bench_face_weight                 # 1, 2.5, 3, 3.5, 4, 5
    .venv/bin/python -m benchmarks.bench_face_weight --weights 1,3,4 --targets obama

For every shared target and every face weight ``W`` it runs the default command with
``--face-weight W`` (and ``--no-compare``, which only skips the report's baselines), reads
the poster it rendered and measures, as :mod:`benchmarks.quality_figures` does (RGB at 16 x
16 px a tile, against the target region the build covered), the error over the tiles that
show a face and over all tiles. Face tiles are the tiles overlapping the whole head of a
face counted by hand (:mod:`benchmarks.bench_faces`): ``REQUIRED`` faces for the goal,
and ``REQUIRED`` plus ``OPTIONAL`` (tiny, hidden or turned-away faces) in a second column.
``W = 1`` is the unweighted assignment (``--face-weight 1 --person-weight 1``) on the same
face-aware region; the other builds keep the default person weight.

The issue's goal (face tiles at least 40 % lower error than unweighted, at most 3 % more
overall, on every target whose faces cover under a quarter of the tiles; close-ups are
reported, not held to it) is checked per half of the targets (A: anne_helene, bar55,
cold_water, jesper, obama; B: the rest). The weight is *chosen* on one half by its worst
target (the weight whose held target nearest to failing either bound is furthest inside
it) and *reported* on the other: both directions are printed, so a rule fitted to the
data it is scored on shows.
The run folder per target is shared between the weights, so the photos and the scores are
computed once.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks import bench_mosaicraft as mc
from benchmarks import quality_figures as qf
from benchmarks.bench_faces import REQUIRED
from benchmarks.bench_quality import HALF_A, half
from benchmarks.peers import DATA, ROOT, Box
from benchmarks.quality_rows import CLOSE_UP_SHARE, MAX_OVERALL_COST, MIN_FACE_GAIN
from benchmarks.table import fresh_folder, machine, print_table, save_results, saved_results
from cli import prefect_server
from mosaic.images import open_rgb
from mosaic.report import QUALITY_CELL, shrink_to_cells

WEIGHTS = (1.0, 2.5, 3.0, 3.5, 4.0, 5.0)
UNWEIGHTED = ("--face-weight", "1", "--person-weight", "1")
"""The baseline (W = 1): every weight 1, on the same face-aware region; given last, so it
overrides a weight in ``--extra``."""


@dataclass
class Measured:
    """One build: its figures, or the reason it failed."""

    target: str
    weight: float
    overall: float = math.nan
    face_required: float = math.nan
    face_all: float = math.nan
    face_share: float = math.nan
    seconds: float = math.nan
    peak_mb: float = math.nan
    error: str | None = None


@dataclass
class Gain:
    """A weighted build against the unweighted one of the same target."""

    target: str
    weight: float
    face: float
    face_all: float
    overall: float
    close_up: bool
    notes: list[str] = field(default_factory=list)

    @property
    def met(self) -> bool:
        """Whether the goal holds (always true for a close-up, which is not held to it)."""
        return self.close_up or (self.face <= -MIN_FACE_GAIN and self.overall
                                 <= MAX_OVERALL_COST)


def tile_errors(poster: Path, region: Box, target: str, rows: int, cols: int,
                tile_px: int) -> np.ndarray:
    """RGB squared error per tile, at 16 x 16 px a tile, of a poster against its region."""
    mosaic = qf.load_mosaic(poster, rows, cols, tile_px)
    crop = open_rgb(DATA / "targets" / f"{target}.jpg").crop(region)
    squared = (shrink_to_cells(mosaic, rows, cols) - shrink_to_cells(crop, rows, cols)) ** 2
    cell = QUALITY_CELL
    return squared.reshape(rows, cell, cols, cell, 3).mean(axis=(1, 3, 4))


def build(target: str, weight: float, photos: Path, folder: Path, timeout: float,
          extra: Sequence[str] = ()) -> Measured:
    """Run the default command with ``--face-weight weight`` and measure its poster."""
    out = folder / f"poster-w{weight:g}.png"
    metrics_path = folder / f"metrics-w{weight:g}.json"
    command = [sys.executable, "-m", "cli", "build", "--photos", str(photos), "--target",
               str(DATA / "targets" / f"{target}.jpg"), "--out", str(out), "--face-weight",
               f"{weight:g}", "--no-compare", "--workdir", str(folder / "run"),
               "--metrics", str(metrics_path), "-q", *extra,
               *(UNWEIGHTED if weight == 1 else ())]
    measured = Measured(target, weight)
    try:
        measured.seconds, measured.peak_mb, _ = mc.run_measured(
            command, timeout, folder / "logs" / f"w{weight:g}")
        layout = mc.our_layout(folder / "run")
        rows, cols = int(layout["rows"]), int(layout["cols"])
        region = tuple(int(v) for v in layout["crop"])
        errors = tile_errors(out, region, target, rows, cols, int(layout["tile_px"]))
    except (mc.RunFailedError, qf.MeasureError, OSError, KeyError, ValueError) as exc:
        measured.error = str(exc)
        print(f"  {target} W={weight:g}: FAILED: {exc}", file=sys.stderr, flush=True)
        return measured
    required = qf.face_tiles(list(REQUIRED.get(target, {}).values()), region, rows, cols)
    every = qf.face_tiles(qf.hand_faces(target), region, rows, cols)
    measured.overall = float(errors.mean())
    measured.face_required = float(errors[required].mean()) if required.any() else math.nan
    measured.face_all = float(errors[every].mean()) if every.any() else math.nan
    measured.face_share = float(every.mean())
    return measured


def gains(results: Sequence[Measured]) -> list[Gain]:
    """Every weighted build against its target's ``W = 1`` build."""
    base = {m.target: m for m in results if m.weight == 1 and m.error is None}
    out = []
    for m in results:
        ref = base.get(m.target)
        if m.weight == 1 or m.error is not None or ref is None:
            continue
        if math.isnan(m.face_required):
            continue  # no face on the target: nothing to hold
        out.append(Gain(m.target, m.weight, m.face_required / ref.face_required - 1,
                        m.face_all / ref.face_all - 1, m.overall / ref.overall - 1,
                        ref.face_share >= CLOSE_UP_SHARE))
    return out


def margin(gain: Gain) -> float:
    """How far a held target is inside the goal (negative: outside), in fractions."""
    return min(-gain.face - MIN_FACE_GAIN, MAX_OVERALL_COST - gain.overall)


def choose(all_gains: Sequence[Gain], targets: Sequence[str]) -> float | None:
    """The weight whose worst held target among ``targets`` is furthest inside the goal.

    The worst case, not the mean, decides (a maximin rule): the weight maximising the
    smallest :func:`margin` over the targets that are not close-ups.
    """
    best: tuple[float, float] | None = None
    for weight in sorted({g.weight for g in all_gains}):
        held = [g for g in all_gains if g.weight == weight and g.target in targets
                and not g.close_up]
        if held and (best is None or min(map(margin, held)) > best[0]):
            best = (min(map(margin, held)), weight)
    return None if best is None else best[1]


def verdict(all_gains: Sequence[Gain], weight: float | None, targets: Sequence[str]) -> str:
    """How the goal holds at ``weight`` on ``targets``, with the worst margin."""
    if weight is None:
        return "no target with a face there"
    held = [g for g in all_gains if g.weight == weight and g.target in targets]
    met = [g for g in held if not g.close_up and g.met]
    missed = [g.target for g in held if not g.met]
    close = [g.target for g in held if g.close_up]
    worst = min((g for g in held if not g.close_up), key=margin, default=None)
    return (f"met on {len(met)} of {len(held) - len(close)} held targets"
            + (f"; missed: {', '.join(missed)}" if missed else "")
            + (f"; worst {worst.target} ({100 * worst.face:+.1f}% face tiles, "
               f"{100 * worst.overall:+.2f}% overall)" if worst else "")
            + (f"; close-ups (reported only): {', '.join(close)}" if close else ""))


def table(results: Sequence[Measured], all_gains: Sequence[Gain]) -> list[list[str]]:
    """Rows of the printed table, one per build."""
    by_key = {(g.target, g.weight): g for g in all_gains}
    rows = []
    for m in results:
        g = by_key.get((m.target, m.weight))
        if m.error is not None:
            rows.append([m.target, half(m.target), f"{m.weight:g}", "FAILED", m.error[:60],
                         "", "", "", "", ""])
            continue
        rows.append([
            m.target, half(m.target), f"{m.weight:g}", f"{m.overall:.5f}",
            f"{m.face_required:.5f}" if not math.isnan(m.face_required) else "-",
            f"{100 * g.face:+.1f}%" if g else "-", f"{100 * g.face_all:+.1f}%" if g else "-",
            f"{100 * g.overall:+.2f}%" if g else "-",
            ("close-up" if g.close_up else ("met" if g.met else "missed")) if g else "-",
            f"{m.seconds:.1f} / {m.peak_mb:.0f}"])
    return rows


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default=None,
                        help="comma-separated target names (default: all shared targets)")
    parser.add_argument("--weights", default=",".join(f"{w:g}" for w in WEIGHTS),
                        help="comma-separated face weights; 1 (unweighted) is always added")
    parser.add_argument("--photos", type=Path, default=DATA / "library")
    parser.add_argument("--extra", default="",
                        help="more build options for every build, e.g. '--falloff 0.25' "
                             "(default: none, the default command)")
    parser.add_argument("--timeout", type=float, default=mc.DEFAULT_TIMEOUT)
    parser.add_argument("--out-dir", type=Path,
                        default=ROOT / "mosaic-runs" / "bench-face-weight")
    parser.add_argument("--results", type=Path, default=None,
                        help="print the tables of a saved results.json instead of building")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Build every target at every weight, print the table and both halves' choices."""
    args = parse_args(argv)
    weights = sorted({1.0, *(float(w) for w in args.weights.split(",") if w.strip())})
    targets = ([t.strip() for t in args.targets.split(",") if t.strip()] if args.targets
               else sorted(p.stem for p in (DATA / "targets").glob("*.jpg")))
    out_dir = args.out_dir.resolve()
    print(f"Machine: {machine()}\nlong-lived Prefect server: "
          f"{'yes' if prefect_server.is_running() else 'no'}; options beyond the default "
          f"command: --face-weight W --no-compare {args.extra}".rstrip(), flush=True)
    results: list[Measured] = []
    if args.results is not None:
        results = [Measured(**entry) for entry in saved_results(args.results, targets)]
        targets = []
    for target in targets:
        folder = fresh_folder(out_dir / target)
        for weight in weights:
            results.append(build(target, weight, args.photos.resolve(), folder, args.timeout,
                                 args.extra.split()))
            print(f"  {target} W={weight:g}: {results[-1]}", flush=True)
        save_results(out_dir, results)
    all_gains = gains(results)
    print_table("Face weight, default command (RGB of the rendered poster, 16 px a tile; "
                "face tiles: whole heads of the faces counted by hand)",
                ["target", "half", "W", "overall", "face tiles", "face vs W=1",
                 "with optional faces", "overall vs W=1", "goal", "s / peak MB"],
                table(results, all_gains))
    names = sorted({m.target for m in results})
    half_a = [t for t in names if t in HALF_A]
    half_b = [t for t in names if t not in HALF_A]
    for name, pick, report in (("A", half_a, half_b), ("B", half_b, half_a)):
        weight = choose(all_gains, pick)
        print(f"Chosen on half {name}: W = {weight if weight is None else f'{weight:g}'} "
              f"({verdict(all_gains, weight, pick)}); on the other half: "
              f"{verdict(all_gains, weight, report)}")
    print(f"Posters, logs and results.json: {out_dir}")
    failures = sum(m.error is not None for m in results)
    if failures:
        print(f"bench_face_weight: {failures} build(s) FAILED", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
