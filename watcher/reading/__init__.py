"""One page -> one observation, off the event loop (parse pool and its workers)."""
