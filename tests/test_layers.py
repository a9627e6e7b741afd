"""Imports point down: the kernel imports nothing above it, and so on up the layers."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "beamish"

# Lower number = lower layer. A module may import from its own layer or lower ones.
LAYERS = {
    "beamish._errors": 0,
    "beamish._public": 0,
    "beamish._runtime": 0,
    "beamish._otp": 1,
    "beamish.pubsub": 2,
    "beamish.data": 2,
    "beamish.telemetry": 2,
    "beamish.logs": 2,
    "beamish.upgrade": 2,
    "beamish.web": 3,
    "beamish.dashboard": 4,  # above web: its page is a socket and a channel
    "beamish.cluster": 5,
    "beamish.cli": 5,
    "beamish.console": 5,  # beamish run's console, and the REPL beamish remote opens
    "beamish.testing": 5,
    "beamish": 6,  # the top-level namespace re-exports everything
}

# Imports upward on purpose, each with its reason.
EXCEPTIONS = {
    # a console session's namespace *is* the public API: what `from beamish import *` gives
    ("beamish.console._session", "beamish"),
}


def layer_of(module: str) -> int:
    best = None
    for prefix, layer in LAYERS.items():
        if (module == prefix or module.startswith(prefix + ".")) and (
            best is None or len(prefix) > len(best[0])
        ):
            best = (prefix, layer)
    assert best is not None, f"{module} belongs to no layer; add it to LAYERS"
    return best[1]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {m for m in found if m == "beamish" or m.startswith("beamish.")}


def test_imports_point_down():
    violations = []
    for path in SRC.rglob("*.py"):
        name = module_name(path)
        own = layer_of(name)
        for imported in imports_of(path):
            if layer_of(imported) > own and (name, imported) not in EXCEPTIONS:
                violations.append(f"{name} (layer {own}) imports {imported}")
    assert not violations, "\n".join(violations)


def test_the_kernel_imports_no_public_namespace():
    for path in (SRC / "_runtime").rglob("*.py"):
        assert "beamish" not in imports_of(path), f"{path} imports the top-level beamish"
