"""Layout drift: a store whose pages stopped yielding any signal has likely changed its markup."""

from __future__ import annotations

from watcher.core.model import Availability, Observation

REAL_STATES = frozenset(Availability) - {Availability.UNKNOWN}
_LAYOUT_MISSES = ("no signal", "not a product page")
# Layout-drift warnings are kept beside the hosts' rows (`host_state`) under this prefix; a host
# name never contains a colon, so the two never meet.
STORE_ROW_PREFIX = "store:"


class LayoutDrift:
    """Notices a store whose pages stopped yielding any signal: its markup likely changed.

    A miss counts only for a product whose last known state was a real one (a page that never
    parsed says nothing about a change); any real state from the store resets its count.
    """

    def __init__(self, threshold: int = 3) -> None:
        self.threshold = threshold
        self.misses: dict[str, int] = {}  # misses in a row, per store
        self.reported: set[str] = set()
        self.total = 0  # every miss counted, for the counters

    def observe(self, store: str, observation: Observation, knew_state: bool) -> str | None:
        """Count one observation; "reported" or "recovered" when the store's verdict flips."""
        if observation.state in REAL_STATES:
            self.misses.pop(store, None)
            if store in self.reported:
                self.reported.discard(store)
                return "recovered"
            return None
        if not (knew_state and is_layout_miss(observation.reason)):
            return None
        self.misses[store] = self.misses.get(store, 0) + 1
        self.total += 1
        if self.misses[store] >= self.threshold and store not in self.reported:
            self.reported.add(store)
            return "reported"
        return None


def is_layout_miss(reason: str) -> bool:
    """True for an adapter's "found nothing on this page" reasons (with or without a prefix)."""
    tail = reason.split(":", 1)[-1].strip()
    return any(reason.startswith(m) or tail.startswith(m) for m in _LAYOUT_MISSES)
