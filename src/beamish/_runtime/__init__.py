"""The kernel: processes, mailboxes, signals, names, timers, scheduler and watchdog.

Nothing here imports from the layers above (OTP, web, data); they use the public API that
``beamish`` re-exports, and watch the kernel through its telemetry events (``events.py``).
"""
