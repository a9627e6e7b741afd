CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);
CREATE TABLE follows (
    follower_id INTEGER NOT NULL REFERENCES users (id),
    followee_id INTEGER NOT NULL REFERENCES users (id),
    PRIMARY KEY (follower_id, followee_id)
);
CREATE INDEX follows_by_followee ON follows (followee_id);
CREATE TABLE posts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    author_id INTEGER NOT NULL REFERENCES users (id),
    body TEXT NOT NULL,
    reply_to INTEGER REFERENCES posts (id),
    created_at INTEGER NOT NULL
);
CREATE INDEX posts_by_author ON posts (author_id, id);
CREATE INDEX posts_by_parent ON posts (reply_to);
CREATE TABLE likes (
    user_id INTEGER NOT NULL REFERENCES users (id),
    post_id INTEGER NOT NULL REFERENCES posts (id),
    PRIMARY KEY (post_id, user_id)
);
