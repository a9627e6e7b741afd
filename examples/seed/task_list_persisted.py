"""TaskList, persisted: the seed's exercise, with the tasks kept in a database.

The same client API as ``task_list.py`` (``add_task`` and ``remove_task`` are casts,
``list_tasks`` is a call), but the GenServer keeps no list: it reads and writes the
``tasks`` table through a pool of SQLite connections, each owned by a supervised process.
The supervision tree starts the pool, applies the migrations in ``migrations/`` (once: they
are recorded in the database), then starts the server. The script runs the tree twice on
one database file, to show that the tasks outlive the processes.

Run it with a path to keep the database (``python task_list_persisted.py tasks.db``);
without one it uses a temporary file.
"""

import sys
import tempfile
from pathlib import Path
from typing import Any

import beamish
from beamish import GenServer, NoReply, Ok, Pid, Reply, Supervisor
from beamish.data import Pool, SQLite

MIGRATIONS = Path(__file__).with_name("migrations")


def tree(db: Pool) -> list[Any]:
    return [db.child_spec(), db.migrator(MIGRATIONS), (TaskList, db)]


class TaskList(GenServer):
    # Client API
    @classmethod
    async def start_link(cls, db: Pool) -> Pid:
        return await super().start_link(db, name=cls.__name__)

    @classmethod
    def add_task(cls, task: str) -> None:
        GenServer.cast(cls.__name__, ("add", task))

    @classmethod
    def remove_task(cls, task: str) -> None:
        GenServer.cast(cls.__name__, ("remove", task))

    @classmethod
    async def list_tasks(cls) -> tuple[str, ...]:
        return await GenServer.call(cls.__name__, "list")

    # Server Callbacks: the state is the pool; the tasks are in its database
    def init(self, db: Pool) -> Ok:
        return Ok(db)

    async def handle_cast(self, request: Any, db: Pool) -> NoReply:
        match request:
            case ("add", task):
                await db.execute("INSERT INTO tasks (title) VALUES (?1)", task)
            case ("remove", task):
                await db.execute("DELETE FROM tasks WHERE title = ?1", task)
        return NoReply(db)

    async def handle_call(self, request: Any, from_: Any, db: Pool) -> Reply:
        match request:
            case "list":
                rows = await db.fetch("SELECT title FROM tasks ORDER BY id")
                return Reply(tuple(row["title"] for row in rows), db)


async def main(path: str) -> None:
    db = Pool(SQLite(path), name="tasks_db")

    sup = await Supervisor.start_link(tree(db))
    TaskList.add_task("read the seed")
    TaskList.add_task("write the examples")
    TaskList.add_task("run them in the tests")
    TaskList.remove_task("read the seed")
    for task in await TaskList.list_tasks():
        print(f"- {task}")
    print(f"{len(await TaskList.list_tasks())} tasks left")
    await Supervisor.stop(sup)

    sup = await Supervisor.start_link(tree(db))  # new processes, the same database
    print(f"after a restart: {len(await TaskList.list_tasks())} tasks still there")
    await Supervisor.stop(sup)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        beamish.run(main, sys.argv[1])
    else:
        with tempfile.TemporaryDirectory() as folder:
            beamish.run(main, str(Path(folder) / "tasks.db"))
