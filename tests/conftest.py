import os
import tempfile

pytest_plugins = ["pytester"]

# The nodes the tests start (`beamish run` in subprocesses) open their consoles here, not in
# the user's own console directory: a node a test kills leaves its socket behind.
os.environ.setdefault("BEAMISH_CONSOLE_DIR", tempfile.mkdtemp(prefix="beamish-consoles-"))
