"""The options of a build, as one plain dataclass (shared by the CLI and the flow)."""

from __future__ import annotations

from dataclasses import dataclass, field

from mosaic.images import DEFAULT_MAX_PIXELS
from mosaic.steps import LayoutRequest, WeightRequest
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
