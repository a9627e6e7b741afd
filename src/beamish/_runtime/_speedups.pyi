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
