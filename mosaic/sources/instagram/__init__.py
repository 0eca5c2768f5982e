"""Photos from Instagram: its web site (profile -> posts -> images -> files), or a data export.

What is where:

* :mod:`~mosaic.sources.instagram.urls`: the site's base URL, user names, post URLs and
  short codes, post lists (files of URLs), login-wall URLs and message.
* :mod:`~mosaic.sources.instagram.errors`: the login wall, a missing or private profile,
  an unreachable site.
* :mod:`~mosaic.sources.instagram.settings`: :class:`~.settings.ScrapeSettings` (site,
  hosts, cookies, politeness, timeouts).
* :mod:`~mosaic.sources.instagram.parse`: post pages read without any network: the JSON
  embedded in scripts, ``srcset``, ``og:image``; :class:`~.parse.PostMedia` and
  :class:`~.parse.ImageRef`.
* :mod:`~mosaic.sources.instagram.politeness`: one page load per ``delay`` per site across
  threads, and the login wall a run has met.
* :mod:`~mosaic.sources.instagram.browser`: headless Chromium in a private folder, its
  chromedriver guarded, its errors as one line, cookies given to it.
* :mod:`~mosaic.sources.instagram.browser_cookies`: the session cookies read from a local
  Chromium or Firefox profile (``--cookies-from-browser``), in memory.
* :mod:`~mosaic.sources.instagram.profile`: a profile loaded and scrolled in the browser
  until its post links are all collected (or the login wall ends what guests see).
* :mod:`~mosaic.sources.instagram.post`: one post end to end: its page fetched, its images
  saved (the largest size still there), its manifest entry (done, gone, partly-gone...).
* :mod:`~mosaic.sources.instagram.export`: the "Download your information" ZIP importer.

Cookies passed with ``--cookies`` (or read with ``--cookies-from-browser``) are sent with
requests and added to the browser; they are never logged nor written anywhere but private
temporary folders (the browser's, the cookies file's), which are deleted.
"""
