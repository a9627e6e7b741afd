"""The application the CLI tests run with `beamish run tests.cli.sample_app:Sample`.

Every event is appended to SAMPLE_LOG_FILE, one line each, so a test can check the order
in which things started and stopped. SAMPLE_MODE picks a behaviour:

- ``ok``: a root supervisor with workers a, b, c;
- ``fail_start``: the third child refuses to start;
- ``crash``: a child crashes over and over, until the root supervisor gives up;
- ``stuck_stop``: a child never finishes its terminate (its shutdown is "infinity");
- ``slow_start``: start logs "sample: starting" and takes a moment before it is up;
- ``slow_stop``: a child takes a moment (half a second) to finish its terminate.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, Literal

from beamish import (
    Application,
    GenServer,
    NoReply,
    Ok,
    Pid,
    Settings,
    StartType,
    Stop,
    Supervisor,
    sleep,
    trap_exit,
)

log = logging.getLogger("sample")


class SampleSettings(Settings):
    log_file: Path
    mode: Literal["ok", "fail_start", "crash", "stuck_stop", "slow_start", "slow_stop"] = "ok"


def record(settings: SampleSettings, line: str) -> None:
    with settings.log_file.open("a") as f:
        f.write(line + "\n")


class Recorder(GenServer):
    """Writes when it starts and when it stops."""

    def init(self, arg: tuple[SampleSettings, str]) -> Any:
        trap_exit(True)
        settings, name = arg
        if settings.mode == "fail_start" and name == "c":
            return Stop("no database")
        record(settings, f"worker start {name}")
        return Ok(arg)

    def terminate(self, reason: Any, state: tuple[SampleSettings, str]) -> None:
        settings, name = state
        record(settings, f"worker stop {name}")


class Crasher(GenServer):
    """Crashes right after each start."""

    def init(self, arg: None) -> Ok:
        return Ok(None, 0)

    def handle_info(self, message: Any, state: None) -> NoReply:
        raise RuntimeError("boom")


class Stuck(GenServer):
    """Never finishes stopping."""

    def init(self, arg: None) -> Ok:
        trap_exit(True)
        return Ok(None)

    async def terminate(self, reason: Any, state: None) -> None:
        await asyncio.Event().wait()


class Slow(GenServer):
    """Takes a moment to stop."""

    def init(self, arg: None) -> Ok:
        trap_exit(True)
        return Ok(None)

    async def terminate(self, reason: Any, state: None) -> None:
        await sleep(0.5)


class SampleDep(Application):
    env_prefix = "SAMPLE_"
    settings: SampleSettings

    async def start(self, start_type: StartType, args: Any) -> Pid:
        return await Supervisor.start_link(
            [Supervisor.child_spec_of((Recorder, (self.settings, "dep")), id="dep")],
            strategy="one_for_one",
        )

    def stop(self, state: Any) -> None:
        record(self.settings, "app stop sample_dep")


class Sample(Application):
    dependencies = (SampleDep,)
    settings: SampleSettings

    async def start(self, start_type: StartType, args: Any) -> Pid:
        s = self.settings
        children: list[Any] = [
            Supervisor.child_spec_of((Recorder, (s, name)), id=name) for name in "abc"
        ]
        if s.mode == "crash":
            children.append(Supervisor.child_spec_of(Crasher, id="crasher"))
        if s.mode == "stuck_stop":
            children.insert(0, Supervisor.child_spec_of(Stuck, id="stuck", shutdown="infinity"))
        if s.mode == "slow_stop":
            children.insert(0, Supervisor.child_spec_of(Slow, id="slow"))
        if s.mode == "slow_start":
            log.info("sample: starting")
            await sleep(0.5)
        return await Supervisor.start_link(children, strategy="one_for_one", name="sample.sup")

    def prep_stop(self, state: Any) -> Any:
        record(self.settings, "app prep_stop sample")
        return state

    def stop(self, state: Any) -> None:
        record(self.settings, "app stop sample")


prebuilt = Sample()  # `beamish run` accepts an instance too


class NotAnApplication:
    pass
