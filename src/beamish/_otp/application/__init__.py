"""Applications: start, stop and settings of a supervision tree, and their controller."""
