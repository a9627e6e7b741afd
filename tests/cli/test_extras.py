"""beamish without its extras: the core runs, the command runs a plain application, and the
pytest plugin loads, with none of the web layer's or PostgreSQL's packages importable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WAIT = 60

# Makes the packages of the extras impossible to import, as in `pip install beamish`.
BLOCK = """
import sys

EXTRAS = {"starlette", "uvicorn", "httptools", "websockets", "itsdangerous", "orjson",
          "httpx", "asyncpg"}


class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in EXTRAS:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NotInstalled())
"""


def run_python(code: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "script.py"
    script.write_text(BLOCK + code)
    env = {**os.environ, "SAMPLE_LOG_FILE": str(tmp_path / "events.log")}
    return subprocess.run([sys.executable, str(script), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=WAIT)


def test_core_runs_without_the_extras(tmp_path):
    result = run_python("""
import beamish
import beamish.data
import beamish.pubsub
from beamish import receive, send, spawn


async def main():
    async def echo():
        sender, message = await receive()
        send(sender, message)

    send(spawn(echo), (beamish.self(), "hello"))
    print(await receive(timeout=1))

beamish.run(main)
""", tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["hello"]


def test_beamish_run_serves_a_plain_application_without_the_web_extra(tmp_path):
    result = run_python("""
import logging
import os
import signal

from beamish.cli import main


class StopWhenRunning(logging.Handler):  # SIGTERM as soon as the node says it runs
    def emit(self, record):
        if "is running" in record.getMessage():
            os.kill(os.getpid(), signal.SIGTERM)


logging.getLogger("beamish.cli").addHandler(StopWhenRunning())
main(["run", "tests.cli.sample_app:Sample"], prog_name="beamish")
""", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "exit code 0: stopped cleanly" in result.stderr
    assert (tmp_path / "events.log").read_text().splitlines()[-1] == "app stop sample_dep"


def test_pytest_plugin_loads_without_the_web_extra(tmp_path):
    result = run_python("""
import beamish.testing
import beamish.testing._pytest_plugin
from beamish.testing import assert_receive, start_supervised  # the core helpers are there

try:
    from beamish.testing import ASGIClient
except ModuleNotFoundError as exc:
    print(exc)
""", tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "beamish.testing.ASGIClient needs beamish's web extra (httpx is not installed): "
        "pip install 'beamish[web]'"
    )
