"""A real-time dashboard of business events: ``beamish run examples.analytics.app:Analytics``.

See ``app.py`` for its tree, ``pipeline.py`` for how events are counted and published, and
``docs/guides/examples.md`` for the tour.
"""
