-- The chat's messages, every room's in one table; a room reads its last ones by (room, id).
CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    room TEXT NOT NULL,
    user TEXT NOT NULL,
    body TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX messages_by_room ON messages (room, id);
