"""The chat demo on two nodes of a cluster (two `beamish run` processes joined over NATS, and
again over Redis): members connected to different nodes see each other's messages and
presence.

Each node keeps its own SQLite history here (a cluster sharing history would use
PostgreSQL); what crosses the nodes is live: channel broadcasts and Presence.
"""

from __future__ import annotations

import socket
import uuid

import pytest

from tests.integration.phx import PhxClient
from tests.integration.support import SERVING, ChatNode, require

SECRET = "chat-cluster-test-secret-0123456789"

pytestmark = pytest.mark.beamish(node="tester@test")


ENGINES = {"nats": ("nats://127.0.0.1:4222", 4222), "redis": ("redis://127.0.0.1:6379", 6379)}


def running(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(params=sorted(ENGINES))
def two_chat_nodes(request, tmp_path):
    url, port = ENGINES[request.param]
    require(running(port), f"{request.param} is not running at 127.0.0.1:{port} "
            "(`.ci/run` starts it)")
    cluster = f"chat{uuid.uuid4().hex[:10]}"
    nodes = [
        ChatNode(0, "--name", f"chat-{n}@test", "--cluster", url,
                 "--cluster-name", cluster, "--tick-time", "5",
                 env={"BEAMISH_COOKIE": SECRET, "CHAT_DATABASE": str(tmp_path / f"{n}.db")})
        for n in ("a", "b")
    ]
    try:
        for node in nodes:
            node.url()  # serving (it reads the log up to that line)
            if not any("is up" in line for line in node.log.seen):
                node.log.until(lambda line: "is up" in line, "the other node to connect")
        yield nodes
    finally:
        for node in nodes:
            node.close()


async def test_members_on_two_nodes_chat_and_see_each_other(two_chat_nodes):
    a, b = two_chat_nodes
    topic = "room:lobby"
    url_a, url_b = (SERVING.search(line).group(1) for line in (
        next(line for line in node.log.seen if SERVING.search(line)) for node in (a, b)
    ))
    async with PhxClient.connect(url_a) as ada, PhxClient.connect(url_b) as bob:
        assert (await ada.join(topic, {"username": "ada"}))[0] == "ok"
        assert (await bob.join(topic, {"username": "bob"}))[0] == "ok"
        # presence across the nodes: each sees the other arrive
        await ada.receive(topic, "presence_diff", lambda diff: "bob" in diff["joins"])
        status, reply = await ada.push(topic, "new_msg", {"body": "hello from node a"})
        assert status == "ok"
        message = await bob.receive(topic, "new_msg", lambda m: m["id"] == reply["id"])
        assert message["body"] == "hello from node a" and message["user"] == "ada"
        status, reply = await bob.push(topic, "new_msg", {"body": "and from b"})
        assert status == "ok"
        await ada.receive(topic, "new_msg", lambda m: m["body"] == "and from b")
    # bob's node stops cleanly: nothing is lost on a, which keeps serving
    assert b.stop() == 0
    async with PhxClient.connect(url_a) as cleo:
        assert (await cleo.join(topic, {"username": "cleo"}))[0] == "ok"
