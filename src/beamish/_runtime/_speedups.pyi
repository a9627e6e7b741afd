from collections.abc import Callable
from typing import Any

def send(dest: Any, message: Any) -> None: ...
def dispatch(scheduler: Any) -> int: ...
def configure(
    pid_type: type, process_type: type, scheduler_type: type, atomic: set[type],
    py_send: Callable[[Any, Any], None], isolate: Callable[[Any], Any],
    tick: Callable[[Any], None], init: Any, hibernate: Any, process_exit: type[BaseException],
    stopped: Callable[[Any, Any, Any], None], crashed: Callable[[Any, Any, Any], None],
    start_async: Callable[[Any, Any, Any], None],
) -> None: ...
def configure_host(
    pid_type: type, process_type: type, scheduler_type: type, exit_event: Any,
    spawn_event: Any, current: Any, current_task: Callable[[Any], Any],
    hosted_slow: Callable[[Any, Any, Any], Any], leave_block: Callable[[Any, Any, Any], bool],
    emit_spawn: Callable[[Any], None],
) -> None: ...

class Host:
    spawned: int
    exited: int
    max_processes: int
    open: bool
    def __init__(
        self, runtime: Any, procs: dict[int, Any], ids: Any, node: Any,
        hosted: dict[Any, Any], loop: Any, max_processes: int,
    ) -> None: ...
    def make(self, parent: Any, task: Any) -> Any: ...
    def end(self, proc: Any) -> bool: ...
    def block(self) -> Any: ...
