"""The options of a build, as one plain dataclass (shared by the CLI and the flow)."""

from __future__ import annotations

from dataclasses import dataclass, field

from mosaic.errors import MosaicError
from mosaic.features import METRICS
from mosaic.images import DEFAULT_MAX_PIXELS
from mosaic.steps import METHODS, LayoutRequest, WeightRequest
from mosaic.steps_scale import ScaleRequest


@dataclass
class BuildOptions:
    """Everything a build needs; the CLI checks the values before a run starts."""

    photos: str
    target: str
    out: str
    workdir: str
    metrics: str
    layout: LayoutRequest = field(default_factory=LayoutRequest)
    weighting: WeightRequest = field(default_factory=WeightRequest)
    scale: ScaleRequest = field(default_factory=ScaleRequest)
    method: str = "auto"
    metric: str = "lab"
    feature_size: int = 16
    crops: int = 7
    compare: bool = True
    max_pixels: int = DEFAULT_MAX_PIXELS


MAX_CROPS = 7
"""Crop candidates per photo at most (the centre, both ends, four zoomed corners)."""


def check_choices(method: str, metric: str, crops: int, prefix: str = "--") -> None:
    """Fail on an unknown method or metric, or a crop count out of range.

    Parameters
    ----------
    method, metric, crops
        As ``mosaic build`` takes them.
    prefix : str
        Put before the option names in messages ("--" for the command line, "" for
        deployment parameters).

    Raises
    ------
    MosaicError
        One line naming the bad value and the choices.
    """
    if method not in METHODS:
        raise MosaicError(f"{prefix}method {method!r}: choose one of {', '.join(METHODS)}")
    if metric not in METRICS:
        raise MosaicError(f"{prefix}metric {metric!r}: choose one of {', '.join(METRICS)}")
    if not 1 <= crops <= MAX_CROPS:
        raise MosaicError(f"{prefix}crops {crops}: choose between 1 and {MAX_CROPS}")
