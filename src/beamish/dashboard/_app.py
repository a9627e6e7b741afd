"""``Dashboard``: the live dashboard as an ASGI app to mount on any router.

    dashboard = Dashboard(pubsub="shop.pubsub", allow="local")
    router.mount("/dashboard", dashboard.app())

Under the mount: ``GET /`` is the page, ``/dashboard.js`` and ``/dashboard.css`` its own
script and style (files of this package), and ``/live/websocket`` its Phoenix socket.
``metrics=`` (a ``PrometheusReporter``) gives the Metrics page its figures; its charts are
drawn with uPlot, served from ``chart_assets`` (uPlot's ``dist`` directory, from the npm
registry: ``npm install uplot``; never copied into a repository). Without it the page shows
the figures as a table.

**Access is off unless configured.** ``allow=None`` (the default) answers 403 to everyone,
saying how to turn it on; ``allow="local"`` lets in clients on this machine only, without
credentials (development: the page says so); ``allow=check`` calls ``check(scope) -> bool``
on every request, the page's and the socket's (a session cookie, basic auth with a secret
from settings: the application's own). The page carries a token signed with a secret the
dashboard makes at start (itsdangerous, valid a day), which the socket's join requires, and
the WebSocket handshake must come from the page's own origin.
"""

from __future__ import annotations

import base64
import functools
import hmac
import html
import ipaddress
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

from beamish.dashboard._agent import AGENT, DashboardAgent
from beamish.dashboard._live import socket_class
from beamish.web._origin import make_origin_check
from beamish.web._router import route_path
from beamish.web._transport import serve_socket

__all__ = ["Dashboard"]

STATIC = Path(__file__).resolve().parent / "static"
_FILES = {"/dashboard.js": "text/javascript", "/dashboard.css": "text/css"}
_TOKEN_AGE = 86_400
_UPLOT_JS = "uPlot.iife.min.js"
_VENDOR = {"/vendor/uplot.js": (_UPLOT_JS, "text/javascript"),
           "/vendor/uplot.css": ("uPlot.min.css", "text/css")}
Check = Callable[[Mapping[str, Any]], bool]


class Dashboard:
    """The live dashboard (see the module)."""

    def __init__(self, *, pubsub: str, allow: str | Check | None = None,
                 refresh: float = 1.0, title: str = "beamish", metrics: Any = None,
                 chart_assets: str | Path | None = None) -> None:
        if allow is not None and allow != "local" and not callable(allow):
            raise ValueError(
                f"allow is None (off), 'local' (this machine, no credentials) or a function "
                f"scope -> bool, got {allow!r}"
            )
        if not isinstance(refresh, int | float) or refresh < 0.1:
            raise ValueError(f"refresh is seconds >= 0.1, got {refresh!r}")
        self.pubsub = pubsub
        self.allow = allow
        self.refresh = float(refresh)
        self.title = title
        if metrics is not None and not callable(getattr(metrics, "snapshot", None)):
            raise TypeError(f"metrics is a PrometheusReporter, got {metrics!r}")
        self.metrics = metrics
        self.chart_assets = Path(chart_assets) if chart_assets is not None else None
        if self.chart_assets is not None and not (self.chart_assets / _UPLOT_JS).is_file():
            raise ValueError(
                f"chart_assets must be uPlot's dist directory (with {_UPLOT_JS}), such as "
                f"node_modules/uplot/dist after `npm install uplot`; got {chart_assets}"
            )
        self._signer = URLSafeTimedSerializer(os.urandom(32), salt="beamish.dashboard")
        self._socket = socket_class(self._token_ok, self.refresh, metrics)
        self._same_origin = make_origin_check(True)

    def spec(self) -> dict[str, Any]:
        """A child spec for the application's tree: the agent that lets the dashboards of
        other nodes of the cluster show this one (``_agent.py``). Without it, this node's
        own dashboard works; others cannot select this node."""
        return {"id": AGENT, "start": (functools.partial(DashboardAgent.start_link,
                                                         name=AGENT), (None,))}

    @staticmethod
    def basic_auth(user: str, password: str) -> Check:
        """An ``allow=`` check for HTTP basic auth with these credentials (read them from
        your settings; compared in constant time). The browser asks for them: a request
        without them is answered 401 with a ``WWW-Authenticate`` challenge."""
        if not user or not password:
            raise ValueError("basic_auth needs a user and a password (from your settings)")
        expected = b"Basic " + base64.b64encode(f"{user}:{password}".encode())

        def check(scope: Mapping[str, Any]) -> bool:
            for name, value in scope.get("headers") or ():
                if name == b"authorization":
                    return hmac.compare_digest(value, expected)
            return False

        check.challenge = True  # type: ignore[attr-defined]
        return check

    def _allowed(self, scope: Mapping[str, Any]) -> bool:
        allow = self.allow
        if allow is None:
            return False
        if allow == "local":
            client = scope.get("client")
            try:
                return client is not None and ipaddress.ip_address(client[0]).is_loopback
            except ValueError:
                return False
        return bool(allow(scope))  # type: ignore[operator]

    def _origin_ok(self, scope: Mapping[str, Any]) -> bool:
        headers = dict(scope.get("headers") or ())
        origin, host = headers.get(b"origin"), headers.get(b"host")
        return self._same_origin(origin.decode("latin-1") if origin else None,
                                 host.decode("latin-1") if host else None)

    def _token_ok(self, token: Any) -> bool:
        if not isinstance(token, str):
            return False
        try:
            self._signer.loads(token, max_age=_TOKEN_AGE)
        except BadSignature:
            return False
        return True

    def app(self) -> Callable[..., Any]:
        """The ASGI app to mount (see the module)."""

        async def dashboard(scope: dict[str, Any], receive: Any, send: Any) -> None:
            kind = scope["type"]
            path = route_path(scope) or "/"
            if not self._allowed(scope):
                if kind == "websocket":
                    await send({"type": "websocket.close"})
                    return
                if getattr(self.allow, "challenge", False):
                    body = b"401 Unauthorized: the dashboard needs credentials\n"
                    await send({"type": "http.response.start", "status": 401, "headers": [
                        (b"content-type", b"text/plain; charset=utf-8"),
                        (b"content-length", str(len(body)).encode()),
                        (b"www-authenticate", b'Basic realm="beamish dashboard"'),
                    ]})
                    await send({"type": "http.response.body", "body": body})
                    return
                await _plain(send, 403, "403 Forbidden: the dashboard is off, or not for you. "
                             "Mount it with Dashboard(allow=...): 'local' for this machine, "
                             "Dashboard.basic_auth(user, password), or a function that checks "
                             "the request.\n")
                return
            if kind == "websocket":
                if path != "/live/websocket" or not self._origin_ok(scope):
                    await send({"type": "websocket.close"})
                    return
                await serve_socket(self._socket, scope, receive, send, pubsub=self.pubsub)
                return
            if kind != "http" or scope["method"] not in ("GET", "HEAD"):
                await _plain(send, 405, "405 Method Not Allowed\n")
                return
            if path == "/":
                await _respond(send, 200, "text/html; charset=utf-8", self._page(scope))
            elif path in _FILES:
                await _respond(send, 200, _FILES[path] + "; charset=utf-8",
                               (STATIC / path[1:]).read_bytes())
            elif path in _VENDOR and self.chart_assets is not None:
                name, content_type = _VENDOR[path]
                await _respond(send, 200, content_type + "; charset=utf-8",
                               (self.chart_assets / name).read_bytes())
            else:
                await _plain(send, 404, "404 Not Found\n")

        return dashboard

    def _page(self, scope: Mapping[str, Any]) -> bytes:
        page = (STATIC / "index.html").read_text()
        banner = ("development mode: this dashboard is open to this machine without "
                  "credentials" if self.allow == "local" else "")
        charts = "yes" if self.chart_assets is not None else ""
        for key, value in (("TITLE", self.title), ("TOKEN", self._signer.dumps("page")),
                           ("BANNER", banner), ("CHARTS", charts)):
            page = page.replace("{{" + key + "}}", html.escape(value, quote=True))
        return page.encode()


async def _respond(send: Any, status: int, content_type: str, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"), (b"x-frame-options", b"DENY"),
    ]})
    await send({"type": "http.response.body", "body": body})


async def _plain(send: Any, status: int, text: str) -> None:
    await _respond(send, status, "text/plain; charset=utf-8", text.encode())
