"""`beamish run`'s edge limits, against a real node over real sockets.

Slow heads (slowloris), more connections than the limit, oversized heads and too many
headers: each is refused with its status while the node goes on serving everyone else, and
what a refused client sent does not stay in the server's memory.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.web.test_serve_cli import Node

WAIT = 30  # seconds; only reached if something is broken
MiB = 1 << 20


@pytest.fixture
def node():
    nodes: list[Node] = []

    def start(*args: str) -> Node:
        nodes.append(Node(*args))
        return nodes[-1]

    yield start
    for n in nodes:
        n.close()


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


@pytest.fixture
def connect():
    """``connect(url)``: a plain socket to the node, closed at the end of the test."""
    opened: list[socket.socket] = []

    def open_one(url: str) -> socket.socket:
        sock = socket.create_connection(address(url), timeout=WAIT)
        opened.append(sock)
        return sock

    yield open_one
    for sock in opened:
        sock.close()


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def test_run_closes_slow_heads_after_the_header_timeout(node, connect):
    n = node("--header-timeout", "0.5")
    url = n.url()
    silent = [connect(url) for _ in range(5)]  # connect and send nothing
    trickling = [connect(url) for _ in range(5)]  # start a head and never finish it
    for sock in trickling:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: slow.example\r\nX-Wait: ")
    with httpx.Client(base_url=url, timeout=WAIT) as client:
        assert client.get("/").text == "hello"  # served meanwhile
        for sock in trickling:  # the server closes them: recv ends instead of timing out
            answer = read_all(sock)
            assert status_of(answer) == 408, answer
            assert b"connection: close" in answer
        for sock in silent:
            assert read_all(sock) == b""
        # a keep-alive connection between requests is the keep-alive timeout's, not this one's
        assert client.get("/").text == "hello"
    assert "a request's head did not arrive within 0.5s; answered 408" in n.stderr_so_far()


def test_run_times_out_a_slow_head_on_a_keep_alive_connection(node, connect):
    n = node("--header-timeout", "0.5", "--keep-alive-timeout", "30")
    sock = connect(n.url())
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # a whole first request
    first = b""
    while not first.endswith(b"hello"):
        first += sock.recv(65536)
    assert status_of(first) == 200
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Wait: ")  # the second never ends
    answer = read_all(sock)
    assert status_of(answer) == 408, answer


def test_run_a_slow_pipelined_head_waits_for_the_answer_before_it(node, connect):
    """No refusal is written into the middle of the answer to the request before it."""
    n = node("--header-timeout", "0.2")
    sock = connect(n.url())
    # a long request (3 s, far past the head timeout), and a second head that never ends
    sock.sendall(b"GET /sleep/3 HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nX-Wait: ")
    answer = read_all(sock)  # the connection ends after the first answer
    assert status_of(answer) == 200 and answer.endswith(b"slept"), answer
    assert b"408" not in answer


def test_run_answers_503_past_the_connection_limit_and_serves_the_others(node, connect):
    n = node("--max-connections", "8")
    url = n.url()
    with httpx.Client(base_url=url, timeout=WAIT) as client:
        assert client.get("/").status_code == 200  # one keep-alive connection, open
        held = [connect(url) for _ in range(7)]  # with it, the limit
        extra = connect(url)
        extra.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = read_all(extra)
        assert status_of(answer) == 503, answer
        assert b"retry-after: 1" in answer and b"too many connections" in answer
        assert client.get("/").text == "hello"  # the connections it holds are served
        for sock in held[:2]:
            sock.close()
        deadline = time.monotonic() + WAIT  # the server sees the closes when it reads them
        while True:
            with httpx.Client(base_url=url, timeout=WAIT) as fresh:
                status = fresh.get("/").status_code
            if status == 200 or time.monotonic() > deadline:
                break
        assert status == 200
    assert "8 connections were open (the connection limit); each was answered 503" \
        in n.stderr_so_far()


def test_run_refuses_huge_heads_and_keeps_its_memory(node, connect):
    n = node()
    url = n.url()
    with httpx.Client(base_url=url, timeout=WAIT) as client:
        for _ in range(20):
            client.get("/")
    peak_before = memory_kib(n.proc.pid, "VmHWM")
    answers: list[bytes] = []
    header = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (20 * MiB) + b"\r\n\r\n"

    def send(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):  # refused and closed while we sent: expected
            sock.sendall(header)

    def one() -> None:
        sock = connect(url)
        sender = threading.Thread(target=send, args=(sock,), daemon=True)
        sender.start()
        answers.append(sock.recv(200))  # the answer comes as soon as the limit is crossed
        sender.join(WAIT)

    clients = [threading.Thread(target=one) for _ in range(10)]  # ten at once
    for t in clients:
        t.start()
    for t in clients:
        t.join(WAIT)
    assert len(answers) == 10
    assert {status_of(a) for a in answers} == {431}, answers
    grown = memory_kib(n.proc.pid, "VmHWM") - peak_before
    assert grown < 40 * 1024, f"the server's peak memory grew by {grown} KiB"  # 200 MiB sent
    with httpx.Client(base_url=url, timeout=WAIT) as client:
        assert client.get("/").text == "hello"


def test_run_refuses_too_many_headers_and_a_huge_request_line(node, connect):
    n = node("--max-headers", "50")
    url = n.url()
    with httpx.Client(base_url=url, timeout=WAIT) as client:
        fine = client.get("/", headers={f"x-h{i}": "1" for i in range(40)})
        assert fine.status_code == 200
    many = connect(url)
    many.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n"
                 + b"".join(b"X-%d: 1\r\n" % i for i in range(20_000)) + b"\r\n")
    answer = read_all(many)
    assert status_of(answer) == 431 and b"more than 50 header fields" in answer
    long_line = connect(url)
    long_line.sendall(b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(read_all(long_line)) == 414
    with httpx.Client(base_url=url, timeout=WAIT) as client:
        assert client.get("/").text == "hello"
