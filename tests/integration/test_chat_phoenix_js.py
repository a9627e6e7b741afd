"""The stock ``phoenix`` npm client, under Node, against the chat demo run by ``beamish run``
(on uvicorn, and on granian with ``--server granian``).

``js/chat_client.cjs`` plays two members of a room and prints a JSON line per step, over
WebSockets and again over the client's LongPoll transport; this
test reads them, and in the middle kills the server (SIGKILL) and starts a new one on the
same port: the client must reconnect and rejoin by itself, and a push must then be answered.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.support import ROOT, Lines, require

SCRIPT = Path(__file__).parent / "js" / "chat_client.cjs"


def node() -> list[str]:
    """The command that runs node with a global WebSocket."""
    found = require(shutil.which("node"), "node is missing: install Node.js 20 or newer "
                    "(Debian: apt-get install nodejs npm)")
    require((ROOT / "node_modules" / "phoenix" / "package.json").is_file(),
            "the phoenix npm client is missing: run `npm ci` in the repository root "
            "(`make test` does)")
    # Node 20 has a global WebSocket behind a flag; Node 22 and later have it by default
    has_websocket = subprocess.run(
        [found, "-e", "process.exit(typeof WebSocket === 'function' ? 0 : 1)"], timeout=60,
    ).returncode == 0
    return [found, "--no-warnings"] + ([] if has_websocket else ["--experimental-websocket"])


@pytest.mark.parametrize("server_kind", ["uvicorn", "granian"])
@pytest.mark.parametrize("transport", ["websocket", "longpoll"])
def test_chat_phoenix_js_client_talks_sees_presence_and_rejoins_after_a_restart(
    chat_node, transport, server_kind
):
    command = node()
    server = chat_node(0, "--server", server_kind)
    url = server.url()
    client = subprocess.Popen(
        [*command, str(SCRIPT), url, transport],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )
    assert client.stdout is not None and client.stdin is not None
    out = Lines(client.stdout)

    def step(name: str, **fields: object) -> dict[str, object]:
        """The event ``name`` with these fields, already printed or still to come (the two
        members' events interleave in any order)."""

        def matches(line: str) -> dict[str, object] | None:
            try:
                event = json.loads(line)
            except ValueError:
                return None  # anything node prints besides the events
            if event.get("event") == "failed":
                raise AssertionError(f"the client failed: {event['why']}\n{out.text}")
            wanted = event.get("event") == name and all(
                event.get(k) == v for k, v in fields.items()
            )
            return event if wanted else None

        for line in out.seen:
            if event := matches(line):
                return event
        found: dict[str, object] = out.until(matches, f"{name} {fields or ''}")
        return found

    try:
        assert step("joined", who="ada")["history"] == []
        step("presence_diff", who="ada", joins=["bob"])
        step("online", who="ada", users=["ada", "bob"])
        reply = step("reply", who="ada", status="ok")
        broadcast = step("new_msg", who="bob", id=reply["id"])
        assert broadcast["body"] == "hello from node" and broadcast["user"] == "ada"
        step("presence_diff", who="ada", leaves=["bob"])

        step("ready_for_restart")
        port = int(url.rsplit(":", 1)[1])
        server.kill()
        step("disconnected")  # the client saw the server go
        assert chat_node(port, "--server", server_kind).url() == url  # a new node, on the same port
        client.stdin.write("restarted\n")
        client.stdin.flush()

        # by itself; a new node, which read the room's history back from the database
        assert step("rejoined", who="ada")["history"] == ["hello from node"]
        step("reply_after_restart", who="ada", status="ok")
        step("done")
        assert client.wait(timeout=60) == 0, out.text
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
        client.stdin.close()
        out.close()
        client.stdout.close()
