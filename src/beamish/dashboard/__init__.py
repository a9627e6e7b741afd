"""The live dashboard: a page an operator opens in a browser, mounted on any router, built on
beamish's own channels and updating live (Phoenix LiveDashboard's role).

    from beamish.dashboard import Dashboard

    dashboard = Dashboard(pubsub="shop.pubsub", allow="local")
    router.mount("/dashboard", dashboard.app())

Pages: Home (the node, its processes, memory, run queue, the machine), Processes (a
sortable, searchable, paged table; a process's details; kill it and watch its supervisor
start another) and Applications (each supervision tree). Access is off unless configured.
See ``docs/guides/dashboard.md``.
"""

from beamish._public import publish
from beamish.dashboard._app import Dashboard

__all__ = ["Dashboard"]

publish(globals(), __all__, __name__)
del publish
