"""Prefect flows wiring the tasks together, and the ``mosaic`` command line."""
