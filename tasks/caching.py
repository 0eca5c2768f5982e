"""Cache keys shared by the build tasks.

A task's cache key is the hash of its name, a version and its parameters. Parameters
carry files as references (path + SHA-256), so the key is the content of the inputs:
change a photo and the library, the costs and everything after are recomputed; rerun
with the same inputs and every step is a cache hit.
"""

from __future__ import annotations

from typing import Any

from prefect.context import TaskRunContext

from mosaic.files import FileRef, hash_jsonable

STEP_VERSION = "2"
"""Bump when a step's output format or meaning changes, to invalidate old caches."""


def input_hash_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Cache key: hash of the task name, :data:`STEP_VERSION` and all parameters."""
    return hash_jsonable([context.task.name, STEP_VERSION, parameters])


def refs_intact(value: Any) -> bool:
    """True when every file reference inside a step's result still exists unchanged."""
    if isinstance(value, dict):
        if set(value) == {"path", "sha256"}:
            return FileRef(value["path"], value["sha256"]).is_intact()
        return all(refs_intact(v) for v in value.values())
    if isinstance(value, list):
        return all(refs_intact(v) for v in value)
    return True


CACHED: dict[str, Any] = {"cache_key_fn": input_hash_key, "persist_result": True,
                          "result_serializer": "json"}
"""Task options of the cached steps: keyed on their inputs, results kept as JSON."""
