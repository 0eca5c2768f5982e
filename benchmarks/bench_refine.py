"""Coarse-to-fine scoring (:mod:`mosaic.cost_refine`) against one full GEMM (``block_cost``).

``python -m benchmarks.bench_refine`` scores whole tiles x photos matrices in blocks of
512 tiles x 4096 photos, as the build does, with K = 7 crop candidates per photo: real
photos from ``../shared/data/library``, each cut to a random window of a phone aspect and
given the library's crop candidates (:func:`mosaic.images.square_crop_boxes`, as
``mosaic.library`` does), against the tiles of a target from ``../shared/data/targets``.

Every configuration runs in its own process (BLAS pinned to one thread, blocks spread
over Python threads as the Dask runner does), so peak memory is per configuration.
Features are cached in the temporary directory between processes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.synthetic import TARGETS, library_paths
from benchmarks.table import machine, print_table
from mosaic.cost import Features, block_cost, prepare_features
from mosaic.features import tile_thumbnails, to_features
from mosaic.images import open_rgb, square_crop_boxes, thumbnails
from mosaic.layout import plan_layout

SIZES = (2000, 10000)
CROPS = 7
BLOCK_TILES, BLOCK_PHOTOS = 512, 4096
#: block_cost's photos per product inside a block, as mosaic.blocks scores them.
PHOTO_CHUNK = 1024
RANKS = (16, 32, 48, 64, 96, 128)
ASPECTS = ((4, 3), (3, 4), (1, 1), (16, 9))
TIE = 2e-6


def photo_candidates(count: int, crops: int = CROPS, size: int = 16, seed: int = 0
                     ) -> np.ndarray:
    """``count`` photos x ``crops`` candidate thumbnails, uint8 (count, crops, s, s, 3)."""
    rng = np.random.default_rng(seed)
    sources = [open_rgb(p, draft_size=256) for p in library_paths()]
    out = np.empty((count, crops, size, size, 3), dtype=np.uint8)
    for i in range(count):
        source = sources[int(rng.integers(len(sources)))]
        aspect_w, aspect_h = ASPECTS[int(rng.integers(len(ASPECTS)))]
        scale = min(source.width / aspect_w, source.height / aspect_h) * rng.uniform(0.5, 1.0)
        width, height = int(aspect_w * scale), int(aspect_h * scale)
        left = int(rng.integers(0, source.width - width + 1))
        top = int(rng.integers(0, source.height - height + 1))
        photo = source.crop((left, top, left + width, top + height))
        if rng.random() < 0.5:
            photo = photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        # The library's candidates; square photos have fewer, padded with the centre one.
        boxes = square_crop_boxes(*photo.size, crops)
        out[i] = thumbnails(photo, boxes + [boxes[0]] * (crops - len(boxes)), size)
    return out


def load_features(count: int, target: str = "obama") -> Features:
    """Prepared features of about ``count`` tiles and ``count`` photos, cached on disk."""
    cache = Path(tempfile.gettempdir()) / f"mosaic-bench-refine-{target}-{count}.npz"
    if not cache.exists():
        image = open_rgb(TARGETS / f"{target}.jpg")
        layout = plan_layout(image.size, count, tiles=count)
        tiles = tile_thumbnails(image, layout.crop, layout.rows, layout.cols, 16)
        partial = cache.with_suffix(".partial.npz")
        np.savez(partial, tiles=to_features(tiles, "lab"),
                 photos=to_features(photo_candidates(count), "lab"))
        partial.replace(cache)
    with np.load(cache) as data:
        return prepare_features(data["tiles"], data["photos"])


def blocks(features: Features) -> list[tuple[slice, slice]]:
    """The scoring blocks, tiles x photos."""
    return [(slice(t, min(t + BLOCK_TILES, features.n_tiles)),
             slice(p, min(p + BLOCK_PHOTOS, features.n_photos)))
            for t in range(0, features.n_tiles, BLOCK_TILES)
            for p in range(0, features.n_photos, BLOCK_PHOTOS)]


def full_block(features: Features, tiles: slice, photos: slice
               ) -> tuple[np.ndarray, np.ndarray | None]:
    """block_cost over one block, photo chunk by chunk (as ``mosaic.blocks`` does)."""
    parts = [block_cost(features, tiles, slice(p, min(p + PHOTO_CHUNK, photos.stop)))
             for p in range(photos.start, photos.stop, PHOTO_CHUNK)]
    return (np.concatenate([c for c, _ in parts], axis=1),
            np.concatenate([k for _, k in parts], axis=1))


def run_matrix(score, features: Features, threads: int) -> tuple[float, list]:
    """Seconds to score every block with ``threads`` threads, and the blocks' results."""
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(lambda b: score(*b), blocks(features)))
    return time.perf_counter() - started, results


def compare(features: Features, results: list) -> tuple[float, int, int]:
    """Largest cost difference from block_cost, crop disagreements, and those beyond ties."""
    worst, differ, real = 0.0, 0, 0
    dims = features.dims
    for (tiles, photos), (cost, crop) in zip(blocks(features), results, strict=True):
        ref_cost, ref_crop = full_block(features, tiles, photos)
        worst = max(worst, float(np.abs(cost - ref_cost).max()))
        rows, cols = np.nonzero(crop != ref_crop)
        differ += rows.size
        t = features.tiles[tiles][rows].astype(np.float64)
        cube = features.photos[photos][cols].astype(np.float64)
        exact = [((t - cube[np.arange(rows.size), k[rows, cols], :dims]) ** 2).sum(1) / dims
                 for k in (crop, ref_crop)]
        real += int((np.abs(exact[0] - exact[1]) > TIE).sum())
    return worst, differ, real


def worker(args: argparse.Namespace) -> dict[str, object]:
    """One configuration, in this process: its timings and statistics."""
    from mosaic import cost_refine

    features = load_features(args.size)
    out: dict[str, object] = {"T": features.n_tiles, "P": features.n_photos,
                              "K": features.n_crops, "load_before": os.getloadavg()[0]}
    if args.method == "block_cost":
        score = lambda t, p: full_block(features, t, p)  # noqa: E731
    else:
        started = time.perf_counter()
        rf = cost_refine.refine_features(features, args.rank, basis=args.basis)
        out["prepare_s"] = time.perf_counter() - started
        out["extra_mb"] = rf.nbytes / 1e6
        stats = cost_refine.RefineStats()

        def score(t: slice, p: slice) -> tuple[np.ndarray, np.ndarray | None]:
            return cost_refine.refined_block_cost_stats(rf, t, p, stats=stats)[:2]

    seconds = []
    for _ in range(args.repeat):
        elapsed, results = run_matrix(score, features, args.threads)
        seconds.append(elapsed)
    out["seconds"] = min(seconds)
    out["load_after"] = os.getloadavg()[0]
    if args.method == "refined":
        out["refinements"] = stats.started / stats.pairs
        out["completed"] = stats.completed / stats.pairs
        out["segments"] = stats.segments / stats.pairs
        if args.check:
            out["max_diff"], out["crop_differ"], out["crop_real"] = compare(features, results)
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def launch(size: int, method: str, threads: int, rank: int = 0, basis: str = "pca",
           check: bool = False, repeat: int = 1) -> dict[str, object]:
    """Run one configuration in a fresh process with BLAS on one thread."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
               MKL_NUM_THREADS="1")
    command = [sys.executable, "-m", "benchmarks.bench_refine", "--worker", "--size",
               str(size), "--method", method, "--threads", str(threads), "--rank", str(rank),
               "--basis", basis, "--repeat", str(repeat)] + (["--check"] if check else [])
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _load(result: dict[str, object]) -> str:
    return f"{result['load_before']:.1f}/{result['load_after']:.1f}"


def rank_sweep(size: int, ranks: tuple[int, ...], repeat: int) -> None:
    """Print refined time and refinements by rank and basis (one thread)."""
    rows = []
    base = launch(size, "block_cost", 1, repeat=repeat)
    rows.append(["block_cost", "-", f"{base['seconds']:.2f}", "-", "-", "-", _load(base)])
    configs = [("pca", r) for r in ranks] + [("haar", 48), ("haar", 192)]
    for basis, rank in configs:
        r = launch(size, "refined", 1, rank, basis, repeat=repeat)
        rows.append([f"refined {basis}", rank, f"{r['seconds']:.2f}", f"{r['refinements']:.3f}",
                     f"{r['segments']:.2f}", f"{r['prepare_s']:.2f}", _load(r)])
    print_table(f"Rank sweep: {base['T']} x {base['P']} x {base['K']} crops, one thread",
                ["method", "rank", "seconds", "refined / pair", "extra segments / pair",
                 "prepare s", "load avg before/after"], rows)


def main(argv: list[str] | None = None) -> None:
    """Print the scoring table (and with ``--sweep``, the rank sweep)."""
    from mosaic import cost_refine

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--method", default="refined", choices=("block_cost", "refined"))
    parser.add_argument("--size", type=int, default=0)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rank", type=int, default=cost_refine.DEFAULT_RANK)
    parser.add_argument("--basis", default="pca", choices=("pca", "haar"))
    parser.add_argument("--repeat", type=int, default=1, help="best of this many runs")
    parser.add_argument("--check", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sweep", action="store_true", help="rank sweep at the first size")
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return
    print(f"machine: {machine()}; C kernel: "
          f"{cost_refine._pairdot.simd() if cost_refine.c_kernel_built() else 'not built'}")
    if args.sweep:
        rank_sweep(args.sizes[0], RANKS, args.repeat)
    rows = []
    for size in args.sizes:
        for threads in (1, 2):
            base = launch(size, "block_cost", threads, repeat=args.repeat)
            ref = launch(size, "refined", threads, args.rank, args.basis,
                         check=threads == 1, repeat=args.repeat)
            checked = (f"{ref['max_diff']:.1e}", f"{ref['crop_differ']} ({ref['crop_real']})"
                       ) if threads == 1 else ("same", "same")
            rows.append([f"{base['T']} x {base['P']}", threads, f"{base['seconds']:.2f}",
                         f"{ref['seconds']:.2f}", f"{base['seconds'] / ref['seconds']:.1f}x",
                         f"{ref['refinements']:.3f}", *checked, f"{ref['prepare_s']:.1f}",
                         f"{base['peak_mb']:.0f} / {ref['peak_mb']:.0f}",
                         f"{_load(base)}, {_load(ref)}"])
    print_table(f"block_cost vs refined_block_cost (K = {CROPS}, rank {args.rank} "
                f"{args.basis}, blocks {BLOCK_TILES} x {BLOCK_PHOTOS})",
                ["T x P", "threads", "block_cost s", "refined s", "speed-up",
                 "refined / pair", "max |diff|", "crops differ (beyond 2e-6)", "prepare s",
                 "peak MB (block / refined)", "load avg (before/after)"], rows)


if __name__ == "__main__":
    main()
