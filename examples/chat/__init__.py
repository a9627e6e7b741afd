"""A chat on beamish: rooms with presence and message history, for the stock phoenix client.

``app.py`` is the application and its endpoint, ``channels.py`` the socket, the room
channel and the presence, ``rooms.py`` the room processes; ``index.html`` and ``static/``
are the page. Run it with ``make run`` and open http://127.0.0.1:4000.
"""
