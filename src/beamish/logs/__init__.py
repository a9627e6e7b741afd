"""Process-aware logging: every record made inside a process carries its pid, registered
name, request id and metadata (Elixir's Logger metadata), written as readable lines or as
JSON. ``beamish run --log-format json|text`` sets it up; elsewhere::

    import logging
    from beamish import logs

    handler = logging.StreamHandler()
    handler.setFormatter(logs.JsonFormatter())  # or TextFormatter(); both are process-aware
    logging.getLogger().addHandler(handler)

``ProcessFilter()`` on any other handler gives its records the same attributes.

See ``docs/guides/telemetry.md`` ("Logs").
"""

from beamish._public import publish
from beamish.logs._formats import JsonFormatter, TextFormatter
from beamish.logs._records import ProcessFilter, add_provider, enrich, metadata

__all__ = ["JsonFormatter", "ProcessFilter", "TextFormatter", "add_provider", "enrich",
           "metadata"]

publish(globals(), __all__, __name__)
del publish
