"""What each stage of a build hands to the next: files (path + SHA-256) and numbers.

Every result is a frozen dataclass, so the contract between stages is typed, and Prefect
caches it as JSON and gives it back as the same type. Big arrays never travel: a stage
writes them under the run folder and passes their :class:`~mosaic.files.FileRef`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mosaic.files import FileRef
from mosaic.layout import Layout

HashedFile = tuple[str, str | None]
"""A photo file found in the folder and the SHA-256 of its bytes (None: unreadable)."""


@dataclass(frozen=True)
class LibraryResult:
    """The distinct photos: their records (``manifest``) and thumbnails (``thumbs``)."""

    manifest: FileRef
    thumbs: FileRef
    photos: int
    """Distinct usable photos."""
    files: int
    """Image files found."""
    skipped: int
    duplicates: int
    near_duplicates: int
    seconds: float


@dataclass(frozen=True)
class PeopleResult:
    """The faces and people of the target (``detection``: masks and boxes)."""

    detection: FileRef
    faces_found: int
    faces: tuple[tuple[int, int, int, int], ...]
    person_fraction: float
    segmenter: str
    notes: tuple[str, ...]
    seconds: float


@dataclass(frozen=True)
class TargetResult:
    """The grid and crop (``layout``) and the thumbnails of its tiles (``tiles``)."""

    layout: Layout
    tiles: FileRef
    seconds: float


@dataclass(frozen=True)
class WeightsResult:
    """Per-tile weights and classes (face, person, background), and how they were set."""

    weights: FileRef
    classes: FileRef
    settings: dict[str, Any]
    """Mode and parameters, as ``metrics.json`` reports them."""
    note: str | None
    """Why the weights are uniform, when nobody was found."""
    uniform: bool

    @property
    def applied(self) -> FileRef | None:
        """The weights the assignment uses: None when they are uniform."""
        return None if self.uniform else self.weights


@dataclass(frozen=True)
class AssignPlan:
    """Which method runs, and why (``auto`` resolved by size and memory)."""

    method: str
    requested: str
    reason: str
    regions: int | None
    max_memory_bytes: int
    dense_bytes: int | None
    max_uses: int = 1
    """Tiles one photo may fill (dense methods only)."""
    min_distance: int = 0
    """Least Chebyshev distance between copies of a photo (with ``max_uses`` above 1)."""

    @property
    def dense(self) -> bool:
        """The method solves the dense tiles x photos matrix (everything but regional)."""
        return self.method != "regional"

    @property
    def cache_key(self) -> tuple[object, ...]:
        """What of the plan changes a stage's output: the method and the regions.

        The memory budget and the reason for the choice change how a matrix is scored and
        solved, never the result (see :mod:`tasks.caching`).
        """
        if self.max_uses == 1:  # the key of every run before repeats existed
            return (self.method, self.regions)
        return (self.method, self.regions, self.max_uses, self.min_distance)


@dataclass(frozen=True)
class ScoreResult:
    """The dense cost matrix and each pair's winning crop; both None for regional."""

    cost: FileRef | None
    best_crop: FileRef | None
    seconds: float
    where: str
    """Local threads, or the Dask cluster's address."""


@dataclass(frozen=True)
class AssignResult:
    """One solved assignment (``assignment.json``) and each tile's crop (``tile_crop``)."""

    assignment: FileRef
    tile_crop: FileRef | None
    method: str
    """A label: the method, and ", unweighted" for the unweighted baseline."""
    objective: float
    mean_cost: float
    seconds: float
    status: str
    gap: float | None
    message: str
    lower_bound: float | None = None
    score_seconds: float = 0.0
    """Passes over all tiles x photos inside the solve (regional)."""
    regional: dict[str, Any] | None = None
    where: str = "local threads"


@dataclass(frozen=True)
class RenderResult:
    """The poster at print resolution, and copies of it shrunk while it was drawn."""

    mosaic: FileRef
    width: int
    height: int
    seconds: float
    quality: FileRef
    """The poster at 16 pixels a tile (``.npy``, uint8): what the quality figures measure."""
    preview: FileRef
    """The poster about 480 pixels tall (``.npy``, uint8): for the report's pictures."""
    bleed_px: int = 0


@dataclass(frozen=True)
class RunTimes:
    """What the flow saw: compute seconds per step (0 when cached) and the cached steps."""

    seconds: dict[str, float] = field(default_factory=dict)
    cached: tuple[str, ...] = ()
    total: float = 0.0


@dataclass(frozen=True)
class ReportResult:
    """``metrics.json`` (its content too) and ``report.md`` with its markdown."""

    metrics: dict[str, Any]
    metrics_file: FileRef
    report: str
    markdown: str
