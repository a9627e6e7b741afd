"""Each public namespace re-exports exactly its sorted __all__, under its public path."""

from __future__ import annotations

import importlib
import inspect
from typing import ClassVar

import pytest

PUBLIC = [
    "beamish", "beamish.cli", "beamish.data", "beamish.pubsub", "beamish.testing", "beamish.web",
]


@pytest.mark.parametrize("name", PUBLIC)
def test_all_is_sorted_and_matches_public_names(name):
    module = importlib.import_module(name)
    exported = module.__all__
    assert list(exported) == sorted(exported), f"{name}.__all__ is not sorted"
    assert len(set(exported)) == len(exported)
    for attr in exported:
        assert hasattr(module, attr), f"{name}.__all__ names {attr} which does not exist"
    public = {
        a for a, v in vars(module).items()
        if not a.startswith("_") and not inspect.ismodule(v) and a not in {"annotations"}
    }
    assert public == set(exported), f"public names not in __all__: {public - set(exported)}"


def test_public_objects_show_the_public_module():
    import beamish

    assert beamish.Actor.__module__ == "beamish"
    assert beamish.spawn.__module__ == "beamish"
    assert repr(beamish.Down).startswith("<class 'beamish.Down'>")


def test_type_hints_of_user_subclasses_resolve():
    """Public classes keep resolvable annotations after their module is set to beamish."""
    import typing

    import beamish

    class MyServer(beamish.GenServer):
        count: ClassVar[int] = 0

    class MyApp(beamish.Application):
        pass

    class MyActor(beamish.Actor):
        pass

    for cls in (MyServer, MyActor):
        assert "pid" in typing.get_type_hints(cls)
    assert "dependencies" in typing.get_type_hints(MyApp)
