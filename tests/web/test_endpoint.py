"""The endpoint in process (through the ASGI client): request processes, crashes, deadlines,
the lifespan, and the WebSocket protections."""

from __future__ import annotations

import asyncio
import logging

import pytest

import beamish
from beamish import ANY, Down
from beamish.testing import assert_receive
from beamish.testing._asgi_client import ASGIClient, WebSocketRejected
from beamish.web import Endpoint, Router
from tests.web.endpoint_app import WATCHER, make_endpoint


def watch():
    """Make the test process receive what the handlers ``tell``."""
    beamish.register(WATCHER)


async def test_endpoint_handles_each_request_in_a_process_of_its_own():
    async with ASGIClient(make_endpoint()) as client:
        pids = [(await client.get("/pid")).text for _ in range(3)]
        assert len(set(pids)) == 3
        assert all(p.startswith("<0.") for p in pids)
        assert repr(beamish.self()) not in pids
        for p in pids:  # each has exited
            assert not any(repr(q) == p for q in beamish.processes())


async def test_endpoint_request_processes_are_gone_after_the_response():
    async with ASGIClient(make_endpoint()) as client:
        before = set(beamish.processes())
        await asyncio.gather(*(client.get("/") for _ in range(20)))
        assert set(beamish.processes()) == before


async def test_endpoint_runs_sync_handlers_in_the_request_process():
    async with ASGIClient(make_endpoint()) as client:
        response = await client.get("/sync")
        assert response.status_code == 200
        assert response.text.startswith("sync in <0.")


async def test_endpoint_crash_gives_500_with_request_id_and_one_crash_report(caplog):
    caplog.set_level(logging.DEBUG)
    async with ASGIClient(make_endpoint()) as client:
        response = await client.get("/crash")
    assert response.status_code == 500
    rid = response.headers["x-request-id"]
    assert f"request id: {rid}" in response.text
    reports = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(reports) == 1, [r.getMessage() for r in reports]
    report = reports[0]
    assert report.name == "beamish.web"
    assert rid in report.getMessage()
    assert "GET /crash" in report.getMessage()
    assert "ValueError: the handler broke" in report.getMessage()
    assert report.exc_info is not None and report.request_id == rid


async def test_endpoint_crash_report_clips_the_client_path(caplog):
    caplog.set_level(logging.ERROR)
    long = "x" * 20_000
    async with ASGIClient(make_endpoint()) as client:
        assert (await client.get(f"/crash/{long}")).status_code == 500
    [report] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    message = report.getMessage()
    assert "GET /crash/xxxx" in message and "…(20007 bytes)" in message
    assert len(message) < 2_000


async def test_endpoint_crash_leaves_other_requests_alone():
    async with ASGIClient(make_endpoint()) as client:
        slow = asyncio.ensure_future(client.get("/sleep/0.2"))
        crashed = await client.get("/crash")
        assert crashed.status_code == 500
        assert (await client.get("/")).text == "hello"
        assert (await slow).text == "slept"


async def test_endpoint_request_ids_differ_and_honour_a_sane_incoming_one():
    async with ASGIClient(make_endpoint()) as client:
        a = (await client.get("/")).headers["x-request-id"]
        b = (await client.get("/")).headers["x-request-id"]
        assert a != b
        given = "req-0123456789abcdef"
        assert (await client.get("/", headers={"x-request-id": given})
                ).headers["x-request-id"] == given
        assert (await client.get("/", headers={"x-request-id": "short"})
                ).headers["x-request-id"] != "short"


async def test_endpoint_request_id_header_off_keeps_it_on_errors_only():
    async with ASGIClient(make_endpoint(request_id_header=None)) as client:
        assert "x-request-id" not in (await client.get("/")).headers
        missing = await client.get("/nowhere")
        assert missing.status_code == 404
        assert missing.headers["x-request-id"] in missing.text


async def test_endpoint_handler_returning_no_response_is_a_crash():
    async with ASGIClient(make_endpoint()) as client:
        response = await client.get("/not-a-response")
    assert response.status_code == 500


async def test_endpoint_deadline_gives_504_and_stops_the_process():
    watch()
    async with ASGIClient(make_endpoint(tick=0.02)) as client:
        started = asyncio.get_running_loop().time()
        response = await client.get("/hang")  # the route's timeout is 0.3 s
        elapsed = asyncio.get_running_loop().time() - started
        assert response.status_code == 504
        assert response.headers["x-request-id"] in response.text
        assert 0.3 <= elapsed < 2
        _, pid = await assert_receive(("hanging", ANY))
        await assert_receive(("stopped", pid))
        assert not beamish.is_alive(pid)


async def test_endpoint_deadline_stops_linked_processes_too():
    watch()
    router = Router()

    async def helper():
        await beamish.receive()

    @router.get("/link", timeout=0.1)
    async def link(request):
        beamish.send(WATCHER, ("helper", beamish.spawn_link(helper)))
        await asyncio.sleep(3600)

    async with ASGIClient(Endpoint(router=router, tick=0.02)) as client:
        assert (await client.get("/link")).status_code == 504
        _, helper_pid = await assert_receive(("helper", ANY))
        assert not beamish.is_alive(helper_pid)


async def test_endpoint_default_request_timeout_applies_to_every_route():
    async with ASGIClient(make_endpoint(request_timeout=0.1, tick=0.02)) as client:
        assert (await client.get("/sleep/5")).status_code == 504
        assert (await client.get("/sleep/0")).status_code == 200


async def test_endpoint_kills_a_request_that_ignores_its_stop_signal():
    watch()
    router = Router()

    @router.get("/stubborn", timeout=0.1)
    async def stubborn(request):
        beamish.trap_exit(True)
        beamish.send(WATCHER, ("pid", beamish.self()))
        await beamish.receive(lambda m: False)  # never takes the Exit message

    async with ASGIClient(Endpoint(router=router, tick=0.02)) as client:
        response = await client.get("/stubborn")
        assert response.status_code == 504
        _, pid = await assert_receive(("pid", ANY))
        assert not beamish.is_alive(pid)


async def test_endpoint_exit_signal_from_elsewhere_gives_500():
    watch()
    router = Router()

    @router.get("/victim")
    async def victim(request):
        beamish.send(WATCHER, ("pid", beamish.self()))
        await asyncio.sleep(3600)

    async with ASGIClient(Endpoint(router=router)) as client:
        pending = asyncio.ensure_future(client.get("/victim"))
        _, pid = await assert_receive(("pid", ANY))
        beamish.exit(pid, "bad_thing")
        response = await pending
        assert response.status_code == 500


async def test_endpoint_lifespan_starts_and_stops_the_application():
    from tests.web.endpoint_app import WebApp

    endpoint = make_endpoint(application=WebApp)
    assert beamish.whereis("web_app.sup") is None
    async with ASGIClient(endpoint) as client:
        assert endpoint.running
        assert beamish.whereis("web_app.sup") is not None
        assert (await client.get("/greeting")).text == "hello"
    assert not endpoint.running
    assert beamish.whereis("web_app.sup") is None


async def test_endpoint_uses_the_running_runtime_and_spawns_one_sweeper(runtime):
    endpoint = make_endpoint()
    before = set(beamish.processes())
    async with ASGIClient(endpoint):
        new = set(beamish.processes()) - before
        assert len(new) == 1  # the sweeper
    assert set(beamish.processes()) == before


def test_endpoint_starts_its_own_runtime_when_none_runs():
    async def main():
        endpoint = make_endpoint()
        async with ASGIClient(endpoint) as client:
            assert (await client.get("/")).text == "hello"
            runtime = endpoint._requests.runtime
            assert runtime.running
        assert not runtime.running

    asyncio.run(main())


async def test_endpoint_refuses_requests_before_its_lifespan_ran():
    async with ASGIClient(make_endpoint(), lifespan=False) as client:
        assert (await client.get("/")).status_code == 503


async def test_endpoint_failed_application_start_fails_the_lifespan():
    class Broken(beamish.Application):
        async def start(self, start_type, args):
            raise RuntimeError("no database")

    with pytest.raises(RuntimeError, match="no database"):
        async with ASGIClient(make_endpoint(application=Broken)):
            pass


async def test_endpoint_max_connections_answers_503_at_once():
    watch()
    endpoint = make_endpoint(max_connections=2)
    async with ASGIClient(endpoint) as client:
        busy = [asyncio.ensure_future(client.get("/sleep/0.3")) for _ in range(2)]
        while endpoint.connections() < 2:
            await asyncio.sleep(0.01)
        spawned = beamish.statistics().spawned
        refused = await client.get("/")
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert beamish.statistics().spawned == spawned  # no process for it
        assert [r.status_code for r in await asyncio.gather(*busy)] == [200, 200]
        assert (await client.get("/")).status_code == 200


async def test_endpoint_rejects_bad_options():
    with pytest.raises(ValueError, match="max_connections"):
        Endpoint(max_connections=0)
    with pytest.raises(ValueError, match="request_timeout"):
        Endpoint(request_timeout=-1)
    with pytest.raises(ValueError, match="check_origin"):
        Endpoint(check_origin="https://example.com")
    with pytest.raises(ValueError, match="socket path"):
        Endpoint(sockets={"socket": object}, pubsub="app")
    with pytest.raises(ValueError, match="pubsub="):
        Endpoint(sockets={"/socket": object})
    with pytest.raises(TypeError, match="router"):
        Endpoint(router="not an app")


# -- websockets -------------------------------------------------------------------------------


async def test_endpoint_websocket_is_a_process_and_echoes():
    async with (
        ASGIClient(make_endpoint()) as client,
        client.websocket_connect("/ws/echo") as ws,
    ):
        greeting = await ws.receive_text()
        assert greeting.startswith("hello from <0.")
        await ws.send_text("ping")
        assert await ws.receive_text() == "ping"


async def test_endpoint_websocket_origin_check_refuses_other_sites():
    async with ASGIClient(make_endpoint()) as client:
        with pytest.raises(WebSocketRejected) as refused:
            async with client.websocket_connect(
                "/ws/echo", headers={"origin": "https://evil.example"}
            ):
                pass
        assert refused.value.status_code == 403
        async with client.websocket_connect(
            "/ws/echo", headers={"origin": "http://testserver"}
        ) as ws:
            assert (await ws.receive_text()).startswith("hello")


async def test_endpoint_websocket_refusal_logs_the_origin_clipped(caplog):
    origin = "https://" + "evil" * 50_000 + ".example"
    async with ASGIClient(make_endpoint()) as client:
        with pytest.raises(WebSocketRejected):
            async with client.websocket_connect("/ws/echo", headers={"origin": origin}):
                pass
    [line] = [r.getMessage() for r in caplog.records if "check_origin" in r.getMessage()]
    assert len(line) < 700 and "…(200016 bytes)" in line, line[:800]


async def test_endpoint_websocket_origin_list():
    endpoint = make_endpoint(check_origin=["https://app.example", "//*.example.org"])
    async with ASGIClient(endpoint) as client:
        for origin in ("https://app.example", "http://a.example.org"):
            async with client.websocket_connect("/ws/echo", headers={"origin": origin}) as ws:
                assert (await ws.receive_text()).startswith("hello")
        with pytest.raises(WebSocketRejected):
            async with client.websocket_connect("/ws/echo",
                                                headers={"origin": "http://app.example"}):
                pass


async def test_endpoint_websocket_frame_over_the_limit_closes_with_1009():
    from beamish.testing._asgi_client import WebSocketDisconnected

    async with (
        ASGIClient(make_endpoint(max_frame_size=10)) as client,
        client.websocket_connect("/ws/echo") as ws,
    ):
        await ws.receive_text()
        await ws.send_text("short")
        assert await ws.receive_text() == "short"
        await ws.send_text("x" * 11)
        with pytest.raises(WebSocketDisconnected) as closed:
            await ws.receive_text()
        assert closed.value.code == 1009


async def test_endpoint_websocket_counts_towards_max_connections():
    endpoint = make_endpoint(max_connections=1)
    async with ASGIClient(endpoint) as client:
        async with client.websocket_connect("/ws/echo") as ws:
            await ws.receive_text()
            assert endpoint.connections() == 1
            assert (await client.get("/")).status_code == 503
            with pytest.raises(WebSocketRejected) as refused:
                async with client.websocket_connect("/ws/echo"):
                    pass
            assert refused.value.status_code == 503
        assert (await client.get("/")).status_code == 200


async def test_endpoint_websocket_crash_closes_1011_and_is_reported(caplog):
    from beamish.testing._asgi_client import WebSocketDisconnected

    async with (
        ASGIClient(make_endpoint()) as client,
        client.websocket_connect("/ws/echo") as ws,
    ):
        await ws.receive_text()
        await ws.send_text("crash")
        with pytest.raises(WebSocketDisconnected) as closed:
            await ws.receive_text()
        assert closed.value.code == 1011
    assert any("the socket handler broke" in r.getMessage() for r in caplog.records)


async def test_endpoint_request_process_can_be_monitored():
    watch()
    router = Router()

    @router.get("/", timeout=None)
    async def handler(request):
        beamish.send(WATCHER, ("pid", beamish.self()))
        await beamish.receive("go")
        from starlette.responses import PlainTextResponse

        return PlainTextResponse("done")

    async with ASGIClient(Endpoint(router=router)) as client:
        pending = asyncio.ensure_future(client.get("/"))
        _, pid = await assert_receive(("pid", ANY))
        ref = beamish.monitor(pid)
        beamish.send(pid, "go")
        assert (await pending).text == "done"
        assert await assert_receive(Down) == Down(ref, pid, "normal")


async def test_endpoint_client_leaving_stops_a_long_request(caplog):
    watch()
    async with ASGIClient(make_endpoint(tick=0.02, watch_disconnect_after=0.05)) as client:
        pending = asyncio.ensure_future(client.get("/wait"))
        _, pid = await assert_receive(("waiting", ANY))
        pending.cancel()
        await assert_receive(("stopped", pid), timeout=1)
        assert not beamish.is_alive(pid)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_endpoint_streaming_response_stops_when_the_client_leaves(caplog):
    from starlette.responses import StreamingResponse

    watch()
    router = Router()

    @router.get("/stream", timeout=None)
    async def stream(request):
        async def chunks():
            while True:
                yield b"tick\n"
                await asyncio.sleep(0.01)

        beamish.send(WATCHER, ("streaming", beamish.self()))
        return StreamingResponse(chunks())

    async with ASGIClient(Endpoint(router=router)) as client:
        async with client.stream("GET", "/stream") as response:
            assert await anext(response.aiter_lines()) == "tick"
        _, pid = await assert_receive(("streaming", ANY))
        await beamish.wait_exit(pid, timeout=5)  # the request process stops
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_endpoint_hands_socket_mounts_to_the_channels_transport_after_its_checks():
    from beamish.pubsub import PubSub
    from beamish.testing import start_supervised
    from beamish.web import Socket

    class Sockets(Socket):
        pass

    await start_supervised((PubSub, {"name": "app"}))
    endpoint = make_endpoint(sockets={"/socket": Sockets}, pubsub="app", max_connections=1)
    async with ASGIClient(endpoint) as client:
        with pytest.raises(WebSocketRejected) as refused:  # the endpoint's origin check
            async with client.websocket_connect("/socket/websocket?vsn=2.0.0",
                                                headers={"origin": "https://evil.example"}):
                pass
        assert refused.value.status_code == 403
        async with client.websocket_connect("/socket/websocket?vsn=2.0.0") as ws:
            await ws.send_text('[null,"1","phoenix","heartbeat",{}]')
            assert await ws.receive_json() == [
                None, "1", "phoenix", "phx_reply", {"status": "ok", "response": {}}
            ]
            with pytest.raises(WebSocketRejected) as full:  # the endpoint's limit
                async with client.websocket_connect("/socket/websocket?vsn=2.0.0"):
                    pass
            assert full.value.status_code == 503


async def test_endpoint_serves_a_socket_on_its_own_transport_paths():
    # Phoenix: socket "/socket", UserSocket, websocket: [path: "/live"], longpoll: [path: "/lp"]
    from beamish.pubsub import PubSub
    from beamish.testing import start_supervised
    from beamish.web import Socket

    class LiveSocket(Socket, websocket_path="/live", longpoll=True, longpoll_path="/lp",
                     longpoll_window=1.0):
        pass

    class RootSocket(Socket, websocket_path=""):
        pass

    await start_supervised((PubSub, {"name": "app"}))
    endpoint = make_endpoint(sockets={"/socket": LiveSocket, "/bare": RootSocket}, pubsub="app")
    heartbeat = [None, "1", "phoenix", "phx_reply", {"status": "ok", "response": {}}]
    async with ASGIClient(endpoint) as client:
        for path in ("/socket/live?vsn=2.0.0", "/bare?vsn=2.0.0"):
            async with client.websocket_connect(path) as ws:
                await ws.send_text('[null,"1","phoenix","heartbeat",{}]')
                assert await ws.receive_json() == heartbeat
        with pytest.raises(WebSocketRejected):  # not a socket's path any more: the router's
            async with client.websocket_connect("/socket/websocket?vsn=2.0.0"):
                pass
        opened = (await client.get("/socket/lp?vsn=2.0.0")).json()
        assert opened["status"] == 410 and opened["token"]
        assert (await client.get("/socket/longpoll?vsn=2.0.0")).status_code == 404


def test_endpoint_socket_paths_are_checked():
    from beamish.web import Socket

    for path in ("live", "/live/", 7):
        with pytest.raises(ValueError, match="websocket_path"):
            type("Bad", (Socket,), {}, websocket_path=path)


async def test_endpoint_broadcasts_on_its_pubsub_as_phoenix_endpoints_do():
    from beamish.pubsub import PubSub
    from beamish.testing import refute_receive, start_supervised
    from beamish.web import Broadcast

    await start_supervised((PubSub, {"name": "app"}))
    endpoint = make_endpoint(pubsub="app")
    PubSub.subscribe("app", "room:1")
    endpoint.broadcast("room:1", "news", {"n": 1})
    await assert_receive(Broadcast("room:1", "news", {"n": 1}))
    endpoint.local_broadcast("room:1", "news", {"n": 2})
    await assert_receive(Broadcast("room:1", "news", {"n": 2}))
    endpoint.broadcast_from(beamish.self(), "room:1", "news", {"n": 3})  # skips the sender
    await refute_receive(Broadcast, timeout=0)
    with pytest.raises(ValueError, match=r"Endpoint\.broadcast\(\).*pubsub="):
        make_endpoint().broadcast("room:1", "news", {})


async def test_each_socket_may_name_its_own_pubsub():
    """One endpoint serving two applications: each socket's channels subscribe on its own
    PubSub (the socket option), so a broadcast on one reaches only that socket's clients;
    without the option a socket takes the endpoint's."""
    from typing import ClassVar

    from beamish.pubsub import PubSub
    from beamish.testing import start_supervised
    from beamish.web import Channel, Socket, broadcast

    class Room(Channel):
        async def join(self, topic, payload, socket):
            return ("ok", {}, socket)

    class Left(Socket, pubsub="left.pubsub"):
        channels: ClassVar = {"room:*": Room}

    class Right(Socket, pubsub="right.pubsub"):
        channels: ClassVar = {"room:*": Room}

    class Plain(Socket):
        channels: ClassVar = {"room:*": Room}

    for name in ("left.pubsub", "right.pubsub", "app"):
        await start_supervised((PubSub, {"name": name}), id=name)
    with pytest.raises(ValueError, match="give each socket its own"):
        make_endpoint(sockets={"/plain": Plain})  # neither the endpoint nor it has one
    make_endpoint(sockets={"/left": Left, "/right": Right})  # each has its own: no need
    endpoint = make_endpoint(
        sockets={"/left": Left, "/right": Right, "/plain": Plain}, pubsub="app"
    )
    join = '["1","1","room:a","phx_join",{}]'
    async with (
        ASGIClient(endpoint) as client,
        client.websocket_connect("/left/websocket?vsn=2.0.0") as left,
        client.websocket_connect("/right/websocket?vsn=2.0.0") as right,
        client.websocket_connect("/plain/websocket?vsn=2.0.0") as plain,
    ):
        for ws in (left, right, plain):
            await ws.send_text(join)
            assert (await ws.receive_json())[4]["status"] == "ok"
        broadcast("right.pubsub", "room:a", "news", {"to": "right"})
        broadcast("app", "room:a", "news", {"to": "plain"})
        broadcast("left.pubsub", "room:a", "news", {"to": "left"})
        assert (await left.receive_json())[4] == {"to": "left"}
        assert (await right.receive_json())[4] == {"to": "right"}
        assert (await plain.receive_json())[4] == {"to": "plain"}
    with pytest.raises(ValueError, match="socket option pubsub"):
        type("Bad", (Socket,), {}, pubsub="")


async def test_endpoint_frame_limit_applies_to_socket_paths_where_it_is_the_smaller():
    """The endpoint's max_frame_size bounds a Socket's frames too when it is below the
    socket's own limit (the transport's reader enforces it: 1009), and leaves a socket's
    smaller limit alone."""
    from beamish.pubsub import PubSub
    from beamish.testing import start_supervised
    from beamish.testing._asgi_client import WebSocketDisconnected
    from beamish.web import Socket

    class Roomy(Socket):  # 1 MiB by default
        pass

    class Tight(Socket, max_frame_size=100):
        pass

    await start_supervised((PubSub, {"name": "app"}))
    endpoint = make_endpoint(
        sockets={"/roomy": Roomy, "/tight": Tight}, pubsub="app", max_frame_size=200
    )
    heartbeat = '[null,"1","phoenix","heartbeat",{}]'
    padded = '[null,"2","phoenix","heartbeat",{"pad":"' + "x" * 130 + '"}]'  # 150 bytes
    async with ASGIClient(endpoint) as client:
        for path, closes in (("/roomy", False), ("/tight", True)):
            async with client.websocket_connect(f"{path}/websocket?vsn=2.0.0") as ws:
                await ws.send_text(heartbeat)
                assert (await ws.receive_json())[3] == "phx_reply"
                await ws.send_text(padded)
                if closes:
                    with pytest.raises(WebSocketDisconnected) as closed:
                        await ws.receive_json()
                    assert closed.value.code == 1009
                else:
                    assert (await ws.receive_json())[3] == "phx_reply"
        async with client.websocket_connect("/roomy/websocket?vsn=2.0.0") as ws:
            await ws.send_text(heartbeat.replace("{}", '{"pad":"' + "x" * 300 + '"}'))
            with pytest.raises(WebSocketDisconnected) as closed:
                await ws.receive_json()
            assert closed.value.code == 1009
    assert Roomy.options.max_frame_size == 1_048_576  # the class's own options are untouched


async def test_endpoint_plain_http_on_a_socket_path_is_400_as_in_phoenix():
    """Phoenix's WebSocket transport answers a request that is not an upgrade with 400 (after
    its origin check); the path exists, so 404 would mislead."""
    from beamish.pubsub import PubSub
    from beamish.testing import start_supervised
    from beamish.web import Socket

    class Sockets(Socket):
        pass

    await start_supervised((PubSub, {"name": "app"}))
    endpoint = make_endpoint(sockets={"/socket": Sockets}, pubsub="app")
    async with ASGIClient(endpoint) as client:
        plain = await client.get("/socket/websocket?vsn=2.0.0")
        assert plain.status_code == 400
        assert "Upgrade: websocket" in plain.text
        assert (await client.post("/socket/websocket", content=b"x")).status_code == 400
        other_site = await client.get(
            "/socket/websocket", headers={"origin": "https://evil.example"}
        )
        assert other_site.status_code == 403
        assert (await client.get("/socket/elsewhere")).status_code == 404
        assert endpoint.connections() == 0
