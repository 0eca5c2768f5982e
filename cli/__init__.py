"""The ``mosaic`` command line: one module per command group (see :mod:`cli.main`)."""
