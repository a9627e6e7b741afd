"""run_node in-process: the services seam (what the web endpoint will plug into)."""

from __future__ import annotations

import os
import signal

from beamish import Pid, ProcessInfo, started_applications
from beamish._runtime.pid import NodeId
from beamish.cli import ExitCode
from beamish.cli._node import run_node, waited_for
from tests.cli.sample_app import Sample


class Probe:
    """A service that notes which applications run when it starts and stops."""

    name = "probe"

    def __init__(self, events: list[object], *, fail: BaseException | None = None) -> None:
        self.events = events
        self.fail = fail

    async def start(self) -> None:
        running = [a.name for a in await started_applications()]
        self.events.append(("start", running))
        if self.fail is not None:
            raise self.fail
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
    code = run_node(Sample(), shutdown_timeout=5,
                    services=[Probe(events, fail=RuntimeError("no template"))])
    assert code == ExitCode.START_FAILED
    assert events == [("start", ["sample", "sample_dep"])]  # never started: not stopped
    assert "the probe service failed to start" in caplog.text
    assert (tmp_path / "log").read_text().splitlines()[-1] == "app stop sample_dep"


def test_run_node_a_service_that_cannot_listen_is_one_line_and_exit_5(
    tmp_path, monkeypatch, caplog
):
    monkeypatch.setenv("SAMPLE_LOG_FILE", str(tmp_path / "log"))
    taken = OSError(98, "cannot listen on http://127.0.0.1:4000: the address is already in use")
    code = run_node(Sample(), shutdown_timeout=5, services=[Probe([], fail=taken)])
    assert code == ExitCode.LISTEN_FAILED == 5
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert [r.getMessage() for r in errors] == [
        str(taken), "exit code 5: the web endpoint could not listen on its address",
    ]
    assert not any(r.exc_info for r in caplog.records)  # no traceback
    assert (tmp_path / "log").read_text().splitlines()[-1] == "app stop sample_dep"


NODE = NodeId("test", 1)


def _info(pid: int, parent: int | None, name: str | None = None, *,
          does: str = "receive (line 1)") -> ProcessInfo:
    def p(n: int) -> Pid:
        return Pid(NODE, n)

    return ProcessInfo(
        pid=p(pid), name=name, kind="actor", status="waiting", message_queue_len=0, memory=0,
        current_function=does, initial_call=f"mod.Behaviour{pid}", links=(), monitors=(),
        monitored_by=(), messages_handled=0, trap_exit=True,
        parent=None if parent is None else p(parent),
    )


def test_waited_for_names_the_busy_leaves_of_the_application_being_stopped():
    infos = [
        _info(1, None, "application_controller"),
        _info(2, 1, "application:dep"), _info(3, 2), _info(4, 3, does="X.handle (idle)"),
        _info(5, 1, "application:app"), _info(6, 5, "app.sup"),
        _info(7, 6, does="X.handle (idle)"), _info(8, 6, does="Event.wait (line 9)"),
    ]
    assert [i.pid.id for i in waited_for(infos)] == [8, 7]  # the busy one first
    # the application's own stop callback is stuck: its process is what is waited for
    assert [i.pid.id for i in waited_for(infos[:5])] == [5]
    assert waited_for([infos[0]]) == []
