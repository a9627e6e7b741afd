CREATE TABLE users (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);
CREATE TABLE follows (
    follower_id BIGINT NOT NULL REFERENCES users (id),
    followee_id BIGINT NOT NULL REFERENCES users (id),
    PRIMARY KEY (follower_id, followee_id)
);
CREATE INDEX follows_by_followee ON follows (followee_id);
CREATE TABLE posts (
    id BIGSERIAL PRIMARY KEY,
    author_id BIGINT NOT NULL REFERENCES users (id),
    body TEXT NOT NULL,
    reply_to BIGINT REFERENCES posts (id),
    created_at BIGINT NOT NULL
);
CREATE INDEX posts_by_author ON posts (author_id, id);
CREATE INDEX posts_by_parent ON posts (reply_to);
CREATE TABLE likes (
    user_id BIGINT NOT NULL REFERENCES users (id),
    post_id BIGINT NOT NULL REFERENCES posts (id),
    PRIMARY KEY (post_id, user_id)
);
