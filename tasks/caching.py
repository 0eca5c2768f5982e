"""The cache policy of the build tasks: keyed on what changes a step's output, and intact.

A task's key is the hash of its name, :data:`STEP_VERSION` and the parameters that
change its output (:class:`IntactInputs` leaves the others out: the memory budget and
the Dask cluster change how fast a matrix is scored, never its values). An input with a
``cache_key`` property (the assignment plan) contributes only that. Parameters carry
files as references (path + SHA-256), so the key is the content of the inputs: change a
photo and the library, the costs and everything after are recomputed; rerun with the
same inputs and every step is a cache hit.

A cached result whose files were deleted or changed is not served: the policy passes
over it to the next *generation* of the key, so the step runs again and its new result
is cached under that key (at most :data:`GENERATIONS` of them are looked at).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from prefect.cache_policies import CachePolicy
from prefect.context import TaskRunContext
from pydantic_core import to_jsonable_python

from mosaic.files import FileRef, hash_jsonable

STEP_VERSION = "4"
"""Bump when a step's output format or meaning changes, to invalidate old caches."""
GENERATIONS = 64
"""Keys tried per input set before giving up on the cache (one per deletion of outputs)."""


def refs_intact(value: Any) -> bool:
    """True when every file reference inside a step's result still exists unchanged."""
    if isinstance(value, FileRef):
        return value.is_intact()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return all(refs_intact(getattr(value, f.name)) for f in dataclasses.fields(value))
    if isinstance(value, dict):
        return all(refs_intact(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(refs_intact(v) for v in value)
    return True


@dataclass
class IntactInputs(CachePolicy):
    """Key on the task's inputs but ``ignore``; skip cached results whose files are gone."""

    ignore: tuple[str, ...] = ()

    def compute_key(self, task_ctx: TaskRunContext, inputs: dict[str, Any],
                    flow_parameters: dict[str, Any], **kwargs: Any) -> str | None:
        """The first generation of the key whose cached result is missing or intact."""
        kept = {name: getattr(value, "cache_key", value) for name, value in inputs.items()
                if name not in self.ignore}
        base = hash_jsonable([task_ctx.task.name, STEP_VERSION, to_jsonable_python(kept)])
        store = task_ctx.result_store
        for generation in range(GENERATIONS):
            key = f"{base}-{generation}"
            if not store.exists(key):
                return key
            try:
                cached = store.read(key).result
            except Exception:  # unreadable: compute again, under this key
                return key
            if refs_intact(cached):
                return key
        return None


def cached(*ignore: str) -> dict[str, Any]:
    """Task options of a cached step: keyed on its inputs but ``ignore``, kept as JSON."""
    return {"cache_policy": IntactInputs(ignore=ignore), "persist_result": True,
            "result_serializer": "json"}
