from collections.abc import Callable
from typing import Any

def send(dest: Any, message: Any) -> None: ...
def configure(
    pid_type: type, process_type: type, scheduler_type: type, atomic: set[type],
    py_send: Callable[[Any, Any], None], isolate: Callable[[Any], Any],
    tick: Callable[[Any], None],
) -> None: ...
