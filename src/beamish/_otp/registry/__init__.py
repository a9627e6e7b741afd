"""Registry: keys to processes, unique or duplicate, partitioned, read without a message."""
