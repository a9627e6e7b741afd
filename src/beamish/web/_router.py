"""The router: paths and methods to handlers, scopes, mounts, static files, ``url_for``.

A ``Router`` is an ASGI app. Served by an ``Endpoint``, each request reaches it inside the
request's own process, so a handler, a mounted Starlette or FastAPI app and a static file
alike run in a process per request::

    router = Router()

    @router.get("/users/{id:int}", name="user")
    async def show_user(request):
        return JSONResponse({"id": request.path_params["id"]})

    api = router.scope("/api", name="api")          # routes under /api, named api.*

    @api.post("/items", name="items")
    async def create_item(request): ...

    router.static("/static", directory="priv/static")  # url_for("static", path="app.css")
    router.mount("/legacy", starlette_app, name="legacy")

Handlers take a Starlette ``Request`` (``request.path_params`` holds the converted
parameters) and return a Starlette ``Response``; they may be ``async def`` or plain ``def``.
A plain ``def`` handler runs on the event loop like any process body: move blocking work off
it with ``await beamish.offload(fn)`` from an ``async def`` handler. WebSocket handlers take a
Starlette ``WebSocket``.

The matching itself is pure and lives in ``_routing.py``; this module adds the ASGI side and
the error responses (404, 405 with ``Allow``), which carry the request id.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from starlette.convertors import Convertor
from starlette.datastructures import URLPath
from starlette.exceptions import HTTPException, WebSocketException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import NoMatchFound
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from beamish.web._request import (
    REQUEST_EXCEPTION,
    REQUEST_STOP,
    SCOPE_KEY,
    ASGIApp,
    Receive,
    Scope,
    Send,
    error_response,
    flight_of,
    plain_response,
    set_timeout,
)
from beamish.web._routing import (
    DEFAULT_CONVERTORS,
    RouteEntry,
    RouteError,
    RouteTable,
    allowed_methods,
    compile_path,
    join_paths,
)

__all__ = ["DEFAULT_TIMEOUT", "RouteScope", "Router"]

F = TypeVar("F", bound=Callable[..., Any])


class _DefaultTimeout:
    __slots__ = ()

    def __repr__(self) -> str:
        return "DEFAULT_TIMEOUT"


DEFAULT_TIMEOUT: Any = _DefaultTimeout()
"""A route's ``timeout`` when it keeps the endpoint's ``request_timeout``."""


class _Routes:
    """What a router and its scopes share: adding routes under a path and name prefix."""

    def __init__(self, router: Router, prefix: str, name_prefix: str, timeout: Any) -> None:
        self._router = router
        self._prefix = prefix
        self._name_prefix = name_prefix
        self._timeout = timeout

    # -- http routes ------------------------------------------------------------------------

    def add(
        self, path: str, handler: Callable[..., Any], *, methods: Sequence[str] = ("GET",),
        name: str | None = None, timeout: Any = DEFAULT_TIMEOUT,
    ) -> None:
        """Route ``path`` with ``methods`` to ``handler(request) -> Response``.

        ``timeout`` overrides the endpoint's ``request_timeout`` for this route (seconds, or
        None for no deadline: streams, long polls).
        """
        if not callable(handler):
            raise TypeError(f"a route handler must be callable, got {handler!r} for {path!r}")
        is_async = inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
            type(handler).__call__
        )
        self._add(RouteEntry(
            "http", self._compile(path), (handler, is_async, self._timeout_of(timeout)),
            allowed_methods(methods), self._name(name),
        ))

    def route(
        self, path: str, *, methods: Sequence[str] = ("GET",), name: str | None = None,
        timeout: Any = DEFAULT_TIMEOUT,
    ) -> Callable[[F], F]:
        """Decorator form of ``add``."""

        def decorate(handler: F) -> F:
            self.add(path, handler, methods=methods, name=name, timeout=timeout)
            return handler

        return decorate

    def get(self, path: str, *, name: str | None = None, timeout: Any = DEFAULT_TIMEOUT
            ) -> Callable[[F], F]:
        """``@router.get(path)``: a GET (and HEAD) route."""
        return self.route(path, methods=("GET",), name=name, timeout=timeout)

    def post(self, path: str, *, name: str | None = None, timeout: Any = DEFAULT_TIMEOUT
             ) -> Callable[[F], F]:
        return self.route(path, methods=("POST",), name=name, timeout=timeout)

    def put(self, path: str, *, name: str | None = None, timeout: Any = DEFAULT_TIMEOUT
            ) -> Callable[[F], F]:
        return self.route(path, methods=("PUT",), name=name, timeout=timeout)

    def patch(self, path: str, *, name: str | None = None, timeout: Any = DEFAULT_TIMEOUT
              ) -> Callable[[F], F]:
        return self.route(path, methods=("PATCH",), name=name, timeout=timeout)

    def delete(self, path: str, *, name: str | None = None, timeout: Any = DEFAULT_TIMEOUT
               ) -> Callable[[F], F]:
        return self.route(path, methods=("DELETE",), name=name, timeout=timeout)

    # -- websockets, mounts, static files, scopes -------------------------------------------

    def websocket(self, path: str, *, name: str | None = None) -> Callable[[F], F]:
        """``@router.websocket(path)``: ``handler(websocket)`` serves the connection."""

        def decorate(handler: F) -> F:
            if not callable(handler):
                raise TypeError(f"a websocket handler must be callable, got {handler!r}")
            self._add(RouteEntry("websocket", self._compile(path), handler, None,
                                 self._name(name)))
            return handler

        return decorate

    def mount(
        self, path: str, app: ASGIApp, *, name: str | None = None,
        timeout: Any = DEFAULT_TIMEOUT,
    ) -> None:
        """Serve every path under ``path`` with ``app``, any ASGI app (Starlette, FastAPI,
        another Router). The app sees ``root_path`` extended by the mount's path, as
        Starlette's ``Mount`` gives it; under an endpoint, each request is still a process.
        """
        if not callable(app):
            raise TypeError(f"mount() takes an ASGI app, got {app!r} for {path!r}")
        pattern = self._compile(path).pattern.rstrip("/")
        self._add(RouteEntry(
            "mount", compile_path(pattern, self._router._convertors),
            (app, self._timeout_of(timeout)), None, self._name(name),
        ))

    def static(
        self, path: str, *, directory: str | Any, name: str | None = "static",
        html: bool = False, follow_symlink: bool = False, check_dir: bool = True,
    ) -> None:
        """Serve the files under ``directory`` at ``path`` (Starlette's ``StaticFiles``).

        ``url_for("static", path="css/app.css")`` gives a file's path. ``html=True`` serves
        ``index.html`` for a directory and ``404.html`` for a missing file.
        ``check_dir=False`` defers the check that ``directory`` exists to the first request
        (for a directory that a build step fills later).
        """
        files = StaticFiles(directory=directory, html=html, follow_symlink=follow_symlink,
                            check_dir=check_dir)
        self.mount(path, files, name=name)

    def scope(
        self, path: str, *, name: str | None = None, timeout: Any = DEFAULT_TIMEOUT
    ) -> RouteScope:
        """Routes added through the result live under ``path`` and are named ``name.*``.

        ``timeout`` is the default for the scope's routes. Scopes nest.
        """
        prefix = self._compile(path).pattern
        name_prefix = self._name_prefix + (name + "." if name else "")
        inherited = self._timeout if timeout is DEFAULT_TIMEOUT else self._timeout_of(timeout)
        return RouteScope(self._router, prefix, name_prefix, inherited)

    # -- helpers ----------------------------------------------------------------------------

    def _compile(self, path: str) -> Any:
        if not isinstance(path, str):
            raise RouteError(
                f"a route path must be a str such as '/users/{{id:int}}', got {path!r}"
            )
        return compile_path(join_paths(self._prefix, path), self._router._convertors)

    def _name(self, name: str | None) -> str | None:
        if name is None:
            return None
        if not isinstance(name, str) or not name:
            raise RouteError(f"a route name must be a non-empty str, got {name!r}")
        return self._name_prefix + name

    def _timeout_of(self, timeout: Any) -> Any:
        if timeout is DEFAULT_TIMEOUT:
            return self._timeout
        if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
            raise ValueError(f"timeout must be seconds > 0 or None (no deadline), got {timeout!r}")
        return timeout

    def _add(self, entry: RouteEntry) -> None:
        self._router._entries.append(entry)
        try:
            self._router._build()
        except RouteError:
            self._router._entries.pop()
            self._router._build()
            raise


class RouteScope(_Routes):
    """A group of routes under a path prefix and a name prefix (``Router.scope``)."""

    def __repr__(self) -> str:
        return f"<RouteScope {self._prefix!r}>"


class Router(_Routes):
    """Routes by path and method to handlers, websockets and mounted ASGI apps.

    ``convertors`` adds path convertors to Starlette's (``str``, ``int``, ``float``,
    ``path``, ``uuid``): ``{"slug": SlugConvertor()}`` makes ``{name:slug}`` work.
    """

    def __init__(self, *, convertors: Mapping[str, Convertor[Any]] | None = None) -> None:
        self._convertors = {**DEFAULT_CONVERTORS, **(convertors or {})}
        self._entries: list[RouteEntry] = []
        self._table = RouteTable(())
        super().__init__(self, "", "", DEFAULT_TIMEOUT)

    def __repr__(self) -> str:
        return f"<Router with {len(self._entries)} route(s)>"

    def _build(self) -> None:
        self._table = RouteTable(self._entries)

    @property
    def routes(self) -> tuple[RouteEntry, ...]:
        """The routes in declaration order (kind, path, methods, name, target)."""
        return self._table.routes

    # -- url_for ----------------------------------------------------------------------------

    def url_for(self, name: str, /, **params: Any) -> str:
        """The path of the route named ``name`` with ``params`` (e.g. ``"/users/42"``).

        Routes in a scope are named ``scope.route``; a mounted app's routes
        ``mount.route`` (Starlette's ``mount:route`` works too); static files
        ``url_for("static", path="app.css")``.
        """
        return str(self.url_path_for(name, **params))

    def url_path_for(self, name: str, /, **params: Any) -> URLPath:
        """``url_for`` as Starlette's ``Request.url_for`` asks for it."""
        table = self._table
        if name in table.names:
            route, path = table.url_path(name, params)
            if route.kind == "mount":
                rest = {k: v for k, v in params.items() if k not in route.path.params}
                return _mounted_path(route, path, "", rest, name)
            return URLPath(path, "websocket" if route.kind == "websocket" else "http")
        mounts = [
            r for r in table.routes
            if r.kind == "mount" and r.name and name[len(r.name):len(r.name) + 1] in (".", ":")
            and name.startswith(r.name)
        ]
        if mounts:
            route = max(mounts, key=lambda r: len(r.name or ""))
            head = route.name or ""
            own = {k: v for k, v in params.items() if k in route.path.params}
            rest = {k: v for k, v in params.items() if k not in route.path.params}
            _, path = table.url_path(head, own)
            return _mounted_path(route, path, name[len(head) + 1:], rest, name)
        return table.url_path(name, params)[1]  # type: ignore[return-value]  # raises

    # -- ASGI -------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if "router" not in scope:
            scope["router"] = self
        path = scope["path"]
        if scope.get("root_path"):
            path = route_path(scope)
        table = self._table
        try:
            if kind == "http":
                method = scope["method"]
                by_method = table.static_http.get(path)
                route = by_method.get(method) if by_method is not None else None
                if route is not None:  # the fast path: a static route, one dict lookup
                    if REQUEST_STOP.handlers or REQUEST_EXCEPTION.handlers:
                        flight = scope.get(SCOPE_KEY)  # the request's telemetry: its route
                        if flight is not None:
                            flight.route = scope.get("root_path", "") + path
                    handler, is_async, timeout = route.target
                    if timeout is not DEFAULT_TIMEOUT:
                        set_timeout(scope, timeout)
                    response = handler(Request(scope, receive, send))
                    if is_async:
                        response = await response
                    if not isinstance(response, Response):
                        response = await _not_a_response(response, handler)
                    await response(scope, receive, send)
                    return
                match = table.match("http", path, method)
            elif kind == "websocket":
                match = table.match("websocket", path)
            elif kind == "lifespan":  # served without an endpoint: nothing to start
                await _lifespan(receive, send)
                return
            else:
                raise RuntimeError(f"the router cannot serve a {kind!r} connection")
            route = match.route
            if route is None:
                await _not_found(scope, receive, send, match.allowed)
                return
            if REQUEST_STOP.handlers or REQUEST_EXCEPTION.handlers:
                _note_route(scope, route.path.template)
            if match.params:
                scope["path_params"] = {**scope.get("path_params", {}), **match.params}
            if route.kind == "mount":
                app, timeout = route.target
                if timeout is not DEFAULT_TIMEOUT:
                    set_timeout(scope, timeout)
                root = scope.get("root_path", "")
                child = {**scope, "root_path": root + match.prefix,
                         "app_root_path": scope.get("app_root_path", root)}
                await app(child, receive, send)
            elif route.kind == "websocket":
                await route.target(WebSocket(scope, receive, send))
            else:
                handler, is_async, timeout = route.target
                if timeout is not DEFAULT_TIMEOUT:
                    set_timeout(scope, timeout)
                response = handler(Request(scope, receive, send))
                if is_async:
                    response = await response
                if not isinstance(response, Response):
                    response = await _not_a_response(response, handler)
                await response(scope, receive, send)
        except HTTPException as exc:  # Starlette's way to answer an error from a handler
            await _http_exception(scope, send, exc)
        except WebSocketException as exc:
            await send({"type": "websocket.close", "code": exc.code, "reason": exc.reason or ""})


def _note_route(scope: Scope, template: str) -> None:
    """Tell the request's telemetry which route served it (the template, not the path: a
    metric tagged by route stays a handful of series)."""
    flight = flight_of(scope)
    if flight is not None:
        flight.route = scope.get("root_path", "") + template


def route_path(scope: Scope) -> str:
    """The path below the app's ``root_path`` (what a mounted app routes on)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if not root or not path.startswith(root):
        return path
    if path == root:
        return ""
    return path[len(root):] if path[len(root)] == "/" else path


def _mounted_path(route: RouteEntry, path: str, child_name: str, params: dict[str, Any],
                  full: str) -> URLPath:
    app = route.target[0]
    if not child_name:
        if isinstance(app, StaticFiles) and "path" in params:
            return URLPath(path + "/" + str(params["path"]).lstrip("/"), "http")
        if params:
            raise RouteError(
                f"url_for({full!r}) got parameters {', '.join(sorted(params))} that the mount "
                f"{route.path.pattern} does not take"
            )
        return URLPath(path or "/", "http")
    finder = getattr(app, "url_path_for", None)
    if finder is None:
        raise RouteError(f"url_for({full!r}): the app mounted at {route.path.pattern} names "
                         "no routes")
    try:
        inner = finder(child_name, **params)
    except NoMatchFound as exc:
        raise RouteError(f"url_for({full!r}): {exc}") from None
    return URLPath(path + str(inner), getattr(inner, "protocol", "http") or "http")


async def _not_a_response(response: Any, handler: Any) -> Response:
    if inspect.isawaitable(response):  # a plain def that returns a coroutine
        response = await response
        if isinstance(response, Response):
            return response
    raise TypeError(
        f"handler {getattr(handler, '__qualname__', handler)!r} returned {response!r} "
        f"({type(response).__name__}); a handler returns a Starlette Response, e.g. "
        "PlainTextResponse('hi'), JSONResponse({...}), HTMLResponse(...) or "
        "RedirectResponse(url)"
    )


async def _not_found(scope: Scope, receive: Receive, send: Send, allowed: Iterable[str]) -> None:
    methods = sorted(allowed)
    status = 405 if methods else 404
    headers = [(b"allow", ", ".join(methods).encode())] if methods else []
    if scope["type"] == "websocket":
        if "websocket.http.response" in scope.get("extensions", {}):
            await plain_response(send, scope, 404, [])
        else:
            await send({"type": "websocket.close", "code": 1000})
        return
    flight = flight_of(scope)
    if flight is not None:
        await error_response(flight, status, headers)
    else:
        await plain_response(send, scope, status, headers)


async def _http_exception(scope: Scope, send: Send, exc: HTTPException) -> None:
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1"))
               for k, v in (exc.headers or {}).items()]
    flight = flight_of(scope)
    if flight is not None:
        if flight.status:
            raise RuntimeError(
                f"HTTPException({exc.status_code}) raised after the response started"
            ) from exc
        await error_response(flight, exc.status_code, headers, exc.detail)
    else:
        await plain_response(send, scope, exc.status_code, headers, exc.detail)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
