"""The router through an endpoint, in process: routes, scopes, mounts, static files, url_for."""

from __future__ import annotations

import pytest
from starlette.responses import PlainTextResponse

import beamish
from beamish.testing._asgi_client import ASGIClient, WebSocketRejected
from beamish.web import Endpoint, RouteError, Router
from tests.web.endpoint_app import make_endpoint, router


async def test_router_path_parameters_are_converted():
    async with ASGIClient(make_endpoint()) as client:
        response = await client.get("/users/42")
        assert response.json() == {"id": 42, "self": "http://testserver/users/7"}
        assert (await client.get("/users/abc")).status_code == 404


async def test_router_scope_prefixes_paths_and_names():
    async with ASGIClient(make_endpoint()) as client:
        response = await client.get("/api/items/pen")
        assert response.json() == {"item": "pen", "url": "/api/items/x"}


async def test_router_405_says_which_methods_are_allowed():
    async with ASGIClient(make_endpoint()) as client:
        response = await client.delete("/users/1")
        assert response.status_code == 405
        assert response.headers["allow"] == "GET, HEAD"
        assert response.headers["x-request-id"] in response.text
        assert (await client.head("/")).status_code == 200


async def test_router_404_carries_the_request_id():
    async with ASGIClient(make_endpoint()) as client:
        response = await client.get("/nowhere")
        assert response.status_code == 404
        assert f"request id: {response.headers['x-request-id']}" in response.text


async def test_router_reads_the_body():
    async with ASGIClient(make_endpoint()) as client:
        response = await client.post("/echo", content=b"x" * 100_000)
        assert response.content == b"x" * 100_000


async def test_router_serves_static_files():
    async with ASGIClient(make_endpoint()) as client:
        response = await client.get("/static/hello.txt")
        assert response.status_code == 200
        assert response.text == "hello, static\n"
        assert (await client.get("/static/css/app.css")).headers["content-type"].startswith(
            "text/css"
        )
        assert (await client.get("/static/missing.txt")).status_code == 404


async def test_router_mounted_starlette_app_gets_a_process_per_request():
    async with ASGIClient(make_endpoint()) as client:
        pids = {(await client.get("/legacy/hello")).text for _ in range(3)}
        assert len(pids) == 3
        assert all(p.startswith("starlette in <0.") for p in pids)


async def test_router_mounted_app_crash_is_reported_with_the_request_id(caplog):
    async with ASGIClient(make_endpoint()) as client:
        response = await client.get("/legacy/crash")
    assert response.status_code == 500  # Starlette's own 500 ...
    rid = response.headers["x-request-id"]  # ... with our request id
    assert any(rid in r.getMessage() and "starlette handler broke" in r.getMessage()
               for r in caplog.records)


def test_router_url_for():
    assert router.url_for("user", id=3) == "/users/3"
    assert router.url_for("api.item", name="pen") == "/api/items/pen"
    assert router.url_for("static", path="css/app.css") == "/static/css/app.css"
    assert router.url_for("legacy.hello") == "/legacy/hello"
    assert router.url_for("legacy:hello") == "/legacy/hello"
    assert router.url_for("legacy") == "/legacy"
    with pytest.raises(RouteError, match="no route is named 'nope'"):
        router.url_for("nope")
    with pytest.raises(RouteError, match="takes id"):
        router.url_for("user")
    with pytest.raises(RouteError, match=r"legacy\.nope"):
        router.url_for("legacy.nope")


def test_router_url_for_nested_routers_and_scopes():
    inner = Router()
    inner.add("/{id:int}", lambda request: PlainTextResponse("x"), name="show")
    outer = Router()
    outer.mount("/orgs/{org}/repos", inner, name="repos")
    admin = outer.scope("/admin", name="admin")
    users = admin.scope("/users", name="users")
    users.add("/", lambda request: PlainTextResponse("x"), name="index")
    assert outer.url_for("repos.show", org="acme", id=7) == "/orgs/acme/repos/7"
    assert outer.url_for("admin.users.index") == "/admin/users"


async def test_router_nested_router_gets_path_params_of_the_mount():
    inner = Router()

    @inner.get("/{id:int}")
    async def show(request):
        return PlainTextResponse(f"{request.path_params['org']}/{request.path_params['id']}")

    outer = Router()
    outer.mount("/orgs/{org}/repos", inner)
    async with ASGIClient(Endpoint(router=outer)) as client:
        assert (await client.get("/orgs/acme/repos/7")).text == "acme/7"
        assert (await client.get("/orgs/acme/repos/x")).status_code == 404


def test_router_rejects_what_cannot_work():
    r = Router()
    with pytest.raises(RouteError, match="must start with '/'"):
        r.add("users", lambda request: None)
    with pytest.raises(TypeError, match="callable"):
        r.add("/x", "not a handler")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        r.add("/x", lambda request: None, timeout=0)
    r.add("/a", lambda request: None, name="a")
    with pytest.raises(RouteError, match="two routes are named 'a'"):
        r.add("/b", lambda request: None, name="a")
    assert [route.path.pattern for route in r.routes] == ["/a"]  # the bad one is not kept


async def test_router_alone_serves_without_processes():
    r = Router()

    @r.get("/")
    async def home(request):
        with pytest.raises(beamish.NotInProcessError):
            beamish.self()
        return PlainTextResponse("plain")

    async with ASGIClient(r) as client:
        assert (await client.get("/")).text == "plain"
        missing = await client.get("/x")
        assert missing.status_code == 404 and "x-request-id" not in missing.headers


async def test_router_websocket_not_found_is_refused():
    async with ASGIClient(make_endpoint()) as client:
        with pytest.raises(WebSocketRejected) as refused:
            async with client.websocket_connect("/ws/nowhere"):
                pass
        assert refused.value.status_code == 404
