-- The task list's one table: a task is a title, in the order it was added.
CREATE TABLE tasks (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL
);
