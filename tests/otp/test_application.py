"""Application: start callbacks, settings, start types, dependencies and ordered stops."""

from __future__ import annotations

import logging
from typing import Any

import pytest

import beamish
from beamish import (
    Application,
    ApplicationError,
    Exit,
    GenServer,
    Ok,
    Settings,
    SettingsError,
    StartError,
    Supervisor,
    ensure_all_started,
    receive,
    send,
    spawn_link,
    start_application,
    started_applications,
    stop_all_applications,
    stop_application,
)
from beamish._otp.application.application import CONTROLLER, check_start_type, start_order
from beamish.testing import capture_events

# Each async test registers itself as "report"; the applications and workers below tell it
# what happens to them, so the tests check order without sleeping.


def report(*event: Any) -> None:
    send("report", event)


async def next_event(timeout: float = 2.0) -> Any:
    return await receive(tuple, timeout=timeout)


async def events(n: int) -> list[Any]:
    return [await next_event() for _ in range(n)]


class Worker(GenServer):
    def init(self, name: str) -> Ok:
        beamish.trap_exit(True)
        report("worker_started", name)
        return Ok(name)

    def terminate(self, reason: Any, name: str) -> None:
        report("worker_stopped", name)


def tree(*names: str) -> list[Any]:
    return [Supervisor.child_spec_of((Worker, n), id=n) for n in names]


class Repo(Application):
    async def start(self, start_type: Any, args: Any) -> Any:
        report("start", self.name, start_type, args)
        return await Supervisor.start_link(tree("repo_worker"), strategy="one_for_one")

    def stop(self, state: Any) -> None:
        report("stop", self.name, state)


class ShopSettings(Settings):
    port: int = 4000
    greeting: str = "hello"


class Shop(Application):
    dependencies = (Repo,)
    settings: ShopSettings

    async def start(self, start_type: Any, args: Any) -> Any:
        report("start", self.name, start_type, args)
        sup = await Supervisor.start_link(tree("a", "b", "c"), strategy="one_for_one")
        return sup, ("state", self.settings.port)

    def prep_stop(self, state: Any) -> Any:
        report("prep_stop", self.name, state)
        return ("prepped", state)

    async def stop(self, state: Any) -> None:
        report("stop", self.name, state)


async def setup() -> None:
    beamish.register("report", beamish.self())


# -- the class and its pure helpers -------------------------------------------------------------


def test_application_name_and_env_prefix_defaults():
    class ShopApp(Application):
        pass

    class Named(Application):
        name = "web.api"

    class Prefixed(Application):
        env_prefix = "X_"

    assert (ShopApp.name, ShopApp.env_prefix) == ("shop_app", "SHOP_APP_")
    assert (Named.name, Named.env_prefix) == ("web.api", "WEB_API_")
    assert (Prefixed.name, Prefixed.env_prefix) == ("prefixed", "X_")
    assert Shop.settings_class() is ShopSettings
    assert Repo.settings_class() is Settings


def test_application_refuses_settings_assigned_instead_of_annotated():
    with pytest.raises(TypeError, match=r"`settings: ShopSettings`, not an assignment"):
        class Wrong(Application):
            settings = ShopSettings  # type: ignore[assignment]


def test_application_dependencies_must_be_application_classes():
    with pytest.raises(TypeError, match="must be a tuple of Application classes"):
        class Wrong(Application):
            dependencies = ("repo",)  # type: ignore[assignment]


def test_application_settings_given_must_be_of_the_declared_class():
    with pytest.raises(TypeError, match="takes settings of type ShopSettings"):
        Shop(settings=Settings())


@pytest.mark.parametrize("start_type", ["normal", ("takeover", "a@host"), ("failover", "b@h")])
def test_start_type_forms(start_type):
    check_start_type(start_type)


@pytest.mark.parametrize("start_type", ["takeover", ("takeover",), ("normal", "x"), None])
def test_start_type_invalid_lists_the_forms(start_type):
    with pytest.raises(ApplicationError, match=r'use "normal", \("takeover", node\)'):
        check_start_type(start_type)


def test_start_order_puts_dependencies_first_once():
    class Base(Application):
        pass

    class Left(Application):
        dependencies = (Base,)

    class Right(Application):
        dependencies = (Base,)

    class Top(Application):
        dependencies = (Left, Right)

    assert start_order(Top) == [Base, Left, Right, Top]


def test_start_order_refuses_a_cycle_naming_it():
    class First(Application):
        pass

    class Second(Application):
        dependencies = (First,)

    First.dependencies = (Second,)
    with pytest.raises(ApplicationError) as info:
        start_order(Second)
    assert info.value.reason == ("circular_dependencies", ("second", "first", "second"))
    assert "second -> first -> second" in str(info.value)


def test_start_order_refuses_two_applications_with_one_name():
    class One(Application):
        name = "same"

    class Two(Application):
        name = "same"
        dependencies = (One,)

    with pytest.raises(ApplicationError, match="two applications are named 'same'"):
        start_order(Two)


# -- starting and stopping ----------------------------------------------------------------------


async def test_start_application_returns_once_the_tree_is_up_and_stop_reverses_it():
    await setup()
    await start_application(Repo, args="repo-args")
    assert await events(2) == [
        ("start", "repo", "normal", "repo-args"), ("worker_started", "repo_worker"),
    ]
    await start_application(Shop)
    assert await events(4) == [
        ("start", "shop", "normal", None),
        ("worker_started", "a"), ("worker_started", "b"), ("worker_started", "c"),
    ]
    [shop, repo] = await started_applications()
    assert (shop.name, shop.status, repo.name) == ("shop", "running", "repo")
    assert shop.supervisor is not None and beamish.is_alive(shop.supervisor)
    assert [c.id for c in await Supervisor.which_children(shop.supervisor)] == ["c", "b", "a"]

    await stop_application(Shop)
    assert await events(5) == [
        ("prep_stop", "shop", ("state", 4000)),
        ("worker_stopped", "c"), ("worker_stopped", "b"), ("worker_stopped", "a"),
        ("stop", "shop", ("prepped", ("state", 4000))),
    ]
    assert not beamish.is_alive(shop.pid) and not beamish.is_alive(shop.supervisor)
    assert [a.name for a in await started_applications()] == ["repo"]
    await stop_application("repo")
    assert await events(2) == [("worker_stopped", "repo_worker"), ("stop", "repo", None)]
    assert beamish.whereis(CONTROLLER) is None  # nothing runs: the controller is gone


async def test_start_application_passes_the_start_type():
    await setup()
    await start_application(Repo, start_type=("failover", "other@host"))
    assert await next_event() == ("start", "repo", ("failover", "other@host"), None)
    [info] = await started_applications()
    assert info.start_type == ("failover", "other@host")
    await stop_all_applications()


async def test_start_application_refuses_a_bad_start_type_or_restart_type():
    with pytest.raises(ApplicationError, match="invalid start type 'takeover'"):
        await start_application(Repo, start_type="takeover")
    with pytest.raises(ApplicationError, match="invalid restart type 'sometimes'"):
        await start_application(Repo, restart="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ApplicationError, match="expected an Application subclass"):
        await start_application("repo")


async def test_start_application_twice_is_already_started():
    await setup()
    await start_application(Repo)
    with pytest.raises(ApplicationError) as info:
        await start_application(Repo)
    assert info.value.reason == ("already_started", "repo")
    await stop_all_applications()


async def test_start_application_needs_its_dependencies_running():
    with pytest.raises(ApplicationError) as info:
        await start_application(Shop)
    assert info.value.reason == ("not_started", "repo")
    assert "use ensure_all_started(Shop)" in str(info.value)
    assert beamish.whereis(CONTROLLER) is None


async def test_stop_application_that_does_not_run():
    with pytest.raises(ApplicationError) as info:
        await stop_application(Shop)
    assert info.value.reason == ("not_started", "shop")
    assert await stop_all_applications() == []
    assert await started_applications() == []


async def test_ensure_all_started_starts_dependencies_first_and_stop_all_reverses():
    await setup()
    assert await ensure_all_started(Shop, "shop-args") == ["repo", "shop"]
    started = await events(6)
    assert started[0] == ("start", "repo", "normal", None)
    assert started[2] == ("start", "shop", "normal", "shop-args")
    assert await ensure_all_started(Shop) == []  # all running already

    assert await stop_all_applications() == ["shop", "repo"]
    assert await events(7) == [
        ("prep_stop", "shop", ("state", 4000)),
        ("worker_stopped", "c"), ("worker_stopped", "b"), ("worker_stopped", "a"),
        ("stop", "shop", ("prepped", ("state", 4000))),
        ("worker_stopped", "repo_worker"), ("stop", "repo", None),
    ]
    assert beamish.whereis(CONTROLLER) is None


# -- settings -----------------------------------------------------------------------------------


async def test_settings_are_read_before_start_and_kept_on_the_instance():
    await setup()
    await start_application(Repo)
    shop = Shop(environ={"SHOP_PORT": "8080"})
    await start_application(shop)
    assert shop.settings == ShopSettings(port=8080)  # the caller's instance, not a copy
    await events(6)
    await stop_application(shop)
    assert (await events(5))[0] == ("prep_stop", "shop", ("state", 8080))
    await stop_all_applications()


async def test_settings_given_replace_the_environment():
    await setup()
    await start_application(Repo)
    shop = Shop(settings=ShopSettings(port=1), environ={"SHOP_PORT": "2"})
    await start_application(shop)
    assert shop.settings.port == 1
    await stop_all_applications()


async def test_settings_that_cannot_be_read_fail_the_start_naming_the_variable(caplog):
    await setup()
    with pytest.raises(StartError) as info:
        await ensure_all_started(Shop(environ={"SHOP_PORT": "eighty"}))
    assert "application 'shop' failed to start: SettingsError" in str(info.value)
    assert "SHOP_PORT: expected an int, got 'eighty'" in str(info.value)
    assert isinstance(info.value.__cause__, SettingsError)
    # Repo was started by this call, so it was stopped again
    assert await events(3) == [
        ("start", "repo", "normal", None), ("worker_started", "repo_worker"),
        ("worker_stopped", "repo_worker"),
    ]
    assert await started_applications() == []
    failed = [r for r in caplog.records if r.name == "beamish.application"
              and r.levelno == logging.ERROR]
    assert "SHOP_PORT" in failed[0].getMessage() and failed[0].exc_info is None


# -- failed starts ------------------------------------------------------------------------------


class Raises(Application):
    async def start(self, start_type: Any, args: Any) -> Any:
        raise ValueError("no disk")


class ReturnsNonsense(Application):
    async def start(self, start_type: Any, args: Any) -> Any:
        return "ok"


class ReturnsForeignPid(Application):
    async def start(self, start_type: Any, args: Any) -> Any:
        return args


class ChildFails(Application):
    async def start(self, start_type: Any, args: Any) -> Any:
        return await Supervisor.start_link([Supervisor.child_spec_of(
            {"id": "db", "start": (Worker.start_link, (None,))}
        ), (Refuses, None)], strategy="one_for_one")


class Refuses(GenServer):
    def init(self, arg: Any) -> Any:
        return beamish.Stop("no database")


async def test_start_that_raises_fails_with_the_exception_as_cause():
    with pytest.raises(StartError) as info:
        await start_application(Raises)
    assert str(info.value) == "application 'raises' failed to start: ValueError: no disk"
    assert isinstance(info.value.__cause__, ValueError)
    assert await started_applications() == []


async def test_a_start_that_raises_is_one_crash_reported_once(caplog):
    before = beamish.statistics().crashed
    with capture_events(("beamish", "process", "crash")) as crashes, pytest.raises(StartError):
        await start_application(Raises)
    hooked = [e.metadata["reason"] for e in crashes]
    assert beamish.statistics().crashed == before + 1
    assert len(hooked) == 1 and isinstance(hooked[0].exception, ValueError)
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "failed to start" in errors[0].getMessage()


async def test_start_must_return_the_root_supervisor():
    with pytest.raises(StartError, match="must return the root supervisor's pid"):
        await start_application(ReturnsNonsense)
    with pytest.raises(StartError, match="which it did not start; start the root supervisor"):
        await start_application(ReturnsForeignPid, args=beamish.self())


async def test_start_fails_when_the_root_supervisor_cannot_start_a_child():
    await setup()
    with pytest.raises(StartError) as info:
        await start_application(ChildFails)
    assert "child Refuses failed to start: 'no database'" in str(info.value)
    assert await events(2) == [("worker_started", None), ("worker_stopped", None)]


async def test_start_application_without_start_callback():
    class Empty(Application):
        pass

    with pytest.raises(StartError, match="must define `async def start"):
        await start_application(Empty)


# -- applications that stop on their own --------------------------------------------------------


class Bare(Application):
    """A root supervisor without children: only the application's own events are reported."""

    async def start(self, start_type: Any, args: Any) -> Any:
        return await Supervisor.start_link([], strategy="one_for_one"), "bare-state"

    def prep_stop(self, state: Any) -> Any:
        report("prep_stop", self.name, state)
        return state

    def stop(self, state: Any) -> None:
        report("stop", self.name, state)


async def test_temporary_application_whose_tree_dies_is_reported_and_others_keep_running(caplog):
    await setup()
    await start_application(Repo)
    await start_application(Bare)
    [bare, _repo] = await started_applications()
    exited = beamish.wait_exit(bare.pid)
    beamish.exit(bare.supervisor, "kill")
    assert await exited == "killed"
    assert await events(4) == [
        ("start", "repo", "normal", None), ("worker_started", "repo_worker"),
        ("prep_stop", "bare", "bare-state"), ("stop", "bare", "bare-state"),
    ]
    assert [a.name for a in await started_applications()] == ["repo"]
    assert any(
        "application 'bare' (temporary) exited with reason 'killed'" in r.getMessage()
        for r in caplog.records
    )
    await stop_all_applications()


async def test_permanent_application_stopping_stops_the_others_and_the_controller():
    await setup()
    await start_application(Repo)
    await start_application(Bare, restart="permanent")
    await events(2)
    controller = beamish.whereis(CONTROLLER)
    assert controller is not None
    ended = beamish.wait_exit(controller)
    [bare, _repo] = await started_applications()
    beamish.exit(bare.supervisor, "kill")
    assert await ended == ("shutdown", ("application_terminated", "bare", "killed"))
    assert await events(4) == [
        ("prep_stop", "bare", "bare-state"), ("stop", "bare", "bare-state"),
        ("worker_stopped", "repo_worker"), ("stop", "repo", None),
    ]


async def test_transient_application_stopping_normally_is_not_a_failure():
    await setup()
    await start_application(Repo)
    await start_application(Shop, restart="transient")
    await events(6)
    [shop, _repo] = await started_applications()
    exited = beamish.wait_exit(shop.pid)
    await Supervisor.stop(shop.supervisor)  # reason "normal"
    assert await exited == "normal"
    assert [a.name for a in await started_applications()] == ["repo"]
    await stop_all_applications()


async def test_failing_stop_callbacks_are_logged_and_the_stop_completes(caplog):
    class Clumsy(Application):
        async def start(self, start_type: Any, args: Any) -> Any:
            return await Supervisor.start_link(tree("w"), strategy="one_for_one")

        def prep_stop(self, state: Any) -> Any:
            raise RuntimeError("prep_stop broke")

        def stop(self, state: Any) -> None:
            raise RuntimeError("stop broke")

    await setup()
    await start_application(Clumsy)
    await stop_application(Clumsy)
    assert await events(2) == [("worker_started", "w"), ("worker_stopped", "w")]
    logged = [r.getMessage() for r in caplog.records if r.name == "beamish.application"]
    assert "application 'clumsy': prep_stop raised" in logged
    assert "application 'clumsy': stop raised" in logged


# -- concurrency with the controller ------------------------------------------------------------


class Gated(Application):
    """Its start waits for the test to say "go", so the test can act while it starts."""

    async def start(self, start_type: Any, args: Any) -> Any:
        report("starting", beamish.self())
        await receive("go", timeout=5)
        return await Supervisor.start_link(tree("g"), strategy="one_for_one")


class StoppedWhileStarting(Application):
    """Its start returns only once the stop request has reached it."""

    async def start(self, start_type: Any, args: Any) -> Any:
        report("starting", beamish.self())
        message = await receive(Exit, timeout=5)
        send(beamish.self(), message)  # leave it for the application's own loop
        return await Supervisor.start_link(tree("s"), strategy="one_for_one")


async def call_in_process(fn: Any, *args: Any) -> None:
    async def caller() -> None:
        try:
            result = await fn(*args)
        except BaseException as exc:
            report("raised", fn.__name__, exc)
            return
        report("returned", fn.__name__, result)

    spawn_link(caller)


async def test_the_controller_answers_while_an_application_starts():
    await setup()
    await call_in_process(start_application, Gated)
    _, master = await next_event()
    [info] = await started_applications()
    assert (info.name, info.status, info.supervisor, info.pid) == (
        "gated", "starting", None, master,
    )
    await call_in_process(ensure_all_started, Gated)  # waits for the same start
    send(master, "go")
    got = sorted(await events(3), key=repr)
    assert got == sorted([
        ("worker_started", "g"), ("returned", "start_application", None),
        ("returned", "ensure_all_started", []),
    ], key=repr)
    await stop_all_applications()
    assert await next_event() == ("worker_stopped", "g")


async def test_stop_all_while_an_application_starts_stops_it_once_it_is_up():
    await setup()
    await call_in_process(start_application, StoppedWhileStarting)
    await next_event()
    assert await stop_all_applications() == ["stopped_while_starting"]
    up, down, (outcome, fn, exc) = await events(3)
    assert (up, down) == (("worker_started", "s"), ("worker_stopped", "s"))
    assert (outcome, fn) == ("raised", "start_application")
    assert isinstance(exc, StartError) and exc.reason == "stopped"
    assert beamish.whereis(CONTROLLER) is None


def test_stopping_the_runtime_stops_applications_in_reverse_start_order():
    seen: list[str] = []

    class Recorder(GenServer):
        def init(self, name: str) -> Ok:
            beamish.trap_exit(True)
            seen.append(f"start {name}")
            return Ok(name)

        def terminate(self, reason: Any, name: str) -> None:
            seen.append(f"stop {name}")

    class Lower(Application):
        async def start(self, start_type: Any, args: Any) -> Any:
            return await Supervisor.start_link([(Recorder, "lower")], strategy="one_for_one")

    class Upper(Application):
        dependencies = (Lower,)

        async def start(self, start_type: Any, args: Any) -> Any:
            children = [Supervisor.child_spec_of((Recorder, n), id=n) for n in ("u1", "u2")]
            return await Supervisor.start_link(children, strategy="one_for_one")

    async def main() -> None:
        await ensure_all_started(Upper)  # and return without stopping anything

    beamish.run(main)
    assert seen == [
        "start lower", "start u1", "start u2", "stop u2", "stop u1", "stop lower",
    ]


async def test_application_process_names_show_in_introspection():
    await setup()
    await start_application(Repo)
    [info] = await started_applications()
    assert beamish.whereis("application:repo") == info.pid
    assert beamish.process_info(info.supervisor).parent == info.pid
    assert beamish.process_info(info.pid).parent == beamish.whereis(CONTROLLER)
    await stop_all_applications()
