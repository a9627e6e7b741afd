"""A response's head and body leave in one write (``_joined.py``), and nothing is reordered
or held back: a streamed response's head goes out at the end of the loop's turn."""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse

from beamish.web import Endpoint, EndpointServer, Router, _edge, request_id
from beamish.web._joined import EndOfTurn, JoinedWrites, PyEndOfTurn, PyJoinedWrites


class Recorder:
    """A transport that keeps what is written to it."""

    def __init__(self, inner: Any = None) -> None:
        self.inner = inner
        self.writes: list[bytes] = []
        self.closing = False
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        if self.inner is not None:
            self.inner.write(data)

    def is_closing(self) -> bool:
        return self.inner.is_closing() if self.inner is not None else self.closing

    def close(self) -> None:
        self.closed = True
        if self.inner is not None:
            self.inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def turn() -> None:
    """Let the loop run the callbacks scheduled so far."""
    await asyncio.sleep(0)
    await asyncio.sleep(0)


@pytest.fixture(params=["c", "python"])
def impl(request):
    """(EndOfTurn, JoinedWrites): the C ones (``_cjoined.c``, which must be built) and the
    Python reference."""
    if request.param == "python":
        return PyEndOfTurn, PyJoinedWrites
    from beamish.web import _cjoined

    return _cjoined.EndOfTurn, _cjoined.JoinedWrites


def on_a_recorder(impl: tuple[Any, Any]) -> tuple[Recorder, Any]:
    """A ``Recorder`` and a JoinedWrites of ``impl`` writing to it, with an EndOfTurn of its
    own."""
    end_of_turn_type, joined_type = impl
    recorder = Recorder()
    return recorder, joined_type(recorder, asyncio.get_running_loop(), end_of_turn_type())


@pytest.mark.skipif(bool(os.environ.get("BEAMISH_PURE_PYTHON")),
                    reason="BEAMISH_PURE_PYTHON selects the Python classes")
def test_the_server_uses_the_c_classes_where_built():
    from beamish.web import _cjoined

    assert (EndOfTurn, JoinedWrites) == (_cjoined.EndOfTurn, _cjoined.JoinedWrites)


async def test_a_head_and_its_body_are_one_write(impl):
    recorder, joined = on_a_recorder(impl)
    joined.expect_head = True
    joined.write(b"HEAD")
    assert recorder.writes == []  # held
    joined.write(b"BODY")
    assert recorder.writes == [b"HEADBODY"]
    await turn()  # the end-of-turn callback finds nothing left
    joined.write(b"MORE")  # not a head: straight through
    assert recorder.writes == [b"HEADBODY", b"MORE"]


async def test_a_head_alone_goes_at_the_end_of_the_turn_and_order_is_kept(impl):
    recorder, joined = on_a_recorder(impl)
    joined.expect_head = True
    joined.write(b"HEAD")
    await turn()
    assert recorder.writes == [b"HEAD"]
    joined.write(b"CHUNK")
    assert recorder.writes == [b"HEAD", b"CHUNK"]
    joined.expect_head = True  # the next request on the connection
    joined.write(b"HEAD2")
    joined.flush()  # what the protocol does before it writes on the transport itself
    assert recorder.writes == [b"HEAD", b"CHUNK", b"HEAD2"]
    joined.expect_head = True
    joined.write(b"HEAD3")
    joined.close()  # a held head goes before the close
    assert recorder.writes[-1] == b"HEAD3" and recorder.closed


async def test_one_callback_a_turn_sends_every_connections_held_head(impl):
    EndOfTurn, JoinedWrites = impl
    loop = asyncio.get_running_loop()
    end_of_turn = EndOfTurn()
    recorders = [Recorder() for _ in range(3)]
    joined = [JoinedWrites(r, loop, end_of_turn) for r in recorders]  # type: ignore[arg-type]
    scheduled = []
    real_call_soon = loop.call_soon
    loop.call_soon = lambda *args, **kw: scheduled.append(args) or real_call_soon(*args, **kw)
    try:
        for j in joined:
            j.expect_head = True
            j.write(b"HEAD")
        joined[0].write(b"BODY")  # this one's body came in the same turn
    finally:
        del loop.call_soon
    assert len(scheduled) == 1
    await turn()
    assert [r.writes for r in recorders] == [[b"HEADBODY"], [b"HEAD"], [b"HEAD"]]


async def test_a_held_head_is_dropped_when_the_connection_is_gone(impl):
    recorder, joined = on_a_recorder(impl)
    joined.expect_head = True
    joined.write(b"HEAD")
    recorder.closing = True  # the client went away within the turn
    await turn()
    assert recorder.writes == []


router = Router()
release = asyncio.Event()


@router.get("/")
async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


@router.get("/stream")
async def stream(request: Request) -> StreamingResponse:
    async def chunks() -> Any:
        await release.wait()  # until the test has read the head
        yield b"late"

    return StreamingResponse(chunks())


@pytest.fixture
def recorded(monkeypatch):
    """Every connection's writes through its JoinedWrites, connection by connection."""
    seen: list[Recorder] = []

    class Recording(JoinedWrites):
        def __init__(self, transport: Any, loop: Any, end_of_turn: EndOfTurn) -> None:
            recorder = Recorder(transport)
            seen.append(recorder)
            super().__init__(recorder, loop, end_of_turn)  # type: ignore[arg-type]

    monkeypatch.setattr(_edge, "JoinedWrites", Recording)
    return seen


@contextlib.asynccontextmanager
async def serving():
    server = EndpointServer(Endpoint(router=router), port=0, graceful_timeout=2)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            yield client
    finally:
        await server.stop()


async def test_a_response_built_at_once_is_written_once(recorded):
    async with serving() as client:
        for _ in range(3):  # one keep-alive connection, three requests
            response = await client.get("/")
            assert (response.status_code, response.text) == (200, "hello")
            assert response.headers["x-request-id"]
    [connection] = recorded
    assert len(connection.writes) == 3
    for write in connection.writes:
        assert write.startswith(b"HTTP/1.1 200 OK\r\n") and write.endswith(b"\r\n\r\nhello")


async def test_a_streamed_responses_head_is_not_held_for_its_first_chunk(recorded):
    release.clear()
    async with serving() as client, client.stream("GET", "/stream") as response:
        assert response.status_code == 200  # the head came while no chunk was ready
        release.set()
        assert await response.aread() == b"late"
    [connection] = recorded
    assert connection.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"late" not in connection.writes[0]


@router.post("/echo")
async def echo(request: Request) -> PlainTextResponse:
    return PlainTextResponse((await request.body()).decode())


async def test_a_100_continue_goes_before_the_body_is_sent_and_pipelining_keeps_order():
    server = EndpointServer(Endpoint(router=router), port=0, graceful_timeout=2)
    await server.start()
    try:
        host, port = server.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                     b"Content-Length: 5\r\n\r\n")
        await writer.drain()
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"  # not held back for the body
        writer.write(b"hello")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200 OK") and b"content-length: 5" in head
        assert await reader.readexactly(5) == b"hello"
        # two requests in one write: two answers, in order
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nPOST /echo HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: 3\r\n\r\nabc")
        await writer.drain()
        first = await asyncio.wait_for(reader.readuntil(b"hello"), 5)
        assert first.startswith(b"HTTP/1.1 200 OK")
        second = await asyncio.wait_for(reader.readuntil(b"abc"), 5)
        assert second.startswith(b"HTTP/1.1 200 OK") and b"content-length: 3" in second
        writer.close()
    finally:
        await server.stop()


async def test_anything_else_is_the_transports_and_any_buffer_joins(impl):
    recorder, joined = on_a_recorder(impl)
    recorder.peer = ("127.0.0.1", 5555)  # type: ignore[attr-defined]
    assert joined.peer == ("127.0.0.1", 5555)  # asked of the transport
    with pytest.raises(AttributeError):
        joined.nothing_by_this_name  # noqa: B018
    joined.expect_head = True
    joined.write(b"HEAD")
    joined.write(memoryview(b"BODY"))  # a cycle may write any bytes-like body
    assert recorder.writes == [b"HEADBODY"]
    assert joined.is_closing() is False


async def test_a_head_line_goes_into_the_next_final_head_only(impl):
    recorder, joined = on_a_recorder(impl)
    joined.expect_head = True
    joined.head_line(b"x-request-id: abc\r\n")
    joined.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # an interim answer: not this one
    joined.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    joined.write(b"ok")
    joined.write(b"HTTP/1.1 200 OK\r\n\r\n")  # a body that looks like a head: the line is used
    assert b"".join(recorder.writes) == (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-request-id: abc\r\n\r\nok"
        b"HTTP/1.1 200 OK\r\n\r\n"
    )


@router.get("/id")
async def own_id(request: Request) -> PlainTextResponse:
    return PlainTextResponse(request_id(request) or "")


async def test_the_request_id_line_is_the_handlers_request_id(recorded):
    async with serving() as client:
        response = await client.get("/id")
        assert response.headers.get_list("x-request-id") == [response.text]
        sent = "client-chosen-id-1234"
        response = await client.get("/id", headers={"x-request-id": sent})
        assert response.headers.get_list("x-request-id") == [sent] and response.text == sent
        missing = await client.get("/nowhere")  # the router's 404: the id all the same
        assert missing.status_code == 404 and missing.headers["x-request-id"]
    [connection] = recorded
    assert len(connection.writes) == 3  # each response still one write


def test_a_request_id_header_that_is_no_header_name_is_refused():
    with pytest.raises(ValueError, match="must be an HTTP header name"):
        Endpoint(router=router, request_id_header="x request id")
    with pytest.raises(ValueError, match="must be an HTTP header name"):
        Endpoint(router=router, request_id_header="x-id\r\nevil: 1")
