"""run_node in-process: the services seam (what the web endpoint will plug into)."""

from __future__ import annotations

import os
import signal

from beamish import started_applications
from beamish.cli import ExitCode
from beamish.cli._node import run_node
from tests.cli.sample_app import Sample


class Probe:
    """A service that notes which applications run when it starts and stops."""

    name = "probe"

    def __init__(self, events: list[object], *, fail: bool = False) -> None:
        self.events = events
        self.fail = fail

    async def start(self) -> None:
        running = [a.name for a in await started_applications()]
        self.events.append(("start", running))
        if self.fail:
            raise OSError("address already in use")
        os.kill(os.getpid(), signal.SIGTERM)  # handled by the node: a clean stop

    async def stop(self) -> None:
        self.events.append(("stop", [a.name for a in await started_applications()]))


def test_run_node_starts_services_after_the_applications_and_stops_them_first(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("SAMPLE_LOG_FILE", str(tmp_path / "log"))
    events: list[object] = []
    assert run_node(Sample(), shutdown_timeout=5, services=[Probe(events)]) == ExitCode.OK
    assert events == [("start", ["sample", "sample_dep"]), ("stop", ["sample", "sample_dep"])]
    assert (tmp_path / "log").read_text().splitlines()[-1] == "app stop sample_dep"


def test_run_node_a_service_that_fails_to_start_fails_the_node(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("SAMPLE_LOG_FILE", str(tmp_path / "log"))
    events: list[object] = []
    code = run_node(Sample(), shutdown_timeout=5, services=[Probe(events, fail=True)])
    assert code == ExitCode.START_FAILED
    assert events == [("start", ["sample", "sample_dep"])]  # never started: not stopped
    assert "the probe service failed to start" in caplog.text
    assert (tmp_path / "log").read_text().splitlines()[-1] == "app stop sample_dep"
