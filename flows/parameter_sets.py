"""The deployments' parameter sets: a build step of ``prefect.yaml``.

Each deployment in ``prefect.yaml`` takes its parameters from a set in
``deployments/params/`` (a build's set is its ``options``, a scrape's likewise), read by
:func:`parameter_sets` when ``make deploy`` runs ``prefect deploy``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mosaic.errors import MosaicError
from mosaic.sources.instagram.options import ACCOUNT
from mosaic.sources.instagram.urls import check_username


def parameter_sets(folder: str, username: str | None = None) -> dict[str, Any]:
    """Read the deployments' parameter sets: a ``prefect.yaml`` build step.

    Each ``NAME.yaml`` in ``folder`` maps parameter names to values. A value that is
    exactly ``{username}`` becomes ``username``, the account of the scheduled runs; without
    one it is None (a run then needs ``-p``) and the set is incomplete: ``prefect.yaml``
    deploys the schedules of incomplete sets paused. ``{username}`` inside a longer value
    (a path) is left for the flow, which puts the run's own account there.

    Parameters
    ----------
    folder : str
        The folder of the parameter sets (``deployments/params``).
    username : str, optional
        The account (``prefect.yaml`` passes ``$MOSAIC_INSTAGRAM_USERNAME``; empty means
        none).

    Returns
    -------
    dict
        ``NAME`` (dashes as underscores) -> its parameters, and ``complete`` -> ``NAME``
        -> whether every ``{username}`` value could be filled in.

    Raises
    ------
    MosaicError
        A file that is not a YAML mapping, or an invalid user name.
    """
    account = check_username(username) if username else None
    sets: dict[str, Any] = {"complete": {}}
    for path in sorted(Path(folder).glob("*.yaml")):
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(values, dict):
            raise MosaicError(f"{path}: a parameter set is a mapping of names to values")
        key = path.stem.replace("-", "_")
        sets[key] = {field: account if value == ACCOUNT else value
                     for field, value in values.items()}
        sets["complete"][key] = account is not None or ACCOUNT not in values.values()
    return sets


__all__ = ["parameter_sets"]
