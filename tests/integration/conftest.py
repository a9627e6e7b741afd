import pytest

from tests.integration.support import ChatNode


@pytest.fixture
def chat_node():
    """``chat_node(port=0)`` starts a chat server; every one is stopped after the test."""
    nodes: list[ChatNode] = []

    def start(port: int = 0) -> ChatNode:
        nodes.append(ChatNode(port))
        return nodes[-1]

    yield start
    for node in nodes:
        node.close()
