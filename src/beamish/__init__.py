"""beamish: Erlang/Elixir's process model and OTP for Python.

Millions of cheap isolated processes that talk only by messages, with links, monitors,
supervisors and a Phoenix-compatible real-time web layer. This namespace re-exports the
public core; the implementation lives in private modules.
"""

from beamish._errors import (
    ApplicationError,
    BeamishError,
    CallError,
    InvalidNameError,
    InvalidTargetError,
    MessageCopyError,
    NameTakenError,
    NoProcessError,
    NoRuntimeError,
    NotInProcessError,
    NotOwnerError,
    NotRegisteredError,
    ProcessExit,
    RegistryError,
    SettingsError,
    StartError,
    StartIgnored,
    SupervisorError,
    SystemLimitError,
    TrackerError,
)
from beamish._otp.agent import Agent
from beamish._otp.application import (
    Application,
    ApplicationInfo,
    StartType,
    ensure_all_started,
    start_application,
    started_applications,
    stop_all_applications,
    stop_application,
)
from beamish._otp.child_spec import ChildSpec
from beamish._otp.dynamic_supervisor import DynamicFlags, DynamicSupervisor
from beamish._otp.gen_server import Cast, Continue, GenServer, Ignore, NoReply, Ok, Reply, Stop
from beamish._otp.partition_supervisor import PartitionSupervisor
from beamish._otp.registry import Registry
from beamish._otp.settings import Settings
from beamish._otp.supervisor import ChildCounts, ChildInfo, Supervisor, SupervisorFlags
from beamish._otp.task import Task
from beamish._public import publish
from beamish._runtime.api import (
    as_process,
    cancel_timer,
    current_runtime,
    demonitor,
    exit,
    is_alive,
    link,
    make_ref,
    monitor,
    monotonic,
    offload,
    on_exit,
    process_info,
    processes,
    read_timer,
    register,
    registered,
    self,
    send,
    send_after,
    spawn,
    spawn_link,
    spawn_monitor,
    spawn_opt,
    statistics,
    trap_exit,
    unlink,
    unregister,
    wait_exit,
    whereis,
)
from beamish._runtime.clock import Clock, RealClock
from beamish._runtime.entry import new_event_loop, run
from beamish._runtime.introspection import ProcessInfo, RuntimeStatistics
from beamish._runtime.isolation import is_immutable, mark_immutable
from beamish._runtime.messages import Crash, Down, Exit, is_clean_exit, is_shutdown
from beamish._runtime.patterns import ANY
from beamish._runtime.pid import Pid, Ref
from beamish._runtime.process import Actor
from beamish._runtime.receive import receive, receive_nowait, sleep
from beamish._runtime.request import ReplyTo, Request, reply, request
from beamish._runtime.runtime import Runtime
from beamish._runtime.watchdog import LongSchedule

__version__ = "0.1.0"

__all__ = [
    "ANY",
    "Actor",
    "Agent",
    "Application",
    "ApplicationError",
    "ApplicationInfo",
    "BeamishError",
    "CallError",
    "Cast",
    "ChildCounts",
    "ChildInfo",
    "ChildSpec",
    "Clock",
    "Continue",
    "Crash",
    "Down",
    "DynamicFlags",
    "DynamicSupervisor",
    "Exit",
    "GenServer",
    "Ignore",
    "InvalidNameError",
    "InvalidTargetError",
    "LongSchedule",
    "MessageCopyError",
    "NameTakenError",
    "NoProcessError",
    "NoReply",
    "NoRuntimeError",
    "NotInProcessError",
    "NotOwnerError",
    "NotRegisteredError",
    "Ok",
    "PartitionSupervisor",
    "Pid",
    "ProcessExit",
    "ProcessInfo",
    "RealClock",
    "Ref",
    "Registry",
    "RegistryError",
    "Reply",
    "ReplyTo",
    "Request",
    "Runtime",
    "RuntimeStatistics",
    "Settings",
    "SettingsError",
    "StartError",
    "StartIgnored",
    "StartType",
    "Stop",
    "Supervisor",
    "SupervisorError",
    "SupervisorFlags",
    "SystemLimitError",
    "Task",
    "TrackerError",
    "as_process",
    "cancel_timer",
    "current_runtime",
    "demonitor",
    "ensure_all_started",
    "exit",
    "is_alive",
    "is_clean_exit",
    "is_immutable",
    "is_shutdown",
    "link",
    "make_ref",
    "mark_immutable",
    "monitor",
    "monotonic",
    "new_event_loop",
    "offload",
    "on_exit",
    "process_info",
    "processes",
    "read_timer",
    "receive",
    "receive_nowait",
    "register",
    "registered",
    "reply",
    "request",
    "run",
    "self",
    "send",
    "send_after",
    "sleep",
    "spawn",
    "spawn_link",
    "spawn_monitor",
    "spawn_opt",
    "start_application",
    "started_applications",
    "statistics",
    "stop_all_applications",
    "stop_application",
    "trap_exit",
    "unlink",
    "unregister",
    "wait_exit",
    "whereis",
]


publish(globals(), __all__, __name__)
del publish
