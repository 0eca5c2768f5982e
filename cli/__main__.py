"""``python -m cli``: the ``mosaic`` command."""

from cli.main import main

main()
