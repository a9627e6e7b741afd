"""Task, Task.Supervisor and async streams of tasks."""
