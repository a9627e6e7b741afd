import pytest

from tests.integration.support import ChatNode


@pytest.fixture(autouse=True)
def chat_database(tmp_path, monkeypatch):
    """Each test's chat keeps its messages in a database of its own (every node the test
    starts, in process or not, reads CHAT_DATABASE), never in the repository's var/."""
    path = tmp_path / "chat.sqlite3"
    monkeypatch.setenv("CHAT_DATABASE", str(path))
    return path


@pytest.fixture
def chat_node():
    """``chat_node(port=0, *options)`` starts a chat server; every one is stopped after the test."""
    nodes: list[ChatNode] = []

    def start(port: int = 0, *args: str) -> ChatNode:
        nodes.append(ChatNode(port, *args))
        return nodes[-1]

    yield start
    for node in nodes:
        node.close()
