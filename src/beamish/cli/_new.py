"""``beamish new NAME``: a new project that runs, with its tests, as ``mix phx.new`` gives.

How it works. The project is the files under ``project_template/``, copied with four tokens
replaced: ``__NAME__`` (the package, which is also the directory the package lives in),
``__CLASS__`` (the application class, NAME in CamelCase), ``__BEAMISH__`` (the requirement
line beamish is installed from) and ``__PHOENIX__`` (the phoenix client's version, the one
this checkout's own page uses). A file name loses its ``.tmpl``; ``gitignore`` becomes
``.gitignore``. Nothing is written over: the directory must not exist, or be empty.

The requirement line is, in order: what ``--beamish`` says; the source tree the running
beamish is imported from (``beamish[web] @ file:///...``), when it runs from a checkout;
where pip installed it from (a path or a git URL at its commit); else ``beamish[web]``.
"""

from __future__ import annotations

import importlib.metadata
import json
import keyword
import re
import sys
from pathlib import Path

__all__ = ["PHOENIX_VERSION", "ProjectError", "beamish_requirement", "new_project"]

PHOENIX_VERSION = "1.8.16"  # the stock client the generated page loads (npm's `phoenix`)
TEMPLATE = Path(__file__).resolve().parent / "project_template"
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_TAKEN = {"beamish", "test", "tests", "app", "web", "node_modules"}


class ProjectError(ValueError):
    """``beamish new`` cannot write the project as asked."""


def class_name(name: str) -> str:
    """``my_shop`` -> ``MyShop``."""
    return "".join(part.capitalize() for part in name.split("_") if part)


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise ProjectError(
            f"a project name is a Python package name: lower-case letters, digits and _, "
            f"starting with a letter (e.g. my_shop); got {name!r}"
        )
    if keyword.iskeyword(name) or name in _TAKEN or name in sys.stdlib_module_names:
        raise ProjectError(
            f"{name!r} would hide a module of the same name (Python's, beamish's, or the "
            "project's tests); choose another, e.g. my_" + name
        )


def beamish_requirement() -> str:
    """The requirement line that installs the beamish running now (see the module)."""
    source = Path(__file__).resolve().parents[3]  # src/beamish/cli/_new.py in a checkout
    pyproject = source / "pyproject.toml"
    if pyproject.is_file() and 'name = "beamish"' in pyproject.read_text():
        return f"beamish[web] @ {source.as_uri()}"
    try:
        found = importlib.metadata.distribution("beamish").read_text("direct_url.json")
    except importlib.metadata.PackageNotFoundError:
        found = None
    if found:
        origin = json.loads(found)
        url = origin.get("url", "")
        vcs = origin.get("vcs_info")
        if vcs and vcs.get("vcs") == "git":
            return f"beamish[web] @ git+{url}@{vcs.get('commit_id', '')}".rstrip("@")
        if url:
            return f"beamish[web] @ {url}"
    return "beamish[web]"


def new_project(name: str, directory: Path | None = None, *, requirement: str | None = None
                ) -> Path:
    """Write the project ``name`` into ``directory`` (default ``./name``); returns its path."""
    _check_name(name)
    target = Path(directory if directory is not None else name).resolve()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ProjectError(f"{target} exists and is not an empty directory; nothing written")
    tokens = {
        "__NAME__": name,
        "__CLASS__": class_name(name),
        "__BEAMISH__": requirement or beamish_requirement(),
        "__PHOENIX__": PHOENIX_VERSION,
    }
    for source in sorted(TEMPLATE.rglob("*")):
        if not source.is_file() or "__pycache__" in source.parts:
            continue
        relative = source.relative_to(TEMPLATE).as_posix().replace("__NAME__", name)
        relative = relative.removesuffix(".tmpl")
        if relative == "gitignore":
            relative = ".gitignore"
        text = source.read_text()
        for token, value in tokens.items():
            text = text.replace(token, value)
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return target
