"""Finding the application that ``beamish run MODULE:APP`` names."""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from typing import Any

import click

from beamish._otp.application.application import Application

__all__ = ["TargetError", "load_application"]


class TargetError(click.ClickException):
    """The target could not be imported or is not an application (exit code 2)."""

    exit_code = 2


def load_application(target: str, app_dir: str = ".") -> Application:
    """Import ``module:attr`` (or ``module`` with one Application in it) and return an instance.

    ``attr`` may be dotted, and may name an Application subclass (instantiated with no
    arguments) or an instance. ``app_dir`` is put first on ``sys.path``, as uvicorn does.
    """
    module_name, _, attr = target.partition(":")
    if not module_name or (":" in target and not attr):
        raise TargetError(
            f"expected MODULE:APP (e.g. shop.app:Shop) or MODULE, got {target!r}"
        )
    path = os.path.abspath(app_dir)
    if path not in sys.path:
        sys.path.insert(0, path)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name + ".").startswith(exc.name + "."):
            raise TargetError(
                f"cannot import {module_name!r}: there is no module named {exc.name!r} "
                f"(looked in {path} and on sys.path; --app-dir sets where to look)"
            ) from None
        raise TargetError(_failed_import(module_name)) from None
    except Exception:
        raise TargetError(_failed_import(module_name)) from None
    found = _applications_in(module)
    if attr:
        obj: Any = module
        for part in attr.split("."):
            try:
                obj = getattr(obj, part)
            except AttributeError:
                known = ", ".join(sorted(found)) or "none"
                raise TargetError(
                    f"module {module_name!r} has no attribute {attr!r} (the applications it "
                    f"defines: {known})"
                ) from None
    elif len(found) == 1:
        obj = next(iter(found.values()))
    else:
        raise TargetError(
            f"module {module_name!r} defines "
            + (f"several applications ({', '.join(sorted(found))})" if found else "no application")
            + f"; name one: {module_name}:APP"
        )
    if isinstance(obj, Application):
        return obj
    if isinstance(obj, type) and issubclass(obj, Application) and obj is not Application:
        try:
            return obj()
        except Exception as exc:
            raise TargetError(f"{target}: {obj.__qualname__}() failed: {exc!r}") from None
    raise TargetError(
        f"{target} is {obj!r} ({type(obj).__name__}), not an Application subclass or instance"
    )


def _applications_in(module: Any) -> dict[str, Any]:
    return {
        name: value for name, value in vars(module).items()
        if isinstance(value, type) and issubclass(value, Application)
        and value is not Application and value.__module__ == module.__name__
    }


def _failed_import(module_name: str) -> str:
    return f"importing {module_name!r} failed:\n" + traceback.format_exc().rstrip()
