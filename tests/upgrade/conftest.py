"""A package of modules written by the test, importable, and rewritten to upgrade them."""

from __future__ import annotations

import importlib
import itertools
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

_ids = itertools.count(1)


class Code:
    """``write("counter", source)`` writes ``<package>/counter.py``; ``load`` imports it;
    ``name("counter")`` is its module name for ``upgrade``."""

    def __init__(self, root: Path) -> None:
        self.package = f"upgrade_case_{next(_ids)}"
        self.dir = root / self.package
        self.dir.mkdir()
        (self.dir / "__init__.py").write_text("")
        self.root = root

    def name(self, module: str) -> str:
        return f"{self.package}.{module}"

    def write(self, module: str, source: str) -> Path:
        path = self.dir / f"{module}.py"
        path.write_text(textwrap.dedent(source))
        return path

    def load(self, module: str) -> ModuleType:
        return importlib.import_module(self.name(module))


@pytest.fixture
def code(tmp_path: Path):
    found = Code(tmp_path)
    sys.path.insert(0, str(tmp_path))
    sys.dont_write_bytecode, saved = True, sys.dont_write_bytecode
    try:
        yield found
    finally:
        sys.dont_write_bytecode = saved
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n.split(".")[0] == found.package]:
            del sys.modules[name]
