"""Process-wide settings for the long-running service (`restock run`)."""

from __future__ import annotations

import gc

# Collect the youngest generation every 10,000 net allocations instead of CPython's 700, and the
# oldest rarely: a busy engine allocates a few thousand short-lived objects per check, so the
# defaults spend a sixth of its CPU in the collector, and each full collection pauses the event
# loop for tens of milliseconds, which lands on a restock's hand-off time.
GC_THRESHOLDS = (10_000, 20, 100)


def tune_gc() -> None:
    """Freeze what exists now (modules, config: never garbage) and collect less often.

    Called once at start-up, after the configuration is loaded; frozen objects are left out of
    every later collection.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
