"""A live stream: one broadcaster, thousands of viewers, a chat beside it and a live viewer
count. ``beamish run examples.stream.app:Stream``; see ``studio.py`` for the processes.
"""
