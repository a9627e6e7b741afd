"""The WebSocket origin check: pure functions on strings.

A browser sends an ``Origin`` header with every WebSocket handshake; a page of another site
must not be able to open a socket that carries the user's cookies (cross-site WebSocket
hijacking). ``check_origin`` says which origins may connect, as Phoenix's option does:

- ``True`` (the default): the origin's host and port must be the request's own ``Host``;
- ``False``: no check (only for sockets that need no cookie or session);
- a list of allowed origins: ``"https://example.com"`` (that scheme, host and port),
  ``"//example.com"`` (any scheme and port), ``"//example.com:8443"`` (any scheme, that
  port), ``"//*.example.com"`` (the domain and its subdomains);
- a function ``origin -> bool``.

A handshake without an ``Origin`` header (not from a browser) passes, as in Phoenix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

__all__ = ["OriginCheck", "Allowed", "make_origin_check", "parse_allowed"]

OriginCheck = Callable[[str | None, str | None], bool]
"""``check(origin, host)``: may a handshake with this ``Origin`` on this ``Host`` go on?"""


@dataclass(frozen=True, slots=True)
class Allowed:
    """One allowed origin: scheme and port None mean any; host may start with ``*.``."""

    scheme: str | None
    host: str
    port: int | None

    def admits(self, scheme: str, host: str, port: int | None) -> bool:
        if self.scheme is not None and self.scheme != scheme:
            return False
        if self.port is not None and self.port != (port or _DEFAULT_PORTS.get(scheme)):
            return False
        if self.host.startswith("*."):
            base = self.host[2:]
            return host == base or host.endswith("." + base)
        return host == self.host


_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def parse_allowed(entry: str) -> Allowed:
    """Read one allowed origin (``"https://example.com"``, ``"//*.example.com"``, ...)."""
    if not isinstance(entry, str) or "//" not in entry:
        raise ValueError(
            f"an allowed origin is written 'https://example.com' or '//example.com' "
            f"(any scheme), or '//*.example.com' (subdomains too); got {entry!r}"
        )
    parts = urlsplit(entry if not entry.startswith("//") else "x:" + entry)
    scheme = None if entry.startswith("//") else parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if not host or parts.path not in ("", "/"):
        raise ValueError(f"an allowed origin is a scheme, a host and a port, got {entry!r}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"bad port in allowed origin {entry!r}") from None
    if port is None and scheme is not None:
        port = _DEFAULT_PORTS.get(scheme)
    return Allowed(scheme, host, port)


def _split_origin(origin: str) -> tuple[str, str, int | None] | None:
    parts = urlsplit(origin.strip())
    if not parts.scheme or not parts.hostname:
        return None  # "null" (a sandboxed page, a file) or malformed
    try:
        port = parts.port
    except ValueError:
        return None
    return parts.scheme.lower(), parts.hostname.lower(), port


def _same_host(origin: str | None, host: str | None) -> bool:
    if origin is None:
        return True
    split = _split_origin(origin)
    if split is None or host is None:
        return False
    scheme, name, port = split
    origin_host = name if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{name}:{port}"
    request_host = host.strip().lower()
    if request_host.endswith(":80") and scheme in ("http", "ws"):
        request_host = request_host[:-3]
    elif request_host.endswith(":443") and scheme in ("https", "wss"):
        request_host = request_host[:-4]
    return origin_host == request_host


def make_origin_check(check_origin: Any) -> OriginCheck:
    """Turn the ``check_origin`` option into a check; raises ValueError for a bad option."""
    if check_origin is True:
        return _same_host
    if check_origin is False:
        return lambda origin, host: True
    if callable(check_origin):
        user: Callable[[str], Any] = check_origin
        return lambda origin, host: origin is None or bool(user(origin))
    if isinstance(check_origin, str) or not isinstance(check_origin, Iterable):
        raise ValueError(
            "check_origin takes True (same host), False (no check), a list of allowed origins "
            "such as ['https://example.com', '//*.example.com'], or a function origin -> bool; "
            f"got {check_origin!r}"
        )
    allowed = tuple(parse_allowed(entry) for entry in check_origin)

    def check(origin: str | None, host: str | None) -> bool:
        if origin is None:
            return True
        split = _split_origin(origin)
        return split is not None and any(a.admits(*split) for a in allowed)

    return check
