"""Errors a user can act on.

Every :class:`MosaicError` carries a one-line message meant for the person at the
command line; the CLI prints it and exits with status 2 instead of a traceback.
"""


class MosaicError(Exception):
    """Bad input or an impossible request, explained in one line."""


class ImageTooLargeError(MosaicError):
    """An image has more pixels than the decompression-bomb cap allows."""


class UnreadableImageError(MosaicError):
    """A file is not an image PIL can decode, or it is truncated."""
