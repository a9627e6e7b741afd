"""GenServer and Agent: a process that serves calls and casts over its state."""
