"""Settings: typed configuration read from environment variables (pure, no process)."""

from __future__ import annotations

import dataclasses
import enum
from pathlib import Path
from typing import Any, Literal

import pytest

from beamish._errors import BeamishError, SettingsError
from beamish._otp.application.settings import Settings, Variable, reader_for


class Color(enum.Enum):
    RED = "r"
    GREEN = "g"


class Everything(Settings):
    name: str = "shop"
    port: int = 4000
    ratio: float = 0.5
    debug: bool = False
    root: Path = Path("/srv")
    color: Color = Color.RED
    mode: Literal["dev", "prod"] = "dev"
    hosts: tuple[str, ...] = ("localhost",)
    ports: tuple[int, ...] = ()
    limit: int | None = None
    anything: Any = 3


class Required(Settings):
    secret: str
    workers: int = 2


def test_settings_defaults_when_no_variable_is_set():
    assert Everything.from_env("SHOP_", {}) == Everything()
    assert Everything().port == 4000


def test_settings_read_and_convert_every_supported_type():
    env = {
        "SHOP_NAME": "bazaar", "SHOP_PORT": " 8080 ", "SHOP_RATIO": "1.5",
        "SHOP_DEBUG": "Yes", "SHOP_ROOT": "/tmp/x", "SHOP_COLOR": "green",
        "SHOP_MODE": "prod", "SHOP_HOSTS": "a.example, b.example", "SHOP_PORTS": "1,2,3",
        "SHOP_LIMIT": "10", "SHOP_ANYTHING": "7",
    }
    s = Everything.from_env("SHOP_", env)
    assert s == Everything(
        name="bazaar", port=8080, ratio=1.5, debug=True, root=Path("/tmp/x"),
        color=Color.GREEN, mode="prod", hosts=("a.example", "b.example"), ports=(1, 2, 3),
        limit=10, anything=7,
    )


@pytest.mark.parametrize(("text", "value"), [
    ("1", True), ("true", True), ("ON", True), ("yes", True),
    ("0", False), ("False", False), ("off", False), ("no", False),
])
def test_settings_bool_words(text, value):
    assert Everything.from_env("S_", {"S_DEBUG": text}).debug is value


def test_settings_enum_by_value_and_optional_empty_is_none():
    s = Everything.from_env("S_", {"S_COLOR": "r", "S_LIMIT": "", "S_PORTS": ""})
    assert (s.color, s.limit, s.ports) == (Color.RED, None, ())


def test_settings_errors_name_every_variable_and_the_expected_type():
    env = {"S_PORT": "eighty", "S_DEBUG": "maybe", "S_PORTS": "1,x", "S_MODE": "test"}
    with pytest.raises(SettingsError) as info:
        Everything.from_env("S_", env)
    error = info.value
    assert isinstance(error, ValueError) and isinstance(error, BeamishError)
    problems = dict(error.errors)
    assert problems["S_PORT"] == "expected an int, got 'eighty'"
    assert problems["S_DEBUG"].startswith("expected a bool (true/false, yes/no, on/off, 1/0)")
    assert problems["S_PORTS"] == (
        "expected a comma-separated list of int, got '1,x': 'x' is not an int"
    )
    assert problems["S_MODE"] == "expected one of 'dev', 'prod', got 'test'"
    message = str(error)
    assert message.startswith("invalid settings for Everything (from the environment):")
    assert "  S_PORT: expected an int, got 'eighty'" in message


def test_settings_required_variable_missing():
    with pytest.raises(SettingsError) as info:
        Required.from_env("APP_", {"APP_WORKERS": "3"})
    assert info.value.errors == (("APP_SECRET", "required (a str) but not set"),)
    assert Required.from_env("APP_", {"APP_SECRET": "s"}) == Required(secret="s")


def test_settings_read_os_environ_by_default(monkeypatch):
    monkeypatch.setenv("ENVTEST_SECRET", "from-env")
    assert Required.from_env("ENVTEST_").secret == "from-env"


def test_settings_are_frozen_and_keyword_only():
    s = Required(secret="x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.secret = "y"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Required("x")  # type: ignore[misc]


def test_settings_subclass_inherits_and_adds_fields():
    class More(Required):
        extra: bool = True

    s = More.from_env("M_", {"M_SECRET": "k", "M_EXTRA": "0"})
    assert (s.secret, s.workers, s.extra) == ("k", 2, False)


def test_settings_variables_describe_what_is_read():
    assert Required.variables("APP_") == [
        Variable("APP_SECRET", "secret", "a str", True, None),
        Variable("APP_WORKERS", "workers", "an int", False, 2),
    ]


def test_settings_unsupported_annotation_is_refused_naming_the_field():
    class Bad(Settings):
        table: dict[str, int] = dataclasses.field(default_factory=dict)

    with pytest.raises(TypeError, match=r"Bad\.table is annotated .*dict.*use one of str, int"):
        Bad.from_env("B_", {})


def test_settings_unresolvable_annotation_says_to_define_it_at_module_level():
    class Local(enum.Enum):
        A = 1

    class Bad(Settings):
        value: Local = Local.A

    with pytest.raises(TypeError, match="at module level"):
        Bad.from_env("B_", {})


def test_reader_for_refuses_what_a_variable_cannot_hold():
    assert reader_for(list[int]) is None
    assert reader_for(int | str) is None
    assert reader_for(Literal[1.5]) is None
    assert reader_for(int | None) is not None
