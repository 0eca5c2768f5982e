"""Downloads over HTTP: timeouts, retries, a host allow-list, size caps and atomic files.

What is where:

* :mod:`~mosaic.sources.download.errors`: the fetch errors (transient, rate-limited,
  permanent), :func:`~.errors.is_gone` (404/410) and :func:`~.errors.is_retryable`.
* :mod:`~mosaic.sources.download.stop`: stop requests (Ctrl-C, SIGTERM, a cancelled flow
  run) and :func:`~.stop.pause`, the wait a stop cuts short.
* :mod:`~mosaic.sources.download.hosts`: the host allow-list every request and redirect
  is checked against.
* :mod:`~mosaic.sources.download.cookies`: Netscape ``cookies.txt`` files.
* :mod:`~mosaic.sources.download.fetch`: settings, sessions, one request with its
  redirects, retries with back-off, HTML pages.
* :mod:`~mosaic.sources.download.images`: images streamed, checked and saved as
  ``<sha256>.<ext>``.
"""
