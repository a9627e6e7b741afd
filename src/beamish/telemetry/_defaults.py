"""``default_metrics()``: the metrics a new beamish application reports, named ``beamish_*``.

One definition per question an operator asks first: how many requests, how slow, which
failed; how many sockets and channels; how the pools wait; what crashed and what its
supervisor did; how busy the node and the machine are (those last from the ``Poller``).
"""

from __future__ import annotations

from beamish.telemetry._metrics import Metric, counter, distribution, last_value

__all__ = ["default_metrics"]


def default_metrics() -> list[Metric]:
    """beamish's own metrics (see the telemetry guide for the table)."""
    runtime = "beamish.runtime.stats"
    host = "beamish.os.stats"
    return [
        # the endpoint
        counter("beamish.endpoint.requests", event_name=("beamish", "endpoint", "stop"),
                tags=["route", "method", "status"], description="HTTP requests served"),
        distribution("beamish.endpoint.duration", event_name=("beamish", "endpoint", "stop"),
                     measurement="duration", tags=["route", "method"], unit="seconds",
                     description="HTTP request time, from its process's start to the end"),
        counter("beamish.endpoint.crashes", event_name=("beamish", "endpoint", "exception"),
                tags=["route", "method", "kind"], description="HTTP requests that crashed"),
        # sockets and channels
        counter("beamish.socket.connects", event_name=("beamish", "socket", "connect"),
                tags=["socket", "transport", "result"], description="socket connections"),
        counter("beamish.channel.joins", event_name=("beamish", "channel", "join"),
                tags=["channel", "result"], description="channel joins, by result"),
        distribution("beamish.channel.handle_in.duration", tags=["channel"],
                     unit="seconds", description="a channel's handle_in time (not by event: "
                     "clients choose event names)"),
        counter("beamish.pubsub.broadcasts", event_name=("beamish", "pubsub", "broadcast"),
                tags=["pubsub"], description="PubSub broadcasts sent from this node"),
        # the data layer
        distribution("beamish.data.query.query_time", tags=["pool"], unit="seconds",
                     description="time a statement took, from sending it to its result"),
        distribution("beamish.data.checkout.queue_time", tags=["pool"], unit="seconds",
                     description="time a caller waited for a connection"),
        counter("beamish.data.query.errors", event_name=("beamish", "data", "query"),
                tags=["pool", "error"], keep=lambda metadata: metadata["error"] is not None,
                description="statements that failed, by error class"),
        # processes and supervision
        counter("beamish.process.crashes", event_name=("beamish", "process", "crash"),
                description="processes that crashed"),
        counter("beamish.supervisor.restarts", event_name=("beamish", "supervisor", "restart"),
                tags=["name"], description="children restarted, by supervisor name"),
        counter("beamish.supervisor.give_ups", event_name=("beamish", "supervisor", "give_up"),
                tags=["name"], description="supervisors that reached their restart limit"),
        counter("beamish.runtime.long_schedules",
                event_name=("beamish", "runtime", "long_schedule"),
                description="steps that held the event loop past the watchdog's threshold"),
        # the poller: the node and the machine
        last_value(f"{runtime}.processes", description="live processes"),
        last_value(f"{runtime}.run_queue", description="processes waiting for their turn"),
        last_value(f"{runtime}.memory", unit="bytes", description="the node's resident memory"),
        last_value(f"{runtime}.loop_lag", unit="seconds",
                   description="how late a timer fires: the event loop's delay"),
        last_value(f"{host}.cpu_percent", description="the machine's CPU use, percent"),
        last_value(f"{host}.memory_available", unit="bytes",
                   description="the machine's available memory"),
        last_value(f"{host}.load1", description="the machine's load average over 1 minute"),
    ]
