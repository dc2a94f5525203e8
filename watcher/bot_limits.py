"""The chat bot's per-user command rate limit: pure, driven by the times the caller passes in."""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field

_PRUNE_ABOVE = 4096  # users remembered before idle ones are forgotten (bounded memory)


class Verdict(enum.Enum):
    ALLOW = "allow"
    WARN = "warn"  # the first refused command: the user is told once
    SILENT = "silent"  # later refused commands: no answer, so a flood costs us nothing


@dataclass(slots=True)
class _UserWindow:
    times: deque[float] = field(default_factory=deque)
    warned: bool = False


class CommandRateLimiter:
    """At most `limit` commands per user in any `seconds`-long window.

    Refused commands do not count, so a user who keeps sending is let in again as soon as the
    window has room; the warning is given once per limited spell.
    """

    def __init__(self, limit: int, seconds: float) -> None:
        if limit < 1 or seconds <= 0:
            raise ValueError("a rate limit needs limit >= 1 and seconds > 0")
        self.limit = limit
        self.seconds = seconds
        self._users: dict[int, _UserWindow] = {}

    def check(self, user_id: int, now: float) -> Verdict:
        """Count one command from `user_id` at monotonic time `now` if the window has room."""
        window = self._users.setdefault(user_id, _UserWindow())
        self._forget_before(window, now - self.seconds)
        if len(window.times) < self.limit:
            window.times.append(now)
            window.warned = False
            self._prune(now)
            return Verdict.ALLOW
        if window.warned:
            return Verdict.SILENT
        window.warned = True
        return Verdict.WARN

    def _prune(self, now: float) -> None:
        if len(self._users) <= _PRUNE_ABOVE:
            return
        cutoff = now - self.seconds
        for user_id in [u for u, w in self._users.items() if not w.times or w.times[-1] <= cutoff]:
            del self._users[user_id]

    @staticmethod
    def _forget_before(window: _UserWindow, cutoff: float) -> None:
        while window.times and window.times[0] <= cutoff:
            window.times.popleft()
