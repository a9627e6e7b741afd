"""The ``beamish`` command line: ``beamish run MODULE:APP``, ``beamish settings``,
``beamish new NAME``, ``--version``.

``main`` is the console script's entry point; ``ExitCode`` lists what ``beamish run``
exits with.
"""

from beamish.cli._commands import main
from beamish.cli._node import ExitCode

__all__ = ["ExitCode", "main"]
