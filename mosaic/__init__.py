"""photo-mosaic: turn your own photos into a print-quality photo mosaic.

The ``mosaic`` package is the pure library: numpy, scipy, PIL, highspy. It never
imports Prefect; ``tasks/`` and ``flows/`` wrap it.
"""

__version__ = "0.1.0"
