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
# On Python 3.12 the C extension of protobuf 4.25 (mediapipe 0.10.21 wants protobuf < 5)
# warns while it creates its map types. The warning is attributed to importlib's frozen
# module, not to protobuf, so only its text can name it; made an error (``-W error``, the
# test suite), it fails the extension's init and with it the import of mediapipe.
_PROTOBUF_PY312_WARNING = r"Type google\._upb\._message\.\w+ uses PyType_Spec with a metaclass"
# Why mediapipe failed to import, if it did: its native module cannot be initialised twice
# in one process (pybind11 "cannot initialize type ... already defined"), so a retry would
# hide the first, real, reason.
_import_failure: str | None = None


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
        mediapipe is not installed, or its import failed (then every later call says why).
    """
    global _import_failure
    if _import_failure is not None:
        raise MosaicError(_import_failure)
    with _native_logs_quiet(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"(mediapipe|google\.protobuf)(\.|$)")
        warnings.filterwarnings("ignore", _PROTOBUF_PY312_WARNING, DeprecationWarning)
        try:
            import mediapipe
        except ImportError as exc:
            cause = exc.__cause__ or exc.__context__
            reason = f"{exc} ({type(cause).__name__}: {cause})" if cause else str(exc)
            if not isinstance(exc, ModuleNotFoundError):
                _import_failure = f"mediapipe failed to import: {reason}"
                raise MosaicError(_import_failure) from None
            raise MosaicError(
                f"face and person detection needs mediapipe (pip install mediapipe): {reason}"
            ) from None
        yield mediapipe
