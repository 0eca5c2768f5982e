"""Prefect flows: the build and the scrape, one flow per file (wiring only)."""
