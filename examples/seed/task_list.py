"""TaskList, the seed's exercise: "Implement a GenServer that manages a list of tasks,
allowing tasks to be added, removed, and listed."

Written as the Elixir solution would be, in the shape of the seed's Counter: a client API
(``add_task`` and ``remove_task`` are casts, ``list_tasks`` is a call) above the server
callbacks. The state is a tuple, so what ``list_tasks`` returns is immutable.
"""

from typing import Any

import beamish
from beamish import GenServer, NoReply, Ok, Pid, Reply


class TaskList(GenServer):
    # Client API
    @classmethod
    async def start_link(cls, tasks: tuple[str, ...] = ()) -> Pid:
        return await super().start_link(tasks, name=cls.__name__)

    @classmethod
    def add_task(cls, task: str) -> None:
        GenServer.cast(cls.__name__, ("add", task))

    @classmethod
    def remove_task(cls, task: str) -> None:
        GenServer.cast(cls.__name__, ("remove", task))

    @classmethod
    async def list_tasks(cls) -> tuple[str, ...]:
        return await GenServer.call(cls.__name__, "list")

    # Server Callbacks
    def init(self, tasks: tuple[str, ...]) -> Ok:
        return Ok(tuple(tasks))

    def handle_cast(self, request: Any, tasks: tuple[str, ...]):
        match request:
            case ("add", task):
                return NoReply((*tasks, task))
            case ("remove", task):
                return NoReply(tuple(t for t in tasks if t != task))

    def handle_call(self, request: Any, from_: Any, tasks: tuple[str, ...]):
        match request:
            case "list":
                return Reply(tasks, tasks)


async def main() -> None:
    await TaskList.start_link()
    TaskList.add_task("read the seed")
    TaskList.add_task("write the examples")
    TaskList.add_task("run them in the tests")
    TaskList.remove_task("read the seed")
    for task in await TaskList.list_tasks():
        print(f"- {task}")
    print(f"{len(await TaskList.list_tasks())} tasks left")


if __name__ == "__main__":
    beamish.run(main)
