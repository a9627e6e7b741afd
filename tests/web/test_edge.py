"""The edge's head limits (``_edge.py``), driven in-process read by read: a head's size is
checked when it is complete and after each read that leaves it open, its header lines as
the parser reports them, and a body before a head never counts toward that head."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from beamish.web._edge import EdgeLimits, EdgeState, GuardedHttpToolsProtocol


class Wire:
    """A transport that keeps what the protocol writes."""

    def __init__(self) -> None:
        self.out = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.out += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 5555)}.get(
            name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def statuses(self) -> list[int]:
        return [int(status) for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", self.out)]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    text = b"%d headers, %d body bytes" % (len(scope["headers"]), len(body))
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"%d" % len(text))]})
    await send({"type": "http.response.body", "body": text})


def connection(**limits: Any) -> tuple[GuardedHttpToolsProtocol, Wire]:
    config = Config(app=app, log_config=None, access_log=False, lifespan="off")
    config.load()
    protocol = GuardedHttpToolsProtocol(config=config, server_state=ServerState(),
                                        app_state={}, edge=EdgeState(EdgeLimits(**limits)))
    wire = Wire()
    protocol.connection_made(wire)  # type: ignore[arg-type]
    return protocol, wire


async def feed(protocol: GuardedHttpToolsProtocol, *reads: bytes) -> None:
    for data in reads:
        protocol.data_received(data)
        for _ in range(5):
            await asyncio.sleep(0)


def head(path: bytes = b"/", headers: int = 1, extra: bytes = b"") -> bytes:
    lines = b"".join(b"X-%d: 1\r\n" % i for i in range(headers - 1))
    return b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n" + lines + extra + b"\r\n"


async def test_a_head_a_byte_at_a_time_is_served():
    protocol, wire = connection(max_header_bytes=200)
    request = head(headers=5)
    await feed(protocol, *(request[i:i + 1] for i in range(len(request))))
    assert wire.statuses() == [200] and wire.out.endswith(b"5 headers, 0 body bytes")


@pytest.mark.parametrize("split", [False, True])
async def test_a_head_past_the_byte_limit_is_refused_431(split):
    protocol, wire = connection(max_header_bytes=200)
    request = head(extra=b"X-Big: " + b"a" * 300 + b"\r\n")
    reads = [request[:20], request[20:]] if split else [request]
    await feed(protocol, *reads)
    assert wire.statuses() == [431] and b"header fields are too large" in wire.out


async def test_a_head_that_grows_past_the_limit_read_by_read_is_refused_before_it_ends():
    protocol, wire = connection(max_header_bytes=200)
    await feed(protocol, b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ", *(b"a" * 50,) * 5)
    assert wire.statuses() == [431]  # no end of the head was needed


@pytest.mark.parametrize("split", [False, True])
async def test_a_request_line_past_the_limit_is_refused_414(split):
    protocol, wire = connection(max_header_bytes=200)
    request = head(path=b"/" + b"a" * 300)
    reads = [request[:250], request[250:]] if split else [request]
    await feed(protocol, *reads)
    assert wire.statuses() == [414]


async def test_a_body_before_a_pipelined_head_does_not_count_toward_it():
    """A read of 2 KB of body and a whole small head is more than the 200-byte limit; the
    head alone is not."""
    protocol, wire = connection(max_header_bytes=200)
    body = b"b" * 2000
    post = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    await feed(protocol, post + head())
    assert wire.statuses() == [200, 200], wire.out
    assert b"2000 body bytes" in wire.out


async def test_header_lines_are_counted_as_the_parser_reports_them():
    protocol, wire = connection(max_headers=50)
    await feed(protocol, head(headers=50))
    assert wire.statuses() == [200]
    protocol, wire = connection(max_headers=50)
    await feed(protocol, head(headers=20_000))  # one read
    assert wire.statuses() == [431] and b"more than 50 header fields" in wire.out
    assert len(protocol.headers) == 50  # the parser stopped at the limit


async def test_each_pipelined_head_has_its_own_header_count():
    protocol, wire = connection(max_headers=30)
    await feed(protocol, head(headers=25) * 3)
    assert wire.statuses() == [200, 200, 200]
