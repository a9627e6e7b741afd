"""What a Socket's ``connect`` learns of the request: Phoenix's ``connect_info``.

``connect_info(scope)`` reads it from the handshake's ASGI scope, the same keys Phoenix
offers: ``peer_data``, ``uri``, ``x_headers``, ``trace_context_headers`` (``traceparent``
and ``tracestate``), ``sec_websocket_headers``, ``user_agent``, ``headers`` (all of them),
``auth_token`` (the JavaScript client's ``authToken``, sent as a ``Sec-WebSocket-Protocol``)
and ``session`` (None unless the socket reads one).

How the session is read. A socket whose ``session`` option holds the options of the app's
Starlette ``SessionMiddleware`` gets the session that middleware would give an HTTP request:
``read_session`` runs the middleware itself over the handshake's scope, so the cookie's
format and signature are Starlette's own, never ours. As in Phoenix, a session is handed to
``connect`` only when the client proves it comes from a page of this site: its
``_csrf_token`` parameter must equal the token kept in the session (under
``csrf_token_key``); a page puts one there and gives it to the client. Otherwise, and for a
missing or forged cookie, the session is None.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
from collections.abc import Mapping
from typing import Any

from starlette.middleware.sessions import SessionMiddleware
from starlette.types import Message, Scope

from beamish.web._socket import check_session_options

__all__ = ["connect_info", "read_session"]

_BEARER = "base64url.bearer.phx."
_TRACE_CONTEXT = ("traceparent", "tracestate")


def connect_info(scope: Scope) -> dict[str, Any]:
    """What a Socket's ``connect`` learns of the request (Phoenix's ``connect_info``)."""
    headers = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in scope.get("headers") or ()
    ]
    client = scope.get("client") or (None, None)
    server = scope.get("server") or (None, None)
    host = next((v for k, v in headers if k == "host"), None)
    scheme = "https" if scope.get("scheme") in ("wss", "https") else "http"
    info: dict[str, Any] = {
        "peer_data": {"address": client[0], "port": client[1], "ssl_cert": None},
        "uri": {
            "scheme": scheme,
            "host": host.rsplit(":", 1)[0] if host else server[0],
            "port": server[1],
            "path": scope.get("path", ""),
            "query": scope.get("query_string", b"").decode("latin-1"),
        },
        "x_headers": [(k, v) for k, v in headers if k.startswith("x-")],
        "trace_context_headers": [(k, v) for k, v in headers if k in _TRACE_CONTEXT],
        "sec_websocket_headers": [(k, v) for k, v in headers if k.startswith("sec-websocket-")],
        "user_agent": next((v for k, v in headers if k == "user-agent"), None),
        "headers": headers,
        "session": None,
    }
    for protocol in scope.get("subprotocols") or ():
        if protocol.startswith(_BEARER):
            token = protocol[len(_BEARER):]
            with contextlib.suppress(ValueError):
                info["auth_token"] = base64.urlsafe_b64decode(
                    token + "=" * (-len(token) % 4)
                ).decode()
    return info


async def read_session(
    scope: Scope, params: Mapping[str, str], config: Any
) -> dict[str, Any] | None:
    """The session of the handshake's cookie, or None (see the module docstring).

    ``config`` is the socket's ``session`` option: ``SessionMiddleware``'s options, or a
    function returning them.
    """
    options = check_session_options(config() if callable(config) else config)
    token_key = options.pop("csrf_token_key", "_csrf_token")
    check_csrf = options.pop("check_csrf", True)
    found: dict[str, Any] = {}

    async def capture(scope: Scope, receive: Any, send: Any) -> None:
        found.update(scope.get("session") or {})

    async def nothing() -> Message:  # the middleware reads nothing before calling us
        raise RuntimeError("the session middleware asked for a message")

    async def ignore(message: Message) -> None:
        return None

    await SessionMiddleware(capture, **options)(dict(scope), nothing, ignore)
    if not found:  # no cookie, or a cookie whose signature does not hold
        return None
    if check_csrf:
        given, kept = params.get("_csrf_token"), found.get(token_key)
        if not (type(given) is str and type(kept) is str
                and hmac.compare_digest(given.encode(), kept.encode())):
            return None
    return found
