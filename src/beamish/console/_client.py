"""The client side: ``beamish remote`` (a REPL inside a node) and ``beamish upgrade``.

The REPL reads as Python's own does (``code.InteractiveConsole``: a block goes on until it
is complete, readline history when the terminal has it); each complete input goes to the
node, which runs it and answers with what it printed and its value or its traceback.
Ctrl-C while an input runs asks the node to cancel it; Ctrl-D (or ``quit()``) leaves the
console, never the node.
"""

from __future__ import annotations

import ast
import code
import contextlib
import os
import socket
import sys
from pathlib import Path
from typing import Any

from beamish.console._paths import cookie_path, known_consoles, socket_path
from beamish.console._wire import MAX_LINE, decode, encode, proof

__all__ = ["ConsoleClient", "ConsoleError", "find_console", "repl"]


class ConsoleError(Exception):
    """The console could not be reached or opened (the message says why)."""


def find_console(node: str | None) -> str:
    """The console name to open: ``node``, or the only one there is."""
    if node:
        return node
    found = known_consoles()
    if len(found) == 1:
        return found[0]
    if not found:
        raise ConsoleError("no running node has a console here (is the node running as "
                           "this user, with `beamish run`?)")
    raise ConsoleError(f"several nodes have consoles here; name one: {', '.join(found)}")


def secret_for(name: str) -> bytes:
    cookie = os.environ.get("BEAMISH_COOKIE")
    if cookie:
        return cookie.encode()
    try:
        return cookie_path(name).read_bytes()
    except OSError:
        raise ConsoleError(
            f"no secret for node {name!r}: its cookie file {cookie_path(name)} cannot be "
            "read, and BEAMISH_COOKIE is not set (a node run with BEAMISH_COOKIE needs it "
            "here too)"
        ) from None


class ConsoleClient:
    """One open console connection (synchronous: the REPL and the CLI are)."""

    def __init__(self, name: str, *, timeout: float | None = 10.0) -> None:
        path: Path = socket_path(name)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(str(path))
        except OSError as exc:
            self.sock.close()
            raise ConsoleError(f"cannot open the console of {name!r} at {path}: "
                               f"{exc.strerror or exc}") from None
        self.file = self.sock.makefile("rb")
        hello = self.receive()
        if "challenge" not in hello:
            raise ConsoleError(f"node {name!r} refused the console: "
                               f"{hello.get('error', hello)}")
        self.send({"proof": proof(secret_for(name), hello["challenge"])})
        welcome = self.receive()
        if not welcome.get("ok"):
            raise ConsoleError(f"node {name!r} refused the console: {welcome.get('error')}")
        self.node = welcome.get("node", name)
        self.pid = welcome.get("pid")
        self.sock.settimeout(None)

    def send(self, message: dict[str, Any]) -> None:
        self.sock.sendall(encode(message))

    def receive(self) -> dict[str, Any]:
        line = self.file.readline(MAX_LINE + 1)
        if not line:
            raise ConsoleError("the node closed the console")
        return decode(line)

    def run(self, source: str) -> dict[str, Any]:
        """Run one input in the node; Ctrl-C meanwhile asks the node to cancel it."""
        self.send({"op": "eval", "source": source})
        while True:
            try:
                return self.receive()
            except KeyboardInterrupt:
                self.send({"op": "interrupt"})

    def upgrade(self, modules: list[str], plan: str | None, extra: Any) -> dict[str, Any]:
        self.send({"op": "upgrade", "modules": modules, "plan": plan, "extra": extra})
        return self.receive()

    def close(self) -> None:
        self.file.close()
        self.sock.close()


class _Console(code.InteractiveConsole):
    def __init__(self, client: ConsoleClient) -> None:
        super().__init__(filename="<console>")
        self.client = client
        # a block with a top-level await is complete Python here, as in the node
        self.compile.compiler.flags |= ast.PyCF_ALLOW_TOP_LEVEL_AWAIT

    def runsource(self, source: str, filename: str = "<input>", symbol: str = "single"
                  ) -> bool:
        try:
            if self.compile(source, filename, symbol) is None:
                return True  # more lines to come
        except (OverflowError, SyntaxError, ValueError):
            pass  # complete but wrong: the node says what is wrong, with its own message
        if source.strip() in ("quit()", "exit()"):
            raise SystemExit(0)
        answer = self.client.run(source)
        sys.stdout.write(answer.get("output", ""))
        if answer.get("error"):
            sys.stderr.write(answer["error"])
        elif answer.get("result") is not None:
            sys.stdout.write(answer["result"] + "\n")
        sys.stdout.flush()
        return False


def repl(name: str) -> int:
    """``beamish remote``: the REPL until Ctrl-D; the exit code."""
    client = ConsoleClient(name)
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401  (history and editing, where the terminal has them)
    banner = (f"beamish console on node {client.node} (pid {client.pid}). Top-level await "
              "works; processes(), process_info(pid), GenServer.call, get_state, "
              "which_children are at hand. Ctrl-D leaves (the node runs on).")
    try:
        _Console(client).interact(banner=banner, exitmsg="console closed; the node runs on")
    except SystemExit:
        print("console closed; the node runs on")
    except ConsoleError as exc:
        print(f"\n{exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0
