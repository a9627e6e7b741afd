"""The beamish command: real subprocesses running tests/cli/sample_app.py, stopped by signals."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from beamish.cli import ExitCode, main
from beamish.cli._target import TargetError, load_application

ROOT = Path(__file__).resolve().parents[2]
TARGET = "tests.cli.sample_app:Sample"
RUNNING = "is running"  # the line `beamish run` logs once the application is up
WAIT = 30  # seconds; only reached if something is broken


class Node:
    """`beamish run` in a subprocess, its stderr read line by line by a thread."""

    def __init__(
        self, tmp_path: Path, mode: str = "ok", *args: str, command: list[str] | None = None
    ) -> None:
        self.log_file = tmp_path / "events.log"
        env = {**os.environ, "SAMPLE_LOG_FILE": str(self.log_file), "SAMPLE_MODE": mode}
        self.proc = subprocess.Popen(
            command or [sys.executable, "-m", "beamish.cli", "run", TARGET, *args],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            start_new_session=True,  # a process group of its own, as under a service manager
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, text: str) -> None:
        """Block until stderr shows ``text`` (fails if the process ends first)."""
        while True:
            line = self.lines.get(timeout=WAIT)
            if line is None:
                raise AssertionError(f"exited before logging {text!r}:\n{self.stderr}")
            self.seen.append(line)
            if text in line:
                return

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def signal_group(self, signum: int) -> None:
        """What systemd and container runtimes do: signal every process of the group."""
        os.killpg(self.proc.pid, signum)

    def next_of(self, *texts: str) -> str:
        """Block until stderr shows one of ``texts``; returns which."""
        while True:
            line = self.lines.get(timeout=WAIT)
            if line is None:
                raise AssertionError(f"exited before logging any of {texts!r}:\n{self.stderr}")
            self.seen.append(line)
            for text in texts:
                if text in line:
                    return text

    def finish(self) -> int:
        code = self.proc.wait(timeout=WAIT)
        self.reader.join(timeout=WAIT)
        while (line := self.lines.get_nowait()) is not None:
            self.seen.append(line)
        return code

    def close(self) -> None:
        if self.proc.poll() is None:  # a failed test must not leave a node running
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.reader.join(timeout=WAIT)
        assert self.proc.stderr is not None
        self.proc.stderr.close()

    @property
    def stderr(self) -> str:
        return "".join(self.seen)

    def events(self) -> list[str]:
        return self.log_file.read_text().splitlines() if self.log_file.exists() else []


STARTED = ["worker start dep", "worker start a", "worker start b", "worker start c"]
STOPPED = [
    "app prep_stop sample", "worker stop c", "worker stop b", "worker stop a",
    "app stop sample", "worker stop dep", "app stop sample_dep",
]


@pytest.fixture
def node(tmp_path):
    nodes: list[Node] = []

    def start(mode: str = "ok", *args: str, command: list[str] | None = None) -> Node:
        nodes.append(Node(tmp_path, mode, *args, command=command))
        return nodes[-1]

    yield start
    for n in nodes:
        n.close()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_run_stops_the_tree_in_reverse_order_on_a_signal_and_exits_0(node, signum):
    n = node()
    n.wait_for(RUNNING)
    assert n.events() == STARTED
    n.signal(signum)
    assert n.finish() == ExitCode.OK == 0, n.stderr
    assert n.events() == STARTED + STOPPED
    assert f"received {signal.Signals(signum).name}; stopping" in n.stderr
    assert "exit code 0: stopped cleanly" in n.stderr


def test_run_a_signal_during_the_start_stops_what_started(node):
    n = node("slow_start")
    n.wait_for("sample: starting")
    n.signal(signal.SIGTERM)
    assert n.finish() == ExitCode.OK, n.stderr
    assert n.events() == STARTED + STOPPED


def test_run_exits_1_when_the_application_fails_to_start(node):
    n = node("fail_start")
    assert n.finish() == ExitCode.START_FAILED == 1, n.stderr
    # the dependency it had started is stopped again; the half-started tree rolled back
    assert n.events() == [
        "worker start dep", "worker start a", "worker start b",
        "worker stop b", "worker stop a", "worker stop dep", "app stop sample_dep",
    ]
    assert "application 'sample' failed to start: child 'c' failed to start: " \
        "'no database'" in n.stderr
    # said once, by the application controller; the command does not repeat it
    assert n.stderr.count("application 'sample' failed to start") == 1, n.stderr
    assert "'sample' did not start (the reason is logged above)" in n.stderr


def test_run_exits_1_when_settings_cannot_be_read(tmp_path):
    env = {**os.environ, "SAMPLE_MODE": "sometimes"}
    env.pop("SAMPLE_LOG_FILE", None)
    result = subprocess.run(
        [sys.executable, "-m", "beamish.cli", "run", TARGET], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=WAIT,
    )
    assert result.returncode == ExitCode.START_FAILED, result.stderr
    assert "SAMPLE_LOG_FILE: required (a path) but not set" in result.stderr
    assert "SAMPLE_MODE: expected one of 'ok', 'fail_start'" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("SAMPLE_LOG_FILE: required") == 1, result.stderr  # once


def test_run_exits_3_when_the_root_supervisor_gives_up_and_reports_say_why(node):
    n = node("crash")
    assert n.finish() == ExitCode.CRASHED == 3, n.stderr
    assert n.events() == [
        *STARTED,
        "worker stop c", "worker stop b", "worker stop a",  # the supervisor gave up
        "app prep_stop sample", "app stop sample", "worker stop dep", "app stop sample_dep",
    ]
    err = n.stderr
    # supervisor reports: the child, its reason and the restart taken
    assert "beamish.supervisor: Supervisor" in err
    assert "child 'crasher'" in err and "exited with reason Crash(RuntimeError('boom'))" in err
    assert "restarting it" in err
    assert "shutting down: restart intensity exceeded (4 restarts in 5 s" in err
    # the crash report carries the traceback
    assert "RuntimeError: boom" in err and "beamish.gen_server: Crasher" in err
    assert "application 'sample' stopped on its own: 'shutdown'" in err
    assert "exit code 3" in err


def test_run_exits_4_when_the_stop_exceeds_the_shutdown_timeout(node):
    n = node("stuck_stop", "--shutdown-timeout", "0.3")
    n.wait_for(RUNNING)
    n.signal(signal.SIGTERM)
    assert n.finish() == ExitCode.STOP_TIMEOUT == 4, n.stderr
    assert "not stopped within 0.3s; killing every process left" in n.stderr
    assert n.events()[-4:] == [
        "app prep_stop sample", "worker stop c", "worker stop b", "worker stop a",
    ]
    # the process the stop was waiting for is named: pid, behaviour, what it was doing, where
    [line] = [x for x in n.seen if "The stop was waiting for" in x]
    assert "The stop was waiting for: <0." in line
    assert "(tests.cli.sample_app.Stuck, in " in line and "under <0." in line
    assert "'sample.sup'" in line
    assert "Traceback" not in n.stderr


def test_run_a_later_signal_cuts_the_stop_short(node):
    n = node("stuck_stop")
    n.wait_for(RUNNING)
    n.signal(signal.SIGTERM)
    n.wait_for("stopping")
    # a signal within DUPLICATE_WINDOW of the first is a copy of it; keep asking until
    # one comes later than that (the stuck stop waits for as long as it takes)
    while True:
        n.signal(signal.SIGINT)
        if n.next_of("taken as a copy", "received SIGINT again") != "taken as a copy":
            break
    assert n.finish() == ExitCode.STOP_TIMEOUT, n.stderr
    assert "received SIGINT again; killing every process left" in n.stderr
    assert "(tests.cli.sample_app.Stuck, in " in n.stderr
    assert "Traceback" not in n.stderr


def test_run_a_copy_of_the_signal_does_not_cut_the_stop_short(node):
    """A process group signalled as a whole gets the same signal twice at once."""
    n = node("slow_stop")
    n.wait_for(RUNNING)
    n.signal_group(signal.SIGTERM)
    n.wait_for("received SIGTERM; stopping")
    n.signal_group(signal.SIGTERM)  # the copy: at once, while the stop goes on
    assert n.finish() == ExitCode.OK, n.stderr
    assert "taken as a copy of it" in n.stderr
    assert "again;" not in n.stderr and "Traceback" not in n.stderr
    assert n.events()[-len(STOPPED):] == STOPPED
    assert "exit code 0: stopped cleanly" in n.stderr


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_run_under_make_stopped_by_a_group_sigterm_stops_cleanly(node, tmp_path):
    """`make run` stopped as a service manager stops it: make passes its SIGTERM on."""
    makefile = tmp_path / "Makefile"
    makefile.write_text(f"run:\n\t{sys.executable} -m beamish.cli run {TARGET}\n")
    n = node("slow_stop", command=["make", "-s", "-f", str(makefile), "run"])
    n.wait_for(RUNNING)
    n.signal_group(signal.SIGTERM)
    n.finish()  # make's own status: it was killed by the signal
    assert "exit code 0: stopped cleanly" in n.stderr, n.stderr
    assert "Traceback" not in n.stderr and "again;" not in n.stderr
    assert n.events()[-len(STOPPED):] == STOPPED


@pytest.mark.parametrize(("target", "message"), [
    ("tests.cli.no_such_module:App", "there is no module named 'tests.cli.no_such_module'"),
    ("tests.cli.sample_app:Nope", "has no attribute 'Nope' (the applications it defines: "
                                  "Sample, SampleDep)"),
    ("tests.cli.sample_app:NotAnApplication", "not an Application subclass or instance"),
    ("tests.cli.sample_app", "defines several applications (Sample, SampleDep)"),
    ("tests.cli.sample_app:", "expected MODULE:APP"),
])
def test_load_application_errors_say_what_is_wrong(target, message):
    with pytest.raises(TargetError) as info:
        load_application(target, str(ROOT))
    assert message in info.value.message
    assert info.value.exit_code == ExitCode.USAGE


def test_load_application_takes_a_class_or_an_instance():
    from tests.cli import sample_app

    assert type(load_application(TARGET, str(ROOT))) is sample_app.Sample
    assert load_application("tests.cli.sample_app:prebuilt", str(ROOT)) is sample_app.prebuilt
    with pytest.raises(TargetError, match="not an Application subclass or instance"):
        load_application("beamish._otp.application.application:Application", str(ROOT))


def test_run_exits_2_for_a_target_that_cannot_be_imported():
    result = subprocess.run(
        [sys.executable, "-m", "beamish.cli", "run", "tests.cli.missing:App"], cwd=ROOT,
        capture_output=True, text=True, timeout=WAIT,
    )
    assert result.returncode == ExitCode.USAGE == 2
    assert "Error: cannot import 'tests.cli.missing'" in result.stderr


def test_run_exits_2_for_bad_options():
    result = CliRunner().invoke(main, ["run", TARGET, "--shutdown-timeout", "-1"])
    assert result.exit_code == 2
    assert "Invalid value for '--shutdown-timeout'" in result.output


def test_version_through_the_installed_script():
    script = Path(sys.executable).parent / "beamish"
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True,
                            timeout=WAIT)
    assert result.returncode == 0
    assert result.stdout.strip().startswith("beamish 0.")


def test_settings_command_lists_and_checks_the_variables(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["settings", TARGET], env={
        "SAMPLE_LOG_FILE": str(tmp_path / "x"), "SAMPLE_MODE": None,
    })
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["VARIABLE", "TYPE", "DEFAULT", "STATUS"]
    assert lines[1].startswith("SAMPLE_LOG_FILE") and lines[1].endswith("set")
    assert "(required)" in lines[1]
    assert lines[2].startswith("SAMPLE_MODE") and lines[2].endswith("default")

    bad = runner.invoke(main, ["settings", TARGET], env={
        "SAMPLE_LOG_FILE": None, "SAMPLE_MODE": "loud",
    })
    assert bad.exit_code == ExitCode.START_FAILED
    assert "required (a path) but not set" in bad.output
    assert "expected one of 'ok', 'fail_start', 'crash', 'stuck_stop', 'slow_start', " \
        "'slow_stop', got 'loud'" in bad.output


def test_run_help_shows_every_environment_variable():
    result = CliRunner().invoke(main, ["run", "--help"], terminal_width=200)
    assert result.exit_code == 0
    text = " ".join(result.output.split())  # click wraps lines
    for option in ("SHUTDOWN_TIMEOUT", "LOG_LEVEL", "APP_DIR", "HOST", "PORT", "ACCESS_LOG",
                   "MAX_CONNECTIONS", "HEADER_TIMEOUT", "MAX_HEADER_BYTES", "MAX_HEADERS",
                   "KEEP_ALIVE_TIMEOUT", "CONSOLE", "RELOAD"):
        assert f"env var: BEAMISH_{option}" in text, option
    assert "5 the web endpoint could not listen" in text


def test_run_options_come_from_the_environment(monkeypatch):
    seen = {}

    def fake_run_node(app, *, shutdown_timeout, services, node_name, cluster, ready_fd):
        server, console = services  # the endpoint, then the node's console
        seen.update(console=console.node)
        seen.update(port=server.port, limit=server.max_connections,
                    timeout=server.edge.limits.header_timeout, node=node_name,
                    cluster=(cluster.url.url, cluster.name, cluster.tick_time), ready=ready_fd,
                    reuse_port=server.reuse_port)
        return ExitCode.OK

    monkeypatch.setattr("beamish.cli._commands.run_node", fake_run_node)
    result = CliRunner().invoke(main, ["run", "--app-dir", str(ROOT),
                                       "tests.web.endpoint_app:WebApp"], env={
        "BEAMISH_PORT": "4321", "BEAMISH_MAX_CONNECTIONS": "77", "BEAMISH_HEADER_TIMEOUT": "2.5",
        "BEAMISH_NODE_NAME": "web@host", "BEAMISH_CLUSTER": "nats://127.0.0.1:4222",
        "BEAMISH_CLUSTER_NAME": "prod", "BEAMISH_TICK_TIME": "15",
        # what a --nodes parent gives each node: one node each, the shared port, its pipe
        "BEAMISH_NODES": "1", "BEAMISH_REUSE_PORT": "1", "BEAMISH_READY_FD": "7",
    })
    assert result.exit_code == 0, result.output
    assert seen == {"console": "web", "port": 4321, "limit": 77, "timeout": 2.5,
                    "node": "web@host",
                    "cluster": ("nats://127.0.0.1:4222", "prod", 15.0), "ready": 7,
                    "reuse_port": True}


def test_run_refuses_an_unknown_cluster_engine():
    result = CliRunner().invoke(main, ["run", "--app-dir", str(ROOT), "--cluster",
                                       "amqp://x", "tests.web.endpoint_app:WebApp"])
    assert result.exit_code == 2
    assert "unknown cluster engine in 'amqp://x'" in result.output


def test_run_help_defaults_are_the_servers():
    from beamish.cli import _commands
    from beamish.web import _edge, _serve

    assert _commands.DEFAULT_HEADER_TIMEOUT == _edge.DEFAULT_HEADER_TIMEOUT
    assert _commands.DEFAULT_MAX_HEADER_BYTES == _edge.DEFAULT_MAX_HEADER_BYTES
    assert _commands.DEFAULT_MAX_HEADERS == _edge.DEFAULT_MAX_HEADERS
    assert _commands.DEFAULT_KEEP_ALIVE_TIMEOUT == _serve.DEFAULT_KEEP_ALIVE_TIMEOUT


def test_run_log_format_json_writes_one_object_per_line_naming_the_process(node):
    n = node("crash", "--log-format", "json")
    assert n.finish() == ExitCode.CRASHED, n.stderr
    entries = [json.loads(line) for line in n.seen if line.strip()]
    assert {e["logger"] for e in entries} >= {"beamish.application", "beamish.supervisor"}
    crash = next(e for e in entries if e["logger"] == "beamish.gen_server")
    assert crash["level"] == "error" and crash["pid"].startswith("<0.")
    assert "RuntimeError: boom" in crash["exception"]
    report = next(e for e in entries if e["logger"] == "beamish.supervisor")
    assert report["pid"].startswith("<0.") and "restarting it" in report["message"]
