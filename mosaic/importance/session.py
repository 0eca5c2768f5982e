"""mediapipe, quietly: its import, its native logs on descriptor 2, its Python warnings."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from mosaic.errors import MosaicError

# One logger for the whole package, named as before the split so log settings still apply.
logger = logging.getLogger("mosaic.importance")

# mediapipe's own stderr lines (TFLite banner, absl preamble, glog I/W lines, two known
# harmless E lines); anything else captured is someone else's and is written back.
_NATIVE_NOISE = re.compile(
    r"^(INFO: Created TensorFlow Lite|WARNING: All log messages before absl::InitializeLog"
    r"|[IW]\d{4} |E\d{4} .*(inference_feedback_manager|landmark_projection_calculator))"
)
# Descriptor 2 is process-wide, so only one thread may redirect it at a time.
_stderr_lock = threading.Lock()


@contextlib.contextmanager
def _native_logs_quiet() -> Iterator[None]:
    """Hide what mediapipe's C++ code writes on file descriptor 2 (absl/glog, TFLite).

    Those logs ignore ``GLOG_minloglevel``, so the descriptor is pointed at a temporary
    file for the duration; afterwards every line that is not known mediapipe chatter
    (for example another thread's log line) is written back to the real stderr, and
    mediapipe's own lines go to the debug log.
    """
    with _stderr_lock:
        with contextlib.suppress(AttributeError, ValueError, OSError):
            sys.stderr.flush()
        try:
            saved = os.dup(2)
        except OSError:  # no descriptor 2 at all: nothing to hide
            yield
            return
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                _replay(sink)


def _replay(sink: Any) -> None:
    """Write back what is not mediapipe chatter from a captured stderr file."""
    sink.seek(0)
    kept = []
    for line in sink.read().decode("utf-8", "replace").splitlines(keepends=True):
        if _NATIVE_NOISE.match(line):
            logger.debug("mediapipe: %s", line.rstrip())
        else:
            kept.append(line)
    if kept:
        os.write(2, "".join(kept).encode("utf-8"))


@contextlib.contextmanager
def mediapipe_session() -> Iterator[ModuleType]:
    """Import mediapipe quietly and keep its native logs and Python warnings in.

    Yields
    ------
    module
        The ``mediapipe`` module, to be used only inside the ``with`` block.

    Raises
    ------
    MosaicError
        mediapipe is not installed.
    """
    with _native_logs_quiet(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"(mediapipe|google\.protobuf)(\.|$)")
        try:
            import mediapipe
        except ImportError as exc:
            raise MosaicError(
                f"face and person detection needs mediapipe (pip install mediapipe): {exc}"
            ) from None
        yield mediapipe
