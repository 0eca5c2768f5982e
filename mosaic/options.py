"""A build's options, validated in one place for the command line and the deployments.

:class:`BuildOptions` is a pydantic model: the ``mosaic build`` command builds one from
its flags, and a deployment of the build flow takes one as its parameter, so the Prefect
UI draws a form for it (with the choices and bounds below) and refuses bad values before
a worker starts. Messages name parameters in backticks (see :mod:`mosaic.errors`).

The stages take small frozen views of it (:class:`LayoutRequest`, :class:`WeightRequest`,
:class:`ScaleRequest`), so a stage's cache key holds only what changes its output.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mosaic.blocks import default_max_memory, parse_memory
from mosaic.errors import MosaicError, validated
from mosaic.images import DEFAULT_MAX_PIXELS, MAX_CROP_BOXES
from mosaic.importance import (
    DEFAULT_FACE_WEIGHT,
    DEFAULT_FALLOFF,
    DEFAULT_PERSON_WEIGHT,
    check_segmenter,
)
from mosaic.layout import (
    Layout,
    parse_bleed,
    parse_grid,
    parse_size,
    plan_layout,
)
from mosaic.tile_shape import aspect_text, parse_tile_aspect

DEFAULT_CROPS = MAX_CROP_BOXES
"""Crop candidates per photo for libraries up to :data:`MANY_PHOTOS` photos: every one of
the 30 (:func:`mosaic.images.crop_boxes`). More candidates never raise the optimum; 13
instead of 7 lowered the tile error 17-24 % on phomo's three closest targets, 30 instead
of 13 a further 7-23 % (SSIM +10-37 %) on every shared target, with the whole library and
with 400 photos of it."""
LARGE_LIBRARY_CROPS = 7
"""Crop candidates above :data:`MANY_PHOTOS` photos: scoring time and feature memory grow
with the candidates, and 13 would already break the 10,000-photo time goal (score + solve
15 s)."""
MANY_PHOTOS = 5000
"""Photo files above which the default is :data:`LARGE_LIBRARY_CROPS` crops."""
MAX_CROPS = MAX_CROP_BOXES
"""Crop candidates per photo at most."""
DEFAULT_FEATURE_SIZE = 16
"""Scoring resolution: photos and tiles are compared as 16 x 16 pixels."""
RUNS = Path("mosaic-runs")
"""Where run folders go by default (relative to the working folder)."""
ACCOUNT = "{username}"
"""In a path: the run's Instagram account (``instagram``), so one deployment serves many."""
MAX_USES = 1000
"""Most tiles one photo may fill (``max_uses``)."""
USERNAME = re.compile(r"^[A-Za-z0-9._]{1,30}$")

Method = Literal["auto", "optimal", "regional", "greedy", "lp", "lp-pulp"]
"""The names of :data:`mosaic.assign.methods.REGISTRY` (a test keeps the two equal)."""
WeightMode = Literal["faces+people", "faces", "people", "none"]
Segmenter = Literal["mediapipe", "pointrend"]


@dataclass(frozen=True)
class LayoutRequest:
    """How the grid and the output size are chosen (all optional)."""

    grid: str | None = None
    tiles: int | None = None
    size: str | None = None
    dpi: float | None = None
    tile_px: int | None = None
    max_uses: int = 1
    min_repeat_distance: int = 0
    tile_aspect: str = "1:1"
    detail: str = "none"

    @property
    def tile_shape(self) -> tuple[int, int]:
        """The tile shape (W, H), reduced: (1, 1) for square tiles."""
        return parse_tile_aspect(self.tile_aspect)

    def plan(self, target_size: tuple[int, int], photos: int, tiles: int | None = None
             ) -> Layout:
        """The grid, tile size and target crop for a target of ``target_size`` pixels.

        ``tiles`` replaces the requested tile count (``--detail faces`` plans the grid
        for fewer tiles than it has photos, to leave photos for the quarters).
        """
        poster, preset = parse_size(self.size) if self.size else (None, False)
        return plan_layout(
            target_size, photos, grid=parse_grid(self.grid) if self.grid else None,
            tiles=tiles if tiles is not None else self.tiles, poster=poster,
            poster_is_preset=preset, dpi=self.dpi,
            tile_px=self.tile_px, max_uses=self.max_uses,
            min_distance=self.min_repeat_distance, tile_aspect=self.tile_shape)


@dataclass(frozen=True)
class WeightRequest:
    """How tiles are weighted: which classes count, how much, and the fall-off."""

    mode: str = "faces+people"
    face_weight: float = DEFAULT_FACE_WEIGHT
    person_weight: float = DEFAULT_PERSON_WEIGHT
    falloff: float = DEFAULT_FALLOFF
    segmenter: str = "mediapipe"
    pointrend_config: str | None = None
    pointrend_weights: str | None = None


@dataclass(frozen=True)
class ScaleRequest:
    """How large problems run: the memory budget, the regions and where Dask runs."""

    max_memory: str | None = None
    regions: int | None = None
    dask_address: str | None = None

    def budget(self) -> int:
        """The memory budget in bytes (default: a third of the RAM, at most 8 GB)."""
        return parse_memory(self.max_memory) if self.max_memory else default_max_memory()


class BuildOptions(BaseModel):
    """Everything a build needs. Relative paths are relative to the working folder."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    target: str = Field(description="The picture the mosaic reproduces.")
    out: str = Field(description="The mosaic: .jpg, .png, .tif or .webp (a folder with "
                     "format dzi). {username} is the account of `instagram`.")
    format: Literal["auto", "dzi"] = Field("auto", description="auto: the image format "
                                           "out's suffix names; dzi: a Deep Zoom folder "
                                           "with an offline viewer.html.")
    color_correct: float = Field(0.0, ge=0, le=0.5, allow_inf_nan=False, description="Shift "
                                 "each tile's colours toward its cell's mean colour by this "
                                 "part of the gap (0: none, every pixel is a photo's own).")
    bleed: str | None = Field(None, description="Margin added on every side for trimming, "
                              "e.g. 3mm (needs size and dpi) or 40px: the edge tiles "
                              "mirrored outwards.")
    photos: str | None = Field(None, description="Folder of photos (searched recursively).")
    instagram: str | None = Field(None, description="Use the photos saved for this Instagram "
                                  "account (mosaic-runs/instagram-NAME/photos) instead.")
    workdir: str | None = Field(None, description="Run folder (default mosaic-runs/<target "
                                "name>): intermediate files, metrics.json and the report.")
    metrics: str | None = Field(None, description="Where metrics.json goes (default: in the "
                                "run folder).")
    grid: str | None = Field(None, description="ROWSxCOLS, e.g. 40x30.")
    tiles: int | None = Field(None, ge=1, description="Number of tiles wanted.")
    size: str | None = Field(None, description="Poster size: A4..A0, 50x70cm, 24x36in, "
                             "6000x8000px...")
    dpi: float | None = Field(None, ge=1, le=2400, description="Print resolution for size.")
    tile_px: int | None = Field(None, ge=1, le=4096, description="Tile width in pixels "
                                "(default 100, or what size and dpi give).")
    tile_aspect: str = Field("1:1", description="Tile shape W:H: 1:1 (square), 4:5 or 3:4 "
                             "(portrait, Instagram's shapes), 16:9...")
    detail: Literal["none", "faces"] = Field("none", description="faces: every tile that "
                                             "shows a face is drawn as 2x2 quarter tiles, "
                                             "each its own photo (the grid gets coarser to "
                                             "leave photos for them).")
    method: Method = Field("auto", description="auto picks optimal while the matrix fits "
                           "max_memory, else regional.")
    max_uses: int = Field(1, ge=1, le=MAX_USES, description="Tiles one photo may fill (1: "
                          "each photo at most once; min_repeat_distance needs a dense method).")
    min_repeat_distance: int = Field(0, ge=0, le=1000, description="Least distance in "
                                     "tiles between two copies of a photo (Chebyshev; 0 "
                                     "or 1: no rule), with max_uses above 1.")
    metric: Literal["lab", "rgb"] = Field("lab", description="Colour space of the scores.")
    crops: int | None = Field(None, ge=1, le=MAX_CROPS, description="Square crop "
                              "candidates per photo (1 = centre only; default "
                              f"{DEFAULT_CROPS} up to {MANY_PHOTOS:,} photo files, "
                              f"{LARGE_LIBRARY_CROPS} above).")
    feature_size: int = Field(DEFAULT_FEATURE_SIZE, ge=2, le=64,
                              description="Scoring resolution (s x s).")
    compare: bool = Field(True, description="Also solve greedily (and unweighted) and "
                          "compare in the report.")
    max_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=1,
                            description="Refuse images with more pixels (decompression bombs).")
    weights: WeightMode = Field("faces+people", description="Which tiles get the best photos.")
    face_weight: float = Field(DEFAULT_FACE_WEIGHT, ge=1, allow_inf_nan=False)
    person_weight: float = Field(DEFAULT_PERSON_WEIGHT, ge=1, allow_inf_nan=False)
    falloff: float = Field(DEFAULT_FALLOFF, ge=0, allow_inf_nan=False,
                           description="How far weights reach beyond faces and people, in "
                           "tiles.")
    segmenter: Segmenter = "mediapipe"
    pointrend_config: str | None = None
    pointrend_weights: str | None = None
    max_memory: str | None = Field(None, description="Memory budget, e.g. 4GB (default: a "
                                   "third of the RAM, at most 8 GB).")
    regions: int | None = Field(None, ge=1, description="Regions of the regional method.")
    dask_address: str | None = Field(None, description="A Dask scheduler, e.g. "
                                     "tcp://scheduler:8786 (default: local threads).")

    @field_validator("grid")
    @classmethod
    def _grid(cls, value: str | None) -> str | None:
        if value is not None:
            parse_grid(value)
        return value

    @field_validator("tile_aspect")
    @classmethod
    def _tile_aspect(cls, value: str) -> str:
        return aspect_text(parse_tile_aspect(value))

    @field_validator("size")
    @classmethod
    def _size(cls, value: str | None) -> str | None:
        if value is not None:
            parse_size(value)
        return value

    @field_validator("max_memory")
    @classmethod
    def _memory(cls, value: str | None) -> str | None:
        if value is not None:
            parse_memory(value)
        return value

    @field_validator("instagram")
    @classmethod
    def _account(cls, value: str | None) -> str | None:
        if value is None:
            return None
        name = value.strip().removeprefix("@")
        if not USERNAME.match(name):
            raise MosaicError(f"`instagram` {value!r} is not an Instagram user name (1-30 "
                              "letters, digits, '.' and '_')")
        return name

    @field_validator("dask_address")
    @classmethod
    def _dask(cls, value: str | None) -> str | None:
        if value is not None and "://" not in value:
            raise MosaicError(f"`dask_address` {value!r}: give a scheduler address such as "
                              "tcp://scheduler:8786")
        return value

    @model_validator(mode="after")
    def _together(self) -> BuildOptions:
        if self.grid is not None and self.tiles is not None:
            raise MosaicError("give `grid` or `tiles`, not both")
        if self.dpi is not None and self.size is None:
            raise MosaicError("`dpi` needs `size` (a physical poster size)")
        if self.bleed is not None:
            parse_bleed(self.bleed, self.dpi)
        if self.photos is None and self.instagram is None:
            raise MosaicError("give `photos` (a folder) or `instagram` (an account)")
        if self.detail != "none":
            _check_detail(self)
        if self.weights != "none":
            check_segmenter(self.segmenter, self.pointrend_config, self.pointrend_weights)
        for name in ("out", "workdir", "metrics"):
            value = getattr(self, name)
            if value is not None and ACCOUNT in value and self.instagram is None:
                raise MosaicError(f"`{name}` {value!r} names {ACCOUNT} but this build has no "
                                  "Instagram account (`instagram`)")
        return self

    @property
    def layout(self) -> LayoutRequest:
        """The grid and size options, for the target stage."""
        return LayoutRequest(self.grid, self.tiles, self.size, self.dpi, self.tile_px,
                             self.max_uses, self.min_repeat_distance, self.tile_aspect,
                             self.detail)

    @property
    def bleed_px(self) -> int:
        """The bleed in output pixels (0 without one)."""
        return parse_bleed(self.bleed, self.dpi) if self.bleed else 0

    @property
    def weighting(self) -> WeightRequest:
        """The tile-weight options, for the detection and weights stages."""
        return WeightRequest(self.weights, self.face_weight, self.person_weight, self.falloff,
                             self.segmenter, self.pointrend_config, self.pointrend_weights)

    @property
    def scale(self) -> ScaleRequest:
        """The memory, region and cluster options, for the assignment stage."""
        return ScaleRequest(self.max_memory, self.regions, self.dask_address)

    def resolved(self) -> BuildOptions:
        """These options with every path filled in.

        The photos of ``instagram``, the account in the paths, the default run folder
        and metrics file.
        """
        def account(path: str) -> str:
            return path.replace(ACCOUNT, self.instagram) if self.instagram else path

        photos = self.photos or str(RUNS / f"instagram-{self.instagram}" / "photos")
        workdir = account(self.workdir) if self.workdir else str(RUNS / Path(self.target).stem)
        metrics = account(self.metrics) if self.metrics else str(Path(workdir) / "metrics.json")
        return self.model_copy(update={"photos": account(photos), "out": account(self.out),
                                       "workdir": workdir, "metrics": metrics})

    def with_crops_for(self, photo_files: int) -> BuildOptions:
        """These options with ``crops`` set: as given, else :func:`default_crops`."""
        if self.crops is not None:
            return self
        return self.model_copy(update={"crops": default_crops(photo_files)})


def _check_detail(options: BuildOptions) -> None:
    """Refuse what ``detail`` faces cannot be combined with, naming the other option."""
    if options.weights == "none":
        raise MosaicError("`detail` faces needs the faces found: it cannot run with "
                          "`weights` none")


def default_crops(photo_files: int) -> int:
    """Crop candidates when ``--crops`` is not given, for a folder of ``photo_files``."""
    return DEFAULT_CROPS if photo_files <= MANY_PHOTOS else LARGE_LIBRARY_CROPS


def build_options(**values: object) -> BuildOptions:
    """:class:`BuildOptions` from keyword values; any problem is a :class:`MosaicError`.

    Raises
    ------
    MosaicError
        The first value that cannot work, naming its parameter.
    """
    return validated(BuildOptions, "a build", values)
