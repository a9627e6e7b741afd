"""Route matching and URL building: pure functions on plain data (no ASGI, no processes).

A path pattern is a string with parameters in braces, each with an optional *convertor*::

    "/users/{id:int}/posts/{slug}"      id is converted to an int, slug is a str
    "/files/{rest:path}"                rest takes the remainder, slashes included

The convertors are Starlette's (``str``, the default, ``int``, ``float``, ``path``,
``uuid``), plus any a router adds. ``compile_path`` turns a pattern into a ``PathPattern``;
``RouteTable`` holds the routes of one router, in declaration order, and answers two
questions: which route takes this path and method (``match``), and which path does this
route name make with these parameters (``url_path``).

Matching follows declaration order, as Phoenix's and Starlette's routers do: the first route
whose pattern and method match wins; a path matched only by routes of other methods is a
405 with the methods that would have matched. A static path that no earlier pattern could
take is found with one dict lookup instead of a walk over the routes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.convertors import CONVERTOR_TYPES, Convertor

from beamish._errors import BeamishError

__all__ = [
    "DEFAULT_CONVERTORS",
    "Match",
    "PathPattern",
    "RouteEntry",
    "RouteError",
    "RouteTable",
    "allowed_methods",
    "compile_path",
    "join_paths",
]

DEFAULT_CONVERTORS: Mapping[str, Convertor[Any]] = CONVERTOR_TYPES
_PARAM = re.compile(r"{([^{}]*)}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

Kind = Literal["http", "websocket", "mount"]


class RouteError(BeamishError, ValueError):
    """A route pattern, a route table or a ``url_for`` call that cannot work."""


@dataclass(frozen=True, slots=True, eq=False)
class PathPattern:
    """A compiled path pattern.

    ``regex`` is None for a static pattern (no parameters); ``template`` is the pattern with
    the convertors stripped (``"/users/{id}"``), which ``url_path`` fills in.
    """

    pattern: str
    regex: re.Pattern[str] | None
    params: tuple[str, ...]
    convertors: Mapping[str, Convertor[Any]]
    template: str

    @property
    def static(self) -> bool:
        return self.regex is None

    def match(self, path: str) -> dict[str, Any] | None:
        """The converted parameters if ``path`` matches the whole pattern, else None."""
        if self.regex is None:
            return {} if path == self.pattern else None
        found = self.regex.fullmatch(path)
        if found is None:
            return None
        return {k: self.convertors[k].convert(v) for k, v in found.groupdict().items()}

    def match_prefix(self, path: str) -> tuple[str, dict[str, Any]] | None:
        """For a mount: ``(matched_prefix, params)`` if ``path`` is the pattern or below it."""
        if self.regex is None:
            prefix = self.pattern
            if path == prefix or path.startswith(prefix + "/") or prefix == "":
                return prefix, {}
            return None
        found = self.regex.match(path)
        if found is None:
            return None
        end = found.end()
        if end != len(path) and path[end] != "/":
            return None
        params = {k: self.convertors[k].convert(v) for k, v in found.groupdict().items()}
        return path[:end], params

    def format(self, params: Mapping[str, Any]) -> str:
        """The path for ``params`` (exactly this pattern's parameters, converted back)."""
        path = self.template
        for name in self.params:
            path = path.replace("{" + name + "}", self.convertors[name].to_string(params[name]))
        return path


def compile_path(
    pattern: str, convertors: Mapping[str, Convertor[Any]] = DEFAULT_CONVERTORS
) -> PathPattern:
    """Compile ``pattern`` (e.g. ``"/users/{id:int}"``); raises RouteError if it is malformed."""
    if not isinstance(pattern, str):
        raise RouteError(f"a route path must be a str such as '/users/{{id:int}}', got {pattern!r}")
    if pattern and not pattern.startswith("/"):
        raise RouteError(f"a route path must start with '/': got {pattern!r}, try '/{pattern}'")
    stripped = _PARAM.sub("", pattern)
    if "{" in stripped or "}" in stripped:
        raise RouteError(
            f"unbalanced braces in route path {pattern!r}: a parameter is written "
            "{name} or {name:convertor}"
        )
    regex = "^"
    template = ""
    params: list[str] = []
    used: dict[str, Convertor[Any]] = {}
    pos = 0
    for found in _PARAM.finditer(pattern):
        name, _, kind = found.group(1).partition(":")
        name, kind = name.strip(), (kind.strip() or "str")
        if not _NAME.match(name):
            raise RouteError(
                f"bad parameter name {name!r} in route path {pattern!r}: use a Python "
                "identifier, e.g. {id} or {id:int}"
            )
        if name in used:
            raise RouteError(f"route path {pattern!r} names the parameter {name!r} twice")
        convertor = convertors.get(kind)
        if convertor is None:
            raise RouteError(
                f"unknown convertor {kind!r} for {{{name}:{kind}}} in route path {pattern!r}; "
                f"the convertors are {', '.join(sorted(convertors))} (a Router takes more "
                "with convertors={...})"
            )
        literal = pattern[pos:found.start()]
        regex += re.escape(literal) + f"(?P<{name}>{convertor.regex})"
        template += literal + "{" + name + "}"
        params.append(name)
        used[name] = convertor
        pos = found.end()
    if not params:
        return PathPattern(pattern, None, (), {}, pattern)
    regex += re.escape(pattern[pos:])
    template += pattern[pos:]
    return PathPattern(pattern, re.compile(regex), tuple(params), used, template)


def join_paths(prefix: str, path: str) -> str:
    """``prefix`` + ``path``, with no doubled or trailing slash (``"/api"`` + ``"/"``)."""
    if not prefix:
        return path
    if path in ("", "/"):
        return prefix
    return prefix.rstrip("/") + path


@dataclass(frozen=True, slots=True, eq=False)
class RouteEntry:
    """One route: what kind, its compiled path, methods, name, and what serves it.

    ``target`` and ``options`` are opaque here: the router decides what they mean (a handler
    and its timeout, say). ``methods`` is None for websocket routes and mounts.
    """

    kind: Kind
    path: PathPattern
    target: Any
    methods: frozenset[str] | None = None
    name: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Match:
    """The answer of ``RouteTable.match``.

    ``route`` is the matched route (None if none matched); ``params`` its converted path
    parameters; for a mount, ``prefix`` is the part of the path the mount took. When no
    route matched but some matched the path with other methods, ``allowed`` lists them
    (a 405); when nothing matched the path at all, ``allowed`` is empty (a 404).
    """

    route: RouteEntry | None
    params: dict[str, Any]
    prefix: str = ""
    allowed: frozenset[str] = frozenset()


class RouteTable:
    """The routes of one router, in declaration order, indexed for matching and naming."""

    __slots__ = ("names", "routes", "static_http")

    def __init__(self, routes: Iterable[RouteEntry]) -> None:
        self.routes: tuple[RouteEntry, ...] = tuple(routes)
        self.names: dict[str, RouteEntry] = {}
        # path -> method -> route, for static http paths that no earlier pattern can take
        self.static_http: dict[str, dict[str, RouteEntry]] = {}
        earlier: list[RouteEntry] = []
        for route in self.routes:
            if route.name is not None:
                other = self.names.setdefault(route.name, route)
                if other is not route:
                    raise RouteError(
                        f"two routes are named {route.name!r} ({other.path.pattern} and "
                        f"{route.path.pattern}); url_for needs each name once"
                    )
            if route.kind == "http" and route.path.static and route.methods is not None:
                pattern = route.path.pattern
                if not any(_could_take(e, pattern) for e in earlier):
                    by_method = self.static_http.setdefault(pattern, {})
                    for method in route.methods:
                        by_method.setdefault(method, route)
            if route.kind != "websocket":
                earlier.append(route)

    def match(self, kind: Literal["http", "websocket"], path: str, method: str = "GET") -> Match:
        """The first route of ``kind`` (or mount) that takes ``path`` with ``method``."""
        if kind == "http":
            by_method = self.static_http.get(path)
            if by_method is not None:
                found = by_method.get(method)
                if found is not None:
                    return Match(found, {})
        allowed: set[str] = set()
        for route in self.routes:
            if route.kind == "mount":
                taken = route.path.match_prefix(path)
                if taken is not None:
                    return Match(route, taken[1], taken[0])
                continue
            if route.kind != kind:
                continue
            params = route.path.match(path)
            if params is None:
                continue
            methods = route.methods
            if methods is None or method in methods:
                return Match(route, params)
            allowed |= methods
        return Match(None, {}, "", frozenset(allowed))

    def url_path(self, name: str, params: Mapping[str, Any]) -> tuple[RouteEntry, str]:
        """The route named ``name`` and its path for ``params``; raises RouteError otherwise.

        For a mount, the parameters the mount's own path does not take are left for the
        mounted app (the caller passes them on).
        """
        route = self.names.get(name)
        if route is None:
            known = ", ".join(sorted(self.names)) or "none"
            raise RouteError(f"no route is named {name!r} (the named routes: {known})")
        wanted = set(route.path.params)
        given = set(params)
        missing = wanted - given
        extra = given - wanted
        if missing or (extra and route.kind != "mount"):
            expected = ", ".join(route.path.params) or "no parameters"
            raise RouteError(
                f"url_for({name!r}) takes {expected} (path {route.path.pattern}); got "
                f"{', '.join(sorted(given)) or 'no parameters'}"
            )
        try:
            return route, route.path.format(params)
        except (TypeError, ValueError, AssertionError) as exc:
            raise RouteError(
                f"url_for({name!r}, ...): a parameter does not fit path {route.path.pattern}: "
                f"{exc or type(exc).__name__}"
            ) from None


def _could_take(route: RouteEntry, path: str) -> bool:
    """Could ``route`` (declared earlier) take the static ``path``?"""
    if route.kind == "mount":
        return route.path.match_prefix(path) is not None
    if route.path.static:
        return False  # a different static path, or the same one (then it comes first anyway)
    return route.path.regex is not None and route.path.regex.fullmatch(path) is not None


def allowed_methods(methods: Sequence[str]) -> frozenset[str]:
    """Upper-case ``methods``; GET brings HEAD along, as HTTP says it must."""
    if isinstance(methods, str):
        raise RouteError(f"methods must be a list of names, e.g. ['GET'], not the str {methods!r}")
    upper = {m.upper() for m in methods}
    if not upper:
        raise RouteError("a route needs at least one method")
    if "GET" in upper:
        upper.add("HEAD")
    return frozenset(upper)
