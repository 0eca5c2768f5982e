"""The photo library: distinct photos, their crop candidates and thumbnails.

Photos are identified by the SHA-256 of their bytes, so the same photo found twice is
one photo. Each photo is decoded once; its thumbnails (``s x s`` RGB, one per crop
candidate) are kept in a cache of shard files, written atomically every few hundred
photos, so an interrupted load resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.fft import dctn

from mosaic.errors import MosaicError
from mosaic.files import atomic_path, sha256_file, write_json_atomic
from mosaic.images import (
    DEFAULT_MAX_PIXELS,
    MAX_CROP_BOXES,
    Box,
    crop_boxes,
    open_rgb,
    thumbnails,
    upright_size,
)
from mosaic.machine import map_in_threads
from mosaic.progress import stage
from mosaic.tile_shape import shape_key

logger = logging.getLogger("mosaic.library")

UNREADABLE = "cannot read file"
"""The reason of a file that could not be read at all (listing the folder names it)."""

HASH_SIDE = 32
NEAR_DUPLICATE_BITS = 4
_SHARD_SIZE = 256
_PAIRWISE_LIMIT = 20_000
# Part of the cache folder's name. Version 2: sizes are the true upright size, no longer
# the reduced size of a draft-decoded JPEG, so caches from version 1 are not reused.
_CACHE_VERSION = 2


@dataclass(frozen=True)
class PhotoRecord:
    """One distinct photo.

    Attributes
    ----------
    sha256 : str
        Hash of the file's bytes: the photo's identity.
    path : str
        Where it was found (the first path, when it was found several times).
    width, height : int
        True upright size in pixels (EXIF orientation applied), read from the header:
        not the reduced size a large JPEG is decoded at.
    boxes : list of Box
        Square crop candidates, as fractions; the thumbnails follow this order.
    """

    sha256: str
    path: str
    width: int
    height: int
    boxes: list[Box]


@dataclass
class PhotoLibrary:
    """Distinct photos with their thumbnails and what was left out.

    Attributes
    ----------
    records : list of PhotoRecord
    thumbs : ndarray of uint8, shape (N, K, s, s, 3)
        Thumbnails per photo and crop candidate.
    skipped : list of (str, str)
        Files that could not be used, with the reason (identical copies of a file that
        could not be decoded included).
    skipped_copies : list of (str, str)
        Of those, the identical copies: (copy, the first file with those bytes).
    duplicates : list of (str, str)
        Files whose bytes equal an earlier, usable file's: (duplicate, kept).
    near_duplicates : list of (str, str, int)
        Distinct files whose perceptual hashes differ by few bits.
    """

    records: list[PhotoRecord]
    thumbs: np.ndarray
    skipped: list[tuple[str, str]] = field(default_factory=list)
    skipped_copies: list[tuple[str, str]] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    near_duplicates: list[tuple[str, str, int]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)


@dataclass
class _Decoded:
    sha256: str
    path: str
    width: int
    height: int
    boxes: np.ndarray
    thumbs: np.ndarray
    grey: np.ndarray


def _decode(path: Path, sha: str, size: int, crops: int, max_pixels: int,
            aspect: float = 1.0) -> _Decoded:
    # The header gives the true size; large JPEGs (and HEICs with an embedded thumbnail)
    # are then decoded at a reduced scale.
    width, height = upright_size(path, max_pixels=max_pixels)
    image = open_rgb(path, max_pixels=max_pixels, draft_size=max(4 * size, HASH_SIDE * 2))
    boxes = crop_boxes(*image.size, crops, aspect)
    boxes += [boxes[0]] * (crops - len(boxes))
    thumbs = thumbnails(image, boxes, size, aspect)
    grey = np.asarray(
        image.convert("L").resize((HASH_SIDE, HASH_SIDE), Image.Resampling.BOX), dtype=np.uint8
    )
    return _Decoded(sha, str(path), width, height, np.asarray(boxes, np.float32), thumbs, grey)


class _ShardCache:
    """Thumbnails already computed, in shard files under one folder per parameter set."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self.known: dict[str, _Decoded] = {}
        self.pending: list[_Decoded] = []
        if folder is None:
            return
        folder.mkdir(parents=True, exist_ok=True)
        for shard in sorted(folder.glob("shard-*.npz")):
            try:
                self._load(shard)
            except (OSError, ValueError, KeyError) as exc:
                logger.warning("ignoring damaged thumbnail cache %s (%s)", shard, exc)

    def _load(self, shard: Path) -> None:
        with np.load(shard, allow_pickle=False) as data:
            for i, sha in enumerate(data["sha256"]):
                self.known[str(sha)] = _Decoded(
                    str(sha), str(data["path"][i]), int(data["size"][i, 0]),
                    int(data["size"][i, 1]), data["boxes"][i], data["thumbs"][i],
                    data["grey"][i],
                )

    def add(self, item: _Decoded) -> None:
        self.known[item.sha256] = item
        if self.folder is None:
            return
        self.pending.append(item)
        if len(self.pending) >= _SHARD_SIZE:
            self.flush()

    def flush(self) -> None:
        if self.folder is None or not self.pending:
            return
        items, self.pending = self.pending, []
        name = f"shard-{os.getpid()}-{items[0].sha256[:16]}-{len(items)}.npz"
        with atomic_path(self.folder / name) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(
                    handle,
                    sha256=np.array([d.sha256 for d in items]),
                    path=np.array([d.path for d in items]),
                    size=np.array([[d.width, d.height] for d in items], dtype=np.int64),
                    boxes=np.stack([d.boxes for d in items]),
                    thumbs=np.stack([d.thumbs for d in items]),
                    grey=np.stack([d.grey for d in items]),
                )


def perceptual_hashes(grey: np.ndarray) -> np.ndarray:
    """64-bit DCT perceptual hashes of ``(N, 32, 32)`` greyscale images (uint64).

    The same construction as ``imagehash.phash``: the 8 x 8 lowest frequencies of the
    2-D DCT, each bit set when the coefficient exceeds their median.
    """
    if grey.shape[0] == 0:
        return np.zeros(0, dtype=np.uint64)
    low = dctn(grey.astype(np.float64), axes=(1, 2), norm="ortho")[:, :8, :8]
    flat = low.reshape(len(grey), 64)
    bits = flat > np.median(flat, axis=1, keepdims=True)
    return np.packbits(bits, axis=1).view(">u8").ravel().astype(np.uint64)


_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def near_duplicate_pairs(hashes: np.ndarray, max_bits: int = NEAR_DUPLICATE_BITS
                         ) -> list[tuple[int, int, int]]:
    """Index pairs (i < j) whose hashes differ in at most ``max_bits`` bits.

    Beyond 20,000 photos only identical hashes are compared (the pairwise check grows
    as N^2).
    """
    count = len(hashes)
    pairs: list[tuple[int, int, int]] = []
    if count > _PAIRWISE_LIMIT:
        order = np.argsort(hashes, kind="stable")
        same = np.flatnonzero(hashes[order][1:] == hashes[order][:-1])
        return [(int(min(order[k], order[k + 1])), int(max(order[k], order[k + 1])), 0)
                for k in same]
    block = 512
    for start in range(0, count, block):
        rows = hashes[start:start + block]
        xor = (rows[:, None] ^ hashes[None, :]).view(np.uint8).reshape(len(rows), count, 8)
        distance = _POPCOUNT[xor].sum(axis=2, dtype=np.int32)
        for i, j in zip(*np.nonzero(distance <= max_bits), strict=True):
            a, b = start + int(i), int(j)
            if a < b:
                pairs.append((a, b, int(distance[i, j])))
    return pairs


def hash_photos(paths: Sequence[str | os.PathLike[str]], workers: int | None = None
                ) -> list[tuple[str, str | None]]:
    """SHA-256 of every file, in order; None (with a warning) for files that cannot be read.

    Only regular files are read: a file that became a named pipe, socket or device since
    it was listed is skipped like an unreadable one, without blocking.

    Parameters
    ----------
    paths : sequence of path-like
    workers : int, optional
        Hashing threads (default: the CPU count).

    Returns
    -------
    list of (str, str or None)
        (path, hash) pairs.
    """
    def one(path: str | os.PathLike[str]) -> str | None:
        try:
            return sha256_file(path)
        except MosaicError as exc:
            logger.warning("skipped %s", exc)
            return None
        except OSError as exc:
            logger.warning("skipped %s: cannot read file (%s)", path, exc.strerror or exc)
            return None

    hashes = map_in_threads(one, paths, workers)
    return [(str(p), h) for p, h in zip(paths, hashes, strict=True)]


def build_library(
    photos: Iterable[tuple[str, str | None]],
    feature_size: int = 16,
    crops: int = 1,
    cache_dir: str | os.PathLike[str] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    workers: int | None = None,
    tile_aspect: tuple[int, int] = (1, 1),
) -> PhotoLibrary:
    """Decode photos into a library of distinct photos with thumbnails.

    Unreadable or truncated files, and images over the pixel cap, are skipped with one
    warning line each (logger ``mosaic.library``) naming the file.

    Parameters
    ----------
    photos : iterable of (str, str or None)
        Image files and their SHA-256 (from :func:`hash_photos`), in a stable order;
        the library keeps the first of equal files.
    feature_size : int
        Thumbnail side ``s``.
    crops : int
        Crop candidates per photo (1 = centre square only; up to 7).
    cache_dir : path-like, optional
        Folder for the resumable thumbnail cache.
    max_pixels : int
        Decompression-bomb cap per photo.
    workers : int, optional
        Decoding threads (default: the CPU count).
    tile_aspect : (int, int)
        Shape W:H of the tiles: the crop candidates have it.

    Returns
    -------
    PhotoLibrary

    Raises
    ------
    MosaicError
        No photo could be read.
    """
    if not 1 <= crops <= MAX_CROP_BOXES:
        raise MosaicError(f"`crops` {crops}: choose between 1 and {MAX_CROP_BOXES} crop "
                          "candidates")
    hashed = [(Path(p), h) for p, h in photos]
    workers = workers or os.cpu_count() or 1
    library = PhotoLibrary(records=[], thumbs=np.zeros((0, crops, feature_size,
                                                          feature_size, 3), np.uint8))
    first_path: dict[str, str] = {}
    todo: list[tuple[Path, str]] = []
    for path, sha in hashed:
        if sha is None:
            library.skipped.append((str(path), UNREADABLE))
        elif sha in first_path:
            library.duplicates.append((str(path), first_path[sha]))
        else:
            first_path[sha] = str(path)
            todo.append((path, sha))
    cache_folder = None
    if cache_dir is not None:
        shape = "".join(f"-a{w}x{h}" for w, h in shape_key(tile_aspect))
        cache_folder = (Path(cache_dir)
                        / f"thumbs-v{_CACHE_VERSION}-s{feature_size}-k{crops}{shape}")
    cache = _ShardCache(cache_folder)
    missing = [(p, s) for p, s in todo if s not in cache.known]

    def work(item: tuple[Path, str]) -> _Decoded | str:
        try:
            return _decode(item[0], item[1], feature_size, crops, max_pixels,
                           tile_aspect[0] / tile_aspect[1])
        except MosaicError as exc:
            return str(exc)

    failed: dict[str, str] = {}
    with stage("load photos", len(todo)) as advance:
        advance(len(todo) - len(missing))
        try:
            outcomes = map_in_threads(work, missing, workers)
            for (_path, sha), outcome in zip(missing, outcomes, strict=True):
                if isinstance(outcome, str):
                    failed[sha] = outcome
                else:
                    cache.add(outcome)
                advance(1)
        finally:
            cache.flush()
    decoded = []
    _skip_undecodable(library, failed, first_path, hashed)
    for path, sha in todo:
        if sha in failed:
            continue
        item = cache.known[sha]
        decoded.append(item)
        library.records.append(PhotoRecord(sha, str(path), item.width, item.height,
                                           [tuple(map(float, b)) for b in item.boxes]))
    if not decoded:
        raise MosaicError(f"none of the {len(hashed)} image files could be read")
    library.thumbs = np.stack([d.thumbs for d in decoded])
    hashes64 = perceptual_hashes(np.stack([d.grey for d in decoded]))
    library.near_duplicates = [
        (library.records[i].path, library.records[j].path, bits)
        for i, j, bits in near_duplicate_pairs(hashes64)
    ]
    return library


def _skip_undecodable(library: PhotoLibrary, failed: dict[str, str], first_path: dict[str, str],
                      hashed: list[tuple[Path, str | None]]) -> None:
    """Skip every file that could not be decoded, and its identical copies; name them all.

    One warning per distinct content ("and 2 identical copies: ...").
    """
    copies: dict[str, list[str]] = {}
    kept = []
    sha_of = {path: sha for sha, path in first_path.items()}
    for path, first in library.duplicates:
        if sha_of[first] in failed:
            copies.setdefault(first, []).append(path)
            library.skipped_copies.append((path, first))
        else:
            kept.append((path, first))
    library.duplicates = kept
    for path, sha in hashed:
        if sha is not None and sha in failed and first_path[sha] == str(path):
            reason = failed[sha].split(": ", 1)[-1]
            library.skipped.append((str(path), reason))
            library.skipped.extend((copy, reason) for copy in copies.get(str(path), []))
    for line in skipped_warnings(skipped_entries(library)):
        logger.warning("%s", line)


def skipped_entries(library: PhotoLibrary) -> list[dict[str, str]]:
    """The skipped files as ``manifest.json`` lists them: path, reason (and ``same_as``).

    ``same_as`` names, for an identical copy, the first file with its bytes.
    """
    copy_of = dict(library.skipped_copies)
    return [{"path": p, "reason": r, **({"same_as": copy_of[p]} if p in copy_of else {})}
            for p, r in library.skipped]


def skipped_warnings(entries: Sequence[dict[str, str]]) -> list[str]:
    """One line per file that could not be decoded, naming its identical copies.

    Files that could not be read at all (:data:`UNREADABLE`) are left out: listing the
    folder names them (:func:`hash_photos`) on every run.

    Parameters
    ----------
    entries : sequence of dict
        From :func:`skipped_entries` (or a library ``manifest.json``'s ``skipped``).

    Returns
    -------
    list of str
        ``skipped a.jpg: reason (and 2 identical copies: b.jpg, c.jpg)``.
    """
    copies: dict[str, list[str]] = {}
    for entry in entries:
        if "same_as" in entry:
            copies.setdefault(entry["same_as"], []).append(entry["path"])
    lines = []
    for entry in entries:
        if "same_as" in entry or entry["reason"] == UNREADABLE:
            continue
        named = copies.get(entry["path"], [])
        more = (f" (and {len(named)} identical cop{'y' if len(named) == 1 else 'ies'}: "
                f"{', '.join(named)})") if named else ""
        lines.append(f"skipped {entry['path']}: {entry['reason']}{more}")
    return lines


def save_library(library: PhotoLibrary, folder: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``manifest.json`` and ``thumbs.npy`` into ``folder`` atomically."""
    base = Path(folder)
    thumbs_path = base / "thumbs.npy"
    manifest_path = base / "manifest.json"
    with atomic_path(thumbs_path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, library.thumbs, allow_pickle=False)
    write_json_atomic(manifest_path, {
        "photos": [r.__dict__ for r in library.records],
        "skipped": skipped_entries(library),
        "duplicates": [{"path": p, "same_as": k} for p, k in library.duplicates],
        "near_duplicates": [{"a": a, "b": b, "bits": d} for a, b, d in library.near_duplicates],
    })
    return manifest_path, thumbs_path


def load_records(manifest_path: str | os.PathLike[str]) -> list[PhotoRecord]:
    """Read the photo records back from a library ``manifest.json``."""
    data = json.loads(Path(manifest_path).read_text(encoding="utf-8"))
    return [PhotoRecord(p["sha256"], p["path"], p["width"], p["height"],
                        [tuple(b) for b in p["boxes"]]) for p in data["photos"]]
