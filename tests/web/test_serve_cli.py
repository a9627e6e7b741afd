"""`beamish run` serving an application's endpoint: a real subprocess, real HTTP, SIGTERM."""

from __future__ import annotations

import concurrent.futures
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from beamish.cli import ExitCode
from beamish.cli._commands import services_for
from beamish.web import EndpointServer, GranianEndpointServer
from beamish.web._serve import find_endpoint
from tests.web import endpoint_app

ROOT = Path(__file__).resolve().parents[2]
WAIT = 30  # seconds; only reached if something is broken
SERVING = re.compile(r"serving <Endpoint of WebApp> on (http://127\.0\.0\.1:\d+)")


class Node:
    """`beamish run tests.web.endpoint_app:WebApp --port 0`, its stderr read by a thread."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "beamish.cli", "run", "tests.web.endpoint_app:WebApp",
             "--port", "0", *args],
            cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True,
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

    def url(self) -> str:
        while True:
            line = self.lines.get(timeout=WAIT)
            if line is None:
                raise AssertionError("exited before serving:\n" + "".join(self.seen))
            self.seen.append(line)
            found = SERVING.search(line)
            if found:
                return found.group(1)

    def finish(self) -> int:
        code = self.proc.wait(timeout=WAIT)
        while (line := self.lines.get(timeout=WAIT)) is not None:
            self.seen.append(line)
        return code

    def close(self) -> None:
        if self.proc.poll() is None:  # a failed test must not leave a node running
            self.proc.kill()
            self.proc.wait()
        self.reader.join(timeout=WAIT)
        assert self.proc.stderr is not None
        self.proc.stderr.close()

    @property
    def stderr(self) -> str:
        return "".join(self.seen)

    def stderr_so_far(self) -> str:
        """What the node logged until now (it keeps running)."""
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                return self.stderr
            if line is None:
                return self.stderr
            self.seen.append(line)


@pytest.fixture
def node():
    nodes: list[Node] = []

    def start(*args: str) -> Node:
        nodes.append(Node(*args))
        return nodes[-1]

    yield start
    for n in nodes:
        n.close()


servers = pytest.mark.parametrize("server", ["uvicorn", "granian"])


@servers
def test_cli_serves_the_endpoint_and_stops_cleanly_on_sigterm(node, server):
    n = node("--server", server)
    url = n.url()
    with httpx.Client(base_url=url, timeout=10) as client:
        pids = {client.get("/pid").text for _ in range(3)}
        assert len(pids) == 3
        assert client.get("/greeting").text == "hello"  # the application's tree runs
        crashed = client.get("/crash")
        assert crashed.status_code == 500
    n.proc.send_signal(signal.SIGTERM)
    assert n.finish() == 0, n.stderr
    log = n.stderr
    assert f"request {crashed.headers['x-request-id']} crashed" in log
    assert "application 'web_app' stopped" in log
    assert "exit code 0: stopped cleanly" in log


@servers
def test_cli_sigterm_lets_a_request_in_flight_finish(node, server):
    n = node("--server", server)
    url = n.url()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(httpx.get, f"{url}/sleep/0.5", timeout=10)
        with httpx.Client(base_url=url) as client:
            client.get("/")
        time.sleep(0.2)  # the slow one is in flight by now (it runs 0.5 s once it arrives)
        n.proc.send_signal(signal.SIGTERM)
        assert pending.result().text == "slept"
    assert n.finish() == 0, n.stderr


@servers
def test_cli_port_taken_is_one_clear_line_and_exit_5(node, server):
    first = node("--server", server)
    port = first.url().rsplit(":", 1)[1]
    second = node("--port", port, "--server", server)
    assert second.finish() == ExitCode.LISTEN_FAILED == 5, second.stderr
    errors = [line.split(": ", 1)[1].strip() for line in second.seen if " ERROR " in line]
    assert errors == [
        f"cannot listen on http://127.0.0.1:{port}: the address is already in use (another "
        "program, or another `beamish run`, listens there); stop it, or choose another port "
        "(beamish run: --port or BEAMISH_PORT)",
        "exit code 5: the web endpoint could not listen on its address",
    ], second.stderr
    assert "Traceback" not in second.stderr
    assert "application 'web_app' stopped" in second.stderr  # what had started is stopped


def test_find_endpoint_looks_at_the_class_then_the_module():
    assert find_endpoint(endpoint_app.WebApp()) is endpoint_app.endpoint

    class Own(endpoint_app.WebApp):
        endpoint = endpoint_app.make_endpoint()

    assert find_endpoint(Own()) is Own.endpoint

    class Bad(endpoint_app.WebApp):
        endpoint = "not an endpoint"

    with pytest.raises(TypeError, match="not an Endpoint"):
        find_endpoint(Bad())


def test_services_for_an_application_without_endpoint_is_empty():
    from tests.cli.sample_app import Sample

    assert services_for(Sample()) == []
    [server] = services_for(endpoint_app.WebApp(), host="0.0.0.0", port=8080)
    assert isinstance(server, EndpointServer) and server.url == "http://0.0.0.0:8080"
    [server] = services_for(endpoint_app.WebApp(), port=8080, server="granian")
    assert isinstance(server, GranianEndpointServer) and server.url == "http://127.0.0.1:8080"


def test_cli_granian_refuses_an_option_it_cannot_honour_by_name(node):
    n = node("--server", "granian", "--keep-alive-timeout", "30")
    assert n.finish() == ExitCode.USAGE == 2, n.stderr
    assert "--server granian: granian has no idle keep-alive timeout" in n.stderr
