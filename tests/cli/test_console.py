"""`beamish remote` and `beamish upgrade` against a real `beamish run` node, driven as a
person would: the console in a pseudo-terminal, keys typed, the screen read."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import subprocess
import sys
import termios
import textwrap
import time
from pathlib import Path

import pytest

BEAMISH = [sys.executable, "-m", "beamish"]

COUNTER = """
    from beamish import GenServer, Ok, Reply

    class Counter(GenServer):
        vsn = 1

        def init(self, n):
            return Ok(n)

        def handle_call(self, request, from_, n):
            if request == "inc":
                return Reply(n + 1, n + 1)
            return Reply(("v1", n), n)
"""

APP = """
    import functools

    from beamish import Application, Supervisor

    from shop.counter import Counter


    class Shop(Application):
        async def start(self, start_type, args):
            return await Supervisor.start_link(
                [{"id": "counter",
                  "start": (functools.partial(Counter.start_link, name="counter"), (0,))}],
                strategy="one_for_one", name="shop_sup")
"""


@pytest.fixture
def node(tmp_path: Path):
    """A `beamish run shop.app:Shop` node with its console in a directory of the test's."""
    package = tmp_path / "shop"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "counter.py").write_text(textwrap.dedent(COUNTER))
    (package / "app.py").write_text(textwrap.dedent(APP))
    consoles = tmp_path / "consoles"
    env = {**os.environ, "BEAMISH_CONSOLE_DIR": str(consoles), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("BEAMISH_COOKIE", None)
    log = tmp_path / "node.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [*BEAMISH, "run", "shop.app:Shop", "--app-dir", str(tmp_path), "--name",
             "shop@localhost"], env=env, stdout=output, stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while not (consoles / "shop.sock").exists():
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "the node's console never opened"
        time.sleep(0.05)
    try:
        yield tmp_path, env, process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _own_terminal() -> None:
    """In the child: a session of its own whose controlling terminal is the pty (so that
    Ctrl-C typed there is a SIGINT, as in a person's terminal)."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """A program in a pseudo-terminal: type lines, wait for text on the screen."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.process = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env,
                                        close_fds=True, preexec_fn=_own_terminal)
        os.close(slave)
        self.screen = ""
        self.pos = 0  # where the next expect starts looking

    def expect(self, pattern: str, timeout: float = 15) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            found = re.compile(pattern).search(self.screen, self.pos)
            if found:
                self.pos = found.end()
                return found
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"never saw {pattern!r}; the screen:\n{self.screen}")
            ready, _, _ = select.select([self.master], [], [], min(left, 0.2))
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:
                    chunk = b""
                if not chunk and self.process.poll() is not None:
                    raise AssertionError(f"the program ended before {pattern!r}:\n{self.screen}")
                self.screen += chunk.decode(errors="replace").replace("\r\n", "\n")

    def type(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\n")

    def ask(self, line: str, answer: str, timeout: float = 15) -> re.Match[str]:
        """Type a line and wait for the answer, then for the next prompt."""
        self.pos = len(self.screen)
        self.type(line)
        found = self.expect(answer, timeout)
        self.expect(r">>> $")
        return found

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=5)
        os.close(self.master)


def test_the_remote_console_lists_calls_and_restarts_as_a_person_would(node):
    tmp_path, env, process = node
    sock = tmp_path / "consoles" / "shop.sock"
    assert oct(sock.stat().st_mode & 0o777) == "0o600"
    assert oct((tmp_path / "consoles").stat().st_mode & 0o777) == "0o700"
    term = Terminal([*BEAMISH, "remote", "shop"], env)
    try:
        term.expect(r"beamish console on node shop .*\n>>> $")
        count = int(term.ask("len(processes())", r"\n(\d+)\n").group(1))
        assert count >= 3  # the controller, the supervisor, the counter at least
        term.ask('await GenServer.call("counter", "inc")', r"\n1\n")
        term.ask('await GenServer.call("counter", "inc")', r"\n2\n")
        term.ask('print("from", "the node")', r"\nfrom the node\n")
        term.ask("[child] = await which_children('shop_sup')", r"")
        term.ask("old = child.pid; old", r"\n<\d+\.\d+\.\d+>\n")
        term.ask('exit(old, "kill")', r"")
        term.ask("await sleep(0.2)", r"")
        term.ask("[c.pid != old for c in await which_children('shop_sup')]", r"\n\[True\]\n")
        term.ask('await GenServer.call("counter", "get")', r"\n\('v1', 0\)\n")  # restarted
        term.ask("1 / 0", r"ZeroDivisionError: division by zero\n")
        term.ask("for i in range(2):\n    await sleep(0)\n    print('tick', i)\n",
                 r"tick 0\ntick 1\n")
        term.ask("raise SystemExit(3)", r"SystemExit: 3\n")  # ends the input, not the node
        term.type("await sleep(30)")
        time.sleep(0.3)
        os.write(term.master, b"\x03")  # Ctrl-C: the node cancels the input
        term.expect(r"KeyboardInterrupt")
        term.expect(r">>> $")
        os.write(term.master, b"\x04")  # Ctrl-D: the console closes
        term.expect(r"console closed; the node runs on")
        assert term.process.wait(timeout=10) == 0
    finally:
        term.close()
    assert process.poll() is None  # the node runs on
    again = Terminal([*BEAMISH, "remote"], env)  # the only node here: no name needed
    try:
        again.expect(r">>> $")
        again.ask('await GenServer.call("counter", "get")', r"\('v1', 0\)")
        again.process.kill()  # a console that crashes leaves the node as it was
    finally:
        again.close()
    time.sleep(0.2)
    assert process.poll() is None


def test_beamish_upgrade_swaps_changed_code_into_the_running_node(node):
    tmp_path, env, process = node
    term = Terminal([*BEAMISH, "remote", "shop"], env)
    try:
        term.expect(r">>> $")
        term.ask('await GenServer.call("counter", "inc")', r"\n1\n")
        counter = tmp_path / "shop" / "counter.py"
        counter.write_text(counter.read_text().replace("vsn = 1", "vsn = 2").replace(
            '("v1", n), n)', '("v2", n["count"]), n)').replace(
            "return Reply(n + 1, n + 1)", 'return Reply(n["count"] + 1, {"count": n["count"] + 1})'
        ) + textwrap.indent(textwrap.dedent("""
            def code_change(self, old_vsn, n, extra):
                return {"count": n, "from": old_vsn, "extra": extra}
        """), "    "))
        done = subprocess.run([*BEAMISH, "upgrade", "--extra", '{"by": "test"}'], env=env,
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        assert "upgraded shop.counter: 1 classes" in done.stdout
        assert "1 processes changed" in done.stdout
        term.ask('await get_state("counter")',
                 r"\{'count': 1, 'from': 1, 'extra': \{'by': 'test'\}\}")
        term.ask('await GenServer.call("counter", "inc")', r"\n2\n")
        term.ask('await GenServer.call("counter", "get")', r"\('v2', 2\)")

        counter.write_text(counter.read_text() + "\ndef broken(:\n")
        done = subprocess.run([*BEAMISH, "upgrade", "-n", "shop"], env=env,
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 1
        assert "syntax error" in done.stderr and "nothing was changed" not in done.stdout
        term.ask('await GenServer.call("counter", "get")', r"\('v2', 2\)")  # unchanged
    finally:
        term.close()


def test_a_client_without_the_secret_is_refused(node, tmp_path):
    _, env, process = node
    wrong = {**env, "BEAMISH_COOKIE": "not the secret of this node"}
    done = subprocess.run([*BEAMISH, "upgrade", "-n", "shop"], env=wrong,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert "refused the console: wrong secret for this node" in done.stderr
    missing = subprocess.run([*BEAMISH, "remote", "nobody"], env=env, capture_output=True,
                             text=True, timeout=30)
    assert missing.returncode == 1 and "cannot open the console of 'nobody'" in missing.stderr
    assert process.poll() is None
