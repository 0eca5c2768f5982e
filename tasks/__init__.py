"""Prefect tasks: thin wrappers around ``mosaic.steps`` adding caching, retries and logs."""
