"""OTP behaviours, written against the kernel's public API only.

GenServer, Supervisor, DynamicSupervisor, PartitionSupervisor, Task, Task.Supervisor,
Agent, Registry and Application. Pure decision logic (restart intensity, strategies) lives
apart from the processes that use it.
"""
