"""Every example in one node, from one landing page: what ``make run`` starts."""
