"""The feed's data: users, follows, posts (a reply is a post with a parent) and likes, in
SQLite or PostgreSQL through the pool. The database is the truth: a timeline process is
only a window onto it, and any of them can be rebuilt from here.

Every function takes the pool and runs in the calling process (a channel, a timeline);
the SQL is written once for both databases (``db.param(n)`` spells the placeholders).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from beamish.cluster import register_wire_type
from beamish.data import Pool

WINDOW = 50  # posts a timeline shows


@dataclass(frozen=True, slots=True)
class Post:
    """A post as a timeline shows it (``liked``: by the timeline's user)."""

    id: int
    author: str
    author_id: int
    body: str
    reply_to: int | None
    at: int  # milliseconds since the epoch
    likes: int = 0
    replies: int = 0
    liked: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "author": self.author, "body": self.body,
                "reply_to": self.reply_to, "at": self.at, "likes": self.likes,
                "replies": self.replies, "liked": self.liked}


register_wire_type(Post)  # it crosses nodes on the author topics (``beamish run --nodes 2``)


def _p(db: Pool, n: int) -> str:
    return db.param(n)


def now_ms() -> int:
    return int(time.time() * 1000)


async def ensure_user(db: Pool, name: str) -> int:
    """The id of the user ``name``, made at the first sign-in."""
    await db.execute(
        f"INSERT INTO users (name, created_at) VALUES ({_p(db, 1)}, {_p(db, 2)}) "
        "ON CONFLICT (name) DO NOTHING", name, now_ms(),
    )
    found = await db.fetch_value(f"SELECT id FROM users WHERE name = {_p(db, 1)}", name)
    assert found is not None
    return int(found)


async def user_id(db: Pool, name: str) -> int | None:
    found = await db.fetch_value(f"SELECT id FROM users WHERE name = {_p(db, 1)}", name)
    return None if found is None else int(found)


_POST_COLUMNS = (
    "p.id, u.name AS author, p.author_id, p.body, p.reply_to, p.created_at, "
    "(SELECT count(*) FROM likes l WHERE l.post_id = p.id) AS likes, "
    "(SELECT count(*) FROM posts r WHERE r.reply_to = p.id) AS replies"
)


def _post(row: Any, liked: bool = False) -> Post:
    return Post(int(row["id"]), row["author"], int(row["author_id"]), row["body"],
                None if row["reply_to"] is None else int(row["reply_to"]),
                int(row["created_at"]), int(row["likes"]), int(row["replies"]), liked)


async def home(db: Pool, user: int, limit: int = WINDOW) -> list[Post]:
    """The newest posts of ``user`` and of whom they follow, newest first."""
    rows = await db.fetch(
        f"SELECT {_POST_COLUMNS}, EXISTS (SELECT 1 FROM likes l WHERE l.post_id = p.id "
        f"AND l.user_id = {_p(db, 1)}) AS liked "
        "FROM posts p JOIN users u ON u.id = p.author_id "
        f"WHERE p.author_id = {_p(db, 1)} OR p.author_id IN "
        f"(SELECT followee_id FROM follows WHERE follower_id = {_p(db, 1)}) "
        f"ORDER BY p.id DESC LIMIT {_p(db, 2)}", user, limit,
    )
    return [_post(row, bool(row["liked"])) for row in rows]


async def thread(db: Pool, post: int) -> list[Post]:
    """A post's replies, oldest first."""
    rows = await db.fetch(
        f"SELECT {_POST_COLUMNS} FROM posts p JOIN users u ON u.id = p.author_id "
        f"WHERE p.reply_to = {_p(db, 1)} ORDER BY p.id LIMIT 200", post,
    )
    return [_post(row) for row in rows]


async def get_post(db: Pool, post: int) -> Post | None:
    row = await db.fetch_one(
        f"SELECT {_POST_COLUMNS} FROM posts p JOIN users u ON u.id = p.author_id "
        f"WHERE p.id = {_p(db, 1)}", post,
    )
    return None if row is None else _post(row)


async def add_post(db: Pool, author: int, name: str, body: str,
                   reply_to: int | None) -> Post:
    """Store a post (a reply if ``reply_to``); the post as stored."""
    at = now_ms()
    new_id = await db.fetch_value(
        f"INSERT INTO posts (author_id, body, reply_to, created_at) VALUES ({_p(db, 1)}, "
        f"{_p(db, 2)}, {_p(db, 3)}, {_p(db, 4)}) RETURNING id", author, body, reply_to, at,
    )
    assert new_id is not None
    return Post(int(new_id), name, author, body, reply_to, at)


async def set_like(db: Pool, user: int, post: int, liked: bool) -> int:
    """Like (or unlike) a post; its number of likes afterwards."""
    if liked:
        await db.execute(
            f"INSERT INTO likes (user_id, post_id) VALUES ({_p(db, 1)}, {_p(db, 2)}) "
            "ON CONFLICT DO NOTHING", user, post,
        )
    else:
        await db.execute(
            f"DELETE FROM likes WHERE user_id = {_p(db, 1)} AND post_id = {_p(db, 2)}",
            user, post,
        )
    count = await db.fetch_value(
        f"SELECT count(*) FROM likes WHERE post_id = {_p(db, 1)}", post
    )
    return int(count or 0)


async def reply_count(db: Pool, post: int) -> int:
    count = await db.fetch_value(f"SELECT count(*) FROM posts WHERE reply_to = {_p(db, 1)}",
                                 post)
    return int(count or 0)


async def set_follow(db: Pool, follower: int, followee: int, following: bool) -> None:
    if following:
        await db.execute(
            f"INSERT INTO follows (follower_id, followee_id) VALUES ({_p(db, 1)}, "
            f"{_p(db, 2)}) ON CONFLICT DO NOTHING", follower, followee,
        )
    else:
        await db.execute(
            f"DELETE FROM follows WHERE follower_id = {_p(db, 1)} AND followee_id = "
            f"{_p(db, 2)}", follower, followee,
        )


async def following(db: Pool, user: int) -> dict[int, str]:
    """Whom ``user`` follows: id -> name."""
    rows = await db.fetch(
        "SELECT u.id, u.name FROM follows f JOIN users u ON u.id = f.followee_id "
        f"WHERE f.follower_id = {_p(db, 1)} ORDER BY u.name", user,
    )
    return {int(row["id"]): row["name"] for row in rows}


async def others(db: Pool, user: int, limit: int = 20) -> list[str]:
    """Users ``user`` does not follow yet, newest first (whom to follow)."""
    rows = await db.fetch(
        f"SELECT name FROM users WHERE id <> {_p(db, 1)} AND id NOT IN "
        f"(SELECT followee_id FROM follows WHERE follower_id = {_p(db, 1)}) "
        f"ORDER BY id DESC LIMIT {_p(db, 2)}", user, limit,
    )
    return [row["name"] for row in rows]
