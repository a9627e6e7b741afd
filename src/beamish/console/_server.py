"""The node's console: a Unix socket that ``beamish remote`` and ``beamish upgrade`` open.

``ConsoleServer`` is a service of ``beamish run`` (started once the applications are up,
stopped before them). It listens on ``_paths.socket_path(name)`` (mode 0600, in a
directory of mode 0700), refuses a peer of another user (``SO_PEERCRED``), then runs the
handshake of ``_wire`` with the node's secret. Past it, the connection is one beamish
process (``console <n>``) that takes requests, one at a time:

- ``{"op": "eval", "source": text}``: run a console input (``_session``); the answer has
  ``output`` and ``result`` or ``error``. ``{"op": "interrupt"}`` sent meanwhile cancels
  an input that awaits (one that computes without awaiting holds the node's loop, as any
  process would: the guide says so).
- ``{"op": "upgrade", "modules": [...], "plan": name, "extra": json}``: ``beamish.upgrade``
  (no modules and no plan: the modules changed on disk under the app's directory); the
  answer has ``ok`` and ``report`` or ``error``.

A session that ends (the client closes, crashes, or sends garbage) ends its process only;
at most ``max_sessions`` (default 8) are open at once, and one more is told so and closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import struct
from pathlib import Path
from typing import Any

from beamish._runtime.api import as_process
from beamish.console._paths import console_dir, cookie_path, safe_name, socket_path
from beamish.console._session import Session
from beamish.console._wire import MAX_LINE, WireError, challenge, decode, encode, verify
from beamish.upgrade import UpgradeError, changed_modules, upgrade, watch_from

__all__ = ["ConsoleServer"]

_log = logging.getLogger("beamish.console")


class ConsoleServer:
    """The console service of one node (see the module)."""

    name = "console"

    def __init__(self, node: str, *, app_dir: str | None = None,
                 secret: bytes | None = None, max_sessions: int = 8) -> None:
        self.node = safe_name(node)
        self.app_dir = os.path.abspath(app_dir) if app_dir else None
        self.secret = secret
        self.max_sessions = max_sessions
        self.path: Path | None = None
        self.cookie: Path | None = None
        self.server: asyncio.AbstractServer | None = None
        self.sessions: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        if self.app_dir is not None:
            watch_from(self.app_dir)  # what runs now, for `beamish upgrade` with no modules
        console_dir(create=True)
        path = socket_path(self.node)
        if path.exists():
            if await _answers(path):
                path = socket_path(f"{self.node}-{os.getpid()}")
                _log.warning("a node already has the console %s; this one is %s",
                             self.node, path.stem)
            else:
                path.unlink()  # left by a node that was killed
        if self.secret is None:
            self.secret = secrets.token_urlsafe(32).encode()
            cookie = cookie_path(path.stem)
            descriptor = os.open(cookie, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "wb") as file:
                file.write(self.secret)
            self.cookie = cookie
        self.server = await asyncio.start_unix_server(self._serve, path=str(path),
                                                      limit=MAX_LINE + 1)
        os.chmod(path, 0o600)
        self.path = path
        _log.info("console on %s (beamish remote %s)", path, path.stem)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self.sessions):
            task.cancel()
        if self.sessions:
            await asyncio.gather(*self.sessions, return_exceptions=True)
        for made in (self.path, self.cookie):
            if made is not None:
                with contextlib.suppress(OSError):
                    made.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                     ) -> None:
        task = asyncio.current_task()
        assert task is not None
        try:
            if not _same_user(writer):
                return  # the socket's mode already forbids it: a root client, say
            if len(self.sessions) >= self.max_sessions:
                writer.write(encode({"ok": False, "error": f"the node has {self.max_sessions}"
                                     " consoles open, its limit; close one"}))
                return
            self.sessions.add(task)
            if not await self._handshake(reader, writer):
                return
            async with as_process():
                await _Connection(reader, writer, self.app_dir).run()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:
            _log.exception("a console session failed; the node goes on")
        finally:
            self.sessions.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _handshake(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> bool:
        nonce = challenge()
        writer.write(encode({"challenge": nonce}))
        try:
            answer = decode(await asyncio.wait_for(reader.readline(), 10))
        except (WireError, TimeoutError, ValueError) as exc:
            writer.write(encode({"ok": False, "error": f"bad handshake: {exc}"}))
            return False
        assert self.secret is not None
        if not verify(self.secret, nonce, answer.get("proof")):
            _log.warning("a console client failed the handshake (wrong secret)")
            writer.write(encode({"ok": False, "error": "wrong secret for this node"}))
            return False
        writer.write(encode({"ok": True, "node": self.node, "pid": os.getpid()}))
        return True


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 app_dir: str | None) -> None:
        self.reader = reader
        self.writer = writer
        self.app_dir = app_dir
        self.session = Session(app_dir)
        self.running: asyncio.Task[dict[str, Any]] | None = None

    async def run(self) -> None:
        while True:
            line = await self._line()
            if line is None:
                return
            try:
                request = decode(line)
            except WireError as exc:
                self._send({"error": str(exc)})
                return
            op = request.get("op")
            if op == "eval" and type(request.get("source")) is str:
                await self._eval(request["source"])
            elif op == "upgrade":
                self._send(await self._upgrade(request))
            elif op == "interrupt":
                continue  # nothing runs: nothing to interrupt
            else:
                self._send({"error": f"unknown console request {str(op)[:40]!r}: 'eval', "
                                     "'interrupt' or 'upgrade'"})

    async def _line(self) -> bytes | None:
        try:
            line = await self.reader.readline()
        except ValueError:  # longer than the limit
            self._send({"error": f"a console line is at most {MAX_LINE} bytes"})
            return None
        return line or None

    async def _eval(self, source: str) -> None:
        running = asyncio.ensure_future(self.session.run(source))
        reading = asyncio.ensure_future(self._line())
        try:
            while True:
                await asyncio.wait({running, reading}, return_when=asyncio.FIRST_COMPLETED)
                if running.done():
                    break
                line = reading.result()
                if line is None:  # the client left: the input is cancelled
                    running.cancel()
                    await asyncio.gather(running, return_exceptions=True)
                    return
                with contextlib.suppress(WireError):
                    if decode(line).get("op") == "interrupt":
                        running.cancel()
                        await asyncio.gather(running, return_exceptions=True)
                        self._send({"output": "", "error": "KeyboardInterrupt\n"})
                        return
                reading = asyncio.ensure_future(self._line())
            self._send(running.result())
        finally:
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)

    async def _upgrade(self, request: dict[str, Any]) -> dict[str, Any]:
        modules, plan = request.get("modules") or None, request.get("plan") or None
        try:
            if modules is None and plan is None:
                if self.app_dir is None:
                    return {"ok": False, "error": "name the modules to upgrade (this node "
                                                  "has no app directory to look in)"}
                modules = changed_modules(self.app_dir)
                if not modules:
                    return {"ok": True, "report": "nothing changed on disk: no upgrade"}
            report = await upgrade(modules, plan=plan, extra=request.get("extra"))
        except (UpgradeError, TypeError) as exc:
            return {"ok": False, "error": str(exc)}
        return {"ok": True, "report": str(report)}

    def _send(self, message: dict[str, Any]) -> None:
        self.writer.write(encode(message))


def _same_user(writer: asyncio.StreamWriter) -> bool:
    sock = writer.get_extra_info("socket")
    if sock is None or not hasattr(socket, "SO_PEERCRED"):
        return True
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return False
    _pid, uid, _gid = struct.unpack("3i", creds)
    return bool(uid == os.getuid())


async def _answers(path: Path) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), 1)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True

