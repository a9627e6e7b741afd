"""``python -m beamish.cli``: the same as the ``beamish`` command."""

from beamish.cli._commands import main

main(prog_name="beamish")
