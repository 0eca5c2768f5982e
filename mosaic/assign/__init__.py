"""Placing photos on tiles: one photo per tile, each photo at most once.

Every method returns an :class:`~mosaic.assign.result.Assignment`; the methods by name,
with what each needs and guarantees, are in :mod:`mosaic.assign.methods`.
"""

from mosaic.assign.result import Assignment, check_problem, evaluate

__all__ = ["Assignment", "check_problem", "evaluate"]
