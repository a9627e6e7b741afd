"""The wire codec: Python terms to msgpack bytes and back, with explicit types only.

msgpack carries None, bool, int (64-bit), float, str, bytes, list and dict as they are. The
rest travels as msgpack extension types, each named below, so that nothing changes shape on
the way: a tuple stays a tuple (pattern matching depends on it), a set stays a set.

=====  ==================  ============================================================
code   type                body (itself msgpack)
=====  ==================  ============================================================
1      tuple               [items]
2      Pid                 [node name, creation, id]
3      Ref                 [node name, creation, id]
4      set                 [items]
5      frozenset           [items]
6      message record      [wire name, [field values]]  (``@message``, register_wire_type)
7      enum member         [wire name, value]
8      exception           [type name, text]            (arrives as ``RemoteError``)
9      ReplyTo             [node name, creation, caller id or None, alias]
10     Request             [reply_to, payload]
11     Crash               [exception]                   (a crash reason)
12     function or class   [wire name]                   (``@remote``, register_wire_callable)
=====  ==================  ============================================================

A value of any other type raises ``WireError`` at the sender, naming the type and how to
register it: never pickled, never dropped in silence. Decoding is bounded (``max_size`` bytes
in, a nesting depth of ``MAX_DEPTH``) and raises ``WireError`` for anything malformed,
including a record name this node does not know.
"""

from __future__ import annotations

import enum
import functools
from typing import Any

import msgpack

from beamish._runtime.messages import Crash, Down, Exit, NodeDown, NodeUp
from beamish._runtime.pid import Pid, Ref
from beamish._runtime.records import (
    WIRE_CALLABLE_NAMES,
    WIRE_CALLABLES,
    WIRE_NAMES,
    WIRE_TYPES,
    register_wire_type,
)
from beamish._runtime.request import ReplyTo, Request
from beamish.cluster._nodes import NodeTable

__all__ = ["MAX_DEPTH", "Codec", "RemoteError", "WireError"]

MAX_DEPTH = 64

(_TUPLE, _PID, _REF, _SET, _FROZENSET, _RECORD, _ENUM, _EXC, _REPLY_TO, _REQUEST,
 _CRASH, _CALLABLE) = range(1, 13)

for _cls in (Down, Exit, NodeUp, NodeDown):
    register_wire_type(_cls, f"beamish.{_cls.__name__}")


class WireError(TypeError):
    """A term that cannot cross the wire (at the sender), or bytes that are not a term."""


class RemoteError(Exception):
    """An exception raised on another node, as it arrived: its type's name and its text.

    Exceptions cross the wire as a description (never as objects: nothing is unpickled), so
    ``Crash(RemoteError("ValueError", "bad input"))`` is how a remote crash reads here.
    """

    def __init__(self, type_name: str, text: str) -> None:
        super().__init__(type_name, text)
        self.type_name = type_name
        self.text = text

    def __str__(self) -> str:
        return f"{self.type_name}: {self.text}"

    def __repr__(self) -> str:
        return f"RemoteError({self.type_name!r}, {self.text!r})"

    def __eq__(self, other: object) -> bool:
        return (type(other) is RemoteError and other.type_name == self.type_name
                and other.text == self.text)

    def __hash__(self) -> int:
        return hash((self.type_name, self.text))


_HOW = (
    "beamish sends None, bool, int (64-bit), float, str, bytes, list, tuple, dict, set, "
    "frozenset, Pid, Ref and message records across nodes: declare the type with "
    "@beamish.message (a frozen dataclass) or beamish.cluster.register_wire_type(cls)"
)


class Codec:
    """Encodes and decodes terms for one node; pids and refs are interned in ``nodes``."""

    __slots__ = ("_depth", "_hooks", "_packer", "_packers", "local_lookup", "max_size", "node",
                 "nodes", "runtime")

    def __init__(self, nodes: NodeTable, alias: Any, *, max_size: int = 8 * 1024 * 1024) -> None:
        self.nodes = nodes
        self.node = nodes.local
        self.runtime = alias  # what registers a ReplyTo for replies (Runtime._alias)
        self.max_size = max_size
        self._packer = self._new_packer()
        # the bodies of extension types, one packer per nesting level: a packer is not
        # reentrant, and making one per body (as msgpack.packb does) costs its buffer
        self._packers: list[msgpack.Packer] = []
        self._depth = 0
        # the extension hooks, one per nesting level, made once (not a closure per term)
        self._hooks = [functools.partial(self._ext, depth=d + 1) for d in range(MAX_DEPTH + 1)]

    def _new_packer(self) -> msgpack.Packer:
        return msgpack.Packer(
            default=self._default, strict_types=True, use_bin_type=True, autoreset=True
        )

    # -- encoding -------------------------------------------------------------------------

    def encode(self, term: Any) -> bytes:
        try:
            return self._packer.pack(term)  # type: ignore[no-any-return]
        except WireError:
            raise
        except (OverflowError, ValueError, TypeError, RecursionError) as exc:
            raise WireError(f"cannot send {_show(term)} to another node: {exc}. {_HOW}") from None

    def _pack(self, term: Any) -> bytes:
        depth = self._depth
        packers = self._packers
        if depth == len(packers):
            packers.append(self._new_packer())
        self._depth = depth + 1
        try:
            return packers[depth].pack(term)  # type: ignore[no-any-return]
        finally:
            self._depth = depth

    def _default(self, term: Any) -> Any:
        t = type(term)
        if t is tuple:
            return msgpack.ExtType(_TUPLE, self._pack(list(term)))
        if t is Pid or t is Ref:
            node = term._node
            return msgpack.ExtType(
                _PID if t is Pid else _REF, self._pack([node.name, node.creation, term.id])
            )
        if t is set or t is frozenset:
            return msgpack.ExtType(_SET if t is set else _FROZENSET, self._pack(list(term)))
        wire = WIRE_NAMES.get(t)
        if wire is not None:
            if wire.kind == "enum":
                return msgpack.ExtType(_ENUM, self._pack([wire.name, term.value]))
            return msgpack.ExtType(
                _RECORD, self._pack([wire.name, [getattr(term, f) for f in wire.fields]])
            )
        if t is Request:
            return msgpack.ExtType(_REQUEST, self._pack([term.reply_to, term.payload]))
        if t is ReplyTo:
            if term._future is None:  # a remote caller's, passed on: it keeps its node
                node, alias = term._node, term._alias
            else:
                node, alias = self.node, self.runtime._alias(term)
            caller = term.pid.id if term.pid is not None else None
            return msgpack.ExtType(
                _REPLY_TO, self._pack([node.name, node.creation, caller, alias])
            )
        if t is Crash:
            return msgpack.ExtType(_CRASH, self._pack([term.exception]))
        if callable(term):
            try:
                name = WIRE_CALLABLE_NAMES.get(term)
            except TypeError:  # unhashable
                name = None
            if name is not None:
                return msgpack.ExtType(_CALLABLE, self._pack([name]))
            raise WireError(
                f"cannot send {_show(term)} to another node: functions and classes cross by "
                "name only. Mark a function other nodes may run with @beamish.cluster.remote "
                "(or beamish.cluster.register_wire_callable) on every node"
            )
        if isinstance(term, RemoteError):  # passed on: it keeps its first description
            return msgpack.ExtType(_EXC, self._pack([term.type_name, term.text]))
        if isinstance(term, BaseException):
            return msgpack.ExtType(_EXC, self._pack([t.__qualname__, str(term)]))
        if isinstance(term, enum.Enum):
            raise WireError(
                f"cannot send {_show(term)} to another node: its enum {t.__qualname__} is not "
                f"registered. Register it with beamish.cluster.register_wire_type"
                f"({t.__qualname__})"
            )
        raise WireError(f"cannot send {_show(term)} to another node: {_HOW}")

    # -- decoding -------------------------------------------------------------------------

    def decode(self, data: bytes) -> Any:
        if len(data) > self.max_size:
            raise WireError(f"a term of {len(data)} bytes is over the limit of {self.max_size}")
        try:
            return self._unpack(data, 0)
        except WireError:
            raise
        except RecursionError:
            raise WireError("a term nested too deeply") from None
        except Exception as exc:
            raise WireError(f"malformed term: {type(exc).__name__}: {exc}") from None

    def _unpack(self, data: bytes, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise WireError(f"a term nested more than {MAX_DEPTH} deep")

        return msgpack.unpackb(
            data, ext_hook=self._hooks[depth], raw=False, strict_map_key=False, use_list=True,
        )

    def _ext(self, code: int, body: bytes, depth: int) -> Any:
        value = self._unpack(body, depth)
        if code == _TUPLE:
            return tuple(_list(value))
        if code in (_PID, _REF):
            name, creation, id = _list(value, 3)
            node = self.nodes.node(_str(name), _int(creation))
            if code == _REF:
                return Ref(node, _int(id))
            return self.nodes.pid(node, _int(id))
        if code == _SET:
            return set(_list(value))
        if code == _FROZENSET:
            return frozenset(_list(value))
        if code in (_RECORD, _ENUM):
            name, fields = _list(value, 2)
            wire = WIRE_TYPES.get(_str(name))
            if wire is None:
                raise WireError(
                    f"a message record {name!r} that this node does not know: register it "
                    "on every node (@beamish.message in a module each node imports)"
                )
            if code == _ENUM:
                if wire.kind != "enum":
                    raise WireError(f"{name!r} is not an enum here")
                return wire.cls(fields)
            if wire.kind != "record":
                raise WireError(f"{name!r} is not a record here")
            values = _list(fields)
            if len(values) != len(wire.fields):
                raise WireError(
                    f"record {name!r} came with {len(values)} fields; this node's has "
                    f"{len(wire.fields)} ({', '.join(wire.fields)})"
                )
            return wire.build(*values)
        if code == _EXC:
            type_name, text = _list(value, 2)
            return RemoteError(_str(type_name), _str(text))
        if code == _REPLY_TO:
            name, creation, caller, alias = _list(value, 4)
            node = self.nodes.node(_str(name), _int(creation))
            pid = None if caller is None else self.nodes.pid(node, _int(caller))
            return ReplyTo._remote(node, pid, _int(alias))
        if code == _REQUEST:
            reply_to, payload = _list(value, 2)
            if type(reply_to) is not ReplyTo:
                raise WireError("a request without a ReplyTo")
            return Request(reply_to, payload)
        if code == _CALLABLE:
            (name,) = _list(value, 1)
            found = WIRE_CALLABLES.get(_str(name))
            if found is None:
                raise WireError(
                    f"a function {name!r} that this node does not know: mark it with "
                    "@beamish.cluster.remote on every node"
                )
            return found
        if code == _CRASH:
            (exception,) = _list(value, 1)
            if not isinstance(exception, BaseException):
                raise WireError("a crash without an exception")
            return Crash(exception)
        raise WireError(f"unknown extension type {code}")


def _list(value: Any, size: int | None = None) -> list[Any]:
    if type(value) is not list or (size is not None and len(value) != size):
        raise WireError(f"malformed term: expected a list{'' if size is None else f' of {size}'}")
    return value


def _str(value: Any) -> str:
    if type(value) is not str:
        raise WireError(f"malformed term: expected a str, got {type(value).__name__}")
    return value


def _int(value: Any) -> int:
    if type(value) is not int:
        raise WireError(f"malformed term: expected an int, got {type(value).__name__}")
    return value


def _show(term: Any) -> str:
    text = repr(term)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{text} ({type(term).__module__}.{type(term).__qualname__})"

