"""Supervisors: child specs, restart strategies, the dynamic and the partitioned supervisor."""
