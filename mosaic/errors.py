"""Errors a user can act on.

Every :class:`MosaicError` carries a one-line message for the person who started the
run. A message names the parameters it is about in backticks (```grid` '10by10' is not
understood``): ``str()`` shows the plain names (``grid``), as a deployment's parameter
form calls them, and :meth:`MosaicError.for_command_line` the command line's flags
(``--grid``). The command line prints it and exits with :attr:`MosaicError.exit_status`
instead of a traceback.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from pydantic import ValidationError

Model = TypeVar("Model")

_PARAMETER = re.compile(r"`([a-z][a-z0-9_]*)`")


def flag(parameter: str) -> str:
    """The command-line flag of a parameter: ``max_memory`` -> ``--max-memory``."""
    return "--" + parameter.replace("_", "-")


class MosaicError(Exception):
    """Bad input or an impossible request, explained in one line."""

    exit_status = 2
    """The command line's exit status for it: 2, a cause the user can fix."""

    def __str__(self) -> str:
        return _PARAMETER.sub(r"\1", super().__str__())

    def for_command_line(self) -> str:
        """The message with every parameter named by its flag (``--grid``)."""
        return _PARAMETER.sub(lambda match: flag(match[1]), super().__str__())


class ImageTooLargeError(MosaicError):
    """An image has more pixels than the decompression-bomb cap allows."""


class UnreadableImageError(MosaicError):
    """A file is not an image PIL can decode, or it is truncated."""


def options_error(error: ValidationError, what: str) -> MosaicError:
    """The first problem of a pydantic :class:`~pydantic.ValidationError` in one line.

    Parameters
    ----------
    error : pydantic.ValidationError
        From validating an options model (``BuildOptions``, ``ScrapeOptions``).
    what : str
        What the options are of ("a build"), for an unknown name.

    Returns
    -------
    MosaicError
        Naming the parameter in backticks, its value and what it must be.
    """
    first = error.errors(include_url=False)[0]
    name = str(first["loc"][0]) if first["loc"] else "options"
    value = first.get("input")
    context = first.get("ctx") or {}
    kind = first["type"]
    if kind in ("greater_than_equal", "greater_than"):
        reason = f"must be at least {context.get('ge', context.get('gt'))}"
    elif kind in ("less_than_equal", "less_than"):
        reason = f"must be at most {context.get('le', context.get('lt'))}"
    elif kind == "literal_error":
        reason = f"choose one of {context.get('expected', '').replace(' or ', ', ')}"
    elif kind == "extra_forbidden":
        return MosaicError(f"`{name}` is not an option of {what}")
    else:
        reason = str(first["msg"]).lower()
    return MosaicError(f"`{name}` {value!r}: {reason}")


def validated(model: Callable[..., Model], what: str, values: dict[str, object]) -> Model:
    """``model(**values)`` (a pydantic options model); any problem is a :class:`MosaicError`.

    Parameters
    ----------
    model : type
        ``BuildOptions`` or ``ScrapeOptions``.
    what : str
        What the options are of ("a build"), for messages.
    values : dict
        The fields.

    Raises
    ------
    MosaicError
        The first value that cannot work, naming its parameter.
    """
    from pydantic import ValidationError

    try:
        return model(**values)
    except ValidationError as error:
        raise options_error(error, what) from None


_warned_once: set[str] = set()
_warned_lock = threading.Lock()


def warn_once(log: logging.Logger, key: str, message: str) -> None:
    """Log ``message`` as a warning the first time ``key`` is seen in this process."""
    with _warned_lock:
        if key in _warned_once:
            return
        _warned_once.add(key)
    log.warning("%s", message)
