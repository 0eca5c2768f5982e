"""Prefect tasks: thin wrappers around :mod:`mosaic.pipeline` adding caching and retries."""
