"""One console session: Python inputs run inside the node, in a process of their own.

Each input is compiled with top-level ``await`` allowed and run in the session's namespace
(kept from one input to the next), which starts with beamish's API at hand: ``processes()``,
``process_info``, ``GenServer``, ``Supervisor``, ``get_state``, ``which_children``,
``upgrade``... If the input ends with an expression, its value is shown (``repr``, and
kept as ``_``), as in Python's own REPL. ``print`` in the input writes to the console, not
to the node's output. An exception is shown with its traceback; it ends the input, never
the session, and never the node (``SystemExit`` included).

Output is bounded: ``MAX_OUTPUT`` characters an input (1 MiB), then a note that the rest
was cut.
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import inspect
import io
import traceback
from typing import Any

import beamish
from beamish import GenServer, Supervisor
from beamish.upgrade import changed_modules, upgrade

__all__ = ["MAX_OUTPUT", "Session"]

MAX_OUTPUT = 1 << 20
_FLAGS = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT


class _Output(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.cut = False

    def write(self, text: str) -> int:
        room = MAX_OUTPUT - self.tell()
        if room <= 0:
            self.cut = True
            return len(text)
        if len(text) > room:
            self.cut = True
            text = text[:room]
        return super().write(text)

    def text(self) -> str:
        return self.getvalue() + ("\n[output cut at 1 MiB]\n" if self.cut else "")


def namespace(app_dir: str | None = None) -> dict[str, Any]:
    """What a new session has at hand."""
    found: dict[str, Any] = {name: getattr(beamish, name) for name in beamish.__all__}
    found.update({
        "__name__": "__console__",
        "beamish": beamish,
        "asyncio": asyncio,
        "get_state": GenServer.get_state,
        "get_status": GenServer.get_status,
        "which_children": Supervisor.which_children,
        "count_children": Supervisor.count_children,
        "upgrade": upgrade,
        "changed_modules": (lambda: changed_modules(app_dir)) if app_dir else changed_modules,
    })
    return found


class Session:
    """The namespace and the evaluation of one console connection."""

    def __init__(self, app_dir: str | None = None) -> None:
        self.namespace = namespace(app_dir)

    async def run(self, source: str) -> dict[str, Any]:
        """Run one input; ``{"output", "result"}`` or ``{"output", "error"}``."""
        out = _Output()

        def console_print(*args: Any, **kwargs: Any) -> None:
            if kwargs.get("file") is None:
                kwargs["file"] = out
            builtins.print(*args, **kwargs)

        self.namespace["print"] = console_print
        try:
            code, shows = _compile(source)
            value = eval(code, self.namespace)
            if inspect.iscoroutine(value):
                value = await value
            result = None
            if shows:
                shown = self.namespace.pop("__console_value__", None)
                if shown is not None:
                    self.namespace["_"] = shown
                    result = _clip(repr(shown))
            return {"output": out.text(), "result": result}
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # SystemExit too: it ends the input, not the node
            return {"output": out.text(), "error": _traceback(exc)}


def _compile(source: str) -> tuple[Any, bool]:
    """The input's code object, and whether it ends with an expression to show."""
    tree = ast.parse(source, "<console>", "exec", type_comments=False)
    shows = bool(tree.body) and isinstance(tree.body[-1], ast.Expr)
    if shows:
        last = tree.body[-1]
        assert isinstance(last, ast.Expr)
        tree.body[-1] = ast.copy_location(ast.Assign(
            targets=[ast.Name("__console_value__", ast.Store())], value=last.value,
        ), last)
        ast.fix_missing_locations(tree)
    return compile(tree, "<console>", "exec", flags=_FLAGS, dont_inherit=True), shows


def _traceback(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    # drop the session's own frames: the console shows the input's
    while frames and frames[0].filename != "<console>" and len(frames) > 1:
        frames.pop(0)
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames),
             *traceback.format_exception_only(type(exc), exc)]
    return _clip("".join(lines))


def _clip(text: str) -> str:
    return text if len(text) <= MAX_OUTPUT else text[:MAX_OUTPUT] + "\n[cut at 1 MiB]"
