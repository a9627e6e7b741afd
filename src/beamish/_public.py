"""Publishing a public namespace: ``__module__`` set to the public path, annotations kept.

Every public namespace (``beamish``, ``beamish.web``, ...) only re-exports names defined in
private modules. ``publish`` makes reprs and introspection show the public path
(``beamish.web.Channel``, not ``beamish.web._channel.Channel``). A class's own string
annotations are resolved first, in the module that wrote them: ``typing.get_type_hints``
would otherwise look them up in the public namespace and fail on a user's subclass.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

__all__ = ["publish"]


def publish(namespace: MutableMapping[str, Any], names: Iterable[str], public: str) -> None:
    """Give the objects ``names`` of ``namespace`` the module ``public``."""
    for name in names:
        obj = namespace[name]
        module = getattr(obj, "__module__", "") or ""
        if not any(part.startswith("_") for part in module.split(".")):
            continue  # defined in a public module already
        if isinstance(obj, type):
            defining = vars(sys.modules[module])
            for key, value in inspect.get_annotations(obj).items():
                if isinstance(value, str):
                    # a name imported only for type checking stays text
                    with contextlib.suppress(Exception):
                        obj.__annotations__[key] = eval(value, defining, dict(vars(obj)))
        with contextlib.suppress(AttributeError, TypeError):
            obj.__module__ = public
