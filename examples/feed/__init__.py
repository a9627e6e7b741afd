"""A social feed: ``beamish run examples.feed.app:Feed``. ``timelines.py`` holds the fan-out
design; ``store.py`` the SQL (SQLite or PostgreSQL)."""
