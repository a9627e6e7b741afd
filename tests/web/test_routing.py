"""Route matching and URL building, pure: no ASGI, no processes."""

from __future__ import annotations

import uuid

import pytest
from starlette.convertors import Convertor

from beamish.web._routing import (
    RouteEntry,
    RouteError,
    RouteTable,
    allowed_methods,
    compile_path,
    join_paths,
)


def http(path, methods=("GET",), name=None, target=None):
    return RouteEntry("http", compile_path(path), target or path, allowed_methods(methods), name)


def mount(path, name=None):
    return RouteEntry("mount", compile_path(path), path, None, name)


def ws(path, name=None):
    return RouteEntry("websocket", compile_path(path), path, None, name)


# -- compile_path -----------------------------------------------------------------------------


def test_compile_path_static():
    pattern = compile_path("/about/team")
    assert pattern.static and pattern.params == ()
    assert pattern.match("/about/team") == {}
    assert pattern.match("/about") is None


def test_compile_path_converts_parameters():
    pattern = compile_path("/users/{id:int}/posts/{slug}")
    assert pattern.params == ("id", "slug")
    assert pattern.match("/users/42/posts/hello-world") == {"id": 42, "slug": "hello-world"}
    assert pattern.match("/users/abc/posts/x") is None
    assert pattern.match("/users/42/posts/a/b") is None  # str stops at a slash


def test_compile_path_float_uuid_and_path():
    assert compile_path("/t/{x:float}").match("/t/1.5") == {"x": 1.5}
    u = uuid.uuid4()
    assert compile_path("/u/{u:uuid}").match(f"/u/{u}") == {"u": u}
    assert compile_path("/files/{rest:path}").match("/files/a/b/c.txt") == {"rest": "a/b/c.txt"}


def test_compile_path_escapes_literal_text():
    pattern = compile_path("/v1.0/{name}")
    assert pattern.match("/v1.0/x") == {"name": "x"}
    assert pattern.match("/v1x0/x") is None


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("users", "must start with '/'"),
        ("/users/{id:integer}", "unknown convertor 'integer'.*float, int, path, str, uuid"),
        ("/users/{id}/{id}", "names the parameter 'id' twice"),
        ("/users/{id", "unbalanced braces"),
        ("/users/{1st}", "bad parameter name"),
    ],
)
def test_compile_path_errors_teach(path, message):
    with pytest.raises(RouteError, match=message):
        compile_path(path)


def test_compile_path_takes_extra_convertors():
    class Slug(Convertor[str]):
        regex = "[a-z0-9-]+"

        def convert(self, value):
            return value

        def to_string(self, value):
            return value

    pattern = compile_path("/p/{s:slug}", {"slug": Slug()})
    assert pattern.match("/p/a-b") == {"s": "a-b"}
    assert pattern.match("/p/A_B") is None


def test_join_paths():
    assert join_paths("", "/x") == "/x"
    assert join_paths("/api", "/") == "/api"
    assert join_paths("/api/", "/items") == "/api/items"


# -- matching ---------------------------------------------------------------------------------


def test_route_table_matches_in_declaration_order():
    table = RouteTable([http("/users/{id}", target="show"), http("/users/me", target="me")])
    match = table.match("http", "/users/me", "GET")
    assert match.route is not None and match.route.target == "show"  # declared first
    assert match.params == {"id": "me"}


def test_route_table_static_route_declared_first_wins():
    table = RouteTable([http("/users/me", target="me"), http("/users/{id}", target="show")])
    assert table.match("http", "/users/me", "GET").route.target == "me"
    assert "/users/me" in table.static_http
    assert table.match("http", "/users/7", "GET").route.target == "show"


def test_route_table_static_shortcut_skips_paths_an_earlier_pattern_takes():
    table = RouteTable([http("/{page}", target="page"), http("/about", target="about")])
    assert "/about" not in table.static_http
    assert table.match("http", "/about", "GET").route.target == "page"


def test_route_table_405_lists_the_allowed_methods():
    table = RouteTable([http("/items", ("GET",)), http("/items", ("POST", "PUT"))])
    match = table.match("http", "/items", "DELETE")
    assert match.route is None
    assert match.allowed == {"GET", "HEAD", "POST", "PUT"}
    assert table.match("http", "/items", "POST").route is not None
    assert table.match("http", "/items", "HEAD").route is not None


def test_route_table_a_later_route_of_the_right_method_wins_over_405():
    table = RouteTable([http("/x/{id}", ("GET",), target="get"),
                        http("/x/{id}", ("POST",), target="post")])
    assert table.match("http", "/x/1", "POST").route.target == "post"


def test_route_table_404_when_nothing_matches():
    match = RouteTable([http("/a")]).match("http", "/b", "GET")
    assert match.route is None and match.allowed == frozenset()


def test_route_table_mounts_take_their_prefix():
    table = RouteTable([mount("/static"), http("/static-ish", target="page")])
    for path in ("/static", "/static/app.css", "/static/a/b"):
        match = table.match("http", path, "POST")
        assert match.route is not None and match.route.kind == "mount"
        assert match.prefix == "/static"
    assert table.match("http", "/static-ish", "GET").route.target == "page"


def test_route_table_mount_with_parameters():
    table = RouteTable([mount("/orgs/{org}")])
    match = table.match("http", "/orgs/acme/repos", "GET")
    assert match.params == {"org": "acme"}
    assert match.prefix == "/orgs/acme"


def test_route_table_root_mount_takes_everything():
    table = RouteTable([http("/a", target="a"), mount("")])
    assert table.match("http", "/a", "GET").route.target == "a"
    assert table.match("http", "/b/c", "GET").route.kind == "mount"


def test_route_table_keeps_websockets_apart():
    table = RouteTable([http("/live"), ws("/live", name="live")])
    assert table.match("websocket", "/live").route.kind == "websocket"
    assert table.match("http", "/live", "GET").route.kind == "http"
    assert table.match("websocket", "/other").route is None


# -- url building -----------------------------------------------------------------------------


def test_route_table_url_path():
    table = RouteTable([http("/users/{id:int}/posts/{slug}", name="post")])
    route, path = table.url_path("post", {"id": 42, "slug": "hi"})
    assert path == "/users/42/posts/hi"
    assert route.name == "post"


def test_route_table_url_path_errors_teach():
    table = RouteTable([http("/users/{id:int}", name="user")])
    with pytest.raises(RouteError, match=r"no route is named 'usr'.*user"):
        table.url_path("usr", {"id": 1})
    with pytest.raises(RouteError, match=r"takes id.*got no parameters"):
        table.url_path("user", {})
    with pytest.raises(RouteError, match=r"takes id.*got id, page"):
        table.url_path("user", {"id": 1, "page": 2})
    with pytest.raises(RouteError, match="does not fit"):
        table.url_path("user", {"id": -1})


def test_route_table_refuses_a_name_twice():
    with pytest.raises(RouteError, match="two routes are named 'x'"):
        RouteTable([http("/a", name="x"), http("/b", name="x")])


def test_allowed_methods():
    assert allowed_methods(["get"]) == {"GET", "HEAD"}
    assert allowed_methods(["POST"]) == {"POST"}
    with pytest.raises(RouteError, match="a list of names"):
        allowed_methods("GET")
    with pytest.raises(RouteError, match="at least one"):
        allowed_methods([])
