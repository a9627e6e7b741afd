"""``python -m beamish``: the ``beamish`` command."""

from beamish.cli import main

main()
